//! RFC 3261 §17 transactions, sans-IO: the four state machines (INVITE and non-INVITE, client
//! and server), the matching of messages to them (§17.1.3, §17.2.3, with the RFC 2543
//! fallback), their timers (§17, Table 4) and the RFC 6026 Accepted states.
//!
//! [`TransactionLayer`] is fed parsed messages with their source ([`handle_message`]), requests
//! and responses from the transaction user ([`send_request`], [`respond`], [`cancel`]) and the
//! current time ([`handle_timeout`]); it is polled for datagrams and stream messages to send
//! ([`poll_transmit`]), for what the transaction user must see ([`poll_event`]) and for its next
//! deadline ([`poll_timeout`]). It never reads a clock or touches a socket.
//!
//! Choices where the RFCs leave room:
//! - **2xx to INVITE** follows RFC 6026 on both sides. The client transaction stays Accepted for
//!   64·T1 and passes every further 2xx (retransmitted or forked) up as [`Event::Response`]; the
//!   TU sends the ACK for a 2xx itself ([`send_stateless`]). The server transaction stays
//!   Accepted for 64·T1: retransmitted INVITEs are absorbed, ACKs go up as [`Event::Ack`], and
//!   further 2xx the TU sends through [`respond`] go out (a proxy forwards 2xx retransmissions
//!   this way, §16.7 step 10).
//! - **100 Trying**: with [`TimerConfig::auto_trying`] (the default), an INVITE server
//!   transaction answers 100 at once, as a stateful proxy should (§16.2).
//! - **Table bound**: when [`len`] has reached `max_transactions`, a request that would start a
//!   server transaction is answered 503 with Retry-After by the layer, statelessly, and the TU
//!   does not see it. A CANCEL whose INVITE transaction is live is still admitted (it adds at
//!   most one transaction per INVITE and ends a call attempt). Client transactions are always
//!   admitted: they are the TU's own, usually on behalf of a server transaction it already
//!   holds, and refusing them would strand that transaction.
//! - **CANCEL** ([`cancel`]) goes out only once a provisional response has arrived (§9.1); an
//!   INVITE still without a final response 64·T1 after its CANCEL is given up with
//!   [`Event::Timeout`] (§9.1), so a silent peer cannot hold the transaction forever.
//! - **Unanswered non-INVITE requests**: a non-INVITE server transaction the TU has not answered
//!   within 64·T1 ends with [`Event::ServerTimeout`]; its client has given up by then (Timer F),
//!   and a TU that loses a request cannot fill the table. INVITE server transactions wait for
//!   the TU as long as it takes (a proxy bounds that with Timer C, §16.6 step 11).
//! - **Received requests** get `received` and `rport` filled in their top Via (§18.2.1,
//!   RFC 3581), and responses go where §18.2.2 and RFC 3581 say: the same connection for TCP,
//!   the source address and port over UDP when `rport` was asked for, else the source address at
//!   the sent-by port.
//! - **Unusable requests**: one without a readable top Via is dropped; one without a readable
//!   CSeq (or whose CSeq method differs) or Call-ID is answered 400 statelessly. Everything else
//!   is for the TU to check.
//!
//! [`handle_message`]: TransactionLayer::handle_message
//! [`send_request`]: TransactionLayer::send_request
//! [`respond`]: TransactionLayer::respond
//! [`cancel`]: TransactionLayer::cancel
//! [`handle_timeout`]: TransactionLayer::handle_timeout
//! [`poll_transmit`]: TransactionLayer::poll_transmit
//! [`poll_event`]: TransactionLayer::poll_event
//! [`poll_timeout`]: TransactionLayer::poll_timeout
//! [`send_stateless`]: TransactionLayer::send_stateless
//! [`len`]: TransactionLayer::len

mod client;
mod server;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, trace, warn};

use crate::sip::{HeaderName, Message, Method, ParseError, Request, Response, Transport, Via};
use client::{Cancel, ClientKey, ClientTransaction};
use server::{AckOutcome, ServerKey, ServerTransaction};
/// For a UAS or registrar that answers some requests statelessly (RFC 3261 §8.2.7): stamp the
/// request's top Via with where it came from, then send the response where §18.2.2 says.
pub use server::{response_target, stamp_via};
use timers::{Deadlines, TimerQueue, TxnRef};

