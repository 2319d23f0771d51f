//! One call at a time, either way (RFC 3261 §13–§15, RFC 3264 offer/answer, RFC 6026).
//!
//! Outgoing: INVITE with our offer; a 401/407 is answered once per nonce with credentials on a
//! new INVITE (same Call-ID and From tag, next CSeq, §22.2), and under `--srtp offer` a 488 to
//! an SRTP offer likewise brings one plain RTP offer; responses go through a
//! [`DialogSet`] so forks are told apart; the first 2xx is ACKed end to end (§13.2.2.4) and its
//! answer applied; hanging up before that CANCELs (§9.1), and a 2xx crossing the CANCEL is
//! ACKed and then ended with BYE. Incoming: 180 at once, 200 with our answer when answered
//! (at once with auto-answer), that 200 retransmitted from T1 doubling to T2 until the ACK, and
//! BYE if none comes within 64·T1 (§13.3.1.4). BYE either way ends the call; ours is reported
//! once its transaction is over.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::dialog::{Dialog, DialogId, DialogSet, InviteProgress, Received, initial_cseq, new_call_id, new_tag};
use proto::sdp::{LocalMedia, Negotiated, SessionDescription, apply_answer, create_answer, create_offer, parse};
use proto::sip::{HeaderName, Message, Method, NameAddr, Request, Response, Uri};
use proto::transaction::{ClientId, ServerId, Target};
use rand::RngCore;
use tracing::debug;

use super::digest::Digest;
use super::{CommandError, Event, UserAgent, over};

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupReason {
    /// We hung up.
    Local,
    /// The far end sent BYE.
    Remote,
    /// Our INVITE got this final non-2xx response.
    Rejected(u16),
    /// The caller gave up before the answer (CANCEL), either side.
    Cancelled,
    /// No final response came to our INVITE (Timer B), or the registrar could not be reached.
    Timeout,
    /// Our 200 was never ACKed.
    NoAck,
    /// Offer/answer failed: the SDP named no codec we share.
    NotAcceptable,
    /// We transferred the far end elsewhere and the transfer succeeded (RFC 5589 §6).
    Transferred,
}

impl HangupReason {
    /// A short token for the UI.
    pub fn as_str(&self) -> &'static str {
        match self {
            HangupReason::Local => "local",
            HangupReason::Remote => "remote",
            HangupReason::Rejected(_) => "rejected",
            HangupReason::Cancelled => "cancelled",
            HangupReason::Timeout => "timeout",
            HangupReason::NoAck => "no_ack",
            HangupReason::NotAcceptable => "not_acceptable",
            HangupReason::Transferred => "transferred",
        }
    }

    /// The SIP status that ended the call, when one did.
    pub fn status(&self) -> Option<u16> {
        match self {
            HangupReason::Rejected(status) => Some(*status),
            _ => None,
        }
    }

    /// True for the ways a connected call ends normally.
    pub fn is_normal(&self) -> bool {
        matches!(self, HangupReason::Local | HangupReason::Remote | HangupReason::Transferred)
    }

    /// The SIP status that stands for this ending in a sipfrag (RFC 3515 §2.4.5): what a
    /// transferee reports when its call to the transfer target ends unanswered.
    pub(super) fn sipfrag_status(&self) -> u16 {
        match self {
            HangupReason::Rejected(status) => *status,
            HangupReason::Cancelled => 487,
            HangupReason::Timeout => 408,
            HangupReason::NotAcceptable => 488,
            _ => 500,
        }
    }
}

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// INVITE sent or received, no final response yet.
    Setup,
    /// A 2xx was sent or received.
    Confirmed,
    /// Our BYE is out.
    Ending,
}

/// The 2xx we retransmit until its ACK (§13.3.1.4).
#[derive(Debug, Clone)]
pub(super) struct Retransmit {
    pub(super) server: ServerId,
    pub(super) response: Response,
    pub(super) next: Instant,
    pub(super) interval: Duration,
    pub(super) give_up: Instant,
}

