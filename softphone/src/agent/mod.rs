//! The user agent core, sans-IO (RFC 3261 §8, §10, §12–§15): registration, one call at a time
//! in either direction (two for a moment while we are being transferred), and the events a UI
//! shows.
//!
//! [`UserAgent`] is fed datagrams with their source ([`UserAgent::handle_message`]), commands
//! ([`UserAgent::register`], [`UserAgent::dial`], [`UserAgent::answer`], [`UserAgent::reject`],
//! [`UserAgent::hangup`], [`UserAgent::hold`], [`UserAgent::transfer`], [`UserAgent::unregister`], …)
//! and the time ([`UserAgent::handle_timeout`]); it is polled for
//! messages to send ([`UserAgent::poll_transmit`]), for [`Event`]s and for its next deadline
//! ([`UserAgent::poll_timeout`]). Retransmissions and matching are the
//! [`TransactionLayer`]'s; dialog state is [`proto::dialog`]'s; offer/answer is
//! [`proto::sdp`]'s. This module decides what to send when.
//!
//! - [`registration`]: REGISTER, digest answer, refresh at half the granted interval,
//!   unregistration; [`keepalive`]: CRLF keep-alives on a TCP/TLS flow (RFC 5626 §4.4.1).
//! - [`call`]: the INVITE dialogues: outgoing (offer, 407 retry, 1xx/2xx through a
//!   [`proto::dialog::DialogSet`], ACK, CANCEL), incoming (180, 200 with the answer, 2xx
//!   retransmission until the ACK), BYE both ways.
//! - [`session`]: changes to a connected call: hold and resume by re-INVITE both ways (RFC 3264
//!   §8.4, RFC 6337), glare (491), and DTMF by SIP INFO.
//! - [`transfer`]: blind call transfer both ways (RFC 3515 REFER, RFC 5589 §6): as transferor,
//!   REFER with Refer-To and Referred-By (RFC 3892), the `message/sipfrag` NOTIFYs of the
//!   implicit subscription (RFC 3420), and BYE with reason `transferred` on a final 2xx; as
//!   transferee, 202, NOTIFY `100 Trying`, a new call to the target while the old dialog is kept
//!   for the final NOTIFY (one NOTIFY in flight at a time, RFC 6665 §4.2.2) until the transferor
//!   hangs up, and back to the old call if the new one fails.
//! - [`digest`]: the client side of digest authentication.
//! - [`srtp`]: whether a call's SDP carries SDES-SRTP keys ([`SrtpPolicy`], RFC 4568 §8.3).

mod call;
mod digest;
pub mod keepalive;
mod registration;
mod session;
mod srtp;
mod transfer;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto::dialog::{SentBy, new_branch, new_call_id, new_tag};
use proto::sdp::{LocalMedia, Negotiated};
use proto::sip::{HeaderName, Host, Message, Method, Request, Transport, Uri};
use proto::transaction::{Event as TxnEvent, Target, TimerConfig, TransactionLayer, Transmit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::debug;

use call::Call;
use digest::Digest;
use registration::{RegOutcome, RegState, Registration};

pub use call::HangupReason;
pub use session::Party;
pub use srtp::SrtpPolicy;

/// Transactions a phone has live at once is small; this bounds a flood.
const MAX_TRANSACTIONS: usize = 256;

/// What the user agent is and where it lives.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our extension: the user part of our address of record and the digest user name.
    pub user: String,
    /// The digest password.
    pub password: String,
    /// Our domain: the host part of our address of record.
    pub domain: String,
    /// The address our SIP socket is bound to, as the peers reach it; over TCP or TLS, the
    /// local address of our connection to the registrar, which is reached back through it.
    pub local: SocketAddr,
    /// The signalling transport: every request goes over it, and Via and Contact name it
    /// (`transport=tls`, RFC 5626 §4.2: the registrar reaches us over our own connection).
    pub transport: Transport,
    /// The registrar, also the outbound proxy for calls to extensions.
    pub registrar: Option<SocketAddr>,
    /// The registration interval we ask for, in seconds.
    pub register_expires: u32,
    /// Our audio: address, RTP port, codecs.
    pub media: LocalMedia,
    /// Answer incoming calls at once.
    pub auto_answer: bool,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// When calls use SRTP (see [`SrtpPolicy`]).
    pub srtp: SrtpPolicy,
    /// The CRLF keep-alive interval on a TCP or TLS flow to the registrar (RFC 5626 §4.4.1; each
    /// ping comes after 80% to 100% of it); `None` sends none.
    pub keepalive: Option<Duration>,
}

