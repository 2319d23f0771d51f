//! Changes to a connected call (RFC 3261 §14, RFC 3264 §8, RFC 6337): hold and resume by
//! re-INVITE in both directions, glare, and DTMF by SIP INFO.
//!
//! Hold is a re-offer with `a=sendonly` ([`create_reoffer`]); resume is one with `a=sendrecv`.
//! A re-offer from the peer is answered by [`create_answer`] with our own wish (sendonly while we
//! hold, else sendrecv), which gives recvonly to sendonly and inactive to inactive (§6.1); a
//! peer whose offer leaves us nothing to send holds us. A re-INVITE without an offer gets ours
//! in the 2xx and its ACK must bring the answer. Our 2xx to a re-INVITE is retransmitted until
//! its ACK (§13.3.1.4). A re-INVITE of ours that meets the peer's gets 491 from the peer;
//! we wait [`proto::dialog::Dialog::glare_retry_delay`] and try again (§14.1). A failed re-INVITE leaves the
//! session as it was, except 481 and 408, which end the call (§14.1, §12.2.1.2).
//!
//! DTMF by INFO (the `application/dtmf-relay` body phones use, `Signal=5` and `Duration=160`)
//! goes one request at a time so the digits arrive in order; received ones are answered 200.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use proto::dialog::DialogId;
use proto::sdp::{Direction, Negotiated, SessionDescription, apply_answer, create_answer, create_reoffer, parse};
use proto::sip::{HeaderName, Message, Method, Request, Response};
use proto::transaction::{ClientId, ServerId};
use tracing::debug;

use super::call::{HangupReason, Phase, Retransmit};
use super::{CommandError, Event, UserAgent, over};

/// How long each DTMF digit sent by INFO lasts, in milliseconds.
const INFO_DURATION_MS: u32 = 160;

/// Who put the call on hold or took it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// We did.
    Local,
    /// The far end did.
    Remote,
}

impl Party {
    /// `local` or `remote`, for the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Local => "local",
            Party::Remote => "remote",
        }
    }
}

/// Our re-INVITE in flight.
#[derive(Debug)]
struct Reinvite {
    client: ClientId,
    request: Request,
    offer: SessionDescription,
    dest: SocketAddr,
    hold: bool,
}

/// The state of a connected call's session.
#[derive(Debug)]
pub(super) struct Session {
    /// What we last sent: our offer or our answer.
    local_sdp: SessionDescription,
    negotiated: Negotiated,
    /// Agreed: we hold the far end; the far end holds us.
    local_hold: bool,
    remote_hold: bool,
    /// What the user asked for.
    want_hold: bool,
    reinvite: Option<Reinvite>,
    /// When to try again after a 491.
    retry_at: Option<Instant>,
    /// The ACK of our last accepted re-INVITE, for retransmissions of its 2xx.
    ack: Option<(ClientId, Request, SocketAddr)>,
    /// Our 2xx to the peer's re-INVITE, until its ACK.
    ok: Option<Retransmit>,
    /// The offer we put in that 2xx when the re-INVITE had none; its ACK brings the answer.
    offer_in_ok: Option<SessionDescription>,
    /// DTMF digits waiting to go by INFO, and the INFO in flight.
    info_queue: VecDeque<char>,
    info_pending: Option<ClientId>,
}

impl Session {
    pub(super) fn new(local_sdp: SessionDescription, negotiated: Negotiated) -> Session {
        Session {
            local_sdp,
            remote_hold: !negotiated.direction.sends(),
            negotiated,
            local_hold: false,
            want_hold: false,
            reinvite: None,
            retry_at: None,
            ack: None,
            ok: None,
            offer_in_ok: None,
            info_queue: VecDeque::new(),
            info_pending: None,
        }
    }

    /// When the 2xx is next retransmitted or a glared re-INVITE retried.
    pub(super) fn deadline(&self) -> Option<Instant> {
        [self.ok.as_ref().map(|ok| ok.next), self.retry_at].into_iter().flatten().min()
    }

    /// Whether a client transaction is one of this session's.
    pub(super) fn owns(&self, id: ClientId) -> bool {
        self.reinvite.as_ref().is_some_and(|r| r.client == id)
            || self.ack.as_ref().is_some_and(|(client, ..)| *client == id)
            || self.info_pending == Some(id)
    }
}

impl UserAgent {
    /// Puts the connected call on hold (re-INVITE with `a=sendonly`); `Held` follows once the
    /// far end agrees.
    pub fn hold(&mut self, now: Instant) -> Result<(), CommandError> {
        self.want_hold(true, now)
    }

    /// Takes the call off hold (re-INVITE with `a=sendrecv`); `Resumed` follows.
    pub fn resume(&mut self, now: Instant) -> Result<(), CommandError> {
        self.want_hold(false, now)
    }

