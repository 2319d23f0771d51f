//! Blind call transfer (RFC 5589 §6) by REFER (RFC 3515), both ways.
//!
//! Transferor: [`UserAgent::transfer`] sends REFER in the connected call's dialog with
//! Refer-To and Referred-By (RFC 3892 §3), answering a 401/407 once per nonce. The REFER's 2xx
//! makes an implicit subscription to the `refer` event package (§2.4.4); its NOTIFYs carry a
//! `message/sipfrag` (RFC 3420) status line and are answered 200. A final 2xx fragment ends our
//! leg with BYE, reason `transferred`; a refused REFER, a final non-2xx fragment, a subscription
//! ended without a final one, or no news before it expires reports the failure and leaves the
//! call up.
//!
//! Transferee: a REFER in the connected call is answered 202 (400 without one usable Refer-To)
//! and followed at once by NOTIFY `SIP/2.0 100 Trying` (Subscription-State active). The call
//! then moves aside into a [`Referred`] record and a new call to the Refer-To target is placed
//! (through the registrar when the target is in our domain), carrying the Referred-By. When it
//! is answered, NOTIFY `SIP/2.0 200 OK` with `Subscription-State: terminated;reason=noresource`
//! goes on the old dialog and the transferor is expected to BYE it; we BYE it ourselves after
//! 64·T1. When it fails, the final NOTIFY carries its status and the old call comes back.
//! NOTIFYs carry `Event: refer;id=<REFER CSeq>` (§2.4.6).

use std::time::{Duration, Instant};

use proto::dialog::DialogId;
use proto::sip::{HeaderName, Method, Name, NameAddr, Request, Response, Scheme, Uri, reason_phrase};
use proto::transaction::{ClientId, ServerId};
use tracing::debug;

use super::call::{Call, HangupReason, Phase};
use super::digest::Digest;
use super::{CommandError, Event, UserAgent, udp};

/// How long, in seconds, the implicit subscription lasts without news: long enough for the
/// target to ring until a proxy's Timer C (RFC 3261 §16.6) gives up.
const REFER_EXPIRES: u32 = 180;
/// The header that states a subscription's state (RFC 6665 §8.2.3).
const SUBSCRIPTION_STATE: &str = "Subscription-State";
/// The body type of the NOTIFYs (RFC 3420 §2; RFC 3515 §2.4.5).
const SIPFRAG: &str = "message/sipfrag;version=2.0";

/// Our REFER as transferor, and where its subscription stands.
#[derive(Debug)]
pub(super) struct Referral {
    /// The REFER transaction in flight, or the last one.
    pub(super) client: ClientId,
    target: Uri,
    digest: Digest,
    /// When we stop waiting for a final NOTIFY.
    pub(super) expires: Instant,
}

/// The transferor's call, kept while we call the target of its REFER.
#[derive(Debug)]
pub(super) struct Referred {
    /// The transferor's call; `None` once its dialog has ended.
    old: Option<Call>,
    /// The Event header of our NOTIFYs.
    event: String,
    /// The final NOTIFY is sent: the new call was answered.
    done: bool,
    /// Our BYE on the old dialog.
    bye: Option<ClientId>,
    /// When we BYE the old dialog ourselves if the transferor has not.
    pub(super) give_up: Option<Instant>,
}

impl UserAgent {
    /// Transfers the connected call to `target` (blind, RFC 5589 §6): REFER with Refer-To and
    /// Referred-By. `TransferProgress` follows for each NOTIFY; on a final 2xx the call ends
    /// with reason `transferred`, on a failure `TransferFailed` and the call stays up.
    pub fn transfer(&mut self, target: &Uri, now: Instant) -> Result<(), CommandError> {
        let call = self.call.as_ref().filter(|c| c.phase == Phase::Confirmed).ok_or(CommandError::NoCall)?;
        if call.referral.is_some() {
            return Err(CommandError::Transferring);
        }
        let mut digest = Digest::new(&self.settings.user, &self.settings.password);
        let expires = now + Duration::from_secs(REFER_EXPIRES.into());
        let client = self.send_refer(target, &mut digest, now).ok_or_else(|| {
            debug!("REFER not sent");
            CommandError::Unreachable(target.to_string())
        })?;
        if let Some(call) = self.call.as_mut() {
            call.referral = Some(Box::new(Referral { client, target: target.clone(), digest, expires }));
        }
        Ok(())
    }