/// Caller-side state.
#[derive(Debug)]
struct Outgoing {
    client: ClientId,
    dest: SocketAddr,
    offer: SessionDescription,
    dialogs: DialogSet,
    digest: Digest,
    ringing: bool,
    hangup_requested: bool,
    /// The ACK for the 2xx, resent for each retransmission of it.
    ack: Option<(Request, SocketAddr)>,
}

/// Callee-side state.
#[derive(Debug)]
struct Incoming {
    server: ServerId,
    dialog: Dialog,
    answer: Bytes,
    answer_sdp: SessionDescription,
    negotiated: Negotiated,
    ok: Option<Retransmit>,
}

#[derive(Debug)]
enum Side {
    Outgoing(Box<Outgoing>),
    Incoming(Box<Incoming>),
}

/// One call.
#[derive(Debug)]
pub(super) struct Call {
    /// The INVITE as sent (latest, with credentials) or as received.
    invite: Request,
    /// Our media for this call, with its SRTP keys when it has them; re-offers and answers to
    /// re-offers use it.
    pub(super) media: LocalMedia,
    side: Side,
    pub(super) phase: Phase,
    bye: Option<ClientId>,
    end_reason: Option<HangupReason>,
    /// The media session once confirmed: what we last sent, what was agreed, hold state.
    pub(super) session: Option<Box<super::session::Session>>,
    /// Our REFER transferring the far end, and its implicit subscription (RFC 3515).
    pub(super) referral: Option<Box<super::transfer::Referral>>,
    /// The `id` of our last referral's subscription once a final NOTIFY ended it.
    pub(super) ended_subscription: Option<u32>,
    /// The subscription of a REFER we accepted in this call, which we notify.
    pub(super) notifier: Option<Box<super::transfer::Notifier>>,
}

impl Call {
    /// A call being set up, before any answer, BYE or transfer.
    fn setup(invite: Request, side: Side, media: LocalMedia) -> Call {
        Call {
            invite,
            media,
            side,
            phase: Phase::Setup,
            bye: None,
            end_reason: None,
            session: None,
            referral: None,
            ended_subscription: None,
            notifier: None,
        }
    }

    /// When the 2xx is next retransmitted.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let first = match &self.side {
            Side::Incoming(i) => i.ok.as_ref().map(|ok| ok.next),
            Side::Outgoing(_) => None,
        };
        let session = self.session.as_ref().and_then(|s| s.deadline());
        let referral = self.referral.as_ref().map(|r| r.expires);
        [first, session, referral].into_iter().flatten().min()
    }

    pub(super) fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        match &mut self.side {
            Side::Outgoing(o) => o.dialogs.confirmed_mut(),
            Side::Incoming(i) => Some(&mut i.dialog),
        }
    }

    /// The confirmed dialog and the session state, borrowed together.
    pub(super) fn parts(&mut self) -> (Option<&mut Dialog>, Option<&mut super::session::Session>) {
        let dialog = match &mut self.side {
            Side::Outgoing(o) => o.dialogs.confirmed_mut(),
            Side::Incoming(i) => Some(&mut i.dialog),
        };
        (dialog, self.session.as_deref_mut())
    }
}

impl UserAgent {
    /// Calls `target` with an offer of our codecs. Ringing, Answered and HungUp events follow.
    pub fn dial(&mut self, target: &Uri, now: Instant) -> Result<(), CommandError> {
        self.place_call(target, None, now)
    }

