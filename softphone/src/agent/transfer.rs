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
//! NOTIFYs of the subscription that come late (a CSeq below one already seen, as UDP may
//! reorder them, or anything after the final fragment) are answered 200 and ignored, rather
//! than refused as out of order.
//!
//! Transferee: a REFER in the connected call is answered 202 (400 without one usable Refer-To)
//! and followed at once by NOTIFY `SIP/2.0 100 Trying` (Subscription-State active). The call
//! then moves aside into a [`Referred`] record and a new call to the Refer-To target is placed
//! (through the registrar when the target is in our domain), carrying the Referred-By. When it
//! is answered, NOTIFY `SIP/2.0 200 OK` with `Subscription-State: terminated;reason=noresource`
//! goes on the old dialog and the transferor is expected to BYE it; we BYE it ourselves after
//! 64·T1. When it fails, the final NOTIFY carries its status and the old call comes back.
//! NOTIFYs carry `Event: refer;id=<REFER CSeq>` (§2.4.6). A [`Notifier`] keeps one NOTIFY in
//! flight at a time (RFC 6665 §4.2.2): a newer state waits for the previous one's final
//! response, only the newest is kept, and the terminating one always goes. The subscription
//! lives in the old dialog and ends with it: once the transferor's BYE (or ours) is in, nothing
//! more is sent on it, and [`Event::OldLegHungUp`] tells the UI that call is over.

use std::time::{Duration, Instant};

use proto::dialog::DialogId;
use proto::sip::{HeaderName, Method, Name, NameAddr, Request, Response, Scheme, Uri, reason_phrase};
use proto::transaction::{ClientId, ServerId};
use tracing::debug;

use super::call::{Call, HangupReason, Phase};
use super::digest::Digest;
use super::{CommandError, Event, UserAgent, over};

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
    /// That REFER's CSeq: the `id` of its subscription (RFC 3515 §2.4.6).
    cseq: u32,
    target: Uri,
    digest: Digest,
    /// When we stop waiting for a final NOTIFY.
    pub(super) expires: Instant,
}

/// Our side of the implicit subscription of a REFER we accepted (RFC 3515 §2.4.4), kept in
/// the call it arrived in: one NOTIFY in flight at a time (RFC 6665 §4.2.2).
#[derive(Debug)]
pub(super) struct Notifier {
    /// The Event header of our NOTIFYs.
    event: String,
    /// The NOTIFY awaiting its final response.
    in_flight: Option<ClientId>,
    /// The newest state waiting for it: the sipfrag status, and whether it ends the subscription.
    queued: Option<(u16, bool)>,
}