    /// Sends a REFER for `target` on the call's dialog, with credentials when `digest` holds a
    /// challenge.
    fn send_refer(&mut self, target: &Uri, digest: &mut Digest, now: Instant) -> Option<ClientId> {
        let (sent_by, registrar, aor) = (self.sent_by.clone(), self.settings.registrar, self.aor());
        let dialog = self.call.as_mut()?.dialog_mut()?;
        let dest = dialog.next_hop().socket_addr().or(registrar)?;
        let mut refer = dialog.request(Method::Refer, &sent_by, &mut self.rng).ok()?;
        refer.headers.push(HeaderName::ReferTo, format!("<{target}>"));
        refer.headers.push(HeaderName::ReferredBy, format!("<{aor}>"));
        digest.authorize(&mut refer, &mut self.rng);
        self.layer.send_request(refer, udp(dest), now).ok()
    }

    /// Sends the referral's REFER again with credentials for the challenge in `response`.
    fn retry_refer(&mut self, response: &Response, now: Instant) -> bool {
        let Some(mut referral) = self.call.as_mut().and_then(|c| c.referral.take()) else { return false };
        if !referral.digest.on_challenge(response) {
            return false;
        }
        let target = referral.target.clone();
        let sent = self.send_refer(&target, &mut referral.digest, now);
        if let (Some(client), Some(call)) = (sent, self.call.as_mut()) {
            referral.client = client;
            call.referral = Some(referral);
        }
        sent.is_some()
    }

    pub(super) fn on_refer_response(&mut self, response: &Response, now: Instant) {
        let status = response.status;
        match status {
            ..200 => {}
            200..300 => debug!(status, "REFER accepted; waiting for NOTIFY"),
            401 | 407 => {
                if !self.retry_refer(response, now) {
                    self.transfer_failed(status);
                }
            }
            _ => {
                self.transfer_failed(status);
                // The dialog is gone (RFC 3261 §12.2.1.2): so is the call.
                if matches!(status, 408 | 481) {
                    self.send_bye(HangupReason::Timeout, now);
                }
            }
        }
    }

    pub(super) fn on_refer_timeout(&mut self, now: Instant) {
        self.transfer_failed(408);
        self.send_bye(HangupReason::Timeout, now);
    }

    /// Drops the referral and says so; the call goes on.
    fn transfer_failed(&mut self, status: u16) {
        if let Some(call) = self.call.as_mut() {
            call.referral = None;
        }
        self.events.push_back(Event::TransferFailed { status });
    }

    /// A NOTIFY in the call's dialog (already checked in order): the news of our REFER.
    pub(super) fn on_notify(&mut self, id: ServerId, request: &Request, now: Instant) {
        let Some(call) = self.call.as_mut() else { return };
        let is_refer = request
            .headers
            .get(HeaderName::Event)
            .and_then(|e| e.split(';').next())
            .is_some_and(|package| package.trim().eq_ignore_ascii_case("refer"));
        let fragment = std::str::from_utf8(&request.body).ok().and_then(sipfrag_status);
        let status = match (call.referral.is_some() && is_refer, fragment) {
            (false, _) => 481,
            (true, None) => 400,
            (true, Some(_)) => 200,
        };
        let Some(dialog) = call.dialog_mut() else { return };
        let response = dialog.respond(request, status);
        self.layer.respond(id, response, now);
        let Some(fragment) = fragment.filter(|_| status == 200) else { return };
        let state = request.headers.get_named(SUBSCRIPTION_STATE).unwrap_or_default().to_ascii_lowercase();
        let terminated = state.trim_start().starts_with("terminated");
        match fragment {
            200..300 => {
                self.events.push_back(Event::TransferProgress { status: fragment });
                if let Some(call) = self.call.as_mut() {
                    call.referral = None;
                }
                self.send_bye(HangupReason::Transferred, now);
            }
            300.. => self.transfer_failed(fragment),
            _ if terminated => {
                self.events.push_back(Event::TransferProgress { status: fragment });
                self.transfer_failed(487);
            }
            _ => {
                self.events.push_back(Event::TransferProgress { status: fragment });
                let expires = subscription_expires(&state).unwrap_or(REFER_EXPIRES);
                if let Some(referral) = self.call.as_mut().and_then(|c| c.referral.as_mut()) {
                    referral.expires = now + Duration::from_secs(expires.into());
                }
            }
        }
    }