    /// Sends the INVITE of a new call, with a Referred-By when a REFER asked for it (RFC 3892 §3).
    pub(super) fn place_call(
        &mut self,
        target: &Uri,
        referred_by: Option<&str>,
        now: Instant,
    ) -> Result<(), CommandError> {
        if self.call.is_some() {
            return Err(CommandError::Busy);
        }
        let dest = self.route_for(target)?;
        let call_id = new_call_id(&mut self.rng);
        let from_tag = new_tag(&mut self.rng);
        let cseq = initial_cseq(&mut self.rng);
        let mut invite = self.base_request(Method::Invite, target.clone(), target, &call_id, &from_tag, cseq);
        invite.headers.push(HeaderName::Contact, format!("<{}>", self.contact));
        if let Some(referred_by) = referred_by {
            invite.headers.push(HeaderName::ReferredBy, referred_by);
        }
        let media = self.media_for_call()?;
        let offer = create_offer(&media, u64::from(self.rng.next_u32()), 1);
        invite.headers.push(HeaderName::ContentType, "application/sdp");
        invite.body = Bytes::from(offer.to_string());
        let client =
            self.layer.send_request(invite.clone(), over(self.settings.transport, dest), now).map_err(|e| {
                debug!(%e, "INVITE not sent");
                CommandError::Unreachable(target.to_string())
            })?;
        let outgoing = Outgoing {
            client,
            dest,
            offer,
            dialogs: DialogSet::new(),
            digest: Digest::new(&self.settings.user, &self.settings.password),
            ringing: false,
            hangup_requested: false,
            ack: None,
        };
        self.call = Some(Call::setup(invite, Side::Outgoing(Box::new(outgoing)), media));
        Ok(())
    }

    /// Answers the incoming call with 200 and our SDP answer; Answered follows.
    pub fn answer(&mut self, now: Instant) -> Result<(), CommandError> {
        let t1 = self.settings.timers.t1;
        let call = self.call.as_mut().ok_or(CommandError::NoCall)?;
        let Side::Incoming(incoming) = &mut call.side else { return Err(CommandError::NoCall) };
        if call.phase != Phase::Setup {
            return Err(CommandError::NoCall);
        }
        let mut ok = incoming.dialog.respond(&call.invite, 200);
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = incoming.answer.clone();
        self.layer.respond(incoming.server, ok.clone(), now);
        incoming.ok = Some(Retransmit {
            server: incoming.server,
            response: ok,
            next: now + t1,
            interval: t1,
            give_up: now + 64 * t1,
        });
        call.phase = Phase::Confirmed;
        call.session =
            Some(Box::new(super::session::Session::new(incoming.answer_sdp.clone(), incoming.negotiated.clone())));
        self.events.push_back(Event::Answered { negotiated: Box::new(incoming.negotiated.clone()) });
        Ok(())
    }

    /// Hangs up: CANCEL before the answer, BYE after it, 603 to a call not yet answered.
    pub fn hangup(&mut self, now: Instant) -> Result<(), CommandError> {
        self.end_old_leg(now);
        let call = self.call.as_mut().ok_or(CommandError::NoCall)?;
        match (&mut call.side, call.phase) {
            (_, Phase::Ending) => Ok(()),
            (_, Phase::Confirmed) => {
                self.send_bye(HangupReason::Local, now);
                Ok(())
            }
            (Side::Outgoing(o), Phase::Setup) => {
                o.hangup_requested = true;
                if self.layer.cancel(o.client, now).is_none() {
                    debug!("INVITE already has its final response; nothing to cancel");
                }
                Ok(())
            }
            (Side::Incoming(_), Phase::Setup) => self.reject(now),
        }
    }

    /// Turns the ringing incoming call away with 603 Decline (RFC 3261 §21.6.2); HungUp follows.
    pub fn reject(&mut self, now: Instant) -> Result<(), CommandError> {
        let call = self.call.as_mut().ok_or(CommandError::NoCall)?;
        let (Side::Incoming(i), Phase::Setup) = (&mut call.side, call.phase) else {
            return Err(CommandError::NotRinging);
        };
        let decline = i.dialog.respond(&call.invite, 603);
        self.layer.respond(i.server, decline, now);
        self.finish(HangupReason::Local, now);
        Ok(())
    }

    /// The call is over. A call placed for a transfer we accepted that ends unanswered hands
    /// back to the transferor's call instead ([`UserAgent::referred_call_failed`]).
    pub(super) fn finish(&mut self, reason: HangupReason, now: Instant) {
        self.call = None;
        if !self.referred_call_failed(&reason, now) {
            self.events.push_back(Event::HungUp { reason });
        }
    }