/// What the user agent tells its UI and media shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The registrar accepted our binding for this many seconds.
    Registered {
        /// Seconds granted.
        expires: u32,
    },
    /// The registrar refused us, or did not answer (408).
    RegistrationFailed {
        /// The final status.
        status: u16,
        /// The reason phrase or what went wrong.
        reason: String,
    },
    /// A refresh failed after we had been registered (the registrar restarting, unreachable, or
    /// in trouble); the agent tries again after `retry_in` and says [`Event::Registered`] when it
    /// is back.
    RegistrationLost {
        /// The final status, 408 when the registrar did not answer.
        status: u16,
        /// The reason phrase or what went wrong.
        reason: String,
        /// How long until the next try.
        retry_in: Duration,
    },
    /// Our binding is removed.
    Unregistered,
    /// Someone is calling.
    Incoming {
        /// The caller's From.
        from: String,
    },
    /// The far end is ringing (a 180 or 183 arrived).
    Ringing,
    /// The call is connected: start media with this.
    Answered {
        /// What offer/answer agreed.
        negotiated: Box<Negotiated>,
    },
    /// Offer/answer on the connected call agreed anew (a re-INVITE either way): apply it to
    /// the media.
    MediaChanged {
        /// What was agreed now.
        negotiated: Box<Negotiated>,
        /// We hold the far end: send it silence instead of our audio.
        muted: bool,
    },
    /// The call went on hold.
    Held {
        /// Who put it on hold.
        by: Party,
    },
    /// The call came off hold.
    Resumed {
        /// Who took it off hold.
        by: Party,
    },
    /// The far end sent a DTMF digit by SIP INFO.
    DtmfInfo {
        /// The digit: 0-9, *, #, A-D.
        digit: char,
    },
    /// We accepted a REFER: the call is being transferred to `target`, and a new call to it
    /// follows (its Ringing and Answered; media moves over on that Answered).
    Referred {
        /// The Refer-To target.
        target: String,
    },
    /// A transfer moved on: the status line of a sipfrag NOTIFY, received as transferor or sent
    /// as transferee (100 Trying, then 200 OK for success).
    TransferProgress {
        /// The sipfrag's status.
        status: u16,
    },
    /// A transfer failed and the call stays up as it was.
    TransferFailed {
        /// The final status of the REFER or of the call to the target; 408 when no answer came.
        status: u16,
    },
    /// The call we were transferred from (see [`Event::Referred`]) is over, by the transferor's
    /// BYE or ours. When the new call is not answered yet, stop the old call's media now.
    OldLegHungUp {
        /// Why: `Remote` when the transferor hung up, `Local` when we did.
        reason: HangupReason,
    },
    /// The call is over: stop media.
    HungUp {
        /// Why.
        reason: HangupReason,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A call is already in progress.
    #[error("a call is already in progress: hang up first")]
    Busy,
    /// There is no call to act on.
    #[error("there is no call to act on")]
    NoCall,
    /// There is no incoming call waiting for an answer.
    #[error("no incoming call is ringing: only a call not yet answered can be rejected; hang up instead")]
    NotRinging,
    /// No registrar was configured, so there is nothing to register with or route through.
    #[error("no registrar configured: give --registrar, or dial a sip: URI with an IP address")]
    NoRegistrar,
    /// A transfer of this call is already under way.
    #[error("a transfer is already under way: wait for its result")]
    Transferring,
    /// The target's host is not an IP address and there is no registrar to send through.
    #[error("cannot reach {0}: its host is not an IP address; dial through a registrar or give an IP")]
    Unreachable(String),
    /// `--srtp require` but the signalling is not TLS, so no SRTP key can be exchanged safely.
    #[error("SRTP is required but SIP does not run over TLS, so no key can be exchanged: use TLS or --srtp offer")]
    SrtpNeedsTls,
}

/// The user agent; see the module docs.
#[derive(Debug)]
pub struct UserAgent {
    settings: Settings,
    sent_by: SentBy,
    contact: Uri,
    layer: TransactionLayer,
    rng: StdRng,
    /// The source of SRTP master keys: seeded by the system, unlike `rng`.
    key_rng: StdRng,
    registration: Option<Registration>,
    reg_digest: Digest,
    call: Option<Call>,
    /// The transferor's call while we call the target of its REFER.
    referred: Option<Box<transfer::Referred>>,
    events: VecDeque<Event>,
    /// Keep-alives on the stream flow to the registrar, from our first REGISTER on.
    keepalive: Option<keepalive::KeepAlive>,
    /// A keep-alive ping is due to go out.
    ping: bool,
}

