//! The core end to end in simulated time: messages in, messages out, no sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto::auth::{Challenge, DigestConfig, DigestServer, FailureLimiter, LimiterConfig, choose, respond};
use proto::sip::{HeaderName, Message, Method, Request, Response, Transport};
use proto::transaction::{Target, TimerConfig, TransactionLayer};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::location::MemoryStore;

const REGISTRAR: &str = "127.0.0.1:5060";
const REGISTRAR_TLS: &str = "127.0.0.1:5061";
const WALL: u64 = 1_800_000_000;

struct Harness {
    core: Core,
    now: Instant,
    wall: u64,
    seq: u32,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Harness {
    fn new() -> Harness {
        Harness::with(AdmissionSettings::default(), None)
    }

    fn with(admission: AdmissionSettings, server_header: Option<&str>) -> Harness {
        let settings = Settings {
            local: LocalAddrs {
                domain: None,
                interface_ips: vec![],
                listen: vec![
                    (Transport::Udp, addr(REGISTRAR)),
                    (Transport::Tcp, addr(REGISTRAR)),
                    (Transport::Tls, addr(REGISTRAR_TLS)),
                ],
                advertise: None,
            },
            realm: "test".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            server_header: server_header.map(str::to_owned),
            admission,
        };
        let mut rng = StdRng::seed_from_u64(7);
        let digest = DigestServer::new(DigestConfig::new("test", [3; 32]), &mut rng).unwrap();
        let limiter = FailureLimiter::new(LimiterConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            ..LimiterConfig::default()
        });
        let accounts: HashMap<String, String> =
            [("1001", "pw1"), ("1002", "pw2"), ("1003", "pw3")].map(|(u, p)| (u.to_owned(), p.to_owned())).into();
        let core = Core::new(
            settings,
            TransactionLayer::new(TimerConfig { auto_trying: false, ..TimerConfig::default() }, 10_000),
            digest,
            limiter,
            accounts,
            Box::new(MemoryStore::default()),
            1,
        );
        Harness { core, now: Instant::now(), wall: WALL, seq: 0 }
    }

    /// Feeds a message as if it arrived over UDP from `from`; returns everything sent in reply.
    fn feed(&mut self, text: &str, from: &str) -> Vec<(Target, Message)> {
        self.feed_over(Transport::Udp, text, from)
    }

    /// Feeds a message as if it arrived over `transport` from `from`.
    fn feed_over(&mut self, transport: Transport, text: &str, from: &str) -> Vec<(Target, Message)> {
        self.core.handle_input(transport, addr(from), text.as_bytes(), false, self.now, self.wall);
        self.sent()
    }

    /// REGISTER `user` over TLS from the connection at `from`, its Contact naming that address.
    fn register_over_tls(&mut self, user: &str, password: &str, from: &str) -> Response {
        let contact = format!("Contact: <sip:{user}@{from};transport=tls>\r\n");
        let tls = |text: String| text.replace("SIP/2.0/UDP", "SIP/2.0/TLS");
        let call_id = format!("reg-tls-{user}");
        let first = tls(self.register_request(user, from, &call_id, 1, &contact, None));
        let challenge = only_response(self.feed_over(Transport::Tls, &first, from));
        let auth = answer(&challenge, HeaderName::WwwAuthenticate, "REGISTER", "sip:127.0.0.1:5060", user, password);
        let second = tls(self.register_request(user, from, &call_id, 2, &contact, Some(&auth)));
        let sent = self.feed_over(Transport::Tls, &second, from);
        assert_eq!(sent[0].0, Target { transport: Transport::Tls, addr: addr(from) }, "answered over the connection");
        only_response(sent)
    }

    fn sent(&mut self) -> Vec<(Target, Message)> {
        let mut out = Vec::new();
        while let Some(t) = self.core.poll_transmit() {
            out.push((t.target, Message::parse(&t.data).expect("we send parseable messages")));
        }
        out
    }

    fn advance(&mut self, by: Duration) -> Vec<(Target, Message)> {
        self.now += by;
        self.wall += by.as_secs();
        self.core.handle_timeout(self.now, self.wall);
        self.sent()
    }

    fn next_branch(&mut self) -> String {
        self.seq += 1;
        format!("z9hG4bKtest{}", self.seq)
    }

    /// REGISTER `user` from `from` with extra header lines, answering the challenge with
    /// `password`; returns the final response.
    fn register(&mut self, user: &str, password: &str, from: &str, extra: &str) -> Response {
        let call_id = format!("reg-{user}-{from}");
        self.seq += 2;
        let cseq = self.seq;
        let first = self.register_request(user, from, &call_id, cseq, extra, None);
        let challenge = only_response(self.feed(&first, from));
        assert_eq!(challenge.status, 401, "{challenge:?}");
        let auth = answer(&challenge, HeaderName::WwwAuthenticate, "REGISTER", "sip:127.0.0.1:5060", user, password);
        let second = self.register_request(user, from, &call_id, cseq + 1, extra, Some(&auth));
        only_response(self.feed(&second, from))
    }