    /// Sends BYE on the confirmed dialog; the call ends with `reason` once it completes.
    pub(super) fn send_bye(&mut self, reason: HangupReason, now: Instant) {
        let sent_by = self.sent_by.clone();
        let registrar = self.settings.registrar;
        let Some(call) = self.call.as_mut() else { return };
        if let Side::Incoming(i) = &mut call.side {
            i.ok = None;
        }
        let Some(dialog) = call.dialog_mut() else {
            self.finish(reason, now);
            return;
        };
        let dest = dialog.next_hop().socket_addr().or(registrar);
        let bye = dialog.request(Method::Bye, &sent_by, &mut self.rng);
        let sent = match (bye, dest) {
            (Ok(bye), Some(addr)) => self.layer.send_request(bye, over(self.settings.transport, addr), now).ok(),
            _ => None,
        };
        match sent {
            Some(id) => {
                call.bye = Some(id);
                call.phase = Phase::Ending;
                call.end_reason = Some(reason);
            }
            None => self.finish(reason, now),
        }
    }

    pub(super) fn on_call_response(&mut self, id: ClientId, response: &Response, now: Instant) {
        if self.on_old_leg_response(id, response.status) || self.on_notify_response(id, response.status, now) {
            return;
        }
        let Some(call) = self.call.as_mut() else { return };
        if call.bye == Some(id) {
            if response.status >= 200 {
                let reason = call.end_reason.take().unwrap_or(HangupReason::Local);
                self.finish(reason, now);
            }
            return;
        }
        if call.referral.as_ref().is_some_and(|r| r.client == id) {
            return self.on_refer_response(response, now);
        }
        if call.session.as_ref().is_some_and(|s| s.owns(id)) {
            return self.on_session_response(id, response, now);
        }
        let Side::Outgoing(o) = &mut call.side else { return };
        if o.client != id {
            return;
        }
        let status = response.status;
        if matches!(status, 401 | 407) && o.dialogs.confirmed().is_none() {
            if o.hangup_requested {
                self.finish(HangupReason::Cancelled, now);
            } else if o.digest.on_challenge(response) {
                self.resend_invite(now);
            } else {
                self.finish(HangupReason::Rejected(status), now);
            }
            return;
        }
        // A callee that cannot take SRTP (one reached over plain signalling, where the keys may
        // not be used) refuses our RTP/SAVP offer with 488: under `--srtp offer`, offer plain
        // RTP once instead. The refused keys are dropped, never used for media.
        if status == 488
            && o.dialogs.confirmed().is_none()
            && !o.hangup_requested
            && self.settings.srtp == super::SrtpPolicy::Offer
            && !call.media.crypto.is_empty()
        {
            debug!("our SRTP offer was refused with 488: offering plain RTP");
            call.media = LocalMedia { crypto: Vec::new(), require_srtp: false, ..call.media.clone() };
            o.offer = create_offer(&call.media, u64::from(self.rng.next_u32()), 1);
            call.invite.body = Bytes::from(o.offer.to_string());
            o.dialogs = DialogSet::new();
            self.resend_invite(now);
            return;
        }
        match o.dialogs.handle_invite_response(&call.invite, response) {
            Ok(InviteProgress::Early(_)) => {
                if !o.ringing && matches!(status, 180 | 183) {
                    o.ringing = true;
                    self.events.push_back(Event::Ringing);
                }
            }
            Ok(InviteProgress::Confirmed(dialog_id)) => self.on_invite_accepted(&dialog_id, response, now),
            Ok(InviteProgress::Retransmission(_)) => {
                if let Some((ack, dest)) = &o.ack {
                    let message = Message::Request(ack.clone());
                    self.layer.send_stateless(&message, over(self.settings.transport, *dest));
                }
            }
            Ok(InviteProgress::Redundant(mut dialog)) => {
                let dest = dialog.next_hop().socket_addr().or(self.settings.registrar);
                if let (Ok((ack, bye)), Some(addr)) =
                    (dialog.ack_and_bye(&call.invite, &self.sent_by, &mut self.rng), dest)
                {
                    let target = over(self.settings.transport, addr);
                    self.layer.send_stateless(&Message::Request(ack), target);
                    let _ = self.layer.send_request(bye, target, now);
                }
            }
            Ok(InviteProgress::Rejected) => {
                let reason = if o.hangup_requested { HangupReason::Cancelled } else { HangupReason::Rejected(status) };
                self.finish(reason, now);
            }
            Ok(InviteProgress::Ignored) => {}
            Err(e) => debug!(%e, status, "response to our INVITE not usable"),
        }
    }