/// The branch prefix that marks an RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Timer D over unreliable transports (§17.1.1.2: at least 32 s).
const TIMER_D: Duration = Duration::from_secs(32);

/// The Retry-After, in seconds, of the 503 sent when the transaction table is full.
const RETRY_AFTER_SECS: u32 = 5;

/// Timer values (RFC 3261 §17.1.1.1, Table 4) and whether INVITEs get an automatic 100 Trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate: the first retransmission interval; timeouts are 64·T1. Default 500 ms.
    pub t1: Duration,
    /// The longest retransmission interval for non-INVITE requests and INVITE responses.
    /// Default 4 s.
    pub t2: Duration,
    /// How long a message may stay in the network: Timers I and K. Default 5 s.
    pub t4: Duration,
    /// Send 100 Trying as soon as an INVITE server transaction is created (§16.2, §17.2.1).
    /// Default on.
    pub auto_trying: bool,
}

impl Default for TimerConfig {
    fn default() -> TimerConfig {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            auto_trying: true,
        }
    }
}

/// Where a message goes, or came from: transport and remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The transport.
    pub transport: Transport,
    /// The remote address.
    pub addr: SocketAddr,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub target: Target,
    /// The serialized message.
    pub data: Bytes,
}

/// A client transaction, as returned by [`TransactionLayer::send_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

/// A server transaction, as given in [`Event::Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(u64);

/// What the transaction user must see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request that no server transaction matched; answer it with
    /// [`TransactionLayer::respond`]. A CANCEL gets a transaction of its own, and `cancels` names
    /// the INVITE server transaction it cancels when that one exists (answer the CANCEL 200, and
    /// the INVITE 487 if it has no final response yet; a 487 after a final is dropped).
    Request {
        /// The new server transaction.
        id: ServerId,
        /// The request, its top Via stamped with `received`/`rport` (§18.2.1, RFC 3581).
        request: Request,
        /// Where it came from.
        source: Target,
        /// For a CANCEL: the INVITE transaction it cancels.
        cancels: Option<ServerId>,
    },
    /// An ACK for the TU: one that matched no INVITE server transaction (the ACK for a 2xx is a
    /// transaction of its own, §17.1.1.3), or one that matched an INVITE server transaction in
    /// the Accepted state (RFC 6026). ACKs for non-2xx finals are absorbed by their transaction.
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: Target,
    },
    /// A response for a client transaction: provisional, final, and for INVITE every further 2xx
    /// while Accepted (RFC 6026). Retransmitted non-2xx finals are absorbed.
    Response {
        /// The client transaction.
        id: ClientId,
        /// The response.
        response: Response,
    },
    /// A response that matched no client transaction, e.g. a 2xx retransmission arriving after
    /// the INVITE client transaction left the Accepted state.
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        source: Target,
    },
    /// A client transaction failed without a final response: Timer B or F fired, a cancelled
    /// INVITE got no final response within 64·T1, or [`TransactionLayer::transport_error`] was
    /// reported for its target. Act as if a 408 arrived (§8.1.3.1).
    Timeout {
        /// The client transaction, now ended.
        id: ClientId,
    },
    /// A server transaction ended unfinished: Timer H fired with no ACK for the final response,
    /// a non-INVITE request went unanswered for 64·T1 (its client has given up by then), or its
    /// responses could not be delivered ([`TransactionLayer::transport_error`]). For logging and
    /// cleanup.
    ServerTimeout {
        /// The server transaction, now ended.
        id: ServerId,
    },
}