    fn register_request(
        &mut self,
        user: &str,
        from: &str,
        call_id: &str,
        cseq: u32,
        extra: &str,
        auth: Option<&str>,
    ) -> String {
        let branch = self.next_branch();
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=r{user}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n{extra}{auth}Content-Length: 0\r\n\r\n"
        )
    }

    /// Places an authenticated INVITE from `user` at `from` to `target`; returns what the
    /// registrar sent after the credentials: normally 100 Trying and the forked INVITEs.
    fn invite(
        &mut self,
        user: &str,
        password: &str,
        from: &str,
        target: &str,
        call_id: &str,
    ) -> Vec<(Target, Message)> {
        let first = self.invite_request(user, from, target, call_id, 1, None);
        let challenge = only_response(self.feed(&first, from));
        assert_eq!(challenge.status, 407, "{challenge:?}");
        let ack = format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKinv{call_id}1\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=c{call_id}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\r\n",
            challenge.headers.get(HeaderName::To).unwrap()
        );
        assert!(self.feed(&ack, from).is_empty(), "the ACK for the 407 is absorbed");
        let auth = answer(&challenge, HeaderName::ProxyAuthenticate, "INVITE", target, user, password);
        let second = self.invite_request(user, from, target, call_id, 2, Some(&auth));
        self.feed(&second, from)
    }

    fn invite_request(
        &mut self,
        user: &str,
        from: &str,
        target: &str,
        call_id: &str,
        cseq: u32,
        auth: Option<&str>,
    ) -> String {
        let auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
        format!(
            "INVITE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKinv{call_id}{cseq}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=c{call_id}\r\nTo: <{target}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n\
             Contact: <sip:{user}@{from}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"
        )
    }
}

fn answer(challenge: &Response, header: HeaderName, method: &str, uri: &str, user: &str, password: &str) -> String {
    let offered: Vec<Challenge> = challenge.headers.get_all(header).map(|v| Challenge::parse(v).unwrap()).collect();
    respond(choose(&offered).unwrap(), method, uri, user, password, "cnonce", 1).to_string()
}

fn only_response(sent: Vec<(Target, Message)>) -> Response {
    match <[_; 1]>::try_from(sent) {
        Ok([(_, Message::Response(r))]) => r,
        Ok(other) => panic!("expected one response, got {other:?}"),
        Err(sent) => panic!("expected one response, got {sent:?}"),
    }
}

fn requests(sent: &[(Target, Message)]) -> Vec<(Target, Request)> {
    sent.iter()
        .filter_map(|(t, m)| match m {
            Message::Request(r) => Some((*t, r.clone())),
            _ => None,
        })
        .collect()
}

fn statuses(sent: &[(Target, Message)]) -> Vec<u16> {
    sent.iter()
        .filter_map(|(_, m)| match m {
            Message::Response(r) => Some(r.status),
            _ => None,
        })
        .collect()
}

/// The UAS side: answers a forwarded request with `status`, echoing Record-Route and adding a To tag.
fn reply(req: &Request, status: u16, tag: &str) -> String {
    let mut r = req.response(status);
    for rr in req.headers.get_all(HeaderName::RecordRoute) {
        r.headers.push(HeaderName::RecordRoute, rr);
    }
    let to = r.headers.get(HeaderName::To).unwrap().to_owned();
    r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
    r.headers.push(HeaderName::Contact, format!("<{}>", req.uri));
    String::from_utf8(r.encode().to_vec()).unwrap()
}

#[test]
fn register_with_digest_binds_and_lists_the_contact() {
    let mut h = Harness::new();
    let ok = h.register("1001", "pw1", "127.0.0.1:5071", "Contact: <sip:1001@127.0.0.1:5071>\r\nExpires: 600\r\n");
    assert_eq!(ok.status, 200, "{ok:?}");
    let contacts: Vec<_> = ok.headers.get_all(HeaderName::Contact).collect();
    assert_eq!(contacts, ["<sip:1001@127.0.0.1:5071>;expires=600"]);
    assert!(ok.headers.has(HeaderName::Date));
    assert!(ok.headers.to().unwrap().tag().is_some());
}

#[test]
fn wrong_password_and_unknown_extension_get_the_same_answer() {
    let mut h = Harness::new();
    let wrong = h.register("1001", "nope", "127.0.0.1:5071", "Contact: <sip:1001@127.0.0.1:5071>\r\n");
    let unknown = h.register("7777", "nope", "127.0.0.1:5072", "Contact: <sip:7777@127.0.0.1:5072>\r\n");
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.reason, unknown.reason);
    let names = |r: &Response| r.headers.iter().map(|h| h.name.as_str().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&wrong), names(&unknown));
}

