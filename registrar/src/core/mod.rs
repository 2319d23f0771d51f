//! The registrar's sans-IO core: it is fed datagrams and stream messages with their source, DNS
//! answers and the time, and is polled for what to send, what to look up and when to wake up.
//!
//! It owns the transaction layer (RFC 3261 §17), the digest authenticator, the location store,
//! and the two jobs of the server: the registrar (§10.3, [`registration`]) and the
//! transaction-stateful proxy (§16, [`proxy`]).

mod admission;
mod local;
mod proxy;
mod registration;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use proto::auth::{Credentials, DigestServer, FailureLimiter, Rejection, Verdict};
use proto::sip::{HeaderName, Message, Method, ParseError, Request, Response, Transport, error_response};
use proto::transaction::{Event, ServerId, Target, TransactionLayer, Transmit};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tracing::{debug, warn};

use crate::location::LocationStore;
use admission::Admission;
pub use admission::AdmissionSettings;
pub use local::LocalAddrs;
use proxy::Proxy;
pub use proxy::Resolve;

/// Everything the core needs to know that comes from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our addresses, domain and ports, to recognise requests for us and to write Via and
    /// Record-Route.
    pub local: LocalAddrs,
    /// The digest realm.
    pub realm: String,
    /// The shortest registration accepted (423 below it).
    pub min_expires: u32,
    /// The longest registration granted; longer requests are clamped.
    pub max_expires: u32,
    /// The registration interval when the phone asks for none.
    pub default_expires: u32,
    /// The Server header of the answers we generate; `None` names no product or version,
    /// which gives scanners nothing to fingerprint.
    pub server_header: Option<String>,
    /// Per-source rates and overload marks.
    pub admission: AdmissionSettings,
}

/// The sans-IO registrar and proxy.
pub struct Core {
    settings: Settings,
    txns: TransactionLayer,
    digest: DigestServer,
    limiter: FailureLimiter,
    accounts: HashMap<String, String>,
    store: Box<dyn LocationStore + Send>,
    proxy: Proxy,
    transmits: VecDeque<Transmit>,
    rng: StdRng,
    next_purge: Option<Instant>,
    recent_registers: RecentAnswers,
    admission: Admission,
}

/// The wall clock, as seconds since the Unix epoch: binding expiry and nonce ages use it, so both
/// survive a restart.
pub type WallSecs = u64;

impl Core {
    /// A core with the given parts. `seed` makes tags and branches reproducible in tests.
    pub fn new(
        settings: Settings,
        txns: TransactionLayer,
        digest: DigestServer,
        limiter: FailureLimiter,
        accounts: HashMap<String, String>,
        store: Box<dyn LocationStore + Send>,
        seed: u64,
    ) -> Core {
        Core {
            admission: Admission::new(settings.admission),
            settings,
            txns,
            digest,
            limiter,
            accounts,
            store,
            proxy: Proxy::default(),
            transmits: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
            next_purge: None,
            recent_registers: RecentAnswers::default(),
        }
    }