/// Why [`TransactionLayer::send_request`] cannot start a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The request lacks a header every request needs (§8.1.1).
    #[error("request cannot be sent: {0}")]
    Malformed(#[from] ParseError),
    /// The top Via has no RFC 3261 branch.
    #[error("top Via branch {0:?} lacks the z9hG4bK magic cookie: give each new request a fresh RFC 3261 branch")]
    NoRfc3261Branch(String),
    /// A live client transaction already uses this branch for this method.
    #[error(
        "branch {branch:?} is already used by a live {method} client transaction: give each new request a fresh branch"
    )]
    BranchInUse {
        /// The branch.
        branch: String,
        /// The method.
        method: Method,
    },
    /// ACK is never sent in a transaction of its own (§17.1.1.3).
    #[error(
        "an ACK is not a transaction: the layer sends the ACK for a non-2xx itself; send the ACK for a 2xx with send_stateless"
    )]
    Ack,
}

/// Messages and events waiting to be polled.
#[derive(Debug, Default)]
struct Output {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Output {
    fn send(&mut self, target: Target, data: Bytes) {
        self.transmits.push_back(Transmit { target, data });
    }
}

/// The transaction layer: every client and server transaction of one SIP element.
#[derive(Debug)]
pub struct TransactionLayer {
    config: TimerConfig,
    max_transactions: usize,
    next_id: u64,
    clients: HashMap<u64, ClientTransaction>,
    client_index: HashMap<ClientKey, u64>,
    servers: HashMap<u64, ServerTransaction>,
    server_index: HashMap<ServerKey, u64>,
    timers: TimerQueue,
    out: Output,
}

impl TransactionLayer {
    /// A layer with these timers that keeps at most `max_transactions` transactions when
    /// admitting new server transactions (see the module docs). T1 is raised to at least 1 ms,
    /// T2 to at least T1, and each timer is capped at one hour.
    pub fn new(config: TimerConfig, max_transactions: usize) -> TransactionLayer {
        const HOUR: Duration = Duration::from_secs(3600);
        let t1 = config.t1.clamp(Duration::from_millis(1), HOUR);
        let config = TimerConfig { t1, t2: config.t2.clamp(t1, HOUR), t4: config.t4.min(HOUR), ..config };
        TransactionLayer {
            config,
            max_transactions,
            next_id: 0,
            clients: HashMap::new(),
            client_index: HashMap::new(),
            servers: HashMap::new(),
            server_index: HashMap::new(),
            timers: TimerQueue::default(),
            out: Output::default(),
        }
    }