    /// Sends DTMF digits by SIP INFO, one request at a time. Digits that are not DTMF are
    /// skipped.
    pub fn send_dtmf_info(&mut self, digits: &str, now: Instant) -> Result<(), CommandError> {
        let session = self.session_mut().ok_or(CommandError::NoCall)?;
        session.info_queue.extend(digits.chars().filter(|c| proto::codec::event_for_digit(*c).is_some()));
        self.send_next_info(now);
        Ok(())
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        let call = self.call.as_mut().filter(|c| c.phase == Phase::Confirmed)?;
        call.session.as_deref_mut()
    }

    fn want_hold(&mut self, hold: bool, now: Instant) -> Result<(), CommandError> {
        let session = self.session_mut().ok_or(CommandError::NoCall)?;
        session.want_hold = hold;
        self.pursue(now);
        Ok(())
    }

    /// Sends a re-INVITE when what the user wants differs from what is agreed and nothing is
    /// in the way.
    fn pursue(&mut self, now: Instant) {
        let sent_by = self.sent_by.clone();
        let registrar = self.settings.registrar;
        let Some(call) = self.call.as_mut().filter(|c| c.phase == Phase::Confirmed) else { return };
        let mut local = call.media.clone();
        let (Some(dialog), Some(s)) = call.parts() else { return };
        if s.want_hold == s.local_hold || s.reinvite.is_some() || s.retry_at.is_some() || s.ok.is_some() {
            return;
        }
        if dialog.is_invite_pending() || dialog.is_remote_invite_pending() {
            return;
        }
        local.direction = if s.want_hold { Direction::SendOnly } else { Direction::SendRecv };
        let offer = create_reoffer(&s.local_sdp, &local);
        let Some(dest) = dialog.next_hop().socket_addr().or(registrar) else { return };
        let mut request = match dialog.request(Method::Invite, &sent_by, &mut self.rng) {
            Ok(request) => request,
            Err(e) => return debug!(%e, "re-INVITE not built"),
        };
        request.headers.push(HeaderName::ContentType, "application/sdp");
        request.body = Bytes::from(offer.to_string());
        match self.layer.send_request(request.clone(), over(self.settings.transport, dest), now) {
            Ok(client) => s.reinvite = Some(Reinvite { client, request, offer, dest, hold: s.want_hold }),
            Err(e) => {
                debug!(%e, "re-INVITE not sent");
                s.want_hold = s.local_hold;
            }
        }
    }

    pub(super) fn on_session_response(&mut self, id: ClientId, response: &Response, now: Instant) {
        let sent_by = self.sent_by.clone();
        let Some(call) = self.call.as_mut() else { return };
        let (Some(dialog), Some(s)) = call.parts() else { return };
        let status = response.status;
        if s.info_pending == Some(id) {
            if status >= 200 {
                s.info_pending = None;
                if matches!(status, 408 | 481) {
                    return self.send_bye(HangupReason::Timeout, now);
                }
                self.send_next_info(now);
            }
            return;
        }
        if let Some((client, ack, dest)) = &s.ack
            && *client == id
        {
            // A retransmission of the 2xx we already accepted: ACK it again.
            self.layer.send_stateless(&Message::Request(ack.clone()), over(self.settings.transport, *dest));
            return;
        }
        if status < 200 {
            return;
        }
        let Some(reinvite) = s.reinvite.take() else { return };
        let _ = dialog.receive_response(response);
        if (200..300).contains(&status) {
            if let Ok(ack) = dialog.ack_for_2xx(&reinvite.request, None, &sent_by, &mut self.rng) {
                self.layer.send_stateless(&Message::Request(ack.clone()), over(self.settings.transport, reinvite.dest));
                s.ack = Some((id, ack, reinvite.dest));
            }
            let negotiated = std::str::from_utf8(&response.body)
                .ok()
                .and_then(|text| parse(text).ok())
                .and_then(|answer| apply_answer(&reinvite.offer, &answer).ok());
            match negotiated {
                Some(negotiated) => {
                    s.local_sdp = reinvite.offer;
                    let (local_hold, remote_hold) = (reinvite.hold, !negotiated.direction.sends());
                    self.apply(negotiated, local_hold, remote_hold);
                }
                None => {
                    debug!("answer to our re-INVITE not usable; the session stays as it was");
                    s.want_hold = s.local_hold;
                }
            }
        } else if status == 491 {
            s.retry_at = Some(now + dialog.glare_retry_delay(&mut self.rng));
            return;
        } else if matches!(status, 408 | 481) {
            return self.send_bye(HangupReason::Timeout, now);
        } else {
            debug!(status, "re-INVITE refused; the session stays as it was");
            s.want_hold = s.local_hold;
        }
        self.pursue(now);
    }