    /// The first 2xx to our INVITE: ACK it, apply the answer, report or end the call.
    fn on_invite_accepted(&mut self, dialog_id: &DialogId, response: &Response, now: Instant) {
        let sent_by = self.sent_by.clone();
        let registrar = self.settings.registrar;
        let Some(call) = self.call.as_mut() else { return };
        let Side::Outgoing(o) = &mut call.side else { return };
        let Some(dialog) = o.dialogs.get(dialog_id) else { return };
        let dest = dialog.next_hop().socket_addr().or(registrar);
        if let (Ok(ack), Some(addr)) = (dialog.ack_for_2xx(&call.invite, None, &sent_by, &mut self.rng), dest) {
            let message = Message::Request(ack.clone());
            self.layer.send_stateless(&message, over(self.settings.transport, addr));
            o.ack = Some((ack, addr));
        }
        call.phase = Phase::Confirmed;
        if o.hangup_requested {
            self.send_bye(HangupReason::Cancelled, now);
            return;
        }
        let negotiated = std::str::from_utf8(&response.body)
            .ok()
            .and_then(|text| parse(text).ok())
            .and_then(|answer| apply_answer(&o.offer, &answer).ok());
        match negotiated {
            Some(negotiated) => {
                call.session = Some(Box::new(super::session::Session::new(o.offer.clone(), negotiated.clone())));
                self.events.push_back(Event::Answered { negotiated: Box::new(negotiated) });
                self.referred_call_answered(now);
            }
            None => self.send_bye(HangupReason::NotAcceptable, now),
        }
    }

    /// Sends our INVITE again, as a new transaction (CSeq + 1), with credentials when challenged.
    fn resend_invite(&mut self, now: Instant) {
        let branch = proto::dialog::new_branch(&mut self.rng);
        let Some(call) = self.call.as_mut() else { return };
        let Side::Outgoing(o) = &mut call.side else { return };
        let mut invite = call.invite.clone();
        invite.headers.remove_first(HeaderName::Via);
        invite.headers.push_front(HeaderName::Via, self.sent_by.via(&branch));
        if let Ok(cseq) = invite.headers.cseq() {
            invite.headers.set(HeaderName::CSeq, format!("{} INVITE", cseq.seq.wrapping_add(1)));
        }
        o.digest.authorize(&mut invite, &mut self.rng);
        match self.layer.send_request(invite.clone(), over(self.settings.transport, o.dest), now) {
            Ok(client) => {
                o.client = client;
                call.invite = invite;
            }
            Err(e) => {
                debug!(%e, "INVITE not sent again");
                self.finish(HangupReason::Rejected(407), now);
            }
        }
    }

    pub(super) fn on_call_timeout(&mut self, id: ClientId, now: Instant) {
        if self.on_old_leg_response(id, 408) || self.on_notify_response(id, 408, now) {
            return;
        }
        let Some(call) = self.call.as_mut() else { return };
        if call.session.as_ref().is_some_and(|s| s.owns(id)) {
            self.on_session_timeout(id, now);
        } else if call.referral.as_ref().is_some_and(|r| r.client == id) {
            self.on_refer_timeout(now);
        } else if call.bye == Some(id) {
            let reason = call.end_reason.take().unwrap_or(HangupReason::Local);
            self.finish(reason, now);
        } else if let Side::Outgoing(o) = &call.side
            && o.client == id
            && call.phase == Phase::Setup
        {
            let reason = if o.hangup_requested { HangupReason::Cancelled } else { HangupReason::Timeout };
            self.finish(reason, now);
        }
    }

