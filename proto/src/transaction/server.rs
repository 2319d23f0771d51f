//! Server transactions (RFC 3261 §17.2, RFC 6026 §7.1): the INVITE server (Proceeding, Completed,
//! Confirmed, Accepted) and the non-INVITE server (Trying, Proceeding, Completed); how requests
//! find them (§17.2.3, with the RFC 2543 fallback); where responses go (§18.2.1, §18.2.2,
//! RFC 3581); and the responses the layer sends without a transaction.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timers::{Deadlines, Slot};
use super::{Event, MAGIC_COOKIE, Output, ServerId, Target, TimerConfig};
use crate::sip::{HeaderName, Headers, Host, Method, Name, ParseError, Request, Response, Via};

/// How requests find their server transaction (§17.2.3). An ACK is looked up with method INVITE;
/// a CANCEL has its own transaction, and finds the INVITE it cancels with method INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ServerKey {
    /// RFC 3261: top Via branch and sent-by, and the method.
    Branch { branch: Box<str>, host: Host, port: Option<u16>, method: Method },
    /// The RFC 2543 fallback for a branch without the magic cookie. The To tag is checked apart
    /// (see [`ServerTransaction::matches_to_tag`]): the ACK carries the tag of our response.
    Rfc2543(Box<Rfc2543Key>),
}

/// Request-URI, From tag, Call-ID, CSeq number and method, and the whole top Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Rfc2543Key {
    uri: String,
    from_tag: Option<String>,
    call_id: String,
    seq: u32,
    method: Method,
    via: String,
}

impl ServerKey {
    /// The key of a request, with the To tag when the RFC 2543 rules apply (it is not part of
    /// the key). Fails only for RFC 2543 requests with an unreadable From or To.
    pub(super) fn of(request: &Request, via: &Via, seq: u32) -> Result<(ServerKey, Option<String>), ParseError> {
        let method = if request.method == Method::Ack { Method::Invite } else { request.method.clone() };
        if let Some(branch) = via.branch().filter(|b| b.starts_with(MAGIC_COOKIE)) {
            let host = match &via.host {
                Host::Domain(d) => Host::Domain(d.to_ascii_lowercase()),
                ip => ip.clone(),
            };
            return Ok((ServerKey::Branch { branch: branch.into(), host, port: via.port, method }, None));
        }
        let h = &request.headers;
        let key = Rfc2543Key {
            uri: request.uri.to_string(),
            from_tag: h.from()?.tag().map(str::to_owned),
            call_id: h.call_id()?.to_owned(),
            seq,
            method,
            via: h.get(HeaderName::Via).unwrap_or_default().to_owned(),
        };
        Ok((ServerKey::Rfc2543(Box::new(key)), h.to()?.tag().map(str::to_owned)))
    }

    /// The same key for another method: a CANCEL's key, turned into the INVITE's it cancels.
    pub(super) fn with_method(&self, method: Method) -> ServerKey {
        match self {
            ServerKey::Branch { branch, host, port, .. } => {
                ServerKey::Branch { branch: branch.clone(), host: host.clone(), port: *port, method }
            }
            ServerKey::Rfc2543(key) => ServerKey::Rfc2543(Box::new(Rfc2543Key { method, ..(**key).clone() })),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Non-INVITE received, no response yet: retransmissions are absorbed.
    Trying,
    /// A provisional response was sent (always the state of a new INVITE): retransmissions get
    /// the last one again.
    Proceeding,
    /// A final response was sent (non-2xx for INVITE): retransmissions get it again. INVITE:
    /// Timer G retransmits it (unreliable transports) until the ACK, Timer H gives up.
    /// Non-INVITE: Timer J ends the transaction.
    Completed,
    /// INVITE: the ACK arrived; further ACKs are absorbed until Timer I.
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026). Retransmitted INVITEs are absorbed, ACKs go to the TU,
    /// and further 2xx from the TU are sent, until Timer L.
    Accepted,
}

/// What the layer does with a server transaction after feeding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Keep,
    Remove,
}

/// What became of an ACK that matched an INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckOutcome {
    /// It acknowledged a non-2xx final, or repeated such an ACK: the layer keeps it.
    Absorbed(Next),
    /// It acknowledges a 2xx: it belongs to the TU.
    PassUp,
}

/// The To tags the RFC 2543 rules compare: the request's, and that of the final response sent.
#[derive(Debug, Default)]
struct Rfc2543Tags {
    request: Option<String>,
    response: Option<String>,
}

/// One server transaction.
#[derive(Debug)]
pub(super) struct ServerTransaction {
    pub(super) key: ServerKey,
    /// Where responses go (§18.2.2).
    pub(super) target: Target,
    pub(super) deadlines: Deadlines,
    invite: bool,
    state: State,
    /// The last response sent, for retransmission.
    last: Option<Bytes>,
    /// The current Timer G interval.
    interval: Duration,
    /// Present for transactions matched by the RFC 2543 rules.
    rfc2543: Option<Box<Rfc2543Tags>>,
}

