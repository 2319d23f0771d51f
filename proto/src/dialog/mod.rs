//! Dialogs (RFC 3261 §12), sans-IO: the state two user agents share for a call, and the
//! requests and responses that state shapes.
//!
//! A [`Dialog`] is made from the response to an INVITE we sent ([`Dialog::uac_from_response`],
//! §12.1.2) or from an INVITE we received ([`Dialog::uas_from_request`], §12.1.1). It holds the
//! dialog's identity ([`DialogId`]), its state (early, confirmed, terminated), both URIs with
//! their tags, the remote target and route set, both CSeq counters and the secure flag, and
//! from them it:
//! - builds requests inside the dialog ([`Dialog::request`], §12.2.1.1), the ACK for a 2xx
//!   ([`Dialog::ack_for_2xx`], §13.2.2.4) and the next hop to resolve ([`Dialog::next_hop`],
//!   §8.1.2, loose and strict routing alike);
//! - processes responses to them ([`Dialog::receive_response`], §12.2.1.2, §13.2.2.4): target
//!   refresh, early to confirmed, termination on 481/408 and after BYE;
//! - checks requests from the peer ([`Dialog::receive_request`], §12.2.2): out-of-order CSeq gets
//!   500, a re-INVITE crossing ours gets 491 (§14.2), target refresh, BYE ends the dialog;
//! - answers them ([`Dialog::respond`]): To tag, Contact and Record-Route where §12.1.1 wants
//!   them, and the state change the response makes.
//!
//! A [`DialogSet`] holds the dialogs one INVITE creates when a proxy forks it (§12.1.2,
//! §13.2.2.4): early dialogs told apart by remote tag, the first 2xx confirming one, and later
//! 2xx from other forks handed back for [`Dialog::ack_and_bye`].
//!
//! Randomness (tags, branches, Call-IDs, the first CSeq, glare back-off) comes from the
//! `rand::RngCore` the caller passes in, so every path is reproducible in tests. Transactions
//! (retransmission, CANCEL matching) belong to [`crate::transaction`]; offer/answer belongs to the
//! SDP layer.

mod fork;
mod random;
mod route;
mod uac;
mod uas;

#[cfg(test)]
mod tests;

pub use fork::{DialogSet, InviteProgress};
pub use random::{glare_retry_delay, initial_cseq, new_branch, new_call_id, new_tag};
pub use route::next_hop;
pub use uac::SentBy;
pub use uas::Received;

use std::time::Duration;

use rand::RngCore;

use crate::sip::{Contact, HeaderName, Headers, Method, NameAddr, ParseError, Request, Response, Scheme, Uri};

/// What identifies a dialog (§12): the Call-ID and both tags, seen from our side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag: the From tag of our requests, the To tag of the peer's.
    pub local_tag: String,
    /// The peer's tag; empty for an RFC 2543 peer that sent no From tag (§12.1.1).
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a request from the peer belongs to (§12.2.2): its To tag is ours, its From tag
    /// the peer's. `None` when it has no To tag (it is outside any dialog) or no readable
    /// Call-ID, From or To.
    pub fn of_request(request: &Request) -> Option<DialogId> {
        let h = &request.headers;
        Some(DialogId {
            call_id: h.call_id().ok()?.to_owned(),
            local_tag: h.to().ok()?.tag()?.to_owned(),
            remote_tag: h.from().ok()?.tag().unwrap_or_default().to_owned(),
        })
    }

    /// The dialog a response to our request belongs to: its From tag is ours, its To tag the
    /// peer's. `None` when either tag or the Call-ID is missing.
    pub fn of_response(response: &Response) -> Option<DialogId> {
        let h = &response.headers;
        Some(DialogId {
            call_id: h.call_id().ok()?.to_owned(),
            local_tag: h.from().ok()?.tag()?.to_owned(),
            remote_tag: h.to().ok()?.tag()?.to_owned(),
        })
    }
}

/// Where a dialog is in its life (§12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    /// Made by a provisional response (or, at the callee, by the INVITE before its 2xx).
    Early,
    /// A 2xx was sent or received.
    Confirmed,
    /// Ended: BYE, a non-2xx final to the INVITE, 481/408, or [`Dialog::terminate`].
    Terminated,
}