    pub(super) fn on_session_timeout(&mut self, id: ClientId, now: Instant) {
        let Some(s) = self.call.as_mut().and_then(|c| c.session.as_deref_mut()) else { return };
        if s.ack.as_ref().is_some_and(|(client, ..)| *client == id) {
            return;
        }
        // A re-INVITE or INFO with no answer ends the call (§14.1, §12.2.1.2).
        s.reinvite = None;
        s.info_pending = None;
        self.send_bye(HangupReason::Timeout, now);
    }

    /// Records a new agreement and tells the UI and media what changed.
    fn apply(&mut self, negotiated: Negotiated, local_hold: bool, remote_hold: bool) {
        let Some(s) = self.call.as_mut().and_then(|c| c.session.as_deref_mut()) else { return };
        let changes = [(Party::Local, s.local_hold, local_hold), (Party::Remote, s.remote_hold, remote_hold)];
        s.local_hold = local_hold;
        s.remote_hold = remote_hold;
        s.negotiated = negotiated.clone();
        self.events.push_back(Event::MediaChanged { negotiated: Box::new(negotiated), muted: local_hold });
        for (by, was, is) in changes {
            match (was, is) {
                (false, true) => self.events.push_back(Event::Held { by }),
                (true, false) => self.events.push_back(Event::Resumed { by }),
                _ => {}
            }
        }
    }

    /// A re-INVITE from the peer, in order on our dialog: answer its offer.
    pub(super) fn on_reinvite(&mut self, id: ServerId, request: &Request, now: Instant) {
        let t1 = self.settings.timers.t1;
        let Some(call) = self.call.as_mut() else { return };
        let mut local = call.media.clone();
        let (Some(dialog), Some(s)) = call.parts() else {
            // Not connected yet (a re-INVITE before our 2xx was ACKed): ask it to come later.
            let mut busy = request.response(500).with_reason("Session Not Ready");
            busy.headers.push(HeaderName::RetryAfter, "1");
            return self.layer.respond(id, busy, now);
        };
        local.direction = if s.local_hold { Direction::SendOnly } else { Direction::SendRecv };
        let retransmit = |response: Response| Retransmit {
            server: id,
            response,
            next: now + t1,
            interval: t1,
            give_up: now + 64 * t1,
        };
        if request.body.is_empty() {
            // No offer (a session refresh, or asking for ours): offer in the 2xx, the answer comes
            // in the ACK (RFC 3261 §14.2, RFC 3264 §8).
            let offer = create_reoffer(&s.local_sdp, &local);
            let mut ok = dialog.respond(request, 200);
            ok.headers.push(HeaderName::ContentType, "application/sdp");
            ok.body = Bytes::from(offer.to_string());
            self.layer.respond(id, ok.clone(), now);
            s.ok = Some(retransmit(ok));
            s.offer_in_ok = Some(offer);
            return;
        }
        let origin = &s.local_sdp.origin;
        let answer = std::str::from_utf8(&request.body)
            .ok()
            .and_then(|text| parse(text).ok())
            .map(|offer| create_answer(&offer, &local, origin.session_id, origin.session_version.wrapping_add(1)));
        let Some(Ok((answer, negotiated))) = answer else {
            // No offer we can answer (or none at all): the session stays as it was (§14.2).
            let refusal = dialog.respond(request, 488);
            return self.layer.respond(id, refusal, now);
        };
        let mut ok = dialog.respond(request, 200);
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = Bytes::from(answer.to_string());
        self.layer.respond(id, ok.clone(), now);
        s.ok = Some(retransmit(ok));
        s.offer_in_ok = None;
        s.local_sdp = answer;
        let (local_hold, remote_hold) = (s.local_hold, !negotiated.direction.sends());
        self.apply(negotiated, local_hold, remote_hold);
    }

    /// An INFO on our dialog: DTMF relay is answered 200 and reported; other bodies get 415.
    pub(super) fn on_info(&mut self, id: ServerId, request: &Request, now: Instant) {
        let Some(dialog) = self.call.as_mut().and_then(|c| c.dialog_mut()) else { return };
        let content_type = request.headers.get(HeaderName::ContentType).unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let body = std::str::from_utf8(&request.body).unwrap_or_default();
        let digit = match media_type.as_str() {
            "application/dtmf-relay" => body.lines().find_map(|line| {
                let (name, value) = line.split_once('=')?;
                name.trim().eq_ignore_ascii_case("signal").then(|| value.trim().to_owned())
            }),
            "application/dtmf" => Some(body.trim().to_owned()),
            _ => {
                let mut refusal = dialog.respond(request, 415);
                refusal.headers.push(HeaderName::Accept, "application/dtmf-relay, application/dtmf");
                return self.layer.respond(id, refusal, now);
            }
        };
        let ok = dialog.respond(request, 200);
        self.layer.respond(id, ok, now);
        let digit = digit.and_then(|d| dtmf_digit(&d));
        match digit {
            Some(digit) => self.events.push_back(Event::DtmfInfo { digit }),
            None => debug!(body, "INFO names no DTMF digit"),
        }
    }