    /// The number of live transactions, client and server.
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// The earliest deadline: call [`handle_timeout`](Self::handle_timeout) then. O(1).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|(at, _, _)| at)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, txn, slot)) = self.timers.pop_due(now) {
            match txn {
                TxnRef::Client(id) => {
                    let Some(t) = self.clients.get_mut(&id).filter(|t| t.deadlines.get(slot) == Some(at)) else {
                        continue; // stale
                    };
                    t.deadlines.clear(slot);
                    let before = t.deadlines;
                    let next = t.on_timer(ClientId(id), slot, now, &self.config, &mut self.out);
                    self.after_client(id, before, next, now);
                }
                TxnRef::Server(id) => {
                    let Some(t) = self.servers.get_mut(&id).filter(|t| t.deadlines.get(slot) == Some(at)) else {
                        continue;
                    };
                    t.deadlines.clear(slot);
                    let before = t.deadlines;
                    let next = t.on_timer(ServerId(id), slot, now, &self.config, &mut self.out);
                    self.after_server(id, before, next);
                }
            }
        }
        self.prune_timers();
    }

    /// Feeds a message received from `source` at `now`. Retransmitted requests are absorbed (the
    /// last response is sent again), ACKs for non-2xx finals are absorbed by their INVITE server
    /// transaction, retransmitted non-2xx finals by their client transaction.
    pub fn handle_message(&mut self, message: Message, source: Target, now: Instant) {
        match message {
            Message::Request(request) => self.handle_request(request, source, now),
            Message::Response(response) => self.handle_response(response, source, now),
        }
        self.prune_timers();
    }

    /// Starts a client transaction and sends the request to `target`. The request must carry its
    /// top Via with a fresh RFC 3261 branch (`z9hG4bK…`) and the headers of §8.1.1. For INVITE,
    /// the layer sends the ACK for a non-2xx final itself (§17.1.1.3).
    pub fn send_request(&mut self, request: Request, target: Target, now: Instant) -> Result<ClientId, SendError> {
        if request.method == Method::Ack {
            return Err(SendError::Ack);
        }
        request.validate()?;
        let id = self.new_id();
        self.start_client(id, request, target, now)?;
        self.prune_timers();
        Ok(ClientId(id))
    }

    /// Cancels an INVITE client transaction (§9.1) and returns the CANCEL's own client
    /// transaction, whose response arrives as [`Event::Response`]. The CANCEL (Request-URI,
    /// Call-ID, From, To and CSeq number of the INVITE, its top Via with the same branch, its
    /// Route headers) goes to the INVITE's target once a provisional response has arrived: at
    /// once if one has, else when one does. If a final response comes first, the CANCEL is never
    /// sent and its id sees no event: the final response is the outcome.
    ///
    /// Returns the same id when called again, and `None` for an unknown transaction, a
    /// non-INVITE, or an INVITE that already has its final response.
    pub fn cancel(&mut self, id: ClientId, now: Instant) -> Option<ClientId> {
        let invite = self.clients.get_mut(&id.0)?;
        if let Cancel::Pending(cancel) | Cancel::Sent(cancel) = invite.cancel {
            return Some(ClientId(cancel));
        }
        let now_allowed = invite.may_cancel_now()?;
        let cancel = self.next_id;
        self.next_id += 1;
        if !now_allowed {
            invite.cancel = Cancel::Pending(cancel);
            return Some(ClientId(cancel));
        }
        let started = self.start_cancel(id.0, cancel, now);
        self.prune_timers();
        started.then_some(ClientId(cancel))
    }

    /// Answers through a server transaction, provisional or final. The response goes where the
    /// request's Via says (§18.2.2). A 2xx to INVITE moves the transaction to Accepted (RFC 6026),
    /// where further 2xx are sent too. Responses after a final one are dropped, as are responses
    /// for an ended or unknown transaction.
    pub fn respond(&mut self, id: ServerId, response: Response, now: Instant) {
        if !(100..=699).contains(&response.status) {
            warn!(status = response.status, "response status outside 100-699 dropped");
            return;
        }
        let Some(txn) = self.servers.get_mut(&id.0) else {
            debug!(?id, status = response.status, "response for an ended server transaction dropped");
            return;
        };
        let before = txn.deadlines;
        let next = txn.respond(&response, now, &self.config, &mut self.out);
        self.after_server(id.0, before, next);
        self.prune_timers();
    }

    /// Sends a message outside any transaction: the ACK for a 2xx (§13.2.2.4), or a request or
    /// response a proxy forwards statelessly (§16.11).
    pub fn send_stateless(&mut self, message: &Message, target: Target) {
        self.out.send(target, message.encode());
    }

    /// Reports that messages to `target` cannot be delivered (a TCP connection failed, §17.1.4,
    /// §17.2.4). Client transactions to it end, with [`Event::Timeout`] if they had no final
    /// response yet; server transactions answering to it end, with [`Event::ServerTimeout`] if
    /// unfinished. O(n) in the number of transactions.
    pub fn transport_error(&mut self, target: Target) {
        let mut failed: Vec<u64> = self.clients.iter().filter(|(_, t)| t.target == target).map(|(id, _)| *id).collect();
        failed.sort_unstable();
        for id in failed {
            if self.remove_client(id).is_some_and(|t| t.awaiting_final()) {
                self.out.events.push_back(Event::Timeout { id: ClientId(id) });
            }
        }
        let mut failed: Vec<u64> = self.servers.iter().filter(|(_, t)| t.target == target).map(|(id, _)| *id).collect();
        failed.sort_unstable();
        for id in failed {
            if self.remove_server(id).is_some_and(|t| t.unfinished()) {
                self.out.events.push_back(Event::ServerTimeout { id: ServerId(id) });
            }
        }
        self.prune_timers();
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn handle_response(&mut self, response: Response, source: Target, now: Instant) {
        let key = match (response.headers.via(), response.headers.cseq()) {
            (Ok(via), Ok(cseq)) => via.branch().map(|branch| (Box::from(branch), cseq.method)),
            _ => None,
        };
        let matched = key.and_then(|key| self.client_index.get(&key).copied());
        let Some((id, txn)) = matched.and_then(|id| Some((id, self.clients.get_mut(&id)?))) else {
            trace!(status = response.status, "response matches no client transaction");
            self.out.events.push_back(Event::StrayResponse { response, source });
            return;
        };
        let before = txn.deadlines;
        let next = txn.on_response(ClientId(id), response, now, &self.config, &mut self.out);
        self.after_client(id, before, next, now);
    }

    fn handle_request(&mut self, mut request: Request, source: Target, now: Instant) {
        let Ok(via) = request.headers.via() else {
            debug!(method = %request.method, "request without a readable Via dropped");
            return;
        };
        let target = server::response_target(&via, source);
        let is_ack = request.method == Method::Ack;
        let checked = request.headers.cseq().and_then(|cseq| {
            if cseq.method != request.method {
                return Err(ParseError::new(format!("CSeq method {} does not match {}", cseq.method, request.method)));
            }
            request.headers.call_id()?;
            let (key, to_tag) = ServerKey::of(&request, &via, cseq.seq)?;
            Ok((key, to_tag))
        });
        let (key, to_tag) = match checked {
            Ok(checked) => checked,
            Err(e) if !is_ack => {
                debug!(error = %e, "unusable request answered statelessly");
                let response = server::stateless_response(&request, e.status(), &via).with_reason(e.reason());
                self.out.send(target, response.encode());
                return;
            }
            Err(_) => return,
        };
        if is_ack {
            self.handle_ack(request, &via, &key, to_tag.as_deref(), source, now);
            return;
        }
        if let Some(id) = self.matching_server(&key, to_tag.as_deref(), false) {
            trace!(method = %request.method, "retransmitted request absorbed");
            if let Some(txn) = self.servers.get(&id) {
                txn.on_retransmission(&mut self.out);
            }
            return;
        }
        server::stamp_via(&mut request, &via, source.addr);
        let is_invite = request.method == Method::Invite;
        let cancels = if request.method == Method::Cancel {
            self.matching_server(&key.with_method(Method::Invite), to_tag.as_deref(), false).map(ServerId)
        } else {
            None
        };
        if self.len() >= self.max_transactions && cancels.is_none() {
            debug!(method = %request.method, "transaction table full: 503");
            let mut response = server::stateless_response(&request, 503, &via);
            response.headers.push(HeaderName::RetryAfter, RETRY_AFTER_SECS.to_string());
            self.out.send(target, response.encode());
            return;
        }
        let trying = (is_invite && self.config.auto_trying).then(|| server::trying(&request).encode());
        if let Some(trying) = &trying {
            self.out.send(target, trying.clone());
        }
        let rfc2543 = matches!(key, ServerKey::Rfc2543(_)).then_some(to_tag);
        let id = self.new_id();
        let txn = ServerTransaction::new(key.clone(), is_invite, target, rfc2543, trying, now, &self.config);
        self.timers.arm(TxnRef::Server(id), Deadlines::default(), txn.deadlines);
        // A colliding RFC 2543 key (differing only in To tag) points at the newest transaction.
        self.server_index.insert(key, id);
        self.servers.insert(id, txn);
        self.out.events.push_back(Event::Request { id: ServerId(id), request, source, cancels });
    }

    fn handle_ack(
        &mut self,
        mut request: Request,
        via: &Via,
        key: &ServerKey,
        to_tag: Option<&str>,
        source: Target,
        now: Instant,
    ) {
        let matched = self.matching_server(key, to_tag, true).and_then(|id| Some((id, self.servers.get_mut(&id)?)));
        if let Some((id, txn)) = matched {
            let before = txn.deadlines;
            if let AckOutcome::Absorbed(next) = txn.on_ack(now, &self.config) {
                self.after_server(id, before, next);
                return;
            }
        } else if server::acks_stateless_response(&request, via) {
            trace!("ACK for a stateless response absorbed");
            return;
        }
        server::stamp_via(&mut request, via, source.addr);
        self.out.events.push_back(Event::Ack { request, source });
    }

    /// The server transaction a request (or, with `ack`, an ACK) belongs to.
    fn matching_server(&self, key: &ServerKey, to_tag: Option<&str>, ack: bool) -> Option<u64> {
        let id = *self.server_index.get(key)?;
        self.servers.get(&id)?.matches_to_tag(to_tag, ack).then_some(id)
    }

    /// Starts a client transaction with a reserved id.
    fn start_client(&mut self, id: u64, request: Request, target: Target, now: Instant) -> Result<(), SendError> {
        let via = request.headers.via()?;
        let seq = request.headers.cseq()?.seq;
        let branch = via.branch().unwrap_or_default();
        if !branch.starts_with(MAGIC_COOKIE) {
            return Err(SendError::NoRfc3261Branch(branch.to_owned()));
        }
        let key: ClientKey = (branch.into(), request.method.clone());
        if self.client_index.contains_key(&key) {
            return Err(SendError::BranchInUse { branch: branch.to_owned(), method: request.method });
        }
        let (txn, data) = ClientTransaction::new(key.clone(), request, seq, target, now, &self.config);
        self.out.send(target, data);
        self.timers.arm(TxnRef::Client(id), Deadlines::default(), txn.deadlines);
        self.client_index.insert(key, id);
        self.clients.insert(id, txn);
        Ok(())
    }

    /// Builds and sends the CANCEL for an INVITE client transaction, as transaction `cancel`.
    fn start_cancel(&mut self, invite: u64, cancel: u64, now: Instant) -> bool {
        let Some(txn) = self.clients.get(&invite) else { return false };
        let (target, request) = (txn.target, txn.build_cancel());
        let started = match request.map(|r| self.start_client(cancel, r, target, now)) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                warn!(error = %e, "CANCEL not sent");
                false
            }
            None => false,
        };
        if let Some(txn) = self.clients.get_mut(&invite) {
            let before = txn.deadlines;
            if started {
                txn.cancel_sent(cancel, now, &self.config);
            } else {
                txn.cancel = Cancel::NotRequested;
            }
            self.timers.arm(TxnRef::Client(invite), before, txn.deadlines);
        }
        started
    }

    /// Applies what a client transaction asked for after being fed.
    fn after_client(&mut self, id: u64, before: Deadlines, next: client::Next, now: Instant) {
        match next {
            client::Next::Remove => {
                self.remove_client(id);
            }
            client::Next::Keep | client::Next::SendCancel(_) => {
                if let Some(txn) = self.clients.get(&id) {
                    self.timers.arm(TxnRef::Client(id), before, txn.deadlines);
                }
                if let client::Next::SendCancel(cancel) = next {
                    self.start_cancel(id, cancel, now);
                }
            }
        }
    }

    /// Applies what a server transaction asked for after being fed.
    fn after_server(&mut self, id: u64, before: Deadlines, next: server::Next) {
        match next {
            server::Next::Remove => {
                self.remove_server(id);
            }
            server::Next::Keep => {
                if let Some(txn) = self.servers.get(&id) {
                    self.timers.arm(TxnRef::Server(id), before, txn.deadlines);
                }
            }
        }
    }

    fn remove_client(&mut self, id: u64) -> Option<ClientTransaction> {
        let txn = self.clients.remove(&id)?;
        if self.client_index.get(&txn.key) == Some(&id) {
            self.client_index.remove(&txn.key);
        }
        Some(txn)
    }

    fn remove_server(&mut self, id: u64) -> Option<ServerTransaction> {
        let txn = self.servers.remove(&id)?;
        if self.server_index.get(&txn.key) == Some(&id) {
            self.server_index.remove(&txn.key);
        }
        Some(txn)
    }

    /// Drops stale entries from the top of the timer queue, so that `poll_timeout` names a live
    /// deadline.
    fn prune_timers(&mut self) {
        while let Some((at, txn, slot)) = self.timers.peek() {
            let live = match txn {
                TxnRef::Client(id) => self.clients.get(&id).map(|t| t.deadlines),
                TxnRef::Server(id) => self.servers.get(&id).map(|t| t.deadlines),
            };
            if live.and_then(|d| d.get(slot)) == Some(at) {
                break;
            }
            self.timers.pop();
        }
    }
}