impl ServerTransaction {
    /// A new transaction. `rfc2543_to_tag` is `Some` for RFC 2543 keys (holding the request's To
    /// tag, if any). `trying` is the 100 the layer sends at once for an INVITE, if it does.
    ///
    /// A non-INVITE the TU leaves unanswered ends after 64·T1, when its client has given up
    /// (Timer F), so a TU that loses a request cannot fill the table. An INVITE waits for the TU
    /// as long as it takes (a proxy bounds that with Timer C, §16.6 step 11).
    pub(super) fn new(
        key: ServerKey,
        invite: bool,
        target: Target,
        rfc2543_to_tag: Option<Option<String>>,
        trying: Option<Bytes>,
        now: Instant,
        config: &TimerConfig,
    ) -> ServerTransaction {
        ServerTransaction {
            rfc2543: rfc2543_to_tag.map(|request| Box::new(Rfc2543Tags { request, response: None })),
            key,
            target,
            deadlines: Deadlines { retransmit: None, expire: (!invite).then(|| now + config.t1 * 64) },
            invite,
            state: if invite { State::Proceeding } else { State::Trying },
            last: trying,
            interval: Duration::ZERO,
        }
    }

    /// The RFC 2543 To tag check (§17.2.3): a retransmission or CANCEL carries the request's To
    /// tag, an ACK that of the final response sent. Always true under RFC 3261 matching.
    pub(super) fn matches_to_tag(&self, to_tag: Option<&str>, ack: bool) -> bool {
        match &self.rfc2543 {
            None => true,
            Some(tags) if ack => tags.response.as_deref() == to_tag,
            Some(tags) => tags.request.as_deref() == to_tag,
        }
    }

    /// True while the TU owes a final response, or an INVITE's non-2xx final awaits its ACK.
    pub(super) fn unfinished(&self) -> bool {
        match self.state {
            State::Trying | State::Proceeding => true,
            State::Completed => self.invite,
            State::Confirmed | State::Accepted => false,
        }
    }

    /// A retransmission of the request: the last response goes out again, if there is one to
    /// repeat (Proceeding and Completed; Confirmed and Accepted absorb it).
    pub(super) fn on_retransmission(&self, out: &mut Output) {
        if let (State::Proceeding | State::Completed, Some(last)) = (self.state, &self.last) {
            out.send(self.target, last.clone());
        }
    }

    /// An ACK that matched this (INVITE) transaction.
    pub(super) fn on_ack(&mut self, now: Instant, config: &TimerConfig) -> AckOutcome {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                self.deadlines.retransmit = None; // Timer G stops.
                if self.target.transport.is_reliable() {
                    return AckOutcome::Absorbed(Next::Remove); // Timer I is zero.
                }
                self.deadlines.expire = Some(now + config.t4); // Timer I replaces H.
                AckOutcome::Absorbed(Next::Keep)
            }
            State::Accepted => AckOutcome::PassUp,
            State::Trying | State::Proceeding | State::Confirmed => AckOutcome::Absorbed(Next::Keep),
        }
    }

    /// A response from the TU. Responses the state does not allow (anything after a final,
    /// except further 2xx to an INVITE) are dropped.
    pub(super) fn respond(
        &mut self,
        response: &Response,
        now: Instant,
        config: &TimerConfig,
        out: &mut Output,
    ) -> Next {
        let unreliable = !self.target.transport.is_reliable();
        let data = match (self.invite, self.state, response.status) {
            (_, State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                response.encode()
            }
            (true, State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.deadlines.expire = Some(now + config.t1 * 64); // Timer L
                self.last = None;
                self.record_response_tag(response);
                out.send(self.target, response.encode());
                return Next::Keep;
            }
            (true, State::Accepted, 200..=299) => {
                out.send(self.target, response.encode());
                return Next::Keep;
            }
            (true, State::Proceeding, _) => {
                self.state = State::Completed;
                if unreliable {
                    self.interval = config.t1;
                    self.deadlines.retransmit = Some(now + config.t1); // Timer G
                }
                self.deadlines.expire = Some(now + config.t1 * 64); // Timer H
                self.record_response_tag(response);
                response.encode()
            }
            (false, State::Trying | State::Proceeding, _) => {
                self.state = State::Completed;
                let data = response.encode();
                out.send(self.target, data.clone());
                if !unreliable {
                    return Next::Remove; // Timer J is zero.
                }
                self.deadlines.expire = Some(now + config.t1 * 64); // Timer J
                self.last = Some(data);
                return Next::Keep;
            }
            _ => {
                tracing::debug!(status = response.status, state = ?self.state, "response not allowed now, dropped");
                return Next::Keep;
            }
        };
        out.send(self.target, data.clone());
        self.last = Some(data);
        Next::Keep
    }

    fn record_response_tag(&mut self, response: &Response) {
        if let Some(tags) = &mut self.rfc2543 {
            tags.response = response.headers.to().ok().and_then(|to| to.tag().map(str::to_owned));
        }
    }

    /// Fires a timer whose deadline has passed (the layer has already cleared it).
    pub(super) fn on_timer(
        &mut self,
        id: ServerId,
        slot: Slot,
        now: Instant,
        config: &TimerConfig,
        out: &mut Output,
    ) -> Next {
        match (slot, self.state) {
            (Slot::Retransmit, State::Completed) => {
                // Timer G
                if let Some(last) = &self.last {
                    out.send(self.target, last.clone());
                }
                self.interval = (self.interval * 2).min(config.t2);
                self.deadlines.retransmit = Some(now + self.interval);
                Next::Keep
            }
            (Slot::Retransmit, _) => Next::Keep,
            (Slot::Expire, State::Completed) if self.invite => {
                // Timer H: the ACK never came.
                out.events.push_back(Event::ServerTimeout { id });
                Next::Remove
            }
            (Slot::Expire, State::Trying | State::Proceeding) => {
                // A non-INVITE the TU never answered; its client has given up.
                out.events.push_back(Event::ServerTimeout { id });
                Next::Remove
            }
            // Timers I, J and L.
            (Slot::Expire, _) => Next::Remove,
        }
    }
}