    fn send_next_info(&mut self, now: Instant) {
        let sent_by = self.sent_by.clone();
        let registrar = self.settings.registrar;
        let Some(call) = self.call.as_mut().filter(|c| c.phase == Phase::Confirmed) else { return };
        let (Some(dialog), Some(s)) = call.parts() else { return };
        if s.info_pending.is_some() {
            return;
        }
        let Some(digit) = s.info_queue.pop_front() else { return };
        let Some(dest) = dialog.next_hop().socket_addr().or(registrar) else { return };
        let Ok(mut info) = dialog.request(Method::Info, &sent_by, &mut self.rng) else { return };
        info.headers.push(HeaderName::ContentType, "application/dtmf-relay");
        info.body = Bytes::from(format!("Signal={digit}\r\nDuration={INFO_DURATION_MS}\r\n"));
        match self.layer.send_request(info, over(self.settings.transport, dest), now) {
            Ok(client) => s.info_pending = Some(client),
            Err(e) => debug!(%e, "INFO not sent"),
        }
    }

    /// The ACK for our 2xx to the peer's re-INVITE.
    /// The ACK for our 2xx to the peer's re-INVITE; it carries the answer when that 2xx held
    /// our offer, and a missing or unusable answer ends the call (RFC 3261 §13.3.1.4).
    pub(super) fn session_ack(&mut self, request: &Request, now: Instant) {
        let Some(call) = self.call.as_mut() else { return };
        let (Some(dialog), Some(s)) = call.parts() else { return };
        let Some(ok) = &s.ok else { return };
        let same_dialog = DialogId::of_request(request).as_ref() == Some(dialog.id());
        let same_cseq = match (request.headers.cseq(), ok.response.headers.cseq()) {
            (Ok(a), Ok(b)) => a.seq == b.seq,
            _ => false,
        };
        if !(same_dialog && same_cseq) {
            return;
        }
        s.ok = None;
        let Some(offer) = s.offer_in_ok.take() else { return };
        let negotiated = std::str::from_utf8(&request.body)
            .ok()
            .and_then(|text| parse(text).ok())
            .and_then(|answer| apply_answer(&offer, &answer).ok());
        match negotiated {
            Some(negotiated) => {
                s.local_sdp = offer;
                let (local_hold, remote_hold) = (s.local_hold, !negotiated.direction.sends());
                self.apply(negotiated, local_hold, remote_hold);
            }
            None => self.send_bye(HangupReason::NotAcceptable, now),
        }
    }

    /// A 2xx to our re-INVITE that outlived its transaction: ACK it again.
    pub(super) fn resend_session_ack(&mut self, response: &Response) {
        let Some(s) = self.call.as_ref().and_then(|c| c.session.as_deref()) else { return };
        let Some((_, ack, dest)) = &s.ack else { return };
        let same = match (response.headers.cseq(), ack.headers.cseq()) {
            (Ok(r), Ok(a)) => r.seq == a.seq && r.method == Method::Invite,
            _ => false,
        };
        if same && (200..300).contains(&response.status) {
            self.layer.send_stateless(&Message::Request(ack.clone()), over(self.settings.transport, *dest));
        }
    }

    /// Retransmits our 2xx to a re-INVITE, retries a glared re-INVITE.
    pub(super) fn session_timeout(&mut self, now: Instant) {
        let t2 = self.settings.timers.t2;
        let Some(s) = self.call.as_mut().and_then(|c| c.session.as_deref_mut()) else { return };
        if s.retry_at.is_some_and(|at| at <= now) {
            s.retry_at = None;
            self.pursue(now);
            return self.session_timeout(now);
        }
        let Some(ok) = &mut s.ok else { return };
        if ok.next > now {
            return;
        }
        if now >= ok.give_up {
            s.ok = None;
            return self.send_bye(HangupReason::NoAck, now);
        }
        self.layer.respond(ok.server, ok.response.clone(), now);
        ok.interval = (ok.interval * 2).min(t2);
        ok.next = now + ok.interval;
    }
}

/// The DTMF digit a relay body names: a digit or letter, or the event code 10 (`*`) or 11 (`#`).
fn dtmf_digit(text: &str) -> Option<char> {
    let text = text.trim();
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if proto::codec::event_for_digit(c.to_ascii_uppercase()).is_some() => {
            Some(c.to_ascii_uppercase())
        }
        _ => text.parse::<u8>().ok().and_then(proto::codec::digit_for_event),
    }
}
