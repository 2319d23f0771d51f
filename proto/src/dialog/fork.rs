//! The dialogs one INVITE of ours creates when a proxy forks it (RFC 3261 §12.1.2, §13.2.2.4):
//! early dialogs told apart by the remote tag, one confirmed by the first 2xx, later 2xx handed
//! back to be ACKed and ended.

use super::{Dialog, DialogError, DialogId, DialogState};
use crate::sip::{Request, Response};

/// What a response to our INVITE did to its [`DialogSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteProgress {
    /// No dialog involved: 100 Trying, a provisional without a To tag, or a provisional on a
    /// dialog that is no longer early.
    Ignored,
    /// A provisional response with a To tag made this early dialog, or came again on it.
    Early(DialogId),
    /// The first 2xx: this dialog is confirmed. ACK it with [`Dialog::ack_for_2xx`].
    Confirmed(DialogId),
    /// A 2xx for a dialog whose 2xx was already seen: resend the ACK sent for it (§13.2.2.4).
    Retransmission(DialogId),
    /// A 2xx from another fork after one was confirmed. The set no longer holds this dialog;
    /// send what [`Dialog::ack_and_bye`] builds on it.
    Redundant(Box<Dialog>),
    /// A non-2xx final response before any 2xx: every early dialog was terminated and removed.
    Rejected,
}

/// The dialogs of one INVITE we sent, keyed by [`DialogId`] (they share the Call-ID and our tag
/// and differ in the remote tag).
#[derive(Debug, Clone, Default)]
pub struct DialogSet {
    dialogs: Vec<Dialog>,
    confirmed: Option<DialogId>,
    /// Every dialog whose 2xx was seen, kept or not, to recognise retransmissions.
    answered: Vec<DialogId>,
}

impl DialogSet {
    /// An empty set.
    pub fn new() -> DialogSet {
        DialogSet::default()
    }

    /// Feeds a response to `invite` (the INVITE as sent): provisionals with a To tag make early
    /// dialogs, one per remote tag; the first 2xx confirms its dialog, made now if no provisional
    /// made it early; later 2xx from other forks come back as [`InviteProgress::Redundant`]; a
    /// non-2xx final ends the early dialogs (§12.3, §13.2.2.4).
    pub fn handle_invite_response(
        &mut self,
        invite: &Request,
        response: &Response,
    ) -> Result<InviteProgress, DialogError> {
        if response.headers.call_id()? != invite.headers.call_id()? {
            return Err(DialogError::NotThisRequest("Call-ID"));
        }
        let status = response.status;
        if status >= 300 {
            if self.confirmed.is_some() {
                return Ok(InviteProgress::Ignored);
            }
            self.dialogs.retain(|d| d.state() != DialogState::Early);
            return Ok(InviteProgress::Rejected);
        }
        let Some(id) = DialogId::of_response(response) else {
            return if status < 200 { Ok(InviteProgress::Ignored) } else { Err(DialogError::MissingToTag) };
        };
        let known = self.dialogs.iter().position(|d| d.id() == &id);
        if status < 200 {
            return match known {
                Some(i) if self.dialogs[i].state() == DialogState::Early => Ok(InviteProgress::Early(id)),
                Some(_) => Ok(InviteProgress::Ignored),
                None if status == 100 => Ok(InviteProgress::Ignored),
                None => {
                    self.dialogs.push(Dialog::uac_from_response(invite, response)?);
                    Ok(InviteProgress::Early(id))
                }
            };
        }
        if self.answered.contains(&id) {
            return Ok(InviteProgress::Retransmission(id));
        }
        let dialog = match known {
            Some(i) => {
                self.dialogs[i].receive_response(response)?;
                self.dialogs.swap_remove(i)
            }
            None => Dialog::uac_from_response(invite, response)?,
        };
        self.answered.push(id.clone());
        if self.confirmed.is_some() {
            return Ok(InviteProgress::Redundant(Box::new(dialog)));
        }
        self.dialogs.push(dialog);
        self.confirmed = Some(id.clone());
        Ok(InviteProgress::Confirmed(id))
    }

    /// Drops the dialogs still early: done 64·T1 after the first 2xx, when the INVITE is
    /// complete and no other fork can answer any more (§13.2.2.4).
    pub fn end_early(&mut self) {
        self.dialogs.retain(|d| d.state() != DialogState::Early);
    }

    /// The dialog the first 2xx confirmed, while the set holds it.
    pub fn confirmed(&self) -> Option<&Dialog> {
        self.confirmed.as_ref().and_then(|id| self.get(id))
    }

    /// The confirmed dialog, to act on.
    pub fn confirmed_mut(&mut self) -> Option<&mut Dialog> {
        let id = self.confirmed.clone()?;
        self.get_mut(&id)
    }

    /// The dialog a request from the peer belongs to (§12.2.2).
    pub fn match_request(&mut self, request: &Request) -> Option<&mut Dialog> {
        let id = DialogId::of_request(request)?;
        self.get_mut(&id)
    }

    /// A dialog by its id.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.iter().find(|d| d.id() == id)
    }

    /// A dialog by its id, to act on.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.iter_mut().find(|d| d.id() == id)
    }

    /// Takes a dialog out of the set.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        let i = self.dialogs.iter().position(|d| d.id() == id)?;
        Some(self.dialogs.swap_remove(i))
    }

    /// Every dialog held, early or confirmed, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Dialog> {
        self.dialogs.iter()
    }

    /// How many dialogs are held.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// True when no dialog is held.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }
}