    /// A REFER in the connected call's dialog (already checked in order): accept it, NOTIFY
    /// 100 Trying, put the call aside and call the target.
    pub(super) fn on_refer(&mut self, id: ServerId, request: &Request, now: Instant) {
        let Some(call) = self.call.as_mut() else { return };
        let refusal = match refer_target(request) {
            _ if call.phase != Phase::Confirmed || call.session.is_none() => {
                Err((403, "Transfer Only Within A Connected Call"))
            }
            _ if self.referred.is_some() => Err((403, "Transfer Already In Progress")),
            target => target,
        };
        let Some(dialog) = call.dialog_mut() else { return };
        let target = match refusal {
            Ok(target) => target,
            Err((status, reason)) => {
                let response = dialog.respond(request, status).with_reason(reason);
                return self.layer.respond(id, response, now);
            }
        };
        let accepted = dialog.respond(request, 202);
        self.layer.respond(id, accepted, now);
        let cseq = request.headers.cseq().map(|c| c.seq).unwrap_or_default();
        self.referred = Some(Box::new(Referred {
            old: self.call.take(),
            event: format!("refer;id={cseq}"),
            done: false,
            bye: None,
            give_up: None,
        }));
        self.events.push_back(Event::Referred { target: target.to_string() });
        self.notify(100, false, now);
        let referred_by = request.headers.get(HeaderName::ReferredBy).map(str::to_owned);
        if let Err(e) = self.place_call(&target, referred_by.as_deref(), now) {
            debug!(%e, "the transfer target cannot be called");
            self.referred_call_failed(&HangupReason::Rejected(503), now);
        }
    }

    /// Sends a NOTIFY with `status` as its sipfrag on the transferor's dialog, and reports it
    /// when it is progress (a failure is reported by the caller).
    fn notify(&mut self, status: u16, terminated: bool, now: Instant) {
        let (sent_by, registrar) = (self.sent_by.clone(), self.settings.registrar);
        let Some(referred) = self.referred.as_deref_mut() else { return };
        let Some(dialog) = referred.old.as_mut().and_then(Call::dialog_mut) else { return };
        let Some(dest) = dialog.next_hop().socket_addr().or(registrar) else { return };
        let Ok(mut notify) = dialog.request(Method::Notify, &sent_by, &mut self.rng) else { return };
        notify.headers.push(HeaderName::Event, referred.event.as_str());
        let state = if terminated {
            "terminated;reason=noresource".to_owned()
        } else {
            format!("active;expires={REFER_EXPIRES}")
        };
        notify.headers.push_raw(Name::Other(SUBSCRIPTION_STATE.into()), state);
        notify.headers.push(HeaderName::ContentType, SIPFRAG);
        notify.body = format!("SIP/2.0 {status} {}\r\n", reason_phrase(status)).into();
        match self.layer.send_request(notify, udp(dest), now) {
            Ok(_) if status < 300 => self.events.push_back(Event::TransferProgress { status }),
            Ok(_) => {}
            Err(e) => debug!(%e, "NOTIFY not sent"),
        }
    }

    /// The call to the transfer target is answered: tell the transferor, and wait for its BYE.
    pub(super) fn referred_call_answered(&mut self, now: Instant) {
        let linger = 64 * self.settings.timers.t1;
        let Some(referred) = self.referred.as_deref_mut().filter(|r| !r.done) else { return };
        referred.done = true;
        if referred.old.is_none() {
            self.referred = None;
            return;
        }
        referred.give_up = Some(now + linger);
        self.notify(200, true, now);
    }

    /// The call to the transfer target ended unanswered: tell the transferor and take its call
    /// back. False when there was no such call to go back to.
    pub(super) fn referred_call_failed(&mut self, reason: &HangupReason, now: Instant) -> bool {
        if self.referred.as_ref().is_none_or(|r| r.done) {
            return false;
        }
        let status = reason.sipfrag_status();
        self.notify(status, true, now);
        let Some(referred) = self.referred.take() else { return false };
        match referred.old {
            Some(old) if referred.bye.is_none() => {
                self.call = Some(old);
                self.events.push_back(Event::TransferFailed { status });
                true
            }
            _ => false,
        }
    }