    /// Feeds one received message. `too_large` marks a message over the size limit, of which
    /// `data` holds only the start: it is answered 513 when a response is possible.
    pub fn handle_input(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        data: &[u8],
        too_large: bool,
        now: Instant,
        wall: WallSecs,
    ) {
        self.admission.message_started(now);
        let from = Target { transport, addr: source };
        if too_large {
            self.reply_unparsed(data, 513, "message exceeds the size limit", from);
            return;
        }
        let message = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                debug!(peer = %source, error = %e, "malformed message");
                self.reply_unparsed(data, e.status(), e.reason(), from);
                return;
            }
        };
        let message = match message {
            Message::Request(req) => {
                if let Err(e) = req.validate() {
                    debug!(peer = %source, error = %e, "invalid request");
                    self.reply_invalid(&req, &e, from);
                    return;
                }
                if req.method == Method::Register && self.is_for_us(&req) {
                    return self.register_statelessly(req, from, now, wall);
                }
                Message::Request(req)
            }
            Message::Response(resp) => {
                if let Err(e) = resp.validate() {
                    debug!(peer = %source, error = %e, "dropping malformed response");
                    return;
                }
                Message::Response(resp)
            }
        };
        self.txns.handle_message(message, from, now);
        self.drain_events(now, wall);
    }

    /// Tells the core how many received messages are queued behind the next one it is fed: past
    /// the high-water mark, or when they would take longer than `max_queue_delay` to work
    /// through at the time messages have been taking, new requests are answered 503 until the
    /// queue drains.
    pub fn set_backlog(&mut self, queued: usize) {
        self.admission.set_backlog(queued);
    }

    /// Feeds the answer to a DNS lookup the core asked for with [`Core::poll_resolve`].
    pub fn handle_resolved(&mut self, resolve: Resolve, targets: Vec<Target>, now: Instant, wall: WallSecs) {
        let (proxy, mut ctx) = self.split(now, wall);
        proxy.resolved(&mut ctx, resolve, targets);
        self.drain_events(now, wall);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front().or_else(|| self.txns.poll_transmit())
    }

    /// The next DNS lookup to make (RFC 3263) for a request leaving our domain.
    pub fn poll_resolve(&mut self) -> Option<Resolve> {
        self.proxy.poll_resolve()
    }

    /// When [`Core::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.txns.poll_timeout(), self.proxy.poll_timeout(), self.next_purge, self.admission.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant, wall: WallSecs) {
        self.txns.handle_timeout(now);
        self.admission.handle_timeout(now);
        let (proxy, mut ctx) = self.split(now, wall);
        proxy.handle_timeout(&mut ctx);
        if self.next_purge.is_none_or(|t| t <= now) {
            match self.store.purge_expired(wall) {
                Ok(n) if n > 0 => debug!(removed = n, "expired bindings purged"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "purging expired bindings failed"),
            }
            self.next_purge = Some(now + std::time::Duration::from_secs(30));
        }
        self.drain_events(now, wall);
    }

    /// Commits the location store's pending changes. The shell calls this after each batch of
    /// input and before sending, so a 200 to a REGISTER never goes out before its binding is
    /// stored (group commit).
    pub fn flush(&mut self) {
        if let Err(e) = self.store.flush() {
            warn!(error = %e, "location store commit failed");
        }
    }

    fn drain_events(&mut self, now: Instant, wall: WallSecs) {
        while let Some(event) = self.txns.poll_event() {
            if let Event::Request { id, request, source, cancels } = event {
                self.on_request(id, request, source, cancels, now, wall);
                continue;
            }
            let (proxy, mut ctx) = self.split(now, wall);
            match event {
                Event::Request { .. } => {}
                Event::Ack { request, .. } => proxy.forward_ack(&mut ctx, request),
                Event::Response { id, response } => proxy.on_response(&mut ctx, id, response),
                Event::StrayResponse { response, .. } => proxy.forward_stray_response(&mut ctx, response),
                Event::Timeout { id } => proxy.on_timeout(&mut ctx, id),
                Event::ServerTimeout { id } => debug!(?id, "no ACK for final response (Timer H)"),
            }
        }
    }

    fn on_request(
        &mut self,
        id: ServerId,
        request: Request,
        source: Target,
        cancels: Option<ServerId>,
        now: Instant,
        wall: WallSecs,
    ) {
        if request.method == Method::Cancel {
            let ok = request.response(if cancels.is_some() { 200 } else { 481 });
            self.respond(id, ok, now, wall);
            if let Some(invite) = cancels {
                let (proxy, mut ctx) = self.split(now, wall);
                proxy.cancel(&mut ctx, invite);
            }
            return;
        }
        // This request's own transaction is already in the table: count the others.
        let others = self.txns.len().saturating_sub(1);
        if let Err(refusal) = self.admission.admit(&request.method, source.addr.ip(), others, now) {
            debug!(peer = %source.addr, method = %request.method, ?refusal, "refused: 503");
            return self.respond(id, unavailable(&request, refusal), now, wall);
        }
        let for_us = self.is_for_us(&request);
        match request.method {
            Method::Options if for_us && request.uri.user.is_none() => {
                let mut ok = request.response(200);
                ok.headers.push(HeaderName::Allow, ALLOW);
                ok.headers.push(HeaderName::Accept, "application/sdp");
                ok.headers.push(HeaderName::Supported, "path");
                self.respond(id, ok, now, wall);
            }
            _ => {
                let mut request = request;
                if let Err(refusal) = proxy::precheck(&request, &self.settings.local) {
                    return self.respond(id, refusal, now, wall);
                }
                if proxy::needs_auth(&request, &self.settings.local) {
                    let user = match self.authenticate(&request, source, HeaderName::ProxyAuthorization, wall, now) {
                        Ok(user) => user,
                        Err(challenge) => return self.respond(id, challenge, now, wall),
                    };
                    if request.headers.from().ok().and_then(|f| f.uri.user) != Some(user) {
                        let forbidden =
                            request.response(403).with_reason("Forbidden (From does not match the authenticated user)");
                        return self.respond(id, forbidden, now, wall);
                    }
                    consume_credentials(&mut request, &self.settings.realm);
                }
                let (proxy, mut ctx) = self.split(now, wall);
                proxy.on_request(&mut ctx, id, request, source);
            }
        }
    }

    fn split(&mut self, now: Instant, wall: WallSecs) -> (&mut Proxy, Ctx<'_>) {
        let ctx = Ctx {
            settings: &self.settings,
            txns: &mut self.txns,
            transmits: &mut self.transmits,
            store: &*self.store,
            accounts: &self.accounts,
            rng: &mut self.rng,
            now,
            wall,
        };
        (&mut self.proxy, ctx)
    }

    /// True when the request is addressed to this server rather than passing through it.
    fn is_for_us(&self, request: &Request) -> bool {
        self.settings.local.is_us(&request.uri) && !has_foreign_route(request, &self.settings.local)
    }

    /// REGISTER is answered without a transaction (RFC 3261 §8.2.7), as registrars commonly do,
    /// so no server transaction lingers 32 s per REGISTER (Timer J). Retransmissions get the
    /// same answer again from a small bounded cache of recent answers; one that has left the
    /// cache is processed again, which the registration logic makes harmless.
    fn register_statelessly(&mut self, mut req: Request, source: Target, now: Instant, wall: WallSecs) {
        let Ok(via) = req.headers.via() else { return };
        let key = (via.branch().unwrap_or_default().to_owned(), req.headers.call_id().unwrap_or_default().to_owned());
        let target = proto::transaction::response_target(&via, source);
        if let Some(data) = self.recent_registers.get(&key, now) {
            self.transmits.push_back(Transmit { target, data });
            return;
        }
        proto::transaction::stamp_via(&mut req, &via, source.addr);
        let mut response = match self.admission.admit(&req.method, source.addr.ip(), self.txns.len(), now) {
            Ok(()) => self.register(&req, source, now, wall),
            Err(refusal) => {
                debug!(peer = %source.addr, ?refusal, "REGISTER refused: 503");
                unavailable(&req, refusal)
            }
        };
        if let Some(server) = &self.settings.server_header {
            response.headers.push(HeaderName::Server, server.clone());
        }
        if response.headers.to().is_ok_and(|to| to.tag().is_none())
            && let Some(to) = response.headers.get(HeaderName::To)
        {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&(req.headers.call_id().ok(), via.branch()), &mut h);
            let tagged = format!("{to};tag={:016x}", std::hash::Hasher::finish(&h));
            response.headers.set(HeaderName::To, tagged);
        }
        let data = response.encode();
        self.recent_registers.insert(key, data.clone(), now);
        self.transmits.push_back(Transmit { target, data });
    }

    fn respond(&mut self, id: ServerId, response: Response, now: Instant, wall: WallSecs) {
        self.split(now, wall).1.respond(id, response);
    }

    /// Checks credentials for `header` (Authorization or Proxy-Authorization) against the
    /// account `user`; `Err` carries the challenge response to send. A wrong password and an
    /// unknown user get the same answer.
    fn authenticate(
        &mut self,
        request: &Request,
        source: Target,
        header: HeaderName,
        wall: WallSecs,
        now: Instant,
    ) -> Result<String, Response> {
        let (status, challenge_header) = match header {
            HeaderName::Authorization => (401, HeaderName::WwwAuthenticate),
            _ => (407, HeaderName::ProxyAuthenticate),
        };
        let ip = source.addr.ip();
        if self.limiter.is_locked(ip, now) {
            return Err(request.response(403).with_reason("Forbidden (too many failed attempts, try later)"));
        }
        let mut stale = false;
        let ours = request
            .headers
            .get_all(header)
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm == self.settings.realm);
        if let Some(creds) = ours {
            let password = self.accounts.get(&creds.username).map(String::as_str);
            match self.digest.verify(&creds, request.method.as_str(), password, wall) {
                Verdict::Ok => {
                    self.limiter.record_success(ip);
                    return Ok(creds.username);
                }
                Verdict::Stale => stale = true,
                Verdict::Invalid(reason) => {
                    debug!(peer = %source.addr, user = %creds.username, %reason, "authentication failed");
                    // A replayed nonce count is a retransmission, not a guess: only wrong
                    // credentials count toward a lockout.
                    if reason == Rejection::BadCredentials {
                        self.limiter.record_failure(ip, now);
                    }
                }
            }
        }
        let mut challenge = request.response(status);
        for c in self.digest.challenges(wall, stale, &mut self.rng) {
            challenge.headers.push(challenge_header, c.to_string());
        }
        Err(challenge)
    }

    fn reply_unparsed(&mut self, data: &[u8], status: u16, reason: &str, to: Target) {
        if let Some(resp) = error_response(data, status, reason) {
            self.transmits.push_back(Transmit { target: to, data: resp.encode() });
        }
    }

    fn reply_invalid(&mut self, req: &Request, err: &ParseError, to: Target) {
        if req.method == Method::Ack || req.headers.via().is_err() {
            return;
        }
        let reason = format!("{} ({})", proto::sip::reason_phrase(err.status()), err.reason());
        let resp = req.response(err.status()).with_reason(reason);
        self.transmits.push_back(Transmit { target: to, data: resp.encode() });
    }
}

