//! Our side as server within a dialog (RFC 3261 §12.1.1, §12.2.2, §14.2): checking the peer's
//! requests and answering them.

use rand::{Rng, RngCore};

use super::{Dialog, DialogId, DialogState, first_contact, is_target_refresh};
use crate::sip::{HeaderName, Method, Request, Response};

/// What [`Dialog::receive_request`] made of a request from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Received {
    /// In order and applied to the dialog: act on it and answer it with [`Dialog::respond`]
    /// (an ACK gets no answer; a CANCEL is answered as [`crate::transaction::Event`] says).
    InOrder,
    /// Not acted on: send this response and nothing else.
    Reject(Response),
}

impl Dialog {
    /// Checks and applies a request from the peer on this dialog (§12.2.2, §14.2):
    /// - one for another dialog, or for this one after it ended, is rejected 481;
    /// - a CSeq lower than the peer's last is out of order and rejected 500;
    /// - an INVITE while the peer's previous INVITE is unanswered is rejected 500 with a random
    ///   Retry-After of 0–10 s, and one while ours is pending is rejected 491 (glare);
    /// - otherwise the remote CSeq is updated, a target refresh (INVITE, UPDATE, SUBSCRIBE,
    ///   NOTIFY) replaces the remote target with its Contact, an INVITE is pending until
    ///   [`respond`](Self::respond) gives it a final response, and BYE terminates the dialog.
    ///
    /// ACK and CANCEL carry the CSeq of their INVITE and pass without changing anything (the
    /// transaction layer pairs a CANCEL with its INVITE).
    pub fn receive_request<R: RngCore + ?Sized>(&mut self, request: &Request, rng: &mut R) -> Received {
        let reject = |status: u16, reason: &str| Received::Reject(request.response(status).with_reason(reason));
        if DialogId::of_request(request).as_ref() != Some(&self.id) {
            return reject(481, "Call/Transaction Does Not Exist");
        }
        let Ok(cseq) = request.headers.cseq() else {
            return reject(400, "Malformed CSeq");
        };
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Received::InOrder;
        }
        if self.state == DialogState::Terminated {
            return reject(481, "Dialog Terminated");
        }
        if self.remote_cseq.is_some_and(|last| cseq.seq < last) {
            return reject(500, "CSeq Out of Order");
        }
        let new_target = if is_target_refresh(&request.method) {
            match first_contact(&request.headers) {
                Ok(contact) => contact.map(|c| c.uri),
                Err(_) => return reject(400, "Malformed Contact"),
            }
        } else {
            None
        };
        self.remote_cseq = Some(cseq.seq);
        if request.method == Method::Invite {
            if self.remote_invite_pending.is_some() {
                let mut response = request.response(500).with_reason("Previous INVITE Still Pending");
                response.headers.push(HeaderName::RetryAfter, rng.random_range(0..=10u32).to_string());
                return Received::Reject(response);
            }
            if self.local_invite_pending.is_some() {
                return reject(491, "Request Pending");
            }
            self.remote_invite_pending = Some(cseq.seq);
        }
        if let Some(target) = new_target {
            self.remote_target = target;
        }
        if request.method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Received::InOrder
    }

    /// Answers a request the peer sent on this dialog, or the request that made it, and applies
    /// the answer to the dialog as sent.
    ///
    /// The response copies Via, From, To, Call-ID and CSeq (§8.2.6) and carries our tag in To
    /// (except on 100). A 101–299 to the dialog-creating request also copies its Record-Route
    /// values in order (§12.1.1), and it and a 101–299 to a target refresh carry our Contact.
    /// A final response to the peer's INVITE ends its pendency; a 2xx to the dialog-creating
    /// request confirms an early dialog and a 300–699 terminates it. The caller adds the body.
    pub fn respond(&mut self, request: &Request, status: u16) -> Response {
        let mut response = request.response(status);
        let creating = request.headers.to().is_ok_and(|to| to.tag().is_none());
        if creating
            && status != 100
            && let Some(to) = request.headers.get(HeaderName::To)
        {
            response.headers.set(HeaderName::To, format!("{to};tag={}", self.id.local_tag));
        }
        if (101..300).contains(&status) {
            if creating {
                for route in request.headers.get_all(HeaderName::RecordRoute) {
                    response.headers.push(HeaderName::RecordRoute, route);
                }
            }
            if creating || is_target_refresh(&request.method) {
                response.headers.push(HeaderName::Contact, self.local_contact.to_string());
            }
        }
        if status >= 200 {
            let seq = request.headers.cseq().ok().map(|c| c.seq);
            if request.method == Method::Invite && seq.is_some() && self.remote_invite_pending == seq {
                self.remote_invite_pending = None;
            }
            if creating && self.state == DialogState::Early {
                self.state = if status < 300 { DialogState::Confirmed } else { DialogState::Terminated };
            }
        }
        response
    }
}
