//! Simulated-time tests of the user agent against a scripted peer: the test plays the
//! registrar or the other phone, message by message, and the clock is a variable.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto::auth::{Credentials, DigestConfig, DigestServer, Verdict};
use proto::sdp::{LocalMedia, create_answer, create_offer, parse};
use proto::sip::{HeaderName, Message, Method, Request, Response, Transport};
use proto::transaction::{Target, TimerConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const REGISTRAR: &str = "127.0.0.1:5060";
const PHONE: &str = "127.0.0.1:5070";
const PEER: &str = "127.0.0.1:5080";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn settings(registrar: bool, auto_answer: bool) -> Settings {
    Settings {
        user: "1001".into(),
        password: "pw1001".into(),
        domain: "voip.test".into(),
        local: addr(PHONE),
        transport: Transport::Udp,
        registrar: registrar.then(|| addr(REGISTRAR)),
        register_expires: 300,
        media: LocalMedia::new(addr(PHONE).ip(), 40_000),
        auto_answer,
        timers: TimerConfig::default(),
        srtp: SrtpPolicy::Offer,
        keepalive: Some(keepalive::DEFAULT_INTERVAL),
    }
}

/// Everything the agent wants to send, parsed, with its destination.
fn sent(ua: &mut UserAgent) -> Vec<(Message, SocketAddr)> {
    std::iter::from_fn(|| ua.poll_transmit()).map(|t| (Message::parse(&t.data).unwrap(), t.target.addr)).collect()
}

fn events(ua: &mut UserAgent) -> Vec<Event> {
    std::iter::from_fn(|| ua.poll_event()).collect()
}

fn requests(out: &[(Message, SocketAddr)], method: Method) -> Vec<Request> {
    out.iter()
        .filter_map(|(m, _)| match m {
            Message::Request(r) if r.method == method => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn only_request(ua: &mut UserAgent, method: Method) -> Request {
    let out = sent(ua);
    let found = requests(&out, method.clone());
    assert_eq!(found.len(), 1, "expected one {method}, got {out:#?}");
    found.into_iter().next().unwrap()
}

fn feed(ua: &mut UserAgent, message: Message, from: &str, now: Instant) {
    ua.handle_message(&message.encode(), Target { transport: Transport::Udp, addr: addr(from) }, now);
}

/// The peer's response to `request`, with its To tag.
fn reply(request: &Request, status: u16, tag: &str) -> Response {
    let mut r = request.response(status);
    if let Some(to) = request.headers.get(HeaderName::To).filter(|to| !to.contains("tag=")) {
        r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
    }
    r
}

fn digest_server(rng: &mut StdRng) -> DigestServer {
    DigestServer::new(DigestConfig::new("voip.test", [7; 32]), rng).unwrap()
}

fn challenge(request: &Request, server: &mut DigestServer, status: u16, rng: &mut StdRng) -> Message {
    let header = if status == 407 { HeaderName::ProxyAuthenticate } else { HeaderName::WwwAuthenticate };
    let mut r = request.response(status);
    for c in server.challenges(1_000, false, rng) {
        r.headers.push(header, c.to_string());
    }
    Message::Response(r)
}

fn register(ua: &mut UserAgent, server: &mut DigestServer, rng: &mut StdRng, now: Instant) -> Request {
    ua.register(now).unwrap();
    let first = only_request(ua, Method::Register);
    assert!(first.headers.get(HeaderName::Authorization).is_none());
    feed(ua, challenge(&first, server, 401, rng), REGISTRAR, now);
    let second = only_request(ua, Method::Register);
    assert_eq!(second.headers.call_id().unwrap(), first.headers.call_id().unwrap(), "same Call-ID (§10.2.4)");
    assert_eq!(second.headers.cseq().unwrap().seq, first.headers.cseq().unwrap().seq + 1);
    let mut ok = second.response(200);
    ok.headers.push(HeaderName::Contact, format!("<sip:1001@{PHONE}>;expires=120"));
    feed(ua, Message::Response(ok), REGISTRAR, now);
    second
}

#[test]
fn register_answers_401_with_qop_digest_and_refreshes_at_half_the_granted_interval() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut server = digest_server(&mut rng);
    let mut ua = UserAgent::new(settings(true, false), 1);
    let t0 = Instant::now();
    let second = register(&mut ua, &mut server, &mut rng, t0);
    let creds = Credentials::parse(second.headers.get(HeaderName::Authorization).unwrap()).unwrap();
    assert_eq!(creds.nc, Some(1));
    assert_eq!(server.verify(&creds, "REGISTER", Some("pw1001"), 1_001), Verdict::Ok);
    assert_eq!(events(&mut ua), [Event::Registered { expires: 120 }]);
    // The transaction's own timers (Timer K) come first and send nothing.
    while let Some(at) = ua.poll_timeout().filter(|at| *at < t0 + Duration::from_secs(60)) {
        ua.handle_timeout(at);
        assert!(sent(&mut ua).is_empty(), "nothing to send before the refresh");
    }
    assert_eq!(ua.poll_timeout(), Some(t0 + Duration::from_secs(60)), "refresh at half of 120 s");

    ua.handle_timeout(t0 + Duration::from_secs(60));
    let refresh = only_request(&mut ua, Method::Register);
    let creds = Credentials::parse(refresh.headers.get(HeaderName::Authorization).unwrap()).unwrap();
    assert_eq!(creds.nc, Some(2), "credentials sent up front with the next nonce count");
    assert_eq!(server.verify(&creds, "REGISTER", Some("pw1001"), 1_060), Verdict::Ok);
}

/// Runs the agent's timers up to `until`, answering nothing, and returns what it sent.
fn run_silently(ua: &mut UserAgent, until: Instant) -> Vec<(Message, SocketAddr)> {
    let mut out = Vec::new();
    while let Some(at) = ua.poll_timeout().filter(|at| *at <= until) {
        ua.handle_timeout(at);
        out.extend(sent(ua));
    }
    out
}

#[test]
fn a_refresh_the_registrar_never_answers_is_retried_with_backoff_until_it_is_back() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut server = digest_server(&mut rng);
    let mut ua = UserAgent::new(settings(true, false), 11);
    let t0 = Instant::now();
    register(&mut ua, &mut server, &mut rng, t0);
    assert_eq!(events(&mut ua), [Event::Registered { expires: 120 }]);

    // The registrar is down: the refresh at 60 s is retransmitted until Timer F (32 s) ends it.
    let refresh_at = t0 + Duration::from_secs(60);
    let out = run_silently(&mut ua, refresh_at + Duration::from_secs(32));
    assert!(requests(&out, Method::Register).len() > 1, "the refresh was retransmitted");
    let lost = events(&mut ua);
    let [Event::RegistrationLost { status: 408, retry_in, .. }] = lost[..] else { panic!("{lost:?}") };
    assert!((15..=30).contains(&retry_in.as_secs()), "first wait is 50–100% of 30 s: {retry_in:?}");

    // The next try fails too, and waits about twice as long (RFC 5626 §4.5).
    let second_try = refresh_at + Duration::from_secs(32) + retry_in;
    assert_eq!(ua.poll_timeout(), Some(second_try));
    run_silently(&mut ua, second_try + Duration::from_secs(32));
    let lost = events(&mut ua);
    let [Event::RegistrationLost { retry_in: wait, .. }] = lost[..] else { panic!("{lost:?}") };
    assert!((30..=60).contains(&wait.as_secs()), "second wait is 50–100% of 60 s: {wait:?}");

    // Back up: the third try is answered and the phone is registered again; the waits start over.
    let third_try = second_try + Duration::from_secs(32) + wait;
    ua.handle_timeout(third_try);
    let retry = only_request(&mut ua, Method::Register);
    assert_eq!(retry.headers.get(HeaderName::Expires), Some("300"));
    let mut ok = retry.response(200);
    ok.headers.push(HeaderName::Contact, format!("<sip:1001@{PHONE}>;expires=300"));
    feed(&mut ua, Message::Response(ok), REGISTRAR, third_try);
    assert_eq!(events(&mut ua), [Event::Registered { expires: 300 }]);
}

#[test]
fn a_first_registration_nobody_answers_is_a_final_failure() {
    let mut ua = UserAgent::new(settings(true, false), 12);
    let t0 = Instant::now();
    ua.register(t0).unwrap();
    run_silently(&mut ua, t0 + Duration::from_secs(40));
    let failed = events(&mut ua);
    assert!(matches!(failed[..], [Event::RegistrationFailed { status: 408, .. }]), "{failed:?}");
    assert_eq!(ua.poll_timeout(), None, "nothing more is tried");
}

#[test]
fn register_gives_up_when_the_same_nonce_is_challenged_again() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut server = digest_server(&mut rng);
    let mut ua = UserAgent::new(settings(true, false), 2);
    let now = Instant::now();
    ua.register(now).unwrap();
    let first = only_request(&mut ua, Method::Register);
    let challenge = challenge(&first, &mut server, 401, &mut rng);
    feed(&mut ua, challenge.clone(), REGISTRAR, now);
    let second = only_request(&mut ua, Method::Register);
    let Message::Response(mut again) = challenge else { unreachable!() };
    again.headers.set(HeaderName::CSeq, second.headers.get(HeaderName::CSeq).unwrap());
    again.headers.set(HeaderName::Via, second.headers.get(HeaderName::Via).unwrap());
    feed(&mut ua, Message::Response(again), REGISTRAR, now);
    assert!(requests(&sent(&mut ua), Method::Register).is_empty(), "no third REGISTER");
    assert!(matches!(events(&mut ua)[..], [Event::RegistrationFailed { status: 401, .. }]));
}

#[test]
fn unregister_sends_expires_zero() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut server = digest_server(&mut rng);
    let mut ua = UserAgent::new(settings(true, false), 3);
    let now = Instant::now();
    register(&mut ua, &mut server, &mut rng, now);
    events(&mut ua);
    ua.unregister(now);
    let bye = only_request(&mut ua, Method::Register);
    assert_eq!(bye.headers.get(HeaderName::Expires), Some("0"));
    assert!(!ua.is_idle());
    feed(&mut ua, Message::Response(bye.response(200)), REGISTRAR, now);
    assert_eq!(events(&mut ua), [Event::Unregistered]);
    assert!(ua.is_idle());
}