    /// A 2xx retransmission after the INVITE transaction ended: ACK it again.
    pub(super) fn on_stray_response(&mut self, response: &Response) {
        self.resend_session_ack(response);
        let Some(Call { side: Side::Outgoing(o), .. }) = &self.call else { return };
        let is_invite_2xx =
            (200..300).contains(&response.status) && response.headers.cseq().is_ok_and(|c| c.method == Method::Invite);
        let ours = DialogId::of_response(response).is_some_and(|id| o.dialogs.get(&id).is_some());
        if let (true, true, Some((ack, dest))) = (is_invite_2xx, ours, &o.ack) {
            let message = Message::Request(ack.clone());
            self.layer.send_stateless(&message, over(self.settings.transport, *dest));
        }
    }

    pub(super) fn on_ack(&mut self, request: &Request, now: Instant) {
        self.session_ack(request, now);
        let Some(Call { side: Side::Incoming(i), .. }) = &mut self.call else { return };
        if DialogId::of_request(request).as_ref() == Some(i.dialog.id()) {
            i.ok = None;
        }
    }

    /// Retransmits our 2xx, or gives up on its ACK.
    pub(super) fn call_timeout(&mut self, now: Instant) {
        self.session_timeout(now);
        let t2 = self.settings.timers.t2;
        let Some(Call { side: Side::Incoming(i), .. }) = &mut self.call else { return };
        let Some(ok) = &mut i.ok else { return };
        if ok.next > now {
            return;
        }
        if now >= ok.give_up {
            i.ok = None;
            self.send_bye(HangupReason::NoAck, now);
            return;
        }
        self.layer.respond(ok.server, ok.response.clone(), now);
        ok.interval = (ok.interval * 2).min(t2);
        ok.next = now + ok.interval;
    }

    pub(super) fn on_request(
        &mut self,
        id: ServerId,
        request: Request,
        source: Target,
        cancels: Option<ServerId>,
        now: Instant,
    ) {
        if request.method == Method::Cancel {
            return self.on_cancel(id, &request, cancels, now);
        }
        let in_dialog = request.headers.to().is_ok_and(|to| to.tag().is_some());
        if in_dialog {
            return self.on_request_in_dialog(id, &request, now);
        }
        match request.method {
            Method::Invite => self.on_invite(id, &request, now),
            Method::Options => {
                let mut ok = self.tagged_response(&request, 200);
                ok.headers.push(HeaderName::Allow, "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY");
                self.layer.respond(id, ok, now);
            }
            Method::Refer => {
                let refusal = self.tagged_response(&request, 403).with_reason("Transfer Only Within A Call");
                self.layer.respond(id, refusal, now);
            }
            _ => {
                debug!(method = %request.method, source = %source.addr, "request outside a dialog refused");
                let refused = self.tagged_response(&request, 501);
                self.layer.respond(id, refused, now);
            }
        }
    }

    /// `request`'s response with a To tag of our own, as a UAS must add one outside a dialog
    /// (RFC 3261 §8.2.6.2).
    fn tagged_response(&mut self, request: &Request, status: u16) -> Response {
        let mut response = request.response(status);
        if let Some(to) = request.headers.get(HeaderName::To) {
            let tag = new_tag(&mut self.rng);
            response.headers.set(HeaderName::To, format!("{to};tag={tag}"));
        }
        response
    }