/// The answers to recent REGISTERs by (branch, Call-ID), for retransmissions: kept for the
/// retransmission window of a non-INVITE request (64·T1 with the default T1), at most
/// [`RecentAnswers::CAPACITY`] of them, oldest dropped first.
#[derive(Default)]
struct RecentAnswers {
    by_key: HashMap<(String, String), Bytes>,
    order: VecDeque<(Instant, (String, String))>,
}

impl RecentAnswers {
    const CAPACITY: usize = 16_384;
    const KEEP: std::time::Duration = std::time::Duration::from_secs(32);

    fn get(&mut self, key: &(String, String), now: Instant) -> Option<Bytes> {
        self.expire(now);
        self.by_key.get(key).cloned()
    }

    fn insert(&mut self, key: (String, String), data: Bytes, now: Instant) {
        if self.order.len() >= Self::CAPACITY
            && let Some((_, old)) = self.order.pop_front()
        {
            self.by_key.remove(&old);
        }
        if self.by_key.insert(key.clone(), data).is_none() {
            self.order.push_back((now, key));
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < Self::KEEP {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.by_key.remove(&key);
            }
        }
    }
}

/// The 503 for a request refused by admission control, with when to retry (RFC 3261 §21.5.4).
fn unavailable(req: &Request, refusal: admission::Refusal) -> Response {
    let mut r = req.response(503).with_reason(refusal.reason());
    r.headers.push(HeaderName::RetryAfter, refusal.retry_after().to_string());
    r
}