#[test]
fn repeated_failures_lock_the_source_out() {
    let mut h = Harness::new();
    for _ in 0..3 {
        assert_eq!(h.register("1001", "bad", "127.0.0.9:5071", "Contact: <sip:1001@127.0.0.9:5071>\r\n").status, 401);
    }
    let branch = h.next_branch();
    let locked = only_response(h.feed(
        &format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5071;branch={branch}\r\nFrom: <sip:1001@127.0.0.1>;tag=x\r\n\
             To: <sip:1001@127.0.0.1>\r\nCall-ID: lock\r\nCSeq: 1 REGISTER\r\n\r\n"
        ),
        "127.0.0.9:5071",
    ));
    assert_eq!(locked.status, 403);
    // Another source is unaffected.
    assert_eq!(h.register("1001", "pw1", "127.0.0.1:5071", "Contact: <sip:1001@127.0.0.1:5071>\r\n").status, 200);
}

#[test]
fn registering_someone_elses_extension_is_forbidden() {
    let mut h = Harness::new();
    let call_id = "steal";
    let first = h.register_request("1002", "127.0.0.1:5071", call_id, 1, "Contact: <sip:x@127.0.0.1:5071>\r\n", None);
    let challenge = only_response(h.feed(&first, "127.0.0.1:5071"));
    // Valid credentials of 1001 used for the AOR of 1002.
    let auth = answer(&challenge, HeaderName::WwwAuthenticate, "REGISTER", "sip:127.0.0.1:5060", "1001", "pw1");
    let second =
        h.register_request("1002", "127.0.0.1:5071", call_id, 2, "Contact: <sip:x@127.0.0.1:5071>\r\n", Some(&auth));
    assert_eq!(only_response(h.feed(&second, "127.0.0.1:5071")).status, 403);
}

#[test]
fn too_brief_expiry_gets_423_with_min_expires_and_long_ones_are_clamped() {
    let mut h = Harness::new();
    let brief = h.register("1001", "pw1", "127.0.0.1:5071", "Contact: <sip:1001@127.0.0.1:5071>;expires=10\r\n");
    assert_eq!(brief.status, 423);
    assert_eq!(brief.headers.get(HeaderName::MinExpires), Some("60"));
    let long = h.register("1001", "pw1", "127.0.0.1:5071", "Contact: <sip:1001@127.0.0.1:5071>\r\nExpires: 999999\r\n");
    assert_eq!(long.headers.get(HeaderName::Contact), Some("<sip:1001@127.0.0.1:5071>;expires=3600"));
}

#[test]
fn several_contacts_with_q_values_then_star_removes_all() {
    let mut h = Harness::new();
    h.register("1001", "pw1", "127.0.0.1:5071", "Contact: <sip:1001@127.0.0.1:5071>;q=0.5\r\n");
    let ok = h.register("1001", "pw1", "127.0.0.1:5072", "Contact: <sip:1001@127.0.0.1:5072>;q=1.0\r\n");
    let contacts: Vec<_> = ok.headers.get_all(HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert!(contacts[0].contains(":5072"), "highest q first: {contacts:?}");
    let cleared = h.register("1001", "pw1", "127.0.0.1:5072", "Contact: *\r\nExpires: 0\r\n");
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.headers.get_all(HeaderName::Contact).count(), 0);
    let bad_star = h.register("1001", "pw1", "127.0.0.1:5072", "Contact: *\r\n");
    assert_eq!(bad_star.status, 400);
}

#[test]
fn bindings_expire_on_time() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>;expires=60\r\n");
    h.advance(Duration::from_secs(61));
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "exp");
    assert_eq!(statuses(&sent), [480]);
}

#[test]
fn invite_is_challenged_then_forked_to_every_contact_with_record_route() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    h.register("1002", "pw2", "127.0.0.1:5073", "Contact: <sip:1002@127.0.0.1:5073>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "fork");
    assert_eq!(statuses(&sent), [100]);
    let forwarded = requests(&sent);
    let mut dests: Vec<_> = forwarded.iter().map(|(t, r)| (t.addr.port(), r.uri.to_string())).collect();
    dests.sort();
    assert_eq!(dests, [(5072, "sip:1002@127.0.0.1:5072".into()), (5073, "sip:1002@127.0.0.1:5073".into())]);
    for (_, req) in &forwarded {
        assert_eq!(req.headers.get(HeaderName::RecordRoute), Some("<sip:127.0.0.1:5060;lr>"));
        assert_eq!(req.headers.get(HeaderName::MaxForwards), Some("69"));
        assert_eq!(req.headers.get_all(HeaderName::Via).count(), 2);
        assert!(req.headers.get(HeaderName::ProxyAuthorization).is_none(), "credentials consumed");
        assert_eq!(&req.body[..], b"v=0\n");
    }
}