    /// A request on the transferor's dialog while we call the target: BYE ends it quietly.
    /// False when the request is not for that dialog.
    pub(super) fn on_old_leg_request(&mut self, id: ServerId, request: &Request, now: Instant) -> bool {
        let Some(referred) = self.referred.as_deref_mut() else { return false };
        let Some(dialog) = referred.old.as_mut().and_then(Call::dialog_mut) else { return false };
        if DialogId::of_request(request).as_ref() != Some(dialog.id()) {
            return false;
        }
        let response = match dialog.receive_request(request, &mut self.rng) {
            proto::dialog::Received::Reject(response) => response,
            proto::dialog::Received::InOrder => match request.method {
                Method::Bye | Method::Options => dialog.respond(request, 200),
                _ => dialog.respond(request, 403).with_reason("Call Transferred"),
            },
        };
        let ended = request.method == Method::Bye && response.status == 200;
        self.layer.respond(id, response, now);
        if ended {
            debug!("the transferor ended its call");
            self.old_leg_ended();
        }
        true
    }

    /// The answer to our BYE on the transferor's dialog. False when `id` is not that BYE.
    pub(super) fn on_old_leg_response(&mut self, id: ClientId, status: u16) -> bool {
        let ours = self.referred.as_ref().is_some_and(|r| r.bye == Some(id));
        if ours && status >= 200 {
            self.old_leg_ended();
        }
        ours
    }

    fn old_leg_ended(&mut self) {
        let Some(referred) = self.referred.as_deref_mut() else { return };
        referred.old = None;
        referred.bye = None;
        referred.give_up = None;
        if referred.done || self.call.is_none() {
            self.referred = None;
        }
    }

    /// Sends BYE on the transferor's dialog, if it is still up.
    pub(super) fn end_old_leg(&mut self, now: Instant) {
        let (sent_by, registrar) = (self.sent_by.clone(), self.settings.registrar);
        let Some(referred) = self.referred.as_deref_mut().filter(|r| r.bye.is_none()) else { return };
        referred.give_up = None;
        let sent = referred.old.as_mut().and_then(Call::dialog_mut).and_then(|dialog| {
            let dest = dialog.next_hop().socket_addr().or(registrar)?;
            let bye = dialog.request(Method::Bye, &sent_by, &mut self.rng).ok()?;
            self.layer.send_request(bye, udp(dest), now).ok()
        });
        match sent {
            Some(id) => referred.bye = Some(id),
            None => self.old_leg_ended(),
        }
    }

    /// Gives up on a referral without news, and on a transferor that does not hang up.
    pub(super) fn transfer_timeout(&mut self, now: Instant) {
        if self.call.as_ref().and_then(|c| c.referral.as_ref()).is_some_and(|r| r.expires <= now) {
            debug!("no final NOTIFY before the subscription expired");
            self.transfer_failed(408);
        }
        if self.referred.as_ref().and_then(|r| r.give_up).is_some_and(|at| at <= now) {
            debug!("the transferor did not hang up; ending its call");
            self.end_old_leg(now);
        }
    }
}

/// The one Refer-To of a REFER as a SIP URI we can call, or the status to refuse it with.
fn refer_target(request: &Request) -> Result<Uri, (u16, &'static str)> {
    let mut values = request.headers.get_all(HeaderName::ReferTo);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err((400, "Exactly One Refer-To Required"));
    };
    let uri = NameAddr::parse(value).map_err(|_| (400, "Malformed Refer-To"))?.uri;
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
        return Err((416, "Unsupported URI Scheme"));
    }
    if uri.headers.is_some() || uri.params.value("method").is_some_and(|m| !m.eq_ignore_ascii_case("INVITE")) {
        return Err((501, "Only Blind Transfer By INVITE"));
    }
    Ok(uri)
}

/// The status code of a `message/sipfrag` body's status line (RFC 3420), e.g. `SIP/2.0 200 OK`.
fn sipfrag_status(body: &str) -> Option<u16> {
    let line = body.lines().next()?;
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    let code = parts.next()?;
    (version.eq_ignore_ascii_case("SIP/2.0") && code.len() == 3)
        .then(|| code.parse().ok())
        .flatten()
        .filter(|c| (100..700).contains(c))
}

/// The `expires` parameter of an `active` or `pending` Subscription-State.
fn subscription_expires(state: &str) -> Option<u32> {
    state.split(';').skip(1).find_map(|p| p.trim().strip_prefix("expires=")?.trim().parse().ok())
}