/// The far end's 200 with an SDP answer to the INVITE's offer.
fn answer_ok(invite: &Request, tag: &str) -> Response {
    let offer = parse(std::str::from_utf8(&invite.body).unwrap()).unwrap();
    let (answer, _) = create_answer(&offer, &LocalMedia::new(addr(PEER).ip(), 50_000), 9, 1).unwrap();
    let mut ok = reply(invite, 200, tag);
    ok.headers.push(HeaderName::Contact, format!("<sip:1002@{PEER}>"));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = Bytes::from(answer.to_string());
    ok
}

#[test]
fn outgoing_call_answers_407_then_acks_the_2xx_and_ends_with_bye() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut server = digest_server(&mut rng);
    let mut ua = UserAgent::new(settings(true, false), 4);
    let now = Instant::now();
    let target = proto::sip::Uri::parse("sip:1002@voip.test").unwrap();
    ua.dial(&target, now).unwrap();
    let out = sent(&mut ua);
    assert_eq!(out[0].1, addr(REGISTRAR), "extensions go through the registrar");
    let first = requests(&out, Method::Invite).remove(0);
    assert!(first.body.starts_with(b"v=0"), "the INVITE carries the offer");

    feed(&mut ua, challenge(&first, &mut server, 407, &mut rng), REGISTRAR, now);
    let out = sent(&mut ua);
    assert_eq!(requests(&out, Method::Ack).len(), 1, "the layer ACKs the 407");
    let invite = requests(&out, Method::Invite).remove(0);
    assert_eq!(invite.headers.cseq().unwrap().seq, first.headers.cseq().unwrap().seq + 1);
    let creds = Credentials::parse(invite.headers.get(HeaderName::ProxyAuthorization).unwrap()).unwrap();
    assert_eq!(server.verify(&creds, "INVITE", Some("pw1001"), 1_001), Verdict::Ok);

    feed(&mut ua, Message::Response(reply(&invite, 180, "peer")), REGISTRAR, now);
    assert_eq!(events(&mut ua), [Event::Ringing]);
    feed(&mut ua, Message::Response(answer_ok(&invite, "peer")), REGISTRAR, now);
    let ack = only_request(&mut ua, Method::Ack);
    assert_eq!(ack.headers.cseq().unwrap().seq, invite.headers.cseq().unwrap().seq);
    assert_eq!(ack.uri.to_string(), format!("sip:1002@{PEER}"), "the ACK goes to the remote target");
    match &events(&mut ua)[..] {
        [Event::Answered { negotiated }] => {
            assert_eq!(negotiated.codec.name, "opus");
            assert_eq!(negotiated.remote_rtp, "127.0.0.1:50000".parse().unwrap());
        }
        other => panic!("expected Answered, got {other:?}"),
    }

    ua.hangup(now).unwrap();
    let bye = only_request(&mut ua, Method::Bye);
    assert!(events(&mut ua).is_empty(), "the call ends when the BYE completes");
    feed(&mut ua, Message::Response(bye.response(200)), PEER, now);
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Local }]);
    assert!(ua.is_idle());
}

#[test]
fn hangup_before_answer_cancels_and_reports_cancelled() {
    let mut ua = UserAgent::new(settings(false, false), 5);
    let now = Instant::now();
    ua.dial(&proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap(), now).unwrap();
    let invite = only_request(&mut ua, Method::Invite);
    feed(&mut ua, Message::Response(reply(&invite, 180, "peer")), PEER, now);
    events(&mut ua);
    ua.hangup(now).unwrap();
    let cancel = only_request(&mut ua, Method::Cancel);
    assert_eq!(cancel.headers.get(HeaderName::Via), invite.headers.get(HeaderName::Via));
    feed(&mut ua, Message::Response(cancel.response(200)), PEER, now);
    feed(&mut ua, Message::Response(reply(&invite, 487, "peer")), PEER, now);
    assert_eq!(requests(&sent(&mut ua), Method::Ack).len(), 1);
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Cancelled }]);
}

/// An INVITE from the peer with an offer of `codecs`.
fn incoming_invite(codecs: Vec<proto::sdp::Codec>) -> Request {
    let mut media = LocalMedia::new(addr(PEER).ip(), 50_000);
    media.codecs = codecs;
    let offer = create_offer(&media, 1, 1);
    let text = format!(
        "INVITE sip:1001@{PHONE} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKpeer1\r\nMax-Forwards: 70\r\n\
         From: <sip:1002@voip.test>;tag=caller\r\nTo: <sip:1001@voip.test>\r\nCall-ID: in-1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:1002@{PEER}>\r\nContent-Type: application/sdp\r\n\r\n{offer}"
    );
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn responses(out: &[(Message, SocketAddr)]) -> Vec<Response> {
    out.iter()
        .filter_map(|(m, _)| match m {
            Message::Response(r) => Some(r.clone()),
            Message::Request(_) => None,
        })
        .collect()
}

#[test]
fn incoming_call_auto_answers_180_then_200_and_retransmits_the_200_until_the_ack() {
    let mut ua = UserAgent::new(settings(false, true), 6);
    let t0 = Instant::now();
    let invite = incoming_invite(vec![proto::sdp::Codec::pcmu()]);
    feed(&mut ua, Message::Request(invite.clone()), PEER, t0);
    let statuses: Vec<u16> = responses(&sent(&mut ua)).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [180, 200]);
    match &events(&mut ua)[..] {
        [Event::Incoming { .. }, Event::Answered { negotiated }] => assert_eq!(negotiated.codec.name, "PCMU"),
        other => panic!("expected Incoming then Answered, got {other:?}"),
    }

    ua.handle_timeout(t0 + Duration::from_millis(500));
    let again = responses(&sent(&mut ua));
    assert_eq!(again.iter().map(|r| r.status).collect::<Vec<_>>(), [200], "200 again after T1");
    let to = again[0].headers.get(HeaderName::To).unwrap().to_owned();

    let ack = format!(
        "ACK sip:1001@{PHONE} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKpeer2\r\nMax-Forwards: 70\r\n\
         From: <sip:1002@voip.test>;tag=caller\r\nTo: {to}\r\nCall-ID: in-1\r\nCSeq: 1 ACK\r\n\r\n"
    );
    feed(&mut ua, Message::parse(ack.as_bytes()).unwrap(), PEER, t0 + Duration::from_millis(600));
    ua.handle_timeout(t0 + Duration::from_secs(2));
    assert!(responses(&sent(&mut ua)).is_empty(), "no retransmission after the ACK");

    let bye = ack.replace("ACK sip", "BYE sip").replace("CSeq: 1 ACK", "CSeq: 2 BYE").replace("peer2", "peer3");
    feed(&mut ua, Message::parse(bye.as_bytes()).unwrap(), PEER, t0 + Duration::from_secs(3));
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Remote }]);
}

#[test]
fn incoming_offer_without_a_common_codec_is_refused_488() {
    let mut ua = UserAgent::new(settings(false, true), 7);
    let mut s = settings(false, true);
    s.media.codecs = vec![proto::sdp::Codec::pcma()];
    let mut ua_pcma_only = UserAgent::new(s, 7);
    let invite = incoming_invite(vec![proto::sdp::Codec::pcmu()]);
    feed(&mut ua_pcma_only, Message::Request(invite.clone()), PEER, Instant::now());
    assert_eq!(responses(&sent(&mut ua_pcma_only)).iter().map(|r| r.status).collect::<Vec<_>>(), [488]);
    assert!(events(&mut ua_pcma_only).is_empty());
    // The same INVITE to a phone with PCMU is answered.
    feed(&mut ua, Message::Request(invite), PEER, Instant::now());
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [180, 200]);
}

#[test]
fn reject_declines_the_ringing_call_with_603_and_is_refused_once_answered() {
    let mut ua = UserAgent::new(settings(false, false), 9);
    let now = Instant::now();
    assert_eq!(ua.reject(now), Err(CommandError::NoCall));
    feed(&mut ua, Message::Request(incoming_invite(vec![proto::sdp::Codec::pcmu()])), PEER, now);
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [180]);
    assert!(matches!(&events(&mut ua)[..], [Event::Incoming { .. }]));
    ua.reject(now).unwrap();
    let out = sent(&mut ua);
    let declined = responses(&out);
    assert_eq!(declined.iter().map(|r| r.status).collect::<Vec<_>>(), [603]);
    assert!(declined[0].headers.get(HeaderName::To).is_some_and(|to| to.contains("tag=")), "in the early dialog");
    assert_eq!(out[0].1, addr(PEER), "back to where the INVITE came from");
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Local }]);
    assert!(ua.is_idle());

    // An answered call cannot be rejected, only hung up.
    let mut second = incoming_invite(vec![proto::sdp::Codec::pcmu()]);
    second.headers.set(HeaderName::CallId, "in-2");
    second.headers.set(HeaderName::Via, format!("SIP/2.0/UDP {PEER};branch=z9hG4bKother"));
    feed(&mut ua, Message::Request(second), PEER, now);
    ua.answer(now).unwrap();
    sent(&mut ua);
    assert_eq!(ua.reject(now), Err(CommandError::NotRinging));
    assert!(responses(&sent(&mut ua)).is_empty());
}