#[test]
fn first_2xx_is_forwarded_and_the_other_branch_cancelled() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    h.register("1002", "pw2", "127.0.0.1:5073", "Contact: <sip:1002@127.0.0.1:5073>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "answer");
    let forwarded = requests(&sent);
    let (ta, a) = &forwarded[0];
    let (tb, b) = &forwarded[1];
    let ringing = h.feed(&reply(b, 180, "b"), &tb.addr.to_string());
    assert_eq!(statuses(&ringing), [180]);
    assert_eq!(ringing[0].0.addr, addr("127.0.0.1:5071"));
    let ringing_a = h.feed(&reply(a, 180, "a"), &ta.addr.to_string());
    assert_eq!(statuses(&ringing_a), [180]);
    let answered = h.feed(&reply(a, 200, "a"), &ta.addr.to_string());
    let ok: Vec<_> = answered.iter().filter(|(_, m)| matches!(m, Message::Response(r) if r.status == 200)).collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].0.addr, addr("127.0.0.1:5071"));
    let Message::Response(ok) = &ok[0].1 else { unreachable!() };
    assert_eq!(ok.headers.get_all(HeaderName::Via).count(), 1, "our Via removed");
    let cancels: Vec<_> = requests(&answered).into_iter().filter(|(_, r)| r.method == Method::Cancel).collect();
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].0.addr, tb.addr);
}

#[test]
fn a_relayed_2xx_keeps_the_to_header_the_uas_wrote() {
    // Seen with a peer answering OPTIONS without a To tag: the relay must not invent one.
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "untagged");
    let (target, forwarded) = requests(&sent).remove(0);
    let mut untagged = forwarded.response(200);
    untagged.headers.push(HeaderName::Contact, "<sip:1002@127.0.0.1:5072>");
    let relayed = only_response(h.feed(std::str::from_utf8(&untagged.encode()).unwrap(), &target.addr.to_string()));
    assert_eq!(relayed.status, 200);
    assert_eq!(relayed.headers.get(HeaderName::To), forwarded.headers.get(HeaderName::To), "To passed through");
}

#[test]
fn caller_cancel_is_propagated_and_answered_487() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "cancel");
    let (tb, b) = requests(&sent).remove(0);
    h.feed(&reply(&b, 180, "b"), &tb.addr.to_string());
    let cancel = "CANCEL sip:1002@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKinvcancel2\r\n\
                  Max-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=ccancel\r\nTo: <sip:1002@127.0.0.1:5060>\r\n\
                  Call-ID: cancel\r\nCSeq: 2 CANCEL\r\n\r\n";
    let out = h.feed(cancel, "127.0.0.1:5071");
    assert_eq!(statuses(&out), [200]);
    let downstream: Vec<_> = requests(&out).into_iter().filter(|(_, r)| r.method == Method::Cancel).collect();
    assert_eq!(downstream.len(), 1);
    assert_eq!(downstream[0].0.addr, tb.addr);
    let after = h.feed(&reply(&b, 487, "b"), &tb.addr.to_string());
    assert!(statuses(&after).contains(&487), "{after:?}");
}

#[test]
fn best_response_prefers_6xx_then_the_lowest_class() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    h.register("1002", "pw2", "127.0.0.1:5073", "Contact: <sip:1002@127.0.0.1:5073>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "best");
    let forwarded = requests(&sent);
    let first = h.feed(&reply(&forwarded[0].1, 486, "a"), &forwarded[0].0.addr.to_string());
    assert!(statuses(&first).is_empty(), "no final until every branch answered: {first:?}");
    let second = h.feed(&reply(&forwarded[1].1, 603, "b"), &forwarded[1].0.addr.to_string());
    assert_eq!(statuses(&second), [603]);
}

#[test]
fn unknown_extension_404_and_unregistered_480() {
    let mut h = Harness::new();
    assert_eq!(statuses(&h.invite("1001", "pw1", "127.0.0.1:5071", "sip:4040@127.0.0.1:5060", "u")), [404]);
    assert_eq!(statuses(&h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1003@127.0.0.1:5060", "n")), [480]);
}

#[test]
fn unanswered_branch_times_out_with_408() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "silent");
    let mut finals = Vec::new();
    for _ in 0..80 {
        finals.extend(statuses(&h.advance(Duration::from_millis(500))));
    }
    assert_eq!(finals.first(), Some(&408));
    assert!(finals.iter().all(|&s| s == 408), "only the 408 and its retransmissions: {finals:?}");
}