    fn on_cancel(&mut self, id: ServerId, request: &Request, cancels: Option<ServerId>, now: Instant) {
        let Some(invite_server) = cancels else {
            self.layer.respond(id, request.response(481), now);
            return;
        };
        self.layer.respond(id, request.response(200), now);
        let Some(call) = self.call.as_mut() else { return };
        if let Side::Incoming(i) = &mut call.side
            && i.server == invite_server
            && call.phase == Phase::Setup
        {
            let terminated = i.dialog.respond(&call.invite, 487);
            self.layer.respond(i.server, terminated, now);
            self.finish(HangupReason::Cancelled, now);
        }
    }

    fn on_invite(&mut self, id: ServerId, invite: &Request, now: Instant) {
        if self.call.is_some() {
            let mut busy = invite.response(486);
            let tag = new_tag(&mut self.rng);
            if let Some(to) = invite.headers.get(HeaderName::To) {
                busy.headers.set(HeaderName::To, format!("{to};tag={tag}"));
            }
            self.layer.respond(id, busy, now);
            return;
        }
        let tag = new_tag(&mut self.rng);
        let contact = match NameAddr::parse(&format!("<{}>", self.contact)) {
            Ok(contact) => contact,
            Err(_) => return self.layer.respond(id, invite.response(500), now),
        };
        let mut dialog = match Dialog::uas_from_request(invite, &tag, contact) {
            Ok(dialog) => dialog,
            Err(e) => return self.layer.respond(id, invite.response(400).with_reason(e.to_string()), now),
        };
        let Ok(media) = self.media_for_call() else {
            let refusal = dialog.respond(invite, 488).with_reason("SRTP Required But Signalling Not TLS");
            return self.layer.respond(id, refusal, now);
        };
        let answer = std::str::from_utf8(&invite.body)
            .ok()
            .and_then(|text| parse(text).ok())
            .map(|offer| create_answer(&offer, &media, u64::from(self.rng.next_u32()), 1));
        let (answer, negotiated) = match answer {
            Some(Ok(done)) => done,
            _ => {
                let refusal = dialog.respond(invite, 488);
                return self.layer.respond(id, refusal, now);
            }
        };
        let ringing = dialog.respond(invite, 180);
        self.layer.respond(id, ringing, now);
        let from = invite.headers.get(HeaderName::From).unwrap_or_default().to_owned();
        let incoming = Incoming {
            server: id,
            dialog,
            answer: Bytes::from(answer.to_string()),
            answer_sdp: answer,
            negotiated,
            ok: None,
        };
        self.call = Some(Call::setup(invite.clone(), Side::Incoming(Box::new(incoming)), media));
        self.events.push_back(Event::Incoming { from });
        if self.settings.auto_answer {
            let _ = self.answer(now);
        }
    }

    fn on_request_in_dialog(&mut self, id: ServerId, request: &Request, now: Instant) {
        if self.on_old_leg_request(id, request, now) || self.on_stale_notify(id, request, now) {
            return;
        }
        let dialog = match self.call.as_mut() {
            Some(Call { side: Side::Outgoing(o), .. }) => o.dialogs.match_request(request),
            Some(Call { side: Side::Incoming(i), .. }) => {
                (DialogId::of_request(request).as_ref() == Some(i.dialog.id())).then_some(&mut i.dialog)
            }
            None => None,
        };
        let Some(dialog) = dialog else {
            self.layer.respond(id, request.response(481), now);
            return;
        };
        match dialog.receive_request(request, &mut self.rng) {
            Received::Reject(response) => self.layer.respond(id, response, now),
            Received::InOrder if request.method == Method::Invite => self.on_reinvite(id, request, now),
            Received::InOrder if request.method == Method::Info => self.on_info(id, request, now),
            Received::InOrder if request.method == Method::Refer => self.on_refer(id, request, now),
            Received::InOrder if request.method == Method::Notify => self.on_notify(id, request, now),
            Received::InOrder => {
                let status = match request.method {
                    Method::Bye | Method::Options => 200,
                    _ => 501,
                };
                let response = dialog.respond(request, status);
                self.layer.respond(id, response, now);
                if request.method == Method::Bye {
                    self.finish(HangupReason::Remote, now);
                }
            }
        }
    }
}