/// The transferor's call, kept while we call the target of its REFER.
#[derive(Debug)]
pub(super) struct Referred {
    /// The transferor's call; `None` once its dialog has ended.
    old: Option<Call>,
    /// The new call was answered: the final NOTIFY is due.
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
        let (client, cseq) = self.send_refer(target, &mut digest, now).ok_or_else(|| {
            debug!("REFER not sent");
            CommandError::Unreachable(target.to_string())
        })?;
        if let Some(call) = self.call.as_mut() {
            call.referral = Some(Box::new(Referral { client, cseq, target: target.clone(), digest, expires }));
        }
        Ok(())
    }

    /// Sends a REFER for `target` on the call's dialog, with credentials when `digest` holds a
    /// challenge; returns its transaction and CSeq.
    fn send_refer(&mut self, target: &Uri, digest: &mut Digest, now: Instant) -> Option<(ClientId, u32)> {
        let (sent_by, registrar, aor) = (self.sent_by.clone(), self.settings.registrar, self.aor());
        let dialog = self.call.as_mut()?.dialog_mut()?;
        let dest = dialog.next_hop().socket_addr().or(registrar)?;
        let mut refer = dialog.request(Method::Refer, &sent_by, &mut self.rng).ok()?;
        refer.headers.push(HeaderName::ReferTo, format!("<{target}>"));
        refer.headers.push(HeaderName::ReferredBy, format!("<{aor}>"));
        let cseq = refer.headers.cseq().ok()?.seq;
        digest.authorize(&mut refer, &mut self.rng);
        Some((self.layer.send_request(refer, over(self.settings.transport, dest), now).ok()?, cseq))
    }

    /// Sends the referral's REFER again with credentials for the challenge in `response`.
    fn retry_refer(&mut self, response: &Response, now: Instant) -> bool {
        let Some(mut referral) = self.call.as_mut().and_then(|c| c.referral.take()) else { return false };
        if !referral.digest.on_challenge(response) {
            return false;
        }
        let target = referral.target.clone();
        let sent = self.send_refer(&target, &mut referral.digest, now);
        if let (Some((client, cseq)), Some(call)) = (sent, self.call.as_mut()) {
            (referral.client, referral.cseq) = (client, cseq);
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
        let live = call.subscription_of(request) == Subscription::Live;
        let fragment = std::str::from_utf8(&request.body).ok().and_then(sipfrag_status);
        let status = match (live, fragment) {
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
                self.end_subscription();
                self.send_bye(HangupReason::Transferred, now);
            }
            300.. => {
                self.end_subscription();
                self.transfer_failed(fragment);
            }
            _ if terminated => {
                self.events.push_back(Event::TransferProgress { status: fragment });
                self.end_subscription();
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

    /// Drops the referral whose subscription a final NOTIFY ended, and remembers its `id` so
    /// that NOTIFYs of it still on their way are known as stale.
    fn end_subscription(&mut self) {
        let Some(call) = self.call.as_mut() else { return };
        if let Some(referral) = call.referral.take() {
            call.ended_subscription = Some(referral.cseq);
        }
    }

    /// Answers 200 to a NOTIFY of our REFER's subscription that comes late, and ignores it: one
    /// after the final NOTIFY, or one with a CSeq below one already seen in the dialog (UDP
    /// reordered them). It is old news, not an error (the dialog alone would answer 500 or
    /// 481). False when `request` is no such NOTIFY.
    pub(super) fn on_stale_notify(&mut self, id: ServerId, request: &Request, now: Instant) -> bool {
        let Some(call) = self.call.as_mut() else { return false };
        let subscription = call.subscription_of(request);
        let ours = DialogId::of_request(request);
        let Some(dialog) = call.dialog_mut().filter(|d| ours.as_ref() == Some(d.id())) else { return false };
        let older = request.headers.cseq().ok().zip(dialog.remote_cseq()).is_some_and(|(c, last)| c.seq < last);
        let stale = match subscription {
            Subscription::Ended => true,
            Subscription::Live => older,
            Subscription::Unknown => false,
        };
        if stale {
            debug!(?subscription, "late NOTIFY of our REFER ignored");
            self.layer.respond(id, request.response(200), now);
        }
        stale
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
        call.notifier = Some(Box::new(Notifier { event: format!("refer;id={cseq}"), in_flight: None, queued: None }));
        self.referred = Some(Box::new(Referred { old: self.call.take(), done: false, bye: None, give_up: None }));
        self.events.push_back(Event::Referred { target: target.to_string() });
        self.notify(100, false, now);
        let referred_by = request.headers.get(HeaderName::ReferredBy).map(str::to_owned);
        if let Err(e) = self.place_call(&target, referred_by.as_deref(), now) {
            debug!(%e, "the transfer target cannot be called");
            self.referred_call_failed(&HangupReason::Rejected(503), now);
        }
    }

    /// Reports `status` to the transferor in a NOTIFY: at once, or once the NOTIFY in flight
    /// has its final response (RFC 6665 §4.2.2), in place of any state already waiting unless
    /// that one ends the subscription. Progress is reported as an event; a failure is reported
    /// by the caller.
    fn notify(&mut self, status: u16, terminated: bool, now: Instant) {
        let Some(notifier) = notifier_call(&mut self.referred, &mut self.call).and_then(|c| c.notifier.as_deref_mut())
        else {
            return;
        };
        if status < 300 {
            self.events.push_back(Event::TransferProgress { status });
        }
        if notifier.in_flight.is_none() {
            self.send_notify(status, terminated, now);
        } else if terminated || !notifier.queued.is_some_and(|(_, ends)| ends) {
            notifier.queued = Some((status, terminated));
        }
    }

    /// Sends a NOTIFY with `status` as its sipfrag on the dialog of the subscription.
    fn send_notify(&mut self, status: u16, terminated: bool, now: Instant) {
        let (sent_by, registrar) = (self.sent_by.clone(), self.settings.registrar);
        let Some(call) = notifier_call(&mut self.referred, &mut self.call) else { return };
        let Some(event) = call.notifier.as_ref().map(|n| n.event.clone()) else { return };
        let Some(dialog) = call.dialog_mut() else { return };
        let Some(dest) = dialog.next_hop().socket_addr().or(registrar) else { return };
        let Ok(mut notify) = dialog.request(Method::Notify, &sent_by, &mut self.rng) else { return };
        notify.headers.push(HeaderName::Event, event);
        let state = if terminated {
            "terminated;reason=noresource".to_owned()
        } else {
            format!("active;expires={REFER_EXPIRES}")
        };
        notify.headers.push_raw(Name::Other(SUBSCRIPTION_STATE.into()), state);
        notify.headers.push(HeaderName::ContentType, SIPFRAG);
        notify.body = format!("SIP/2.0 {status} {}\r\n", reason_phrase(status)).into();
        match (self.layer.send_request(notify, over(self.settings.transport, dest), now), call.notifier.as_deref_mut())
        {
            (Ok(id), Some(notifier)) => notifier.in_flight = Some(id),
            (Ok(_), None) => {}
            (Err(e), _) => debug!(%e, "NOTIFY not sent"),
        }
    }

    /// The answer to one of our NOTIFYs (408 when none came): the state waiting behind it goes
    /// out, unless the transferor says the subscription is gone (481, RFC 6665 §4.2.2). False
    /// when `id` is no NOTIFY of ours.
    pub(super) fn on_notify_response(&mut self, id: ClientId, status: u16, now: Instant) -> bool {
        let Some(notifier) = notifier_call(&mut self.referred, &mut self.call)
            .and_then(|c| c.notifier.as_deref_mut())
            .filter(|n| n.in_flight == Some(id))
        else {
            return false;
        };
        if status < 200 {
            return true;
        }
        notifier.in_flight = None;
        if let Some((status, terminated)) = notifier.queued.take().filter(|_| status != 481) {
            self.send_notify(status, terminated, now);
        }
        true
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
    /// back. False when there was no such call to go back to; if our BYE on it was out, its
    /// end is reported then.
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
            Some(_) => {
                self.events.push_back(Event::OldLegHungUp { reason: HangupReason::Local });
                false
            }
            None => false,
        }
    }

    /// A request on the transferor's dialog while we call the target: BYE ends it.
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
            self.old_leg_ended(HangupReason::Remote);
        }
        true
    }

    /// The answer to our BYE on the transferor's dialog. False when `id` is not that BYE.
    pub(super) fn on_old_leg_response(&mut self, id: ClientId, status: u16) -> bool {
        let ours = self.referred.as_ref().is_some_and(|r| r.bye == Some(id));
        if ours && status >= 200 {
            self.old_leg_ended(HangupReason::Local);
        }
        ours
    }

    /// The transferor's dialog is over, and with it the subscription: nothing more is sent on
    /// it, NOTIFYs waiting included.
    fn old_leg_ended(&mut self, reason: HangupReason) {
        let Some(referred) = self.referred.as_deref_mut() else { return };
        referred.old = None;
        referred.bye = None;
        referred.give_up = None;
        if referred.done || self.call.is_none() {
            self.referred = None;
        }
        self.events.push_back(Event::OldLegHungUp { reason });
    }

    /// Sends BYE on the transferor's dialog, if it is still up; the subscription ends with it.
    pub(super) fn end_old_leg(&mut self, now: Instant) {
        let (sent_by, registrar) = (self.sent_by.clone(), self.settings.registrar);
        let Some(referred) = self.referred.as_deref_mut().filter(|r| r.bye.is_none() && r.old.is_some()) else {
            return;
        };
        referred.give_up = None;
        let sent = referred.old.as_mut().and_then(|old| {
            old.notifier = None;
            let dialog = old.dialog_mut()?;
            let dest = dialog.next_hop().socket_addr().or(registrar)?;
            let bye = dialog.request(Method::Bye, &sent_by, &mut self.rng).ok()?;
            self.layer.send_request(bye, over(self.settings.transport, dest), now).ok()
        });
        match sent {
            Some(id) => referred.bye = Some(id),
            None => self.old_leg_ended(HangupReason::Local),
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

/// Which of our REFERs' subscriptions a NOTIFY is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscription {
    /// None of them.
    Unknown,
    /// The one of the referral under way.
    Live,
    /// One a final NOTIFY has ended.
    Ended,
}

impl Call {
    /// Which of our REFERs' subscriptions `request` is a NOTIFY of: its Event is `refer` with the
    /// REFER's CSeq as `id`, or with no `id` at all (RFC 3515 §2.4.6).
    fn subscription_of(&self, request: &Request) -> Subscription {
        let Some(id) = refer_event_id(request).filter(|_| request.method == Method::Notify) else {
            return Subscription::Unknown;
        };
        let names = |cseq: u32| id.is_none_or(|id| id == cseq);
        if self.referral.as_ref().is_some_and(|r| names(r.cseq)) {
            Subscription::Live
        } else if self.ended_subscription.is_some_and(names) {
            Subscription::Ended
        } else {
            Subscription::Unknown
        }
    }
}

/// The call whose subscription we notify: the transferor's call while we call the target, or
/// the same call back after that failed.
fn notifier_call<'a>(referred: &'a mut Option<Box<Referred>>, call: &'a mut Option<Call>) -> Option<&'a mut Call> {
    let old = referred.as_deref_mut().and_then(|r| r.old.as_mut()).filter(|c| c.notifier.is_some());
    old.or_else(|| call.as_mut().filter(|c| c.notifier.is_some()))
}

/// The `id` of a request's Event header when its package is `refer`: `Some(None)` when it
/// has none; `None` for another package or an `id` that is no number.
fn refer_event_id(request: &Request) -> Option<Option<u32>> {
    let mut params = request.headers.get(HeaderName::Event)?.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("refer") {
        return None;
    }
    let mut id = None;
    for param in params {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("id")
        {
            id = Some(value.trim().parse().ok()?);
        }
    }
    Some(id)
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