#[test]
fn in_dialog_requests_follow_our_record_route_and_acks_pass_statelessly() {
    let mut h = Harness::new();
    let ack = "ACK sip:1002@127.0.0.1:5072 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKack1\r\n\
               Route: <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=a\r\n\
               To: <sip:1002@127.0.0.1>;tag=b\r\nCall-ID: dlg\r\nCSeq: 2 ACK\r\n\r\n";
    let out = requests(&h.feed(ack, "127.0.0.1:5071"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.addr, addr("127.0.0.1:5072"));
    assert!(out[0].1.headers.get(HeaderName::Route).is_none(), "our Route removed");
    assert_eq!(out[0].1.headers.get_all(HeaderName::Via).count(), 2);
    let bye = ack.replace("ACK sip", "BYE sip").replace("2 ACK", "3 BYE").replace("bKack1", "bKbye1");
    let out = h.feed(&bye, "127.0.0.1:5071");
    assert_eq!(requests(&out)[0].0.addr, addr("127.0.0.1:5072"));
    // Without our Route, an in-dialog request to elsewhere is not relayed.
    let relay = bye.replace("Route: <sip:127.0.0.1:5060;lr>\r\n", "").replace("bKbye1", "bKbye2");
    assert_eq!(statuses(&h.feed(&relay, "127.0.0.1:5071")), [403]);
}

#[test]
fn refer_and_its_notifies_are_relayed_in_dialog_both_ways_with_their_answers() {
    let mut h = Harness::new();
    // B (the callee, at 5072) transfers A (the caller, at 5071): REFER on the record-routed dialog.
    let refer = "REFER sip:1001@127.0.0.1:5071 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKrefer1\r\n\
                 Route: <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:1002@127.0.0.1>;tag=b\r\n\
                 To: <sip:1001@127.0.0.1>;tag=a\r\nCall-ID: xfer\r\nCSeq: 5 REFER\r\n\
                 Contact: <sip:1002@127.0.0.1:5072>\r\nRefer-To: <sip:1003@127.0.0.1>\r\n\
                 Referred-By: <sip:1002@127.0.0.1>\r\nContent-Length: 0\r\n\r\n";
    let out = h.feed(refer, "127.0.0.1:5072");
    let relayed = requests(&out);
    assert!(statuses(&out).is_empty(), "no challenge and no 100 for an in-dialog REFER: {out:?}");
    assert_eq!(relayed.len(), 1);
    let (to_a, refer_at_a) = &relayed[0];
    assert_eq!(to_a.addr, addr("127.0.0.1:5071"));
    assert_eq!(refer_at_a.method, Method::Refer);
    assert!(refer_at_a.headers.get(HeaderName::Route).is_none(), "our Route removed");
    assert!(refer_at_a.headers.get(HeaderName::RecordRoute).is_none(), "no Record-Route inside a dialog");
    assert_eq!(refer_at_a.headers.get(HeaderName::ReferTo), Some("<sip:1003@127.0.0.1>"));
    assert_eq!(refer_at_a.headers.get(HeaderName::ReferredBy), Some("<sip:1002@127.0.0.1>"));
    let accepted = String::from_utf8(refer_at_a.response(202).encode().to_vec()).unwrap();
    let back = h.feed(&accepted, "127.0.0.1:5071");
    assert_eq!(statuses(&back), [202]);
    assert_eq!(back[0].0.addr, addr("127.0.0.1:5072"), "the 202 goes back to B");

    // A reports on the implicit subscription: NOTIFY with a sipfrag to B, through us.
    let notify = "NOTIFY sip:1002@127.0.0.1:5072 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKnotify1\r\n\
                  Route: <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=a\r\n\
                  To: <sip:1002@127.0.0.1>;tag=b\r\nCall-ID: xfer\r\nCSeq: 9 NOTIFY\r\n\
                  Contact: <sip:1001@127.0.0.1:5071>\r\nEvent: refer;id=5\r\n\
                  Subscription-State: terminated;reason=noresource\r\n\
                  Content-Type: message/sipfrag;version=2.0\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n";
    let out = h.feed(notify, "127.0.0.1:5071");
    let relayed = requests(&out);
    assert_eq!(relayed.len(), 1, "{out:?}");
    let (to_b, notify_at_b) = &relayed[0];
    assert_eq!(to_b.addr, addr("127.0.0.1:5072"));
    assert_eq!(notify_at_b.headers.get(HeaderName::Event), Some("refer;id=5"));
    assert_eq!(notify_at_b.headers.get_named("Subscription-State"), Some("terminated;reason=noresource"));
    assert_eq!(&notify_at_b.body[..], b"SIP/2.0 200 OK\r\n", "the sipfrag passes untouched");
    let ok = String::from_utf8(notify_at_b.response(200).encode().to_vec()).unwrap();
    let back = h.feed(&ok, "127.0.0.1:5072");
    assert_eq!(statuses(&back), [200]);
    assert_eq!(back[0].0.addr, addr("127.0.0.1:5071"), "the 200 goes back to A");
}

#[test]
fn phone_behind_nat_is_reached_where_its_register_came_from() {
    let mut h = Harness::new();
    // The Contact names a private address; the REGISTER really came from 127.0.0.1:40000.
    h.register("1002", "pw2", "127.0.0.1:40000", "Contact: <sip:1002@192.168.1.20:5060>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "nat");
    let (target, req) = requests(&sent).remove(0);
    assert_eq!(target.addr, addr("127.0.0.1:40000"));
    assert_eq!(req.uri.to_string(), "sip:1002@192.168.1.20:5060");
}

#[test]
fn loops_and_exhausted_max_forwards_are_refused() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "loop");
    let (_, forwarded) = requests(&sent).remove(0);
    // The forwarded request comes back to us unchanged: a loop.
    let mut looped = forwarded.clone();
    looped.uri = proto::sip::Uri::parse("sip:1002@127.0.0.1:5060").unwrap();
    looped.headers.remove_all(HeaderName::RecordRoute);
    let text = String::from_utf8(looped.encode().to_vec()).unwrap();
    let out = h.feed(&text, "127.0.0.1:5072");
    assert_eq!(statuses(&out), [482], "{out:?}");
    let exhausted = "OPTIONS sip:1002@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKmf\r\n\
                     Max-Forwards: 0\r\nFrom: <sip:1001@example.org>;tag=a\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: mf\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert_eq!(statuses(&h.feed(exhausted, "127.0.0.1:5071")), [483]);
}