/// The methods the proxy routes; also the Allow header of our OPTIONS answer.
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, REFER, MESSAGE, SUBSCRIBE, NOTIFY";

/// Removes the Proxy-Authorization for our realm once it has been checked (RFC 3261 §22.3):
/// the next hop has no use for it.
fn consume_credentials(req: &mut Request, realm: &str) {
    let keep: Vec<String> = req
        .headers
        .get_all(HeaderName::ProxyAuthorization)
        .filter(|v| Credentials::parse(v).map_or(true, |c| c.realm != realm))
        .map(str::to_owned)
        .collect();
    req.headers.remove_all(HeaderName::ProxyAuthorization);
    for v in keep {
        req.headers.push(HeaderName::ProxyAuthorization, v);
    }
}

/// True when the top Route names a host other than us: the request is only passing through.
fn has_foreign_route(req: &Request, local: &LocalAddrs) -> bool {
    req.headers
        .get(HeaderName::Route)
        .and_then(|r| proto::sip::NameAddr::parse(r).ok())
        .is_some_and(|r| !local.is_us(&r.uri))
}

fn add_to_tag(response: &mut Response, rng: &mut StdRng) {
    use rand::Rng;
    if let Some(to) = response.headers.get(HeaderName::To) {
        let tagged = format!("{to};tag={:016x}", rng.random::<u64>());
        response.headers.set(HeaderName::To, tagged);
    }
}

/// What the proxy and registrar parts borrow from the core for one step.
pub(crate) struct Ctx<'a> {
    settings: &'a Settings,
    txns: &'a mut TransactionLayer,
    transmits: &'a mut VecDeque<Transmit>,
    store: &'a dyn LocationStore,
    accounts: &'a HashMap<String, String>,
    rng: &'a mut StdRng,
    now: Instant,
    wall: WallSecs,
}

impl Ctx<'_> {
    /// Answers through a server transaction; a final response we generate gets a To tag.
    fn respond(&mut self, id: ServerId, mut response: Response) {
        if response.status > 100 && response.headers.to().is_ok_and(|to| to.tag().is_none()) {
            // Ours, not one passing through: only those may name our software.
            add_to_tag(&mut response, self.rng);
            if let Some(server) = &self.settings.server_header {
                response.headers.push(HeaderName::Server, server.clone());
            }
        }
        self.txns.respond(id, response, self.now);
    }

    /// Forwards a response from downstream as it came (RFC 3261 §16.7 step 9): a To tag is the
    /// UAS's to choose, and one we invented would name a dialog the UAS does not know.
    fn relay(&mut self, id: ServerId, response: Response) {
        self.txns.respond(id, response, self.now);
    }

    fn send(&mut self, target: Target, data: Bytes) {
        self.transmits.push_back(Transmit { target, data });
    }
}

#[cfg(test)]
mod tests;