/// Records where a request came from in its top Via (§18.2.1, RFC 3581 §4): the source port in
/// an empty `rport`, and `received` when the sent-by host is not the source address or `rport`
/// was asked for. Both travel back in the responses, which is how a response finds a phone
/// behind NAT. Stamping a stamped Via again changes nothing.
pub fn stamp_via(request: &mut Request, via: &Via, source: SocketAddr) {
    let mut stamped = via.clone();
    let ip = source.ip().to_string();
    let mut changed = false;
    let wants_rport = via.params.get("rport") == Some(None);
    if wants_rport {
        stamped.params.set("rport", Some(&source.port().to_string()));
        changed = true;
    }
    if (wants_rport || via.host.ip() != Some(source.ip())) && via.params.value("received") != Some(ip.as_str()) {
        stamped.params.set("received", Some(&ip));
        changed = true;
    }
    if !changed {
        return;
    }
    let mut headers = Headers::new();
    let mut top = Some(stamped.to_string());
    for h in request.headers.iter() {
        let value = if h.name == Name::Known(HeaderName::Via) { top.take() } else { None };
        headers.push_raw(h.name.clone(), value.unwrap_or_else(|| h.value.clone()));
    }
    request.headers = headers;
}

/// Where the responses to a request go (§18.2.2, RFC 3581): back on the same connection for a
/// reliable transport; over UDP to the source address and port when the Via asks for `rport`,
/// else to the source address at the sent-by port.
pub fn response_target(via: &Via, source: Target) -> Target {
    if source.transport.is_reliable() || via.params.has("rport") {
        return source;
    }
    Target { transport: source.transport, addr: SocketAddr::new(source.addr.ip(), via.port.unwrap_or(5060)) }
}

/// The 100 Trying for an INVITE (§8.2.6.1): no To tag, the request's Timestamp copied.
pub(super) fn trying(request: &Request) -> Response {
    let mut response = request.response(100);
    if let Some(timestamp) = request.headers.get(HeaderName::Timestamp) {
        response.headers.push(HeaderName::Timestamp, timestamp);
    }
    response
}

/// The prefix of the To tags the layer puts in its stateless responses.
const STATELESS_TAG_PREFIX: &str = "sl";

/// A response sent without a transaction (400 for an unusable request, 503 when the table is
/// full). Its To tag is derived from the request, so a retransmission is answered identically
/// and the ACK for it can be recognised (§8.2.7, §16.11).
pub(super) fn stateless_response(request: &Request, status: u16, via: &Via) -> Response {
    let mut response = request.response(status);
    let needs_tag = response.headers.to().is_ok_and(|to| to.tag().is_none());
    if let (true, Some(to)) = (needs_tag, response.headers.get(HeaderName::To)) {
        let to = format!("{to};tag={}", stateless_tag(request, via));
        response.headers.set(HeaderName::To, to);
    }
    response
}

/// True for the ACK of one of our stateless responses: its To tag is the one we derived.
pub(super) fn acks_stateless_response(ack: &Request, via: &Via) -> bool {
    let Some(to) = ack.headers.get(HeaderName::To).filter(|to| to.contains(STATELESS_TAG_PREFIX)) else {
        return false;
    };
    let tag = crate::sip::NameAddr::parse(to).ok().and_then(|to| to.tag().map(str::to_owned));
    tag.is_some_and(|tag| tag == stateless_tag(ack, via))
}

/// `sl` and a hash of Call-ID, CSeq number and branch: equal for an INVITE and its ACK.
fn stateless_tag(request: &Request, via: &Via) -> String {
    // FNV-1a: small, stable, and no secret is needed; the tag only has to be deterministic.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let call_id = request.headers.call_id().unwrap_or_default();
    let seq = request.headers.cseq().map_or(0, |cseq| cseq.seq);
    let parts: [&[u8]; 3] = [call_id.as_bytes(), &seq.to_be_bytes(), via.branch().unwrap_or_default().as_bytes()];
    for part in parts {
        for &byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{STATELESS_TAG_PREFIX}{hash:016x}")
}