#[test]
fn options_to_the_registrar_itself_gets_200() {
    let mut h = Harness::new();
    let opts = "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKo1\r\nMax-Forwards: 70\r\n\
                From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:5060>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let ok = only_response(h.feed(opts, "127.0.0.1:5071"));
    assert_eq!(ok.status, 200);
    assert!(ok.headers.get_all(HeaderName::Allow).any(|m| m == "INVITE"));
}

#[test]
fn malformed_requests_get_400_with_the_reason_and_oversized_513() {
    let mut h = Harness::new();
    let bad_cseq = "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKb1\r\n\
                    From: <sip:a@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1>\r\nCall-ID: b1\r\nCSeq: one OPTIONS\r\n\r\n";
    let r = only_response(h.feed(bad_cseq, "127.0.0.1:5071"));
    assert_eq!(r.status, 400);
    assert!(r.reason.contains("CSeq"), "{}", r.reason);
    let garbage = "INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKb2\r\nthis is not a header\r\n\r\n";
    assert_eq!(only_response(h.feed(garbage, "127.0.0.1:5071")).status, 400);
    h.core.handle_input(Transport::Udp, addr("127.0.0.1:5071"), bad_cseq.as_bytes(), true, h.now, h.wall);
    assert_eq!(only_response(h.sent()).status, 513);
    // A malformed response is dropped without a word.
    assert!(h.feed("SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n", "127.0.0.1:5071").is_empty());
}

#[test]
fn calls_to_other_domains_are_located_by_dns_then_forwarded() {
    let mut h = Harness::new();
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:bob@example.net", "dns");
    assert_eq!(statuses(&sent), [100]);
    assert!(requests(&sent).is_empty(), "nothing forwarded before the lookup");
    let resolve = h.core.poll_resolve().expect("an RFC 3263 lookup");
    assert_eq!((resolve.host.as_str(), resolve.port, resolve.transport), ("example.net", None, None));
    let target = Target { transport: Transport::Tcp, addr: addr("127.0.0.1:5080") };
    h.core.handle_resolved(resolve, vec![target], h.now, h.wall);
    let out = requests(&h.sent());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, target);
    assert_eq!(out[0].1.uri.to_string(), "sip:bob@example.net");
    assert!(out[0].1.headers.get(HeaderName::Via).unwrap().starts_with("SIP/2.0/TCP 127.0.0.1:5060;"));
    assert_eq!(out[0].1.headers.get(HeaderName::RecordRoute), Some("<sip:127.0.0.1:5060;transport=tcp;lr>"));
}

#[test]
fn a_domain_with_no_sip_server_gets_404() {
    let mut h = Harness::new();
    h.invite("1001", "pw1", "127.0.0.1:5071", "sip:bob@nowhere.invalid", "nodns");
    let resolve = h.core.poll_resolve().unwrap();
    h.core.handle_resolved(resolve, vec![], h.now, h.wall);
    assert_eq!(statuses(&h.sent()), [404]);
}

#[test]
fn strangers_cannot_relay_through_us_without_credentials() {
    let mut h = Harness::new();
    // From another domain to another domain: an open-relay attempt.
    let relay = "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKrelay\r\nMax-Forwards: 70\r\n\
                 From: <sip:mallory@evil.example>;tag=m\r\nTo: <sip:bob@example.net>\r\nCall-ID: relay\r\nCSeq: 1 INVITE\r\n\r\n";
    assert_eq!(statuses(&h.feed(relay, "127.0.0.1:5071")), [407]);
    // From another domain to one of our users: an inbound call, allowed (and 480: not registered).
    let inbound = relay.replace("sip:bob@example.net", "sip:1003@127.0.0.1:5060").replace("bKrelay", "bKin");
    assert_eq!(statuses(&h.feed(&inbound, "127.0.0.1:5071")), [480]);
}

