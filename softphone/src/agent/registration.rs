//! The registration client (RFC 3261 §10.2): REGISTER with our Contact, the digest answer to a
//! 401/407, 423 Interval Too Brief, the refresh at half the granted interval, retries with
//! backoff when a refresh fails (the registrar restarting or unreachable; the wait of RFC 5626
//! §4.5), and the unregistration (Expires 0) on the way out.

use std::time::{Duration, Instant};

use proto::sip::{Contact, HeaderName, Method, Request, Response, Uri};
use proto::transaction::ClientId;

/// Where the registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegState {
    /// Not registered and not trying.
    Idle,
    /// A REGISTER is out, asking for `expires` seconds (0 to unregister).
    Pending {
        /// Its client transaction.
        id: ClientId,
        /// The interval asked for.
        expires: u32,
    },
    /// Registered; refresh at `refresh_at`.
    Registered {
        /// When to send the refresh.
        refresh_at: Instant,
    },
    /// Was registered, then a refresh failed: try again at `retry_at`.
    Retrying {
        /// When to send the next REGISTER.
        retry_at: Instant,
    },
    /// Gave up; nothing more will be tried.
    Failed,
}

/// What a response did to the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegOutcome {
    /// Nothing to report (a provisional response).
    Nothing,
    /// Send the REGISTER again (with credentials or a longer interval).
    Retry {
        /// The interval to ask for.
        expires: u32,
        /// Whether the retry answers a challenge.
        challenge: bool,
    },
    /// Registered for this many seconds.
    Registered(u32),
    /// The binding is removed.
    Unregistered,
    /// Refused with this status.
    Failed(u16, String),
    /// A refresh failed with this status; the next try is due after the delay.
    Lost(u16, String, Duration),
}

/// The first wait after a failed refresh, doubled after each further failure (RFC 5626 §4.5
/// base-time when every flow failed).
const RETRY_BASE: Duration = Duration::from_secs(30);
/// The longest wait between tries (RFC 5626 §4.5 max-time).
const RETRY_MAX: Duration = Duration::from_secs(1800);

/// The REGISTER dialogue with one registrar for one address of record.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) aor: Uri,
    request_uri: Uri,
    contact: Uri,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The interval we ask for.
    pub(crate) expires: u32,
    pub(crate) state: RegState,
    /// A 2xx has granted us a binding at least once: later failures are retried.
    registered_once: bool,
    /// Failed tries since the last success.
    failures: u32,
}

impl Registration {
    pub(crate) fn new(
        aor: Uri,
        request_uri: Uri,
        contact: Uri,
        call_id: String,
        from_tag: String,
        cseq: u32,
        expires: u32,
    ) -> Self {
        Registration {
            aor,
            request_uri,
            contact,
            call_id,
            from_tag,
            cseq,
            expires,
            state: RegState::Idle,
            registered_once: false,
            failures: 0,
        }
    }

    /// A REGISTER asking for `expires` seconds (0 removes our binding), without Via or
    /// credentials: the agent adds those. The same Call-ID and a higher CSeq each time (§10.2.4).
    pub(crate) fn request(&mut self, expires: u32) -> Request {
        self.cseq = self.cseq.wrapping_add(1);
        let mut r = Request::new(Method::Register, self.request_uri.clone());
        let h = &mut r.headers;
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, format!("<{}>;tag={}", self.aor, self.from_tag));
        h.push(HeaderName::To, format!("<{}>", self.aor));
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{} REGISTER", self.cseq));
        h.push(HeaderName::Contact, format!("<{}>;expires={expires}", self.contact));
        h.push(HeaderName::Expires, expires.to_string());
        r
    }

    /// Reads a final or provisional response to our pending REGISTER.
    /// `jitter` (0.5 to 1.0) scales the wait before a retry, should the response end a refresh.
    pub(crate) fn on_response(&mut self, response: &Response, now: Instant, jitter: f64) -> RegOutcome {
        let RegState::Pending { expires, .. } = self.state else { return RegOutcome::Nothing };
        match response.status {
            100..=199 => RegOutcome::Nothing,
            200..=299 if expires == 0 => {
                self.state = RegState::Idle;
                RegOutcome::Unregistered
            }
            200..=299 => {
                let granted = self.granted(response).unwrap_or(expires);
                if granted == 0 {
                    return self.fail(response.status, "the registrar kept no binding for our Contact", now, jitter);
                }
                self.state = RegState::Registered { refresh_at: now + refresh_after(granted) };
                (self.registered_once, self.failures) = (true, 0);
                RegOutcome::Registered(granted)
            }
            401 | 407 => RegOutcome::Retry { expires, challenge: true },
            423 => match min_expires(response) {
                Some(min) if min > expires => {
                    self.expires = min;
                    RegOutcome::Retry { expires: min, challenge: false }
                }
                _ => self.fail(response.status, &response.reason, now, jitter),
            },
            status => self.fail(status, &response.reason, now, jitter),
        }
    }

    /// A REGISTER failed with `status`: final before the first success, else retried after a
    /// wait that doubles with each failure, from [`RETRY_BASE`] up to [`RETRY_MAX`], scaled by
    /// `jitter` (50% to 100%, so phones that lost the same registrar do not come back at once).
    pub(crate) fn fail(&mut self, status: u16, reason: &str, now: Instant, jitter: f64) -> RegOutcome {
        let expires = match self.state {
            RegState::Pending { expires, .. } => expires,
            _ => self.expires,
        };
        if !self.registered_once || expires == 0 {
            self.state = RegState::Failed;
            return RegOutcome::Failed(status, reason.to_owned());
        }
        let doubled = RETRY_BASE.saturating_mul(1u32 << self.failures.min(16));
        let wait = doubled.min(RETRY_MAX).mul_f64(jitter.clamp(0.5, 1.0));
        self.failures = self.failures.saturating_add(1);
        self.state = RegState::Retrying { retry_at: now + wait };
        RegOutcome::Lost(status, reason.to_owned(), wait)
    }

    /// The interval the registrar granted our Contact: its `expires` parameter, else the
    /// Expires header (§10.2.4).
    fn granted(&self, response: &Response) -> Option<u32> {
        let ours = |uri: &Uri| {
            uri.user == self.contact.user
                && uri.host.eq_ignore_case(&self.contact.host)
                && uri.port == self.contact.port
        };
        let from_contact = response.headers.contacts().ok().and_then(|contacts| {
            contacts.into_iter().find_map(|c| match c {
                Contact::Addr(addr) if ours(&addr.uri) => addr.params.value("expires").and_then(|v| v.parse().ok()),
                _ => None,
            })
        });
        from_contact.or_else(|| response.headers.expires().ok().flatten())
    }

    /// When a refresh or a retry is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            RegState::Registered { refresh_at: at } | RegState::Retrying { retry_at: at } => Some(at),
            _ => None,
        }
    }
}

/// Refresh at half the granted interval (at least 1 s), well before the binding lapses.
fn refresh_after(granted: u32) -> Duration {
    Duration::from_secs(u64::from(granted / 2).max(1))
}

fn min_expires(response: &Response) -> Option<u32> {
    response.headers.get(HeaderName::MinExpires).and_then(|v| v.trim().parse().ok())
}
