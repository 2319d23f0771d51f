//! Client transactions (RFC 3261 §17.1, RFC 6026 §7.2): the INVITE client (Calling, Proceeding,
//! Completed, Accepted) and the non-INVITE client (Trying, Proceeding, Completed), with the ACK
//! for a non-2xx final (§17.1.1.3) and the CANCEL (§9.1) built from the INVITE.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timers::{Deadlines, Slot};
use super::{ClientId, Event, Output, TIMER_D, Target, TimerConfig};
use crate::sip::{HeaderName, Headers, Method, Request, Response};

/// How responses find their client transaction (§17.1.3): top Via branch and CSeq method.
pub(super) type ClientKey = (Box<str>, Method);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE sent, nothing heard yet: Timer A retransmits (unreliable transports), Timer B gives up.
    Calling,
    /// Non-INVITE sent, nothing heard yet: Timer E retransmits (unreliable transports), Timer F
    /// gives up.
    Trying,
    /// A provisional response arrived. A non-INVITE keeps retransmitting every T2 until Timer F;
    /// an INVITE waits without timers, unless it was cancelled (then it gives up after 64·T1, §9.1).
    Proceeding,
    /// A final response arrived (non-2xx for INVITE): retransmissions of it are absorbed, and
    /// answered with the ACK again for INVITE, until Timer D (INVITE) or K (non-INVITE).
    Completed,
    /// A 2xx to INVITE arrived (RFC 6026): further 2xx, retransmitted or forked, go up to the TU
    /// until Timer M.
    Accepted,
}

/// The CANCEL of an INVITE client transaction (§9.1). The ids are the CANCEL's own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cancel {
    NotRequested,
    /// Requested before any provisional response arrived: sent when one does.
    Pending(u64),
    Sent(u64),
}

/// What the layer does with a client transaction after feeding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Keep,
    Remove,
    /// Keep it, and start the pending CANCEL with this id now.
    SendCancel(u64),
}

/// One client transaction.
#[derive(Debug)]
pub(super) struct ClientTransaction {
    pub(super) key: ClientKey,
    pub(super) target: Target,
    pub(super) deadlines: Deadlines,
    pub(super) cancel: Cancel,
    state: State,
    /// The request as sent, for retransmission.
    data: Bytes,
    /// For INVITE: the request, kept to build the ACK and the CANCEL.
    invite: Option<Box<Request>>,
    /// The CSeq number, for the ACK and the CANCEL.
    seq: u32,
    /// The ACK sent for a non-2xx final, sent again when the final is retransmitted.
    ack: Option<Bytes>,
    /// The current retransmission interval (Timer A or E).
    interval: Duration,
}

impl ClientTransaction {
    /// Starts a transaction for a request already checked by the layer; returns it with the
    /// bytes to send first.
    pub(super) fn new(
        key: ClientKey,
        request: Request,
        seq: u32,
        target: Target,
        now: Instant,
        config: &TimerConfig,
    ) -> (ClientTransaction, Bytes) {
        let data = request.encode();
        let is_invite = request.method == Method::Invite;
        let unreliable = !target.transport.is_reliable();
        let deadlines = Deadlines {
            // Timer A or E.
            retransmit: unreliable.then(|| now + config.t1),
            // Timer B or F.
            expire: Some(now + config.t1 * 64),
        };
        let txn = ClientTransaction {
            key,
            target,
            deadlines,
            cancel: Cancel::NotRequested,
            state: if is_invite { State::Calling } else { State::Trying },
            data: data.clone(),
            invite: is_invite.then(|| Box::new(request)),
            seq,
            ack: None,
            interval: config.t1,
        };
        (txn, data)
    }

    /// True until a final response arrives.
    pub(super) fn awaiting_final(&self) -> bool {
        matches!(self.state, State::Calling | State::Trying | State::Proceeding)
    }

    /// For an INVITE still without a final response: whether a CANCEL may go out now (a
    /// provisional response has arrived, §9.1). `None` when there is nothing to cancel.
    pub(super) fn may_cancel_now(&self) -> Option<bool> {
        match (&self.invite, self.state) {
            (Some(_), State::Calling) => Some(false),
            (Some(_), State::Proceeding) => Some(true),
            _ => None,
        }
    }

    /// Records that the CANCEL went out. An INVITE that still gets no final response is given up
    /// 64·T1 later (§9.1), so a silent peer cannot keep the transaction forever.
    pub(super) fn cancel_sent(&mut self, cancel: u64, now: Instant, config: &TimerConfig) {
        self.cancel = Cancel::Sent(cancel);
        if self.state == State::Proceeding {
            self.deadlines.expire = Some(now + config.t1 * 64);
        }
    }

    /// The CANCEL for this INVITE (§9.1): Request-URI, Call-ID, From, To and CSeq number of the
    /// INVITE, its top Via alone (same branch), its Route headers.
    pub(super) fn build_cancel(&self) -> Option<Request> {
        let invite = self.invite.as_deref()?;
        let to = invite.headers.get(HeaderName::To).unwrap_or_default();
        Some(derived_request(invite, Method::Cancel, self.seq, to))
    }