#[test]
fn register_leaves_no_transaction_and_a_retransmission_gets_the_same_answer() {
    let mut h = Harness::new();
    let call_id = "retrans";
    let first =
        h.register_request("1001", "127.0.0.1:5071", call_id, 1, "Contact: <sip:1001@127.0.0.1:5071>\r\n", None);
    let challenge = only_response(h.feed(&first, "127.0.0.1:5071"));
    let auth = answer(&challenge, HeaderName::WwwAuthenticate, "REGISTER", "sip:127.0.0.1:5060", "1001", "pw1");
    let second =
        h.register_request("1001", "127.0.0.1:5071", call_id, 2, "Contact: <sip:1001@127.0.0.1:5071>\r\n", Some(&auth));
    let ok = only_response(h.feed(&second, "127.0.0.1:5071"));
    assert_eq!(ok.status, 200);
    assert_eq!(h.core.txns.len(), 0, "REGISTER is answered statelessly");
    h.now += Duration::from_secs(2);
    assert_eq!(only_response(h.feed(&second, "127.0.0.1:5071")), ok, "the retransmission gets the same 200");
    // Once the answer has left the cache, the same request is processed again and changes nothing.
    h.now += Duration::from_secs(40);
    let again = only_response(h.feed(&second, "127.0.0.1:5071"));
    assert_eq!(again.status, 401, "its nonce count was used: a fresh challenge, not a failure");
    assert_eq!(h.register("1001", "pw1", "127.0.0.1:5071", "Contact: <sip:1001@127.0.0.1:5071>\r\n").status, 200);
}

fn options(branch: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch={branch}\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:5060>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
}