#[test]
fn a_second_incoming_call_gets_486_busy() {
    let mut ua = UserAgent::new(settings(false, true), 8);
    let now = Instant::now();
    feed(&mut ua, Message::Request(incoming_invite(vec![proto::sdp::Codec::pcmu()])), PEER, now);
    sent(&mut ua);
    let mut second = incoming_invite(vec![proto::sdp::Codec::pcmu()]);
    second.headers.set(HeaderName::CallId, "in-2");
    second.headers.set(HeaderName::Via, format!("SIP/2.0/UDP {PEER};branch=z9hG4bKother"));
    feed(&mut ua, Message::Request(second), PEER, now);
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [486]);
}

#[test]
fn a_200_crossing_our_cancel_is_acked_then_ended_with_bye() {
    let mut ua = UserAgent::new(settings(false, false), 9);
    let now = Instant::now();
    ua.dial(&proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap(), now).unwrap();
    let invite = only_request(&mut ua, Method::Invite);
    feed(&mut ua, Message::Response(reply(&invite, 180, "peer")), PEER, now);
    ua.hangup(now).unwrap();
    only_request(&mut ua, Method::Cancel);
    feed(&mut ua, Message::Response(answer_ok(&invite, "peer")), PEER, now);
    let out = sent(&mut ua);
    assert_eq!(requests(&out, Method::Ack).len(), 1, "the 2xx is ACKed");
    let bye = requests(&out, Method::Bye);
    assert_eq!(bye.len(), 1, "and the call ended at once: {out:#?}");
    assert!(!events(&mut ua).iter().any(|e| matches!(e, Event::Answered { .. })), "no media for a cancelled call");
    feed(&mut ua, Message::Response(bye[0].response(200)), PEER, now);
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Cancelled }]);
}

#[test]
fn a_call_nobody_answers_times_out_after_64_t1() {
    let mut ua = UserAgent::new(settings(false, false), 10);
    let t0 = Instant::now();
    ua.dial(&proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap(), t0).unwrap();
    let mut ended_at = None;
    while let Some(at) = ua.poll_timeout().filter(|at| *at <= t0 + Duration::from_secs(40)) {
        ua.handle_timeout(at);
        sent(&mut ua);
        if let Some(event) = ua.poll_event() {
            assert_eq!(event, Event::HungUp { reason: HangupReason::Timeout });
            ended_at = Some(at);
        }
    }
    assert_eq!(ended_at, Some(t0 + Duration::from_secs(32)), "Timer B: 64·T1");
    assert!(ua.is_idle());
}

/// An outgoing call to the peer, answered and ACKed; returns the INVITE.
fn connected_outgoing(ua: &mut UserAgent, now: Instant) -> Request {
    ua.dial(&proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap(), now).unwrap();
    let invite = only_request(ua, Method::Invite);
    feed(ua, Message::Response(answer_ok(&invite, "peer")), PEER, now);
    only_request(ua, Method::Ack);
    assert!(matches!(events(ua)[..], [Event::Answered { .. }]));
    invite
}

/// The peer's answer to our re-offer, as a 200 to the re-INVITE.
fn answer_reoffer(reinvite: &Request) -> Response {
    let offer = parse(std::str::from_utf8(&reinvite.body).unwrap()).unwrap();
    let (answer, _) = create_answer(&offer, &LocalMedia::new(addr(PEER).ip(), 50_000), 9, 2).unwrap();
    let mut ok = reinvite.response(200);
    ok.headers.push(HeaderName::Contact, format!("<sip:1002@{PEER}>"));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = Bytes::from(answer.to_string());
    ok
}

/// A request from the peer on the dialog of our outgoing `invite`.
fn peer_request(invite: &Request, method: &str, cseq: u32, branch: &str, body: &str) -> Request {
    let from = invite.headers.get(HeaderName::From).unwrap();
    let text = format!(
        "{method} sip:1001@{PHONE} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
         From: <sip:1002@{PEER}>;tag=peer\r\nTo: {from}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:1002@{PEER}>\r\nContent-Type: application/sdp\r\n\r\n{body}",
        invite.headers.call_id().unwrap()
    );
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

/// The peer's re-offer with this direction.
fn peer_offer(direction: proto::sdp::Direction, version: u64) -> String {
    let mut media = LocalMedia::new(addr(PEER).ip(), 50_000);
    media.direction = direction;
    create_offer(&media, 9, version).to_string()
}

#[test]
fn hold_reoffers_sendonly_and_resume_sendrecv_each_reported_once_answered() {
    use proto::sdp::Direction;
    let mut ua = UserAgent::new(settings(false, false), 11);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);

    ua.hold(now).unwrap();
    let hold = only_request(&mut ua, Method::Invite);
    let body = std::str::from_utf8(&hold.body).unwrap();
    assert!(body.contains("a=sendonly\r\n"), "{body}");
    assert_eq!(hold.headers.call_id().unwrap(), invite.headers.call_id().unwrap());
    assert!(hold.headers.to().unwrap().tag() == Some("peer"), "inside the dialog");
    assert_eq!(hold.headers.cseq().unwrap().seq, invite.headers.cseq().unwrap().seq + 1);
    assert_eq!(parse(body).unwrap().origin.session_version, 2, "o= version goes up (RFC 3264 §8)");
    assert!(events(&mut ua).is_empty(), "nothing changes before the answer");

    feed(&mut ua, Message::Response(answer_reoffer(&hold)), PEER, now);
    let ack = only_request(&mut ua, Method::Ack);
    assert_eq!(ack.headers.cseq().unwrap().seq, hold.headers.cseq().unwrap().seq);
    match &events(&mut ua)[..] {
        [Event::MediaChanged { negotiated, muted: true }, Event::Held { by: Party::Local }] => {
            assert_eq!(negotiated.direction, Direction::SendOnly)
        }
        other => panic!("expected MediaChanged then Held, got {other:?}"),
    }

    ua.resume(now).unwrap();
    let resume = only_request(&mut ua, Method::Invite);
    assert!(std::str::from_utf8(&resume.body).unwrap().contains("a=sendrecv\r\n"));
    feed(&mut ua, Message::Response(answer_reoffer(&resume)), PEER, now);
    only_request(&mut ua, Method::Ack);
    match &events(&mut ua)[..] {
        [Event::MediaChanged { negotiated, muted: false }, Event::Resumed { by: Party::Local }] => {
            assert_eq!(negotiated.direction, Direction::SendRecv)
        }
        other => panic!("expected MediaChanged then Resumed, got {other:?}"),
    }
}

#[test]
fn remote_hold_is_answered_recvonly_then_inactive_and_the_200_repeats_until_the_ack() {
    use proto::sdp::Direction;
    let mut ua = UserAgent::new(settings(false, false), 12);
    let t0 = Instant::now();
    let invite = connected_outgoing(&mut ua, t0);

    let hold = peer_request(&invite, "INVITE", 2, "hold", &peer_offer(Direction::SendOnly, 2));
    feed(&mut ua, Message::Request(hold.clone()), PEER, t0);
    let ok = responses(&sent(&mut ua));
    assert_eq!(ok.iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    let body = std::str::from_utf8(&ok[0].body).unwrap();
    assert!(body.contains("a=recvonly\r\n"), "sendonly is answered recvonly: {body}");
    match &events(&mut ua)[..] {
        [Event::MediaChanged { negotiated, muted: false }, Event::Held { by: Party::Remote }] => {
            assert_eq!(negotiated.direction, Direction::RecvOnly)
        }
        other => panic!("expected MediaChanged then Held, got {other:?}"),
    }
    ua.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [200], "200 again after T1");
    let mut ack = peer_request(&invite, "ACK", 2, "ack2", "");
    ack.body = Bytes::new();
    feed(&mut ua, Message::Request(ack), PEER, t0 + Duration::from_millis(600));
    ua.handle_timeout(t0 + Duration::from_secs(2));
    assert!(responses(&sent(&mut ua)).is_empty(), "no retransmission after the ACK");

    let inactive = peer_request(&invite, "INVITE", 3, "inactive", &peer_offer(Direction::Inactive, 3));
    feed(&mut ua, Message::Request(inactive), PEER, t0 + Duration::from_secs(3));
    let ok = responses(&sent(&mut ua));
    assert!(std::str::from_utf8(&ok[0].body).unwrap().contains("a=inactive\r\n"), "inactive answers inactive");
    match &events(&mut ua)[..] {
        [Event::MediaChanged { negotiated, .. }] => assert_eq!(negotiated.direction, Direction::Inactive),
        other => panic!("still held: no second Held, got {other:?}"),
    }
}