/// Why a dialog could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs could not be read.
    #[error("{0}")]
    Malformed(#[from] ParseError),
    /// The response's status makes no dialog.
    #[error("a {0} response makes no dialog: only a 101–199 to an INVITE or a 2xx does")]
    NoDialog(u16),
    /// A provisional or 2xx response lacks the To tag that names the peer's side.
    #[error("the response has no To tag, so it names no dialog: the peer is broken; treat a 2xx as final anyway")]
    MissingToTag,
    /// Our own dialog-creating request lacks a From tag.
    #[error("the request has no From tag: give every dialog-creating request one (new_tag)")]
    MissingFromTag,
    /// A message has no Contact, so the dialog has no remote target, or our request has none to
    /// give the peer.
    #[error("no Contact in the {0}: a dialog needs one to know where requests go; answer a request without one 400")]
    MissingContact(&'static str),
    /// The response does not answer the request it was given with.
    #[error("the response does not answer this request: its {0} differs")]
    NotThisRequest(&'static str),
    /// The dialog-creating request already carries a To tag.
    #[error("the request already has a To tag, so it belongs to an existing dialog: answer 481 if none matches")]
    AlreadyInDialog,
    /// The message's Call-ID or tags are another dialog's.
    #[error("the message belongs to another dialog: look its DialogId up first")]
    NotThisDialog,
    /// The dialog has ended.
    #[error("the dialog is terminated: start a new one")]
    Terminated,
    /// An INVITE is still in progress on the dialog, in either direction (§14.1).
    #[error("an INVITE is still in progress on this dialog (RFC 3261 §14.1): wait for its final response")]
    InvitePending,
    /// There is no re-INVITE of ours to ACK or CANCEL.
    #[error(
        "no re-INVITE of ours to ACK or CANCEL on this dialog: ACK a 2xx to the first INVITE with \
         ack_for_2xx, and CANCEL the first INVITE through its transaction"
    )]
    NoInvite,
    /// The callee tried to send BYE on an early dialog (§15).
    #[error("the callee must not send BYE on an early dialog (RFC 3261 §15): answer the INVITE with a final response")]
    ByeOnEarlyDialog,
    /// The local CSeq would pass 2^32.
    #[error("the local CSeq has run out: end this dialog and start a new one")]
    CSeqExhausted,
}

/// The state of one dialog (§12), seen from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    /// True when we sent the dialog-creating request, so we chose the Call-ID (§14.1).
    owns_call_id: bool,
    /// Our URI with our tag: From in our requests.
    local: NameAddr,
    /// The peer's URI with its tag: To in our requests.
    remote: NameAddr,
    /// Our Contact, sent in target-refresh requests and in responses that need one.
    local_contact: NameAddr,
    remote_target: Uri,
    route_set: Vec<NameAddr>,
    local_cseq: Option<u32>,
    remote_cseq: Option<u32>,
    secure: bool,
    /// The last re-INVITE we built: its CSeq and top Via, for the ACK and CANCEL that reuse them.
    last_invite: Option<(u32, String)>,
    /// The CSeq of our INVITE that has no final response yet.
    local_invite_pending: Option<u32>,
    /// The CSeq of the peer's INVITE we have not answered with a final response yet.
    remote_invite_pending: Option<u32>,
}