#[test]
fn register_flood_from_one_source_gets_503_with_retry_after_then_recovers() {
    let limits = AdmissionSettings { register_per_source_per_s: 4, ..AdmissionSettings::default() };
    let mut h = Harness::with(limits, None);
    let from = "127.0.0.9:5071";
    let mut statuses = Vec::new();
    for n in 0..20 {
        let req = h.register_request("1001", from, &format!("flood{n}"), 1, "", None);
        let resp = only_response(h.feed(&req, from));
        if resp.status == 503 {
            assert_eq!(resp.headers.get(HeaderName::RetryAfter), Some("1"), "{resp:?}");
        }
        statuses.push(resp.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 16, "{statuses:?}");
    // Another source is not held back by the flood.
    assert_eq!(h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n").status, 200);
    // A second later the flooding source has its tokens back and registers normally.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.register("1001", "pw1", from, "Contact: <sip:1001@127.0.0.9:5071>\r\n").status, 200);
}

#[test]
fn invite_flood_gets_503_through_a_transaction_and_its_retransmission_is_absorbed() {
    let limits = AdmissionSettings { invite_per_source_per_s: 2, ..AdmissionSettings::default() };
    let mut h = Harness::with(limits, None);
    let from = "127.0.0.9:5071";
    let mut statuses = Vec::new();
    for n in 0..5 {
        let req = h.invite_request("1001", from, "sip:1002@127.0.0.1", &format!("c{n}"), 1, None);
        statuses.push(only_response(h.feed(&req, from)).status);
    }
    assert_eq!(statuses, [407, 407, 503, 503, 503]);
    // The same INVITE again is a retransmission: the transaction answers it, no new token taken.
    let again = h.invite_request("1001", from, "sip:1002@127.0.0.1", "c4", 1, None);
    let resent = only_response(h.feed(&again, from));
    assert_eq!((resent.status, resent.headers.get(HeaderName::RetryAfter)), (503, Some("1")));
}

#[test]
fn a_long_inbound_queue_gets_503_until_it_drains() {
    let limits = AdmissionSettings { queue_high_water: 100, ..AdmissionSettings::default() };
    let mut h = Harness::with(limits, None);
    h.core.set_backlog(150);
    let busy = only_response(h.feed(&options("z9hG4bKq1"), "127.0.0.1:5071"));
    assert_eq!((busy.status, busy.headers.get(HeaderName::RetryAfter)), (503, Some("5")));
    let first = h.register_request("1001", "127.0.0.1:5071", "q", 1, "", None);
    assert_eq!(only_response(h.feed(&first, "127.0.0.1:5071")).status, 503);
    h.core.set_backlog(10);
    assert_eq!(only_response(h.feed(&options("z9hG4bKq2"), "127.0.0.1:5071")).status, 200);
}

#[test]
fn a_transaction_table_past_its_high_water_mark_gets_503_not_a_crash() {
    let limits = AdmissionSettings { transactions_high_water: 50, ..AdmissionSettings::default() };
    let mut h = Harness::with(limits, None);
    let mut statuses = Vec::new();
    for n in 0..200 {
        statuses.push(only_response(h.feed(&options(&format!("z9hG4bKt{n}")), "127.0.0.1:5071")).status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 50, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503));
    // Once the transactions end (Timer J, 64·T1), requests are served again.
    h.advance(Duration::from_secs(33));
    assert_eq!(only_response(h.feed(&options("z9hG4bKafter"), "127.0.0.1:5071")).status, 200);
}

#[test]
fn answers_name_no_software_unless_server_header_is_configured() {
    let mut h = Harness::new();
    let ok = only_response(h.feed(&options("z9hG4bKs1"), "127.0.0.1:5071"));
    assert_eq!(ok.headers.get(HeaderName::Server), None);
    let reg = h.register_request("1001", "127.0.0.1:5071", "s", 1, "", None);
    let challenge = only_response(h.feed(&reg, "127.0.0.1:5071"));
    assert_eq!((challenge.headers.get(HeaderName::Server), challenge.headers.get(HeaderName::UserAgent)), (None, None));

    let mut h = Harness::with(AdmissionSettings::default(), Some("voip-registrar/1.0"));
    let ok = only_response(h.feed(&options("z9hG4bKs2"), "127.0.0.1:5071"));
    assert_eq!(ok.headers.get(HeaderName::Server), Some("voip-registrar/1.0"));
    let challenge = only_response(h.feed(&reg, "127.0.0.1:5071"));
    assert_eq!(challenge.headers.get(HeaderName::Server), Some("voip-registrar/1.0"));
}

#[test]
fn call_from_udp_to_a_tls_phone_goes_over_its_connection_with_a_record_route_per_transport() {
    let mut h = Harness::new();
    let tls_phone = "127.0.0.1:40001";
    assert_eq!(h.register_over_tls("1002", "pw2", tls_phone).status, 200);
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sip:1002@127.0.0.1:5060", "udp-to-tls");
    let forwarded = requests(&sent);
    let [(target, invite)] = &forwarded[..] else { panic!("one INVITE: {forwarded:?}") };
    assert_eq!(*target, Target { transport: Transport::Tls, addr: addr(tls_phone) });
    assert!(invite.headers.get(HeaderName::Via).unwrap().starts_with("SIP/2.0/TLS 127.0.0.1:5061;"));
    // RFC 5658 §4: the callee's side first (TLS), then the caller's (UDP).
    let routes: Vec<&str> = invite.headers.get_all(HeaderName::RecordRoute).collect();
    assert_eq!(routes, ["<sip:127.0.0.1:5061;transport=tls;lr>", "<sip:127.0.0.1:5060;lr>"]);

    // The callee's BYE, routed by both values, goes to the caller over UDP.
    let bye = "BYE sip:1001@127.0.0.1:5071 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40001;branch=z9hG4bKbye1\r\n\
               Route: <sip:127.0.0.1:5061;transport=tls;lr>, <sip:127.0.0.1:5060;lr>\r\nMax-Forwards: 70\r\n\
               From: <sip:1002@127.0.0.1>;tag=callee\r\nTo: <sip:1001@127.0.0.1>;tag=cudp-to-tls\r\n\
               Call-ID: udp-to-tls\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    let sent = h.feed_over(Transport::Tls, bye, tls_phone);
    let [(target, bye)] = &requests(&sent)[..] else { panic!("one BYE: {sent:?}") };
    assert_eq!(*target, Target { transport: Transport::Udp, addr: addr("127.0.0.1:5071") });
    assert!(bye.headers.get(HeaderName::Route).is_none(), "both of our Route values are consumed");
}

#[test]
fn sips_request_is_not_forwarded_to_a_contact_registered_over_udp() {
    let mut h = Harness::new();
    h.register("1002", "pw2", "127.0.0.1:5072", "Contact: <sip:1002@127.0.0.1:5072>\r\n");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sips:1002@127.0.0.1", "sips-udp");
    assert_eq!(statuses(&sent), [480], "{sent:?}");
    assert!(requests(&sent).is_empty());
}

#[test]
fn sips_request_to_a_tls_contact_gets_a_sips_record_route() {
    let mut h = Harness::new();
    h.register_over_tls("1002", "pw2", "127.0.0.1:40002");
    let sent = h.invite("1001", "pw1", "127.0.0.1:5071", "sips:1002@127.0.0.1", "sips-tls");
    let [(target, invite)] = &requests(&sent)[..] else { panic!("one INVITE: {sent:?}") };
    assert_eq!(target.transport, Transport::Tls);
    let routes: Vec<&str> = invite.headers.get_all(HeaderName::RecordRoute).collect();
    assert_eq!(routes, ["<sips:127.0.0.1:5061;lr>", "<sip:127.0.0.1:5060;lr>"]);
}