#[test]
fn crossing_reinvites_get_491_and_ours_is_retried_after_the_back_off() {
    let mut ua = UserAgent::new(settings(false, false), 13);
    let t0 = Instant::now();
    let invite = connected_outgoing(&mut ua, t0);
    ua.hold(t0).unwrap();
    let ours = only_request(&mut ua, Method::Invite);

    let theirs = peer_request(&invite, "INVITE", 2, "glare", &peer_offer(proto::sdp::Direction::SendOnly, 2));
    feed(&mut ua, Message::Request(theirs), PEER, t0);
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [491], "glare (§14.2)");

    feed(&mut ua, Message::Response(ours.response(491)), PEER, t0);
    assert_eq!(requests(&sent(&mut ua), Method::Ack).len(), 1, "the layer ACKs the 491");
    assert!(events(&mut ua).is_empty());
    // We own the Call-ID, so we wait 2.1–4 s (§14.1) before trying again.
    let mut retried = None;
    while let Some(at) = ua.poll_timeout().filter(|at| *at <= t0 + Duration::from_secs(5)) {
        ua.handle_timeout(at);
        if let Some(again) = requests(&sent(&mut ua), Method::Invite).pop() {
            retried = Some((at, again));
            break;
        }
    }
    let (at, again) = retried.expect("the re-INVITE is retried");
    let waited = at - t0;
    assert!(waited >= Duration::from_millis(2100) && waited <= Duration::from_secs(4), "waited {waited:?}");
    assert!(std::str::from_utf8(&again.body).unwrap().contains("a=sendonly\r\n"));
    assert!(again.headers.cseq().unwrap().seq > ours.headers.cseq().unwrap().seq);
    feed(&mut ua, Message::Response(answer_reoffer(&again)), PEER, at);
    assert!(events(&mut ua).contains(&Event::Held { by: Party::Local }));
}

#[test]
fn dtmf_info_is_answered_200_and_reported_and_ours_go_one_at_a_time() {
    let mut ua = UserAgent::new(settings(false, false), 14);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    let mut info = peer_request(&invite, "INFO", 2, "info", "Signal=5\r\nDuration=160\r\n");
    info.headers.set(HeaderName::ContentType, "application/dtmf-relay");
    feed(&mut ua, Message::Request(info), PEER, now);
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    assert_eq!(events(&mut ua), [Event::DtmfInfo { digit: '5' }]);

    ua.send_dtmf_info("1#", now).unwrap();
    let first = only_request(&mut ua, Method::Info);
    assert_eq!(first.headers.get(HeaderName::ContentType), Some("application/dtmf-relay"));
    assert_eq!(&first.body[..], b"Signal=1\r\nDuration=160\r\n");
    feed(&mut ua, Message::Response(first.response(200)), PEER, now);
    let second = only_request(&mut ua, Method::Info);
    assert_eq!(&second.body[..], b"Signal=#\r\nDuration=160\r\n");
}

#[test]
fn a_reinvite_without_an_offer_gets_ours_in_the_200_and_its_ack_brings_the_answer() {
    use proto::sdp::Direction;
    let mut ua = UserAgent::new(settings(false, false), 15);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    let mut refresh = peer_request(&invite, "INVITE", 2, "refresh", "");
    refresh.headers.remove_first(HeaderName::ContentType);
    feed(&mut ua, Message::Request(refresh), PEER, now);
    let ok = responses(&sent(&mut ua));
    assert_eq!(ok.iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    let offer = parse(std::str::from_utf8(&ok[0].body).unwrap()).unwrap();
    assert_eq!(offer.origin.session_version, 2, "a new version of our description");
    assert!(events(&mut ua).is_empty(), "nothing agreed before the ACK");

    let mut peer = LocalMedia::new(addr(PEER).ip(), 50_000);
    peer.direction = Direction::Inactive;
    let (answer, _) = create_answer(&offer, &peer, 9, 2).unwrap();
    let ack = peer_request(&invite, "ACK", 2, "ack-refresh", &answer.to_string());
    feed(&mut ua, Message::Request(ack), PEER, now);
    match &events(&mut ua)[..] {
        [Event::MediaChanged { negotiated, .. }, Event::Held { by: Party::Remote }] => {
            assert_eq!(negotiated.direction, Direction::Inactive)
        }
        other => panic!("expected MediaChanged then Held, got {other:?}"),
    }
    assert!(sent(&mut ua).is_empty(), "the call goes on");
}

#[test]
fn options_and_unknown_requests_outside_a_dialog_are_answered_with_a_to_tag() {
    // baresip's `options` command sends exactly this through the registrar (RFC 3261 §11).
    let mut ua = UserAgent::new(settings(false, true), 8);
    let now = Instant::now();
    for (method, status) in [("OPTIONS", 200), ("MESSAGE", 501)] {
        let text = format!(
            "{method} sip:1001@{PHONE} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bK{method}\r\nMax-Forwards: 70\r\n\
             From: <sip:1002@voip.test>;tag=asker\r\nTo: <sip:1001@voip.test>\r\nCall-ID: {method}-1\r\n\
             CSeq: 1 {method}\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
        );
        feed(&mut ua, Message::parse(text.as_bytes()).unwrap(), PEER, now);
        let answered = responses(&sent(&mut ua));
        assert_eq!(answered.iter().map(|r| r.status).collect::<Vec<_>>(), [status], "{method}");
        assert!(answered[0].headers.to().unwrap().tag().is_some(), "{method}: {:?}", answered[0].headers.to());
    }
}

const TARGET: &str = "127.0.0.1:5090";

/// The peer's NOTIFY for our REFER on the dialog of our outgoing `invite`.
fn peer_notify(invite: &Request, cseq: u32, fragment: &str, state: &str) -> Request {
    let mut notify = peer_request(invite, "NOTIFY", cseq, &format!("notify{cseq}"), fragment);
    notify.headers.set(HeaderName::ContentType, "message/sipfrag;version=2.0");
    notify.headers.push(HeaderName::Event, "refer");
    notify.headers.push_raw(proto::sip::Name::Other("Subscription-State".into()), state);
    notify
}

fn statuses_sent(ua: &mut UserAgent) -> Vec<u16> {
    responses(&sent(ua)).iter().map(|r| r.status).collect()
}

#[test]
fn transfer_sends_refer_and_a_final_200_sipfrag_ends_the_call_with_bye_transferred() {
    let mut ua = UserAgent::new(settings(false, false), 16);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    let target = proto::sip::Uri::parse(&format!("sip:1003@{TARGET}")).unwrap();
    ua.transfer(&target, now).unwrap();
    assert_eq!(ua.transfer(&target, now), Err(CommandError::Transferring), "one transfer at a time");
    let refer = only_request(&mut ua, Method::Refer);
    assert_eq!(refer.headers.get(HeaderName::ReferTo), Some(format!("<sip:1003@{TARGET}>").as_str()));
    assert_eq!(refer.headers.get(HeaderName::ReferredBy), Some("<sip:1001@voip.test>"));
    assert_eq!(refer.headers.call_id().unwrap(), invite.headers.call_id().unwrap());
    assert_eq!(refer.headers.to().unwrap().tag(), Some("peer"), "inside the dialog");
    assert_eq!(refer.headers.cseq().unwrap().seq, invite.headers.cseq().unwrap().seq + 1);
    assert!(refer.headers.get(HeaderName::Contact).is_some(), "REFER carries our Contact (RFC 3515 §2.4.1)");

    feed(&mut ua, Message::Response(refer.response(202)), PEER, now);
    assert!(events(&mut ua).is_empty(), "the 202 is no news yet");
    let trying = peer_notify(&invite, 2, "SIP/2.0 100 Trying\r\n", "active;expires=60");
    feed(&mut ua, Message::Request(trying), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [200]);
    assert_eq!(events(&mut ua), [Event::TransferProgress { status: 100 }]);

    let ok = peer_notify(&invite, 3, "SIP/2.0 200 OK\r\n", "terminated;reason=noresource");
    feed(&mut ua, Message::Request(ok), PEER, now);
    let out = sent(&mut ua);
    assert_eq!(responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    let bye = requests(&out, Method::Bye);
    assert_eq!(bye.len(), 1, "the transferor hangs up once the transfer succeeded: {out:#?}");
    assert_eq!(events(&mut ua), [Event::TransferProgress { status: 200 }]);
    feed(&mut ua, Message::Response(bye[0].response(200)), PEER, now);
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Transferred }]);
    assert!(ua.is_idle());
}

#[test]
fn a_refused_refer_or_a_failed_sipfrag_leaves_the_call_up() {
    let mut ua = UserAgent::new(settings(false, false), 17);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    let target = proto::sip::Uri::parse(&format!("sip:1003@{TARGET}")).unwrap();
    ua.transfer(&target, now).unwrap();
    let refer = only_request(&mut ua, Method::Refer);
    feed(&mut ua, Message::Response(refer.response(603)), PEER, now);
    assert_eq!(events(&mut ua), [Event::TransferFailed { status: 603 }]);
    assert!(sent(&mut ua).is_empty(), "no BYE: the call stays up");

    ua.transfer(&target, now).unwrap();
    let refer = only_request(&mut ua, Method::Refer);
    feed(&mut ua, Message::Response(refer.response(202)), PEER, now);
    let busy = peer_notify(&invite, 2, "SIP/2.0 486 Busy Here\r\n", "terminated;reason=noresource");
    feed(&mut ua, Message::Request(busy), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [200]);
    assert_eq!(events(&mut ua), [Event::TransferFailed { status: 486 }]);
    // The call goes on: it can still be put on hold.
    ua.hold(now).unwrap();
    assert_eq!(only_request(&mut ua, Method::Invite).headers.call_id().unwrap(), invite.headers.call_id().unwrap());
}