impl Dialog {
    /// The dialog a response to our INVITE makes (§12.1.2): early for a 101–199 with a To tag,
    /// confirmed for a 2xx. The route set is the response's Record-Route reversed, the remote
    /// target its Contact (the INVITE's Request-URI when a careless peer sends none), the local
    /// CSeq the INVITE's. `invite` is the request as sent, with our From tag and Contact.
    pub fn uac_from_response(invite: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let status = response.status;
        let early = (101..200).contains(&status) && invite.method == Method::Invite;
        if !early && !(200..300).contains(&status) {
            return Err(DialogError::NoDialog(status));
        }
        let call_id = invite.headers.call_id()?;
        if response.headers.call_id()? != call_id {
            return Err(DialogError::NotThisRequest("Call-ID"));
        }
        let local = invite.headers.from()?;
        let local_tag = local.tag().ok_or(DialogError::MissingFromTag)?;
        if response.headers.from()?.tag() != Some(local_tag) {
            return Err(DialogError::NotThisRequest("From tag"));
        }
        let cseq = invite.headers.cseq()?;
        if response.headers.cseq()? != cseq {
            return Err(DialogError::NotThisRequest("CSeq"));
        }
        let remote = response.headers.to()?;
        let remote_tag = remote.tag().ok_or(DialogError::MissingToTag)?;
        let local_contact = first_contact(&invite.headers)?.ok_or(DialogError::MissingContact("INVITE"))?;
        let remote_target = first_contact(&response.headers)?.map_or_else(|| invite.uri.clone(), |c| c.uri);
        let mut route_set = route::record_route(&response.headers)?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: remote_tag.to_owned(),
            },
            state: if early { DialogState::Early } else { DialogState::Confirmed },
            owns_call_id: true,
            secure: invite.uri.scheme == Scheme::Sips,
            local,
            remote,
            local_contact,
            remote_target,
            route_set,
            local_cseq: Some(cseq.seq),
            remote_cseq: None,
            last_invite: None,
            local_invite_pending: early.then_some(cseq.seq),
            remote_invite_pending: None,
        })
    }

    /// The dialog an INVITE we received makes (§12.1.1), early until [`respond`](Self::respond)
    /// sends a 2xx. The route set is the INVITE's Record-Route in order, the remote target its
    /// Contact, the remote CSeq its CSeq; the local CSeq stays empty until our first request.
    /// `local_tag` goes in the To of every response and request we send in the dialog
    /// ([`new_tag`]); `local_contact` is our Contact.
    pub fn uas_from_request(invite: &Request, local_tag: &str, local_contact: NameAddr) -> Result<Dialog, DialogError> {
        let mut local = invite.headers.to()?;
        if local.tag().is_some() {
            return Err(DialogError::AlreadyInDialog);
        }
        local.params.set("tag", Some(local_tag));
        let remote = invite.headers.from()?;
        let cseq = invite.headers.cseq()?;
        let remote_target = first_contact(&invite.headers)?.ok_or(DialogError::MissingContact("request"))?.uri;
        Ok(Dialog {
            id: DialogId {
                call_id: invite.headers.call_id()?.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: remote.tag().unwrap_or_default().to_owned(),
            },
            state: DialogState::Early,
            owns_call_id: false,
            secure: invite.uri.scheme == Scheme::Sips,
            route_set: route::record_route(&invite.headers)?,
            local,
            remote,
            local_contact,
            remote_target,
            local_cseq: None,
            remote_cseq: Some(cseq.seq),
            last_invite: None,
            local_invite_pending: None,
            remote_invite_pending: (invite.method == Method::Invite).then_some(cseq.seq),
        })
    }

    /// The dialog's identity.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early, confirmed or terminated.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// Our URI with our tag (From in our requests).
    pub fn local(&self) -> &NameAddr {
        &self.local
    }

    /// The peer's URI with its tag (To in our requests).
    pub fn remote(&self) -> &NameAddr {
        &self.remote
    }

    /// Where the peer asked requests to go: its latest Contact.
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The proxies our requests pass through, first hop first.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    /// The CSeq of our latest request; `None` before our first one on a dialog the peer began.
    pub fn local_cseq(&self) -> Option<u32> {
        self.local_cseq
    }

    /// The CSeq of the peer's latest request; `None` before its first one on a dialog we began.
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_cseq
    }

    /// True when the dialog-creating request had a SIPS Request-URI (§12.1.1, §12.1.2).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// True when we sent the dialog-creating request and so chose the Call-ID (§14.1).
    pub fn owns_call_id(&self) -> bool {
        self.owns_call_id
    }

    /// Our Contact, as sent in target-refresh requests and in responses that need one.
    pub fn local_contact(&self) -> &NameAddr {
        &self.local_contact
    }

    /// Replaces our Contact, e.g. after an address change; the next re-INVITE or UPDATE tells the
    /// peer.
    pub fn set_local_contact(&mut self, contact: NameAddr) {
        self.local_contact = contact;
    }

    /// True while an INVITE of ours on this dialog awaits its final response. A re-INVITE from
    /// the peer meanwhile is answered 491 (§14.2).
    pub fn is_invite_pending(&self) -> bool {
        self.local_invite_pending.is_some()
    }

    /// True while an INVITE from the peer awaits our final response.
    pub fn is_remote_invite_pending(&self) -> bool {
        self.remote_invite_pending.is_some()
    }

    /// Where the next request on this dialog goes first (§8.1.2): the first URI of the route
    /// set, whether that proxy routes loosely or strictly, else the remote target. Resolve it
    /// per RFC 3263.
    pub fn next_hop(&self) -> &Uri {
        self.route_set.first().map_or(&self.remote_target, |r| &r.uri)
    }

    /// How long to wait before retrying a re-INVITE that got 491 (§14.1): 2.1–4 s when we own the
    /// Call-ID, else 0–2 s.
    pub fn glare_retry_delay<R: RngCore + ?Sized>(&self, rng: &mut R) -> Duration {
        glare_retry_delay(self.owns_call_id, rng)
    }

    /// Ends the dialog, e.g. when a request on it timed out (§12.2.1.2).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// Replaces the remote target with the first Contact in `headers`, if there is one.
    fn refresh_target(&mut self, headers: &Headers) -> Result<(), ParseError> {
        if let Some(contact) = first_contact(headers)? {
            self.remote_target = contact.uri;
        }
        Ok(())
    }
}

/// The first Contact address; `*` counts as none.
fn first_contact(headers: &Headers) -> Result<Option<NameAddr>, ParseError> {
    match headers.get(HeaderName::Contact).map(Contact::parse).transpose()? {
        Some(Contact::Addr(addr)) => Ok(Some(addr)),
        Some(Contact::Star) | None => Ok(None),
    }
}

/// Methods whose Contact replaces the remote target (§12.2; RFC 3311 for UPDATE, RFC 6665 for
/// SUBSCRIBE and NOTIFY).
fn is_target_refresh(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Update | Method::Subscribe | Method::Notify)
}