    /// Feeds a response that matched this transaction.
    pub(super) fn on_response(
        &mut self,
        id: ClientId,
        response: Response,
        now: Instant,
        config: &TimerConfig,
        out: &mut Output,
    ) -> Next {
        match &self.invite {
            Some(_) => self.on_invite_response(id, response, now, config, out),
            None => self.on_non_invite_response(id, response, now, config, out),
        }
    }

    fn on_invite_response(
        &mut self,
        id: ClientId,
        response: Response,
        now: Instant,
        config: &TimerConfig,
        out: &mut Output,
    ) -> Next {
        match (self.state, response.status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                if self.state == State::Calling {
                    // Timers A and B stop; Proceeding has no timer until a CANCEL goes out.
                    self.deadlines = Deadlines::default();
                }
                self.state = State::Proceeding;
                out.events.push_back(Event::Response { id, response });
                match self.cancel {
                    Cancel::Pending(cancel) => Next::SendCancel(cancel),
                    _ => Next::Keep,
                }
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.deadlines = Deadlines { retransmit: None, expire: Some(now + config.t1 * 64) }; // Timer M
                if let Cancel::Pending(_) = self.cancel {
                    self.cancel = Cancel::NotRequested;
                }
                out.events.push_back(Event::Response { id, response });
                Next::Keep
            }
            (State::Calling | State::Proceeding, _) => {
                let ack = self.invite.as_deref().map(|invite| {
                    let to = response.headers.get(HeaderName::To).or(invite.headers.get(HeaderName::To));
                    derived_request(invite, Method::Ack, self.seq, to.unwrap_or_default()).encode()
                });
                if let Some(ack) = &ack {
                    out.send(self.target, ack.clone());
                }
                self.ack = ack;
                self.state = State::Completed;
                if let Cancel::Pending(_) = self.cancel {
                    self.cancel = Cancel::NotRequested;
                }
                out.events.push_back(Event::Response { id, response });
                if self.target.transport.is_reliable() {
                    return Next::Remove; // Timer D is zero.
                }
                self.deadlines = Deadlines { retransmit: None, expire: Some(now + TIMER_D) };
                Next::Keep
            }
            (State::Completed, 300..) => {
                // A retransmitted final: our ACK was lost.
                if let Some(ack) = &self.ack {
                    out.send(self.target, ack.clone());
                }
                Next::Keep
            }
            (State::Accepted, 200..=299) => {
                out.events.push_back(Event::Response { id, response });
                Next::Keep
            }
            _ => Next::Keep,
        }
    }

    fn on_non_invite_response(
        &mut self,
        id: ClientId,
        response: Response,
        now: Instant,
        config: &TimerConfig,
        out: &mut Output,
    ) -> Next {
        match (self.state, response.status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                out.events.push_back(Event::Response { id, response });
                Next::Keep
            }
            (State::Trying | State::Proceeding, _) => {
                self.state = State::Completed;
                out.events.push_back(Event::Response { id, response });
                if self.target.transport.is_reliable() {
                    return Next::Remove; // Timer K is zero.
                }
                self.deadlines = Deadlines { retransmit: None, expire: Some(now + config.t4) };
                Next::Keep
            }
            _ => Next::Keep,
        }
    }

    /// Fires a timer whose deadline has passed (the layer has already cleared it).
    pub(super) fn on_timer(
        &mut self,
        id: ClientId,
        slot: Slot,
        now: Instant,
        config: &TimerConfig,
        out: &mut Output,
    ) -> Next {
        match slot {
            Slot::Retransmit => {
                self.interval = match self.state {
                    State::Calling => self.interval * 2,                 // Timer A: no cap
                    State::Trying => (self.interval * 2).min(config.t2), // Timer E
                    State::Proceeding if self.invite.is_none() => config.t2,
                    _ => return Next::Keep,
                };
                out.send(self.target, self.data.clone());
                self.deadlines.retransmit = Some(now + self.interval);
                Next::Keep
            }
            Slot::Expire => {
                if self.awaiting_final() {
                    // Timer B or F, or a cancelled INVITE's final never came.
                    out.events.push_back(Event::Timeout { id });
                }
                Next::Remove
            }
        }
    }
}

/// A request derived from an INVITE for ACK or CANCEL: Request-URI, From, Call-ID of the INVITE,
/// the given To, CSeq number with the new method, the INVITE's top Via only, its Route headers
/// and Max-Forwards (§8.1.1.6 asks for one in every request).
fn derived_request(invite: &Request, method: Method, seq: u32, to: &str) -> Request {
    let h = &invite.headers;
    let mut headers = Headers::new();
    if let Some(via) = h.get(HeaderName::Via) {
        headers.push(HeaderName::Via, via);
    }
    headers.push(HeaderName::MaxForwards, h.get(HeaderName::MaxForwards).unwrap_or("70"));
    for route in h.get_all(HeaderName::Route) {
        headers.push(HeaderName::Route, route);
    }
    if let Some(from) = h.get(HeaderName::From) {
        headers.push(HeaderName::From, from);
    }
    headers.push(HeaderName::To, to);
    if let Some(call_id) = h.get(HeaderName::CallId) {
        headers.push(HeaderName::CallId, call_id);
    }
    headers.push(HeaderName::CSeq, format!("{seq} {method}"));
    let mut request = Request::new(method, invite.uri.clone());
    request.headers = headers;
    request
}