impl UserAgent {
    /// A user agent with these settings; its tags, branches and Call-IDs come from `seed`.
    pub fn new(settings: Settings, seed: u64) -> UserAgent {
        let mut rng = StdRng::seed_from_u64(seed);
        let sent_by = SentBy {
            transport: settings.transport,
            host: Host::from(settings.local.ip()),
            port: Some(settings.local.port()),
        };
        let mut contact = Uri::sip(Some(&settings.user), Host::from(settings.local.ip()), Some(settings.local.port()));
        if settings.transport != Transport::Udp {
            contact.params.set("transport", Some(settings.transport.param()));
        }
        let registration = settings.registrar.map(|_| {
            let aor = Uri::sip(Some(&settings.user), Host::Domain(settings.domain.clone()), None);
            let request_uri = Uri::sip(None, Host::Domain(settings.domain.clone()), None);
            let cseq = rng.random_range(1..1 << 20);
            Registration::new(
                aor,
                request_uri,
                contact.clone(),
                new_call_id(&mut rng),
                new_tag(&mut rng),
                cseq,
                settings.register_expires,
            )
        });
        UserAgent {
            reg_digest: Digest::new(&settings.user, &settings.password),
            layer: TransactionLayer::new(TimerConfig { auto_trying: false, ..settings.timers }, MAX_TRANSACTIONS),
            settings,
            sent_by,
            contact,
            rng,
            key_rng: StdRng::from_os_rng(),
            registration,
            call: None,
            referred: None,
            events: VecDeque::new(),
            keepalive: None,
            ping: false,
        }
    }

    /// The signalling transport; [`Transport::Tls`] when SIP (and so any SDES key in the SDP)
    /// travels encrypted.
    pub fn transport(&self) -> Transport {
        self.settings.transport
    }

    /// Takes SRTP master keys from `rng` instead of a generator seeded by the system: for
    /// reproducible tests only.
    #[cfg(test)]
    pub fn with_key_rng(mut self, rng: StdRng) -> UserAgent {
        self.key_rng = rng;
        self
    }

    /// Our media for a new call under the SRTP policy, with fresh keys when it uses SRTP.
    fn media_for_call(&mut self) -> Result<LocalMedia, CommandError> {
        let Settings { srtp, media, transport, .. } = &self.settings;
        srtp.media_for_call(media, transport.is_secure(), &mut self.key_rng).map_err(|_| CommandError::SrtpNeedsTls)
    }

    /// Our address of record, `sip:user@domain`.
    pub fn aor(&self) -> Uri {
        Uri::sip(Some(&self.settings.user), Host::Domain(self.settings.domain.clone()), None)
    }

    /// Sends a REGISTER for our binding.
    pub fn register(&mut self, now: Instant) -> Result<(), CommandError> {
        let expires = self.registration.as_ref().ok_or(CommandError::NoRegistrar)?.expires;
        self.send_register(expires, now);
        Ok(())
    }

    /// Removes our binding (REGISTER with Expires 0); [`Event::Unregistered`] follows.
    pub fn unregister(&mut self, now: Instant) {
        let registered = self.registration.as_ref().is_some_and(|r| {
            matches!(
                r.state,
                RegState::Registered { .. } | RegState::Retrying { .. } | RegState::Pending { expires: 1.., .. }
            )
        });
        if registered {
            self.send_register(0, now);
        }
    }