#[test]
fn a_refer_challenged_407_is_sent_again_with_credentials() {
    let mut rng = StdRng::seed_from_u64(18);
    let mut server = digest_server(&mut rng);
    let mut ua = UserAgent::new(settings(false, false), 18);
    let now = Instant::now();
    connected_outgoing(&mut ua, now);
    ua.transfer(&proto::sip::Uri::parse(&format!("sip:1003@{TARGET}")).unwrap(), now).unwrap();
    let first = only_request(&mut ua, Method::Refer);
    feed(&mut ua, challenge(&first, &mut server, 407, &mut rng), PEER, now);
    let second = only_request(&mut ua, Method::Refer);
    assert_eq!(second.headers.cseq().unwrap().seq, first.headers.cseq().unwrap().seq + 1);
    assert_eq!(second.headers.get(HeaderName::ReferTo), first.headers.get(HeaderName::ReferTo));
    let creds = Credentials::parse(second.headers.get(HeaderName::ProxyAuthorization).unwrap()).unwrap();
    assert_eq!(server.verify(&creds, "REFER", Some("pw1001"), 1_001), Verdict::Ok);
    feed(&mut ua, Message::Response(second.response(202)), PEER, now);
    assert!(events(&mut ua).is_empty(), "accepted, no failure");
}

/// The peer's REFER to `refer_to` on the dialog of our outgoing `invite`.
fn peer_refer(invite: &Request, cseq: u32, refer_to: Option<&str>) -> Request {
    let mut refer = peer_request(invite, "REFER", cseq, &format!("refer{cseq}"), "");
    refer.headers.remove_first(HeaderName::ContentType);
    if let Some(refer_to) = refer_to {
        refer.headers.push(HeaderName::ReferTo, refer_to);
        refer.headers.push(HeaderName::ReferredBy, "<sip:1002@voip.test>");
    }
    refer
}