    /// True when nothing is in progress: no call (nor a transferor's call we were moved from),
    /// and no REGISTER awaiting its answer.
    pub fn is_idle(&self) -> bool {
        self.call.is_none()
            && self.referred.is_none()
            && !self.registration.as_ref().is_some_and(|r| matches!(r.state, RegState::Pending { .. }))
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if std::mem::take(&mut self.ping)
            && let Some(registrar) = self.settings.registrar
        {
            let data = bytes::Bytes::from_static(keepalive::PING);
            return Some(Transmit { target: over(self.settings.transport, registrar), data });
        }
        self.layer.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline: call [`handle_timeout`](Self::handle_timeout) then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.layer.poll_timeout(),
            self.registration.as_ref().and_then(Registration::deadline),
            self.call.as_ref().and_then(Call::deadline),
            self.referred.as_ref().and_then(|r| r.give_up),
            self.keepalive.as_ref().map(keepalive::KeepAlive::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.drain(now);
        if self.registration.as_ref().and_then(Registration::deadline).is_some_and(|at| at <= now) {
            let expires = self.registration.as_ref().map_or(0, |r| r.expires);
            self.send_register(expires, now);
        }
        self.call_timeout(now);
        self.transfer_timeout(now);
        if self.keepalive.as_mut().is_some_and(|k| k.due(now, &mut self.rng)) {
            self.ping = true;
        }
    }

    /// Feeds a datagram (or stream message) received from `source`.
    pub fn handle_message(&mut self, data: &[u8], source: Target, now: Instant) {
        match Message::parse(data) {
            Ok(message) => self.layer.handle_message(message, source, now),
            Err(e) => debug!(%e, source = %source.addr, "unparsable SIP message dropped"),
        }
        self.drain(now);
    }

    /// Takes the transaction layer's events.
    fn drain(&mut self, now: Instant) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                TxnEvent::Request { id, request, source, cancels } => {
                    self.on_request(id, request, source, cancels, now)
                }
                TxnEvent::Ack { request, .. } => self.on_ack(&request, now),
                TxnEvent::Response { id, response } => {
                    if self.is_registration(id) {
                        self.on_register_response(&response, now);
                    } else {
                        self.on_call_response(id, &response, now);
                    }
                }
                TxnEvent::Timeout { id } => {
                    if self.is_registration(id) {
                        let jitter = self.rng.random_range(0.5..=1.0);
                        if let Some(r) = &mut self.registration {
                            let outcome = r.fail(408, "the registrar did not answer", now, jitter);
                            self.report_registration(outcome);
                        }
                    } else {
                        self.on_call_timeout(id, now);
                    }
                }
                TxnEvent::StrayResponse { response, .. } => self.on_stray_response(&response),
                TxnEvent::ServerTimeout { id } => debug!(?id, "server transaction ended unfinished"),
            }
        }
    }

    fn is_registration(&self, id: proto::transaction::ClientId) -> bool {
        self.registration.as_ref().is_some_and(|r| matches!(r.state, RegState::Pending { id: p, .. } if p == id))
    }

    fn send_register(&mut self, expires: u32, now: Instant) {
        let (Some(registration), Some(registrar)) = (&mut self.registration, self.settings.registrar) else { return };
        if let (None, Some(interval), true) =
            (&self.keepalive, self.settings.keepalive, self.settings.transport.is_reliable())
        {
            self.keepalive = Some(keepalive::KeepAlive::start(interval, now, &mut self.rng));
        }
        let mut request = registration.request(expires);
        request.headers.push_front(HeaderName::Via, self.sent_by.via(&new_branch(&mut self.rng)));
        self.reg_digest.authorize(&mut request, &mut self.rng);
        match self.layer.send_request(request, over(self.settings.transport, registrar), now) {
            Ok(id) => registration.state = RegState::Pending { id, expires },
            Err(e) => debug!(%e, "REGISTER not sent"),
        }
    }

    fn on_register_response(&mut self, response: &proto::sip::Response, now: Instant) {
        let jitter = self.rng.random_range(0.5..=1.0);
        let Some(registration) = &mut self.registration else { return };
        match registration.on_response(response, now, jitter) {
            RegOutcome::Nothing => {}
            RegOutcome::Retry { expires, challenge } => {
                if challenge && !self.reg_digest.on_challenge(response) {
                    registration.state = RegState::Failed;
                    self.events.push_back(Event::RegistrationFailed {
                        status: response.status,
                        reason: "credentials refused: check --user and --password".into(),
                    });
                    return;
                }
                self.send_register(expires, now);
            }
            outcome => self.report_registration(outcome),
        }
    }

    /// Tells the UI what a registration outcome means for it.
    fn report_registration(&mut self, outcome: RegOutcome) {
        let event = match outcome {
            RegOutcome::Nothing | RegOutcome::Retry { .. } => return,
            RegOutcome::Registered(expires) => Event::Registered { expires },
            RegOutcome::Unregistered => Event::Unregistered,
            RegOutcome::Failed(status, reason) => Event::RegistrationFailed { status, reason },
            RegOutcome::Lost(status, reason, retry_in) => Event::RegistrationLost { status, reason, retry_in },
        };
        self.events.push_back(event);
    }

    /// Where a request to `uri` goes outside a dialog: through the registrar when we have one
    /// and the URI is in our domain or names no IP address, else straight to its address.
    fn route_for(&self, uri: &Uri) -> Result<SocketAddr, CommandError> {
        let in_domain = matches!(&uri.host, Host::Domain(d) if d.eq_ignore_ascii_case(&self.settings.domain));
        match (self.settings.registrar, uri.socket_addr()) {
            (Some(registrar), _) if in_domain => Ok(registrar),
            (_, Some(addr)) => Ok(addr),
            (Some(registrar), None) => Ok(registrar),
            (None, None) => Err(CommandError::Unreachable(uri.to_string())),
        }
    }

    /// A new request outside any dialog with the headers of §8.1.1 (no Via yet).
    fn base_request(
        &mut self,
        method: Method,
        uri: Uri,
        to: &Uri,
        call_id: &str,
        from_tag: &str,
        cseq: u32,
    ) -> Request {
        let mut r = Request::new(method.clone(), uri);
        let h = &mut r.headers;
        h.push(HeaderName::Via, self.sent_by.via(&new_branch(&mut self.rng)));
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, format!("<{}>;tag={from_tag}", self.aor()));
        h.push(HeaderName::To, format!("<{to}>"));
        h.push(HeaderName::CallId, call_id);
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        r
    }
}

/// Where a message goes: to `addr` over the phone's one signalling transport.
fn over(transport: Transport, addr: SocketAddr) -> Target {
    Target { transport, addr }
}