/// The NOTIFYs among `out`, with their sipfrag body and Subscription-State.
fn notifies(out: &[(Message, SocketAddr)]) -> Vec<(String, String, SocketAddr)> {
    out.iter()
        .filter_map(|(m, to)| match m {
            Message::Request(r) if r.method == Method::Notify => {
                assert_eq!(r.headers.get(HeaderName::ContentType), Some("message/sipfrag;version=2.0"));
                let state = r.headers.get_named("Subscription-State").unwrap().to_owned();
                Some((String::from_utf8(r.body.to_vec()).unwrap(), state, *to))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_refer_is_accepted_202_notified_100_and_the_target_called_then_notified_200_once_it_answers() {
    let mut ua = UserAgent::new(settings(false, false), 19);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    let refer = peer_refer(&invite, 2, Some(&format!("<sip:1003@{TARGET}>")));
    feed(&mut ua, Message::Request(refer), PEER, now);
    let out = sent(&mut ua);
    assert_eq!(responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(), [202]);
    let trying = requests(&out, Method::Notify).remove(0);
    assert_eq!(trying.headers.get(HeaderName::Event), Some("refer;id=2"));
    assert_eq!(trying.headers.call_id().unwrap(), invite.headers.call_id().unwrap(), "on the transferor's dialog");
    assert_eq!(
        notifies(&out),
        [("SIP/2.0 100 Trying\r\n".into(), "active;expires=180".into(), addr(PEER))],
        "NOTIFY 100 at once (RFC 3515 §2.4.4)"
    );
    let new_call = requests(&out, Method::Invite);
    assert_eq!(new_call.len(), 1, "a new call to the target: {out:#?}");
    let new_call = new_call.into_iter().next().unwrap();
    assert_eq!(new_call.uri.to_string(), format!("sip:1003@{TARGET}"));
    assert_ne!(new_call.headers.call_id().unwrap(), invite.headers.call_id().unwrap());
    assert_eq!(new_call.headers.get(HeaderName::ReferredBy), Some("<sip:1002@voip.test>"), "RFC 3892 §3");
    assert!(
        out.iter().any(|(m, to)| matches!(m, Message::Request(r) if r.method == Method::Invite) && *to == addr(TARGET))
    );
    assert_eq!(
        events(&mut ua),
        [Event::Referred { target: format!("sip:1003@{TARGET}") }, Event::TransferProgress { status: 100 }]
    );
    feed(&mut ua, Message::Response(trying.response(200)), PEER, now);
    assert!(sent(&mut ua).is_empty(), "no NOTIFY was waiting behind the 100");

    feed(&mut ua, Message::Response(answer_ok(&new_call, "target")), TARGET, now);
    let out = sent(&mut ua);
    assert_eq!(requests(&out, Method::Ack).len(), 1);
    assert_eq!(
        notifies(&out),
        [("SIP/2.0 200 OK\r\n".into(), "terminated;reason=noresource".into(), addr(PEER))],
        "the final NOTIFY ends the subscription"
    );
    match &events(&mut ua)[..] {
        [Event::Answered { .. }, Event::TransferProgress { status: 200 }] => {}
        other => panic!("expected Answered then TransferProgress 200, got {other:?}"),
    }

    // The transferor hangs up its leg: answered, and the new call goes on.
    let bye = peer_request(&invite, "BYE", 4, "bye-old", "");
    feed(&mut ua, Message::Request(bye), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [200]);
    assert_eq!(events(&mut ua), [Event::OldLegHungUp { reason: HangupReason::Remote }], "the new call goes on");
    ua.hangup(now).unwrap();
    let bye = only_request(&mut ua, Method::Bye);
    assert_eq!(bye.headers.call_id().unwrap(), new_call.headers.call_id().unwrap());
    feed(&mut ua, Message::Response(bye.response(200)), TARGET, now);
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Local }]);
    assert!(ua.is_idle());
}

#[test]
fn a_transfer_target_that_refuses_is_notified_and_the_old_call_comes_back() {
    let mut ua = UserAgent::new(settings(false, false), 20);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    feed(&mut ua, Message::Request(peer_refer(&invite, 2, Some(&format!("sip:1003@{TARGET}")))), PEER, now);
    let out = sent(&mut ua);
    let (trying, new_call) = (requests(&out, Method::Notify).remove(0), requests(&out, Method::Invite).remove(0));
    feed(&mut ua, Message::Response(trying.response(200)), PEER, now);
    events(&mut ua);
    feed(&mut ua, Message::Response(reply(&new_call, 486, "target")), TARGET, now);
    let out = sent(&mut ua);
    assert_eq!(requests(&out, Method::Ack).len(), 1, "the layer ACKs the 486");
    assert_eq!(
        notifies(&out),
        [("SIP/2.0 486 Busy Here\r\n".into(), "terminated;reason=noresource".into(), addr(PEER))]
    );
    assert_eq!(events(&mut ua), [Event::TransferFailed { status: 486 }], "no HungUp: the old call is back");
    ua.hold(now).unwrap();
    let reinvite = only_request(&mut ua, Method::Invite);
    assert_eq!(reinvite.headers.call_id().unwrap(), invite.headers.call_id().unwrap());
}

#[test]
fn a_refer_without_refer_to_gets_400_and_one_outside_a_call_403_or_481() {
    let mut ua = UserAgent::new(settings(false, false), 21);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    feed(&mut ua, Message::Request(peer_refer(&invite, 2, None)), PEER, now);
    let out = sent(&mut ua);
    assert_eq!(responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(), [400]);
    assert!(requests(&out, Method::Notify).is_empty() && requests(&out, Method::Invite).is_empty());
    assert!(events(&mut ua).is_empty());

    // In a dialog we do not have: 481.
    let mut stray = peer_refer(&invite, 3, Some("<sip:1003@voip.test>"));
    stray.headers.set(HeaderName::CallId, "no-such-call");
    feed(&mut ua, Message::Request(stray.clone()), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [481]);
    // Outside any dialog: we transfer only calls, 403.
    let to = stray.headers.get(HeaderName::To).unwrap().split(";tag=").next().unwrap().to_owned();
    stray.headers.set(HeaderName::To, to);
    stray.headers.set(HeaderName::Via, format!("SIP/2.0/UDP {PEER};branch=z9hG4bKoutside"));
    feed(&mut ua, Message::Request(stray), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [403]);
}

#[test]
fn a_transferor_that_does_not_hang_up_gets_our_bye_after_64_t1() {
    let mut ua = UserAgent::new(settings(false, false), 22);
    let t0 = Instant::now();
    let invite = connected_outgoing(&mut ua, t0);
    feed(&mut ua, Message::Request(peer_refer(&invite, 2, Some(&format!("sip:1003@{TARGET}")))), PEER, t0);
    let out = sent(&mut ua);
    let (trying, new_call) = (requests(&out, Method::Notify).remove(0), requests(&out, Method::Invite).remove(0));
    feed(&mut ua, Message::Response(trying.response(200)), PEER, t0);
    feed(&mut ua, Message::Response(answer_ok(&new_call, "target")), TARGET, t0);
    sent(&mut ua);
    events(&mut ua);
    let mut bye = None;
    while let Some(at) = ua.poll_timeout().filter(|at| *at <= t0 + Duration::from_secs(40)) {
        ua.handle_timeout(at);
        if let Some(b) = requests(&sent(&mut ua), Method::Bye).pop() {
            bye = Some((at, b));
            break;
        }
    }
    let (at, bye) = bye.expect("we end the transferor's leg ourselves");
    assert_eq!(at, t0 + Duration::from_secs(32), "after 64·T1");
    assert_eq!(bye.headers.call_id().unwrap(), invite.headers.call_id().unwrap(), "on the old dialog");
    feed(&mut ua, Message::Response(bye.response(200)), PEER, at);
    assert_eq!(events(&mut ua), [Event::OldLegHungUp { reason: HangupReason::Local }], "the new call goes on");
    assert!(!ua.is_idle());
}

#[test]
fn a_referral_with_no_final_notify_fails_when_its_subscription_expires() {
    let mut ua = UserAgent::new(settings(false, false), 23);
    let t0 = Instant::now();
    let invite = connected_outgoing(&mut ua, t0);
    ua.transfer(&proto::sip::Uri::parse(&format!("sip:1003@{TARGET}")).unwrap(), t0).unwrap();
    let refer = only_request(&mut ua, Method::Refer);
    feed(&mut ua, Message::Response(refer.response(202)), PEER, t0);
    let trying = peer_notify(&invite, 2, "SIP/2.0 100 Trying\r\n", "active;expires=10");
    feed(&mut ua, Message::Request(trying), PEER, t0);
    sent(&mut ua);
    assert_eq!(events(&mut ua), [Event::TransferProgress { status: 100 }]);
    let mut failed = None;
    while let Some(at) = ua.poll_timeout().filter(|at| *at <= t0 + Duration::from_secs(20)) {
        ua.handle_timeout(at);
        sent(&mut ua);
        if let Some(event) = ua.poll_event() {
            failed = Some((at, event));
            break;
        }
    }
    assert_eq!(failed, Some((t0 + Duration::from_secs(10), Event::TransferFailed { status: 408 })), "per expires=10");
    ua.hold(t0 + Duration::from_secs(10)).unwrap();
    assert_eq!(only_request(&mut ua, Method::Invite).headers.call_id().unwrap(), invite.headers.call_id().unwrap());
}

/// The peer's REFER to the transfer target on our outgoing call, and the NOTIFY 100 and INVITE
/// to the target that follow it.
fn referred_to_target(ua: &mut UserAgent, invite: &Request, now: Instant) -> (Request, Request) {
    feed(ua, Message::Request(peer_refer(invite, 2, Some(&format!("<sip:1003@{TARGET}>")))), PEER, now);
    let out = sent(ua);
    assert_eq!(responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(), [202]);
    events(ua);
    (requests(&out, Method::Notify).remove(0), requests(&out, Method::Invite).remove(0))
}

#[test]
fn the_final_notify_waits_for_the_answer_to_the_100_so_the_two_cannot_cross() {
    let mut ua = UserAgent::new(settings(false, false), 24);
    let t0 = Instant::now();
    let invite = connected_outgoing(&mut ua, t0);
    let (trying, new_call) = referred_to_target(&mut ua, &invite, t0);

    // The target answers before the transferor has answered the NOTIFY 100.
    feed(&mut ua, Message::Response(answer_ok(&new_call, "target")), TARGET, t0);
    let out = sent(&mut ua);
    assert_eq!(requests(&out, Method::Ack).len(), 1);
    assert!(notifies(&out).is_empty(), "no NOTIFY while the previous one is unanswered: {out:#?}");
    match &events(&mut ua)[..] {
        [Event::Answered { .. }, Event::TransferProgress { status: 200 }] => {}
        other => panic!("expected Answered then TransferProgress 200, got {other:?}"),
    }
    let t1 = t0 + Duration::from_millis(500);
    ua.handle_timeout(t1);
    let again: Vec<_> = notifies(&sent(&mut ua)).into_iter().map(|(body, ..)| body).collect();
    assert_eq!(again, ["SIP/2.0 100 Trying\r\n"], "Timer E resends the 100 alone");

    feed(&mut ua, Message::Response(trying.response(200)), PEER, t1);
    let out = sent(&mut ua);
    assert_eq!(notifies(&out), [("SIP/2.0 200 OK\r\n".into(), "terminated;reason=noresource".into(), addr(PEER))]);
    let last = requests(&out, Method::Notify).remove(0);
    assert_eq!(last.headers.cseq().unwrap().seq, trying.headers.cseq().unwrap().seq + 1);
    assert_eq!(last.headers.get(HeaderName::Event), Some("refer;id=2"));
    feed(&mut ua, Message::Response(last.response(200)), PEER, t1);
    assert!(sent(&mut ua).is_empty() && events(&mut ua).is_empty());
}

#[test]
fn a_late_100_notify_crossing_the_final_200_is_answered_200_and_ignored() {
    let mut ua = UserAgent::new(settings(false, false), 25);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    ua.transfer(&proto::sip::Uri::parse(&format!("sip:1003@{TARGET}")).unwrap(), now).unwrap();
    let refer = only_request(&mut ua, Method::Refer);
    feed(&mut ua, Message::Response(refer.response(202)), PEER, now);
    let event = format!("refer;id={}", refer.headers.cseq().unwrap().seq);
    let notify = |cseq, fragment, state| {
        let mut n = peer_notify(&invite, cseq, fragment, state);
        n.headers.set(HeaderName::Event, event.as_str());
        n
    };

    // UDP delivered the transferee's NOTIFY 200 (CSeq 3) before its NOTIFY 100 (CSeq 2).
    feed(&mut ua, Message::Request(notify(3, "SIP/2.0 200 OK\r\n", "terminated;reason=noresource")), PEER, now);
    let out = sent(&mut ua);
    assert_eq!(responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    let bye = requests(&out, Method::Bye).remove(0);
    assert_eq!(events(&mut ua), [Event::TransferProgress { status: 200 }]);
    feed(&mut ua, Message::Request(notify(2, "SIP/2.0 100 Trying\r\n", "active;expires=60")), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [200], "old news, not a CSeq out of order (500)");
    // In order, but after the final one: old news too.
    feed(&mut ua, Message::Request(notify(4, "SIP/2.0 180 Ringing\r\n", "active;expires=60")), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [200]);
    assert!(events(&mut ua).is_empty(), "neither is reported");
    // A subscription we never made is still refused.
    let mut foreign = notify(5, "SIP/2.0 100 Trying\r\n", "active;expires=60");
    foreign.headers.set(HeaderName::Event, "refer;id=999999999");
    feed(&mut ua, Message::Request(foreign), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [481]);

    feed(&mut ua, Message::Response(bye.response(200)), PEER, now);
    assert_eq!(events(&mut ua), [Event::HungUp { reason: HangupReason::Transferred }]);
}

#[test]
fn a_transferor_that_hangs_up_before_the_target_answers_ends_the_old_leg_at_once_and_gets_no_more_notify() {
    let mut ua = UserAgent::new(settings(false, false), 26);
    let t0 = Instant::now();
    let invite = connected_outgoing(&mut ua, t0);
    let (trying, new_call) = referred_to_target(&mut ua, &invite, t0);
    let old_call_id = invite.headers.call_id().unwrap().to_owned();

    feed(&mut ua, Message::Request(peer_request(&invite, "BYE", 3, "bye-early", "")), PEER, t0);
    assert_eq!(statuses_sent(&mut ua), [200]);
    assert_eq!(events(&mut ua), [Event::OldLegHungUp { reason: HangupReason::Remote }], "stop its media now");
    assert!(!ua.is_idle(), "the call to the target goes on");
    // The answer to the NOTIFY 100 comes after the BYE, then the target answers.
    feed(&mut ua, Message::Response(trying.response(200)), PEER, t0);
    feed(&mut ua, Message::Response(answer_ok(&new_call, "target")), TARGET, t0);
    let out = sent(&mut ua);
    assert_eq!(requests(&out, Method::Ack).len(), 1);
    assert!(notifies(&out).is_empty(), "no NOTIFY into the ended dialog: {out:#?}");
    assert!(matches!(events(&mut ua)[..], [Event::Answered { .. }]));
    while let Some(at) = ua.poll_timeout().filter(|at| *at <= t0 + Duration::from_secs(40)) {
        ua.handle_timeout(at);
        let old = sent(&mut ua).into_iter().filter(|(m, _)| match m {
            Message::Request(r) => r.headers.call_id().is_ok_and(|id| id == old_call_id),
            Message::Response(_) => false,
        });
        assert_eq!(old.count(), 0, "nothing more on the old dialog at {:?}", at - t0);
    }
    assert!(events(&mut ua).is_empty(), "the new call goes on");
    ua.hangup(t0).unwrap();
    let bye = only_request(&mut ua, Method::Bye);
    assert_eq!(bye.headers.call_id().unwrap(), new_call.headers.call_id().unwrap());
}

#[test]
fn a_final_notify_still_waiting_when_the_transferor_hangs_up_is_never_sent() {
    let mut ua = UserAgent::new(settings(false, false), 27);
    let now = Instant::now();
    let invite = connected_outgoing(&mut ua, now);
    let (trying, new_call) = referred_to_target(&mut ua, &invite, now);
    feed(&mut ua, Message::Response(answer_ok(&new_call, "target")), TARGET, now);
    assert!(notifies(&sent(&mut ua)).is_empty(), "the final NOTIFY waits for the 100's answer");
    events(&mut ua);
    feed(&mut ua, Message::Request(peer_request(&invite, "BYE", 3, "bye-crossing", "")), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [200]);
    assert_eq!(events(&mut ua), [Event::OldLegHungUp { reason: HangupReason::Remote }]);
    feed(&mut ua, Message::Response(trying.response(200)), PEER, now);
    assert!(sent(&mut ua).is_empty(), "the subscription ended with the dialog");
}

#[test]
fn a_callee_referred_by_its_caller_notifies_on_the_callers_dialog_and_calls_the_target() {
    let mut ua = UserAgent::new(settings(false, true), 28);
    let now = Instant::now();
    feed(&mut ua, Message::Request(incoming_invite(vec![proto::sdp::Codec::pcmu()])), PEER, now);
    let ok = responses(&sent(&mut ua)).into_iter().find(|r| r.status == 200).unwrap();
    assert!(matches!(events(&mut ua)[..], [Event::Incoming { .. }, Event::Answered { .. }]));
    let to = ok.headers.get(HeaderName::To).unwrap().to_owned();
    let our_tag = ok.headers.to().unwrap().tag().unwrap().to_owned();
    let caller = |method: &str, cseq: u32, extra: &str| {
        let text = format!(
            "{method} sip:1001@{PHONE} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKcaller{cseq}{method}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1002@voip.test>;tag=caller\r\nTo: {to}\r\nCall-ID: in-1\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:1002@{PEER}>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).unwrap()
    };
    feed(&mut ua, caller("ACK", 1, ""), PEER, now);
    let refer_to = format!("Refer-To: <sip:1003@{TARGET}>\r\nReferred-By: <sip:1002@voip.test>\r\n");
    feed(&mut ua, caller("REFER", 2, &refer_to), PEER, now);
    let out = sent(&mut ua);
    assert_eq!(responses(&out).iter().map(|r| r.status).collect::<Vec<_>>(), [202]);
    let trying = requests(&out, Method::Notify).remove(0);
    assert_eq!(notifies(&out), [("SIP/2.0 100 Trying\r\n".into(), "active;expires=180".into(), addr(PEER))]);
    assert_eq!(trying.uri.to_string(), format!("sip:1002@{PEER}"), "to the caller's Contact");
    assert_eq!(trying.headers.call_id().unwrap(), "in-1");
    assert_eq!(trying.headers.from().unwrap().tag(), Some(our_tag.as_str()), "our tag is the local one");
    assert_eq!(trying.headers.to().unwrap().tag(), Some("caller"));
    assert_eq!(trying.headers.get(HeaderName::Event), Some("refer;id=2"));
    let new_call = requests(&out, Method::Invite).remove(0);
    assert_eq!(new_call.uri.to_string(), format!("sip:1003@{TARGET}"));
    assert_eq!(new_call.headers.get(HeaderName::ReferredBy), Some("<sip:1002@voip.test>"));
    assert_eq!(
        events(&mut ua),
        [Event::Referred { target: format!("sip:1003@{TARGET}") }, Event::TransferProgress { status: 100 }]
    );

    feed(&mut ua, Message::Response(trying.response(200)), PEER, now);
    feed(&mut ua, Message::Response(answer_ok(&new_call, "target")), TARGET, now);
    let out = sent(&mut ua);
    assert_eq!(notifies(&out), [("SIP/2.0 200 OK\r\n".into(), "terminated;reason=noresource".into(), addr(PEER))]);
    let last = requests(&out, Method::Notify).remove(0);
    assert_eq!(last.headers.call_id().unwrap(), "in-1");
    assert!(last.headers.cseq().unwrap().seq > trying.headers.cseq().unwrap().seq);
    assert!(matches!(events(&mut ua)[..], [Event::Answered { .. }, Event::TransferProgress { status: 200 }]));

    feed(&mut ua, Message::Response(last.response(200)), PEER, now);
    feed(&mut ua, caller("BYE", 3, ""), PEER, now);
    assert_eq!(statuses_sent(&mut ua), [200]);
    assert_eq!(events(&mut ua), [Event::OldLegHungUp { reason: HangupReason::Remote }]);
    assert!(!ua.is_idle(), "the call to the target goes on");
}

#[test]
fn over_tls_every_request_names_and_uses_tls() {
    let mut ua = UserAgent::new(Settings { transport: Transport::Tls, ..settings(true, false) }, 7);
    assert_eq!(ua.transport(), Transport::Tls);
    let now = Instant::now();
    ua.register(now).unwrap();
    let transmit = ua.poll_transmit().unwrap();
    assert_eq!(transmit.target, Target { transport: Transport::Tls, addr: addr(REGISTRAR) });
    let Message::Request(register) = Message::parse(&transmit.data).unwrap() else { panic!("not a request") };
    assert!(register.headers.get(HeaderName::Via).unwrap().starts_with("SIP/2.0/TLS "));
    let contact = register.headers.get(HeaderName::Contact).unwrap();
    assert!(contact.contains(";transport=tls"), "{contact}");

    ua.dial(&Uri::parse("sip:1002@voip.test").unwrap(), now).unwrap();
    let invite = ua.poll_transmit().unwrap();
    assert_eq!(invite.target.transport, Transport::Tls);
}

/// A phone with this SRTP policy, its signalling secure or not, keys from a seeded source.
fn srtp_phone(policy: SrtpPolicy, secure_signalling: bool, auto_answer: bool, seed: u64) -> UserAgent {
    let transport = if secure_signalling { Transport::Tls } else { Transport::Udp };
    let settings = Settings { srtp: policy, transport, ..settings(false, auto_answer) };
    UserAgent::new(settings, seed).with_key_rng(StdRng::seed_from_u64(seed + 1000))
}

/// The peer's media, with SDES keys when `srtp`.
fn peer_media(srtp: bool) -> LocalMedia {
    let mut media = LocalMedia::new(addr(PEER).ip(), 50_000);
    if srtp {
        media.crypto = proto::sdp::CryptoAttribute::offer_set(&mut StdRng::seed_from_u64(99));
    }
    media
}

/// An INVITE from the peer offering `media`.
fn incoming_invite_of(media: &LocalMedia) -> Request {
    let mut invite = incoming_invite(vec![proto::sdp::Codec::pcmu()]);
    invite.body = Bytes::from(create_offer(media, 1, 1).to_string());
    invite
}

fn crypto_lines(body: &[u8]) -> Vec<proto::sdp::CryptoAttribute> {
    let sdp = parse(std::str::from_utf8(body).unwrap()).unwrap();
    sdp.media.iter().flat_map(|m| m.crypto_attributes()).map(Result::unwrap).collect()
}

#[test]
fn over_tls_our_offer_is_savp_with_a_line_per_suite_and_the_answer_picks_one() {
    let mut ua = srtp_phone(SrtpPolicy::Offer, true, false, 20);
    let now = Instant::now();
    ua.dial(&proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap(), now).unwrap();
    let invite = only_request(&mut ua, Method::Invite);
    let body = std::str::from_utf8(&invite.body).unwrap();
    assert!(body.contains("m=audio 40000 RTP/SAVP "), "{body}");
    let offered = crypto_lines(&invite.body);
    let suites: Vec<_> = offered.iter().map(|l| (l.tag, l.suite.name())).collect();
    assert_eq!(suites, [(1, "AES_CM_128_HMAC_SHA1_80"), (2, "AES_CM_128_HMAC_SHA1_32")]);

    let offer = parse(body).unwrap();
    let (answer, _) = create_answer(&offer, &peer_media(true), 9, 1).unwrap();
    let mut ok = reply(&invite, 200, "peer");
    ok.headers.push(HeaderName::Contact, format!("<sip:1002@{PEER}>"));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = Bytes::from(answer.to_string());
    feed(&mut ua, Message::Response(ok.clone()), PEER, now);
    only_request(&mut ua, Method::Ack);
    let answered = crypto_lines(&ok.body).remove(0);
    match &events(&mut ua)[..] {
        [Event::Answered { negotiated }] => {
            let keys = negotiated.srtp.as_ref().expect("SRTP agreed");
            assert_eq!(keys.profile.name(), "AES_CM_128_HMAC_SHA1_80");
            assert_eq!((&keys.send, &keys.receive), (&offered[0].key, &answered.key));
        }
        other => panic!("expected Answered, got {other:?}"),
    }

    // Hold re-offers the same lines: our key is kept.
    ua.hold(now).unwrap();
    let hold = only_request(&mut ua, Method::Invite);
    assert_eq!(crypto_lines(&hold.body), offered);
}

#[test]
fn under_require_a_plain_offer_gets_488_and_a_srtp_one_our_own_key_under_its_tag() {
    let mut ua = srtp_phone(SrtpPolicy::Require, true, true, 21);
    feed(&mut ua, Message::Request(incoming_invite_of(&peer_media(false))), PEER, Instant::now());
    assert_eq!(responses(&sent(&mut ua)).iter().map(|r| r.status).collect::<Vec<_>>(), [488]);
    assert!(events(&mut ua).is_empty());

    let mut ua = srtp_phone(SrtpPolicy::Require, true, true, 22);
    let theirs = peer_media(true);
    feed(&mut ua, Message::Request(incoming_invite_of(&theirs)), PEER, Instant::now());
    let out = responses(&sent(&mut ua));
    assert_eq!(out.iter().map(|r| r.status).collect::<Vec<_>>(), [180, 200]);
    let body = std::str::from_utf8(&out[1].body).unwrap();
    assert!(body.contains("m=audio 40000 RTP/SAVP "), "{body}");
    let ours = crypto_lines(&out[1].body);
    assert_eq!(ours.len(), 1, "one line in the answer");
    assert_eq!((ours[0].tag, ours[0].suite), (1, theirs.crypto[0].suite));
    assert_ne!(ours[0].key, theirs.crypto[0].key, "our own key");
    match &events(&mut ua)[..] {
        [Event::Incoming { .. }, Event::Answered { negotiated }] => {
            let keys = negotiated.srtp.as_ref().unwrap();
            assert_eq!((&keys.send, &keys.receive), (&ours[0].key, &theirs.crypto[0].key));
        }
        other => panic!("expected Incoming then Answered, got {other:?}"),
    }
}

#[test]
fn under_offer_a_plain_offer_is_answered_plain() {
    let mut ua = srtp_phone(SrtpPolicy::Offer, true, true, 23);
    feed(&mut ua, Message::Request(incoming_invite_of(&peer_media(false))), PEER, Instant::now());
    let out = responses(&sent(&mut ua));
    assert_eq!(out.iter().map(|r| r.status).collect::<Vec<_>>(), [180, 200]);
    assert!(std::str::from_utf8(&out[1].body).unwrap().contains("RTP/AVP"));
    assert!(crypto_lines(&out[1].body).is_empty());
}

#[test]
fn without_tls_no_key_ever_goes_into_our_sdp() {
    let now = Instant::now();
    let target = proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap();
    for (seed, policy) in [(30, SrtpPolicy::Off), (31, SrtpPolicy::Offer), (32, SrtpPolicy::Require)] {
        let mut everything = Vec::new();
        // Our offer, hold re-offer, and answers to plain and SRTP offers.
        let mut caller = srtp_phone(policy, false, false, seed);
        if policy == SrtpPolicy::Require {
            assert_eq!(caller.dial(&target, now), Err(CommandError::SrtpNeedsTls));
        } else {
            caller.dial(&target, now).unwrap();
            let invite = only_request(&mut caller, Method::Invite);
            assert!(std::str::from_utf8(&invite.body).unwrap().contains("RTP/AVP"));
            feed(&mut caller, Message::Response(answer_ok(&invite, "peer")), PEER, now);
            caller.hold(now).unwrap();
            everything.push(invite.encode());
        }
        everything.extend(sent(&mut caller).iter().map(|(m, _)| m.encode()));
        for srtp_offer in [false, true] {
            let mut callee = srtp_phone(policy, false, true, seed + 10);
            feed(&mut callee, Message::Request(incoming_invite_of(&peer_media(srtp_offer))), PEER, now);
            let out = sent(&mut callee);
            let statuses: Vec<u16> = responses(&out).iter().map(|r| r.status).collect();
            let expected: &[u16] = if srtp_offer || policy == SrtpPolicy::Require { &[488] } else { &[180, 200] };
            assert_eq!(statuses, expected, "{policy} answering an SRTP offer: {srtp_offer}");
            everything.extend(out.iter().map(|(m, _)| m.encode()));
        }
        assert!(!everything.is_empty());
        for message in &everything {
            let text = String::from_utf8_lossy(message);
            assert!(!text.contains("a=crypto") && !text.contains("RTP/SAVP"), "{policy}: {text}");
        }
    }
}

#[test]
fn a_peer_reinvite_with_a_new_key_is_answered_with_our_key_kept() {
    let mut ua = srtp_phone(SrtpPolicy::Require, true, false, 24);
    let now = Instant::now();
    ua.dial(&proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap(), now).unwrap();
    let invite = only_request(&mut ua, Method::Invite);
    let offered = crypto_lines(&invite.body);
    let offer = parse(std::str::from_utf8(&invite.body).unwrap()).unwrap();
    let (answer, _) = create_answer(&offer, &peer_media(true), 9, 1).unwrap();
    let mut ok = reply(&invite, 200, "peer");
    ok.headers.push(HeaderName::Contact, format!("<sip:1002@{PEER}>"));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = Bytes::from(answer.to_string());
    feed(&mut ua, Message::Response(ok), PEER, now);
    only_request(&mut ua, Method::Ack);
    events(&mut ua);

    let mut rekeyed = peer_media(false);
    rekeyed.crypto = proto::sdp::CryptoAttribute::offer_set(&mut StdRng::seed_from_u64(123));
    let reoffer = create_offer(&rekeyed, 9, 2).to_string();
    feed(&mut ua, Message::Request(peer_request(&invite, "INVITE", 1, "re1", &reoffer)), PEER, now);
    let out = responses(&sent(&mut ua));
    assert_eq!(out.iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    let ours = crypto_lines(&out[0].body);
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].key, offered[0].key, "our key stays for the call's life");
    match &events(&mut ua)[..] {
        [Event::MediaChanged { negotiated, .. }] => {
            let keys = negotiated.srtp.as_ref().unwrap();
            assert_eq!((&keys.send, &keys.receive), (&offered[0].key, &rekeyed.crypto[0].key));
        }
        other => panic!("expected MediaChanged, got {other:?}"),
    }
}

/// The instants at which `ua` wrote a CRLF keep-alive, and where, over `span` of simulated time
/// after registering at `t0`; the registrar never answers the refreshes.
fn pings_over(ua: &mut UserAgent, t0: Instant, span: Duration) -> Vec<(Instant, Target)> {
    let mut pings = Vec::new();
    while let Some(at) = ua.poll_timeout().filter(|at| *at < t0 + span) {
        ua.handle_timeout(at);
        while let Some(t) = ua.poll_transmit() {
            if &t.data[..] == keepalive::PING {
                pings.push((at, t.target));
            }
        }
    }
    pings
}

#[test]
fn over_tls_the_phone_pings_its_registrar_flow_with_a_double_crlf_every_96_to_120_s() {
    let mut rng = StdRng::seed_from_u64(40);
    let mut server = digest_server(&mut rng);
    let mut ua = UserAgent::new(Settings { transport: Transport::Tls, ..settings(true, false) }, 40);
    let t0 = Instant::now();
    register(&mut ua, &mut server, &mut rng, t0);
    let pings = pings_over(&mut ua, t0, Duration::from_secs(1200));
    let flow = Target { transport: Transport::Tls, addr: addr(REGISTRAR) };
    assert!(pings.iter().all(|(_, to)| *to == flow), "pings go on the registrar's flow: {pings:?}");
    let mut last = t0;
    let gaps: Vec<f64> = pings.iter().map(|(at, _)| (*at - std::mem::replace(&mut last, *at)).as_secs_f64()).collect();
    assert!(gaps.len() >= 10, "{} pings in 20 minutes: {gaps:?}", gaps.len());
    assert!(gaps.iter().all(|g| (96.0..=120.0).contains(g)), "gaps between pings: {gaps:?}");
}

#[test]
fn no_keepalives_over_udp_or_when_turned_off() {
    for (transport, keepalive) in [(Transport::Udp, Some(keepalive::DEFAULT_INTERVAL)), (Transport::Tls, None)] {
        let mut rng = StdRng::seed_from_u64(41);
        let mut server = digest_server(&mut rng);
        let mut ua = UserAgent::new(Settings { transport, keepalive, ..settings(true, false) }, 41);
        let t0 = Instant::now();
        register(&mut ua, &mut server, &mut rng, t0);
        assert_eq!(pings_over(&mut ua, t0, Duration::from_secs(600)), [], "{transport} keep-alive {keepalive:?}");
    }
}

#[test]
fn under_offer_a_488_to_our_srtp_offer_brings_one_plain_offer_and_under_require_the_call_ends() {
    let now = Instant::now();
    let target = proto::sip::Uri::parse(&format!("sip:1002@{PEER}")).unwrap();
    let invites_after = |ua: &mut UserAgent, request: &Request| {
        feed(ua, Message::Response(reply(request, 488, "peer")), PEER, now);
        requests(&sent(ua), Method::Invite)
    };

    let mut ua = srtp_phone(SrtpPolicy::Offer, true, false, 50);
    ua.dial(&target, now).unwrap();
    let first = only_request(&mut ua, Method::Invite);
    assert!(!crypto_lines(&first.body).is_empty());
    let again = invites_after(&mut ua, &first);
    assert_eq!(again.len(), 1, "one new INVITE after the 488");
    let plain = &again[0];
    let body = std::str::from_utf8(&plain.body).unwrap();
    assert!(body.contains("m=audio 40000 RTP/AVP ") && !body.contains("a=crypto"), "{body}");
    assert_eq!(plain.headers.call_id().unwrap(), first.headers.call_id().unwrap());
    assert_eq!(plain.headers.cseq().unwrap().seq, first.headers.cseq().unwrap().seq + 1);
    let (answer, _) = create_answer(&parse(body).unwrap(), &peer_media(false), 9, 1).unwrap();
    let mut ok = reply(plain, 200, "peer");
    ok.headers.push(HeaderName::Contact, format!("<sip:1002@{PEER}>"));
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = Bytes::from(answer.to_string());
    feed(&mut ua, Message::Response(ok), PEER, now);
    match &events(&mut ua)[..] {
        [Event::Answered { negotiated }] => assert!(negotiated.srtp.is_none(), "plain RTP agreed"),
        other => panic!("expected Answered, got {other:?}"),
    }

    // The plain offer refused too: the call ends, with no third INVITE.
    let mut ua = srtp_phone(SrtpPolicy::Offer, true, false, 51);
    ua.dial(&target, now).unwrap();
    let first = only_request(&mut ua, Method::Invite);
    let plain = invites_after(&mut ua, &first).remove(0);
    assert_eq!(invites_after(&mut ua, &plain), [], "no INVITE after a 488 to the plain offer");
    assert!(events(&mut ua).iter().any(|e| matches!(e, Event::HungUp { .. })), "the call ended");

    // Under require the 488 ends the call.
    let mut ua = srtp_phone(SrtpPolicy::Require, true, false, 52);
    ua.dial(&target, now).unwrap();
    let first = only_request(&mut ua, Method::Invite);
    assert_eq!(invites_after(&mut ua, &first), [], "require offers SRTP only");
    assert!(events(&mut ua).iter().any(|e| matches!(e, Event::HungUp { .. })), "the call ended");
}
