//! Server transactions: absorption of retransmissions, Timers G, H, I, J, L, CANCEL matching,
//! RFC 2543 matching, the table bound, and where responses go.

use super::*;

/// A request from the phone at [`UAC`]; `via_params` carries the branch (or none, RFC 2543).
fn incoming(method: &str, via_params: &str, to_tag: Option<&str>) -> Request {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    request(&format!(
        "{method} sip:bob@192.0.2.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {UAC}{via_params}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: srv-1@example.com\r\n\
         CSeq: 1 {method}\r\n\
         Timestamp: 54\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

const BRANCH: &str = ";branch=z9hG4bKs1";

fn receive_from(layer: &mut TransactionLayer, request: &Request, source: Target, at: Instant) {
    layer.handle_message(Message::Request(request.clone()), source, at);
}

fn receive(layer: &mut TransactionLayer, request: &Request, at: Instant) {
    receive_from(layer, request, udp(UAC), at);
}

/// The id of the one new server transaction among the events, and what it cancels.
fn new_transaction(layer: &mut TransactionLayer) -> (ServerId, Option<ServerId>) {
    match &events(layer)[..] {
        [Event::Request { id, cancels, .. }] => (*id, *cancels),
        other => panic!("expected one new request, got {other:?}"),
    }
}

/// Receives an INVITE and takes its 100 Trying off the queue.
fn invite_transaction(layer: &mut TransactionLayer, source: Target, at: Instant) -> (ServerId, Request) {
    invite_transaction_on(layer, BRANCH, source, at)
}

fn invite_transaction_on(
    layer: &mut TransactionLayer,
    branch: &str,
    source: Target,
    at: Instant,
) -> (ServerId, Request) {
    let inv = incoming("INVITE", branch, None);
    receive_from(layer, &inv, source, at);
    transmits(layer);
    (new_transaction(layer).0, inv)
}

fn statuses(layer: &mut TransactionLayer) -> Vec<u16> {
    transmits(layer).iter().map(|t| response(&t.data).status).collect()
}

#[test]
fn invite_server_sends_100_trying_at_once_by_default() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = incoming("INVITE", BRANCH, None);
    receive(&mut l, &inv, t0);
    let sent = transmits(&mut l);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].target, udp(UAC));
    let trying = response(&sent[0].data);
    assert_eq!(trying.status, 100);
    assert_eq!(trying.headers.to().unwrap().tag(), None);
    assert_eq!(trying.headers.get(HeaderName::Timestamp), Some("54"), "§8.2.6.1");
    assert!(
        matches!(&events(&mut l)[..], [Event::Request { request, source, cancels: None, .. }] if *request == inv && *source == udp(UAC))
    );
}

#[test]
fn invite_server_stays_silent_without_auto_trying() {
    let mut l = TransactionLayer::new(TimerConfig { auto_trying: false, ..TimerConfig::default() }, 10);
    let t0 = Instant::now();
    let inv = incoming("INVITE", BRANCH, None);
    receive(&mut l, &inv, t0);
    receive(&mut l, &inv, t0 + ms(500));
    assert!(transmits(&mut l).is_empty());
    assert_eq!(events(&mut l).len(), 1, "the retransmission is absorbed");
}

#[test]
fn retransmitted_invite_gets_the_last_provisional_again() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = incoming("INVITE", BRANCH, None);
    receive(&mut l, &inv, t0);
    let (id, _) = new_transaction(&mut l);
    receive(&mut l, &inv, t0 + ms(500));
    assert_eq!(statuses(&mut l), [100, 100]);
    l.respond(id, reply(&inv, 180, Some("s1")), t0 + ms(600));
    receive(&mut l, &inv, t0 + ms(1500));
    assert_eq!(statuses(&mut l), [180, 180]);
    assert!(events(&mut l).is_empty());
}

#[test]
fn non_invite_server_absorbs_retransmissions_and_repeats_its_last_response() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = incoming("OPTIONS", BRANCH, None);
    receive(&mut l, &opt, t0);
    let (id, _) = new_transaction(&mut l);
    receive(&mut l, &opt, t0 + ms(500));
    assert!(transmits(&mut l).is_empty(), "Trying absorbs without answering");
    l.respond(id, reply(&opt, 200, Some("s1")), t0 + ms(600));
    receive(&mut l, &opt, t0 + ms(1500));
    let sent = transmits(&mut l);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1]);
    assert_eq!(sent[1].data, reply(&opt, 200, Some("s1")).encode());
    assert!(events(&mut l).is_empty());
}

#[test]
fn timer_g_retransmits_a_non_2xx_final_doubling_to_t2_until_timer_h() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = invite_transaction(&mut l, udp(UAC), t0);
    l.respond(id, reply(&inv, 486, Some("s1")), t0);
    assert_eq!(statuses(&mut l), [486]);
    let run = run_until(&mut l, t0, t0 + ms(100_000));
    assert_eq!(run.transmit_times(), [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert!(run.transmits.iter().all(|(_, t)| response(&t.data).status == 486 && t.target == udp(UAC)));
    assert_eq!(run.events, [(ms(32_000), Event::ServerTimeout { id })]);
    assert!(l.is_empty());
}

#[test]
fn ack_confirms_the_invite_server_and_timer_i_ends_it() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = invite_transaction(&mut l, udp(UAC), t0);
    l.respond(id, reply(&inv, 486, Some("s1")), t0);
    transmits(&mut l);
    assert_eq!(run_until(&mut l, t0, t0 + ms(700)).transmit_times(), [500]);
    let ack = incoming("ACK", BRANCH, Some("s1"));
    receive(&mut l, &ack, t0 + ms(700));
    receive(&mut l, &ack, t0 + ms(800));
    receive(&mut l, &inv, t0 + ms(900));
    assert!(events(&mut l).is_empty(), "ACKs for a non-2xx stay in the transaction");
    assert!(transmits(&mut l).is_empty(), "Confirmed absorbs retransmitted INVITEs");
    let run = run_until(&mut l, t0, t0 + ms(5699));
    assert!(run.transmits.is_empty() && run.events.is_empty(), "Timer G stopped");
    assert_eq!(l.len(), 1);
    run_until(&mut l, t0, t0 + ms(5700));
    assert!(l.is_empty(), "Timer I is T4");
}

#[test]
fn invite_server_over_tcp_never_retransmits_and_ends_on_ack() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = invite_transaction(&mut l, tcp(UAC), t0);
    l.respond(id, reply(&inv, 486, Some("s1")), t0);
    assert_eq!(transmits(&mut l)[0].target, tcp(UAC));
    assert!(run_until(&mut l, t0, t0 + ms(20_000)).transmits.is_empty());
    receive_from(&mut l, &incoming("ACK", BRANCH, Some("s1")), tcp(UAC), t0 + ms(20_000));
    assert!(l.is_empty(), "Timer I is zero over TCP");
    assert!(events(&mut l).is_empty());
}

#[test]
fn timer_h_applies_over_tcp_too() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = invite_transaction(&mut l, tcp(UAC), t0);
    l.respond(id, reply(&inv, 486, Some("s1")), t0);
    let run = run_until(&mut l, t0, t0 + ms(100_000));
    assert_eq!(run.events, [(ms(32_000), Event::ServerTimeout { id })]);
}

#[test]
fn timer_j_keeps_a_non_invite_server_64_t1_over_udp() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = incoming("OPTIONS", BRANCH, None);
    receive(&mut l, &opt, t0);
    let (id, _) = new_transaction(&mut l);
    l.respond(id, reply(&opt, 200, Some("s1")), t0);
    run_until(&mut l, t0, t0 + ms(31_999));
    receive(&mut l, &opt, t0 + ms(31_999));
    assert_eq!(statuses(&mut l), [200, 200]);
    run_until(&mut l, t0, t0 + ms(32_000));
    assert!(l.is_empty());
    receive(&mut l, &opt, t0 + ms(32_001));
    assert_ne!(new_transaction(&mut l).0, id, "after Timer J the request is new again");
}

#[test]
fn timer_j_is_zero_over_tcp() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = incoming("OPTIONS", BRANCH, None);
    receive_from(&mut l, &opt, tcp(UAC), t0);
    let (id, _) = new_transaction(&mut l);
    l.respond(id, reply(&opt, 200, Some("s1")), t0);
    assert_eq!(transmits(&mut l).len(), 1);
    assert!(l.is_empty());
}

#[test]
fn unanswered_non_invite_server_ends_after_64_t1_while_an_invite_waits() {
    let mut l = layer();
    let t0 = Instant::now();
    receive(&mut l, &incoming("OPTIONS", BRANCH, None), t0);
    let (id, _) = new_transaction(&mut l);
    let (invite_id, inv) = invite_transaction_on(&mut l, ";branch=z9hG4bKs2", udp(UAC), t0);
    let run = run_until(&mut l, t0, t0 + ms(300_000));
    assert_eq!(run.events, [(ms(32_000), Event::ServerTimeout { id })]);
    assert_eq!(l.len(), 1);
    l.respond(invite_id, reply(&inv, 180, Some("s1")), t0 + ms(300_000));
    assert_eq!(statuses(&mut l), [180]);
}

#[test]
fn invite_server_2xx_enters_accepted_absorbing_invites_and_passing_acks_up() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = invite_transaction(&mut l, udp(UAC), t0);
    let ok = reply(&inv, 200, Some("s1"));
    l.respond(id, ok.clone(), t0);
    assert_eq!(statuses(&mut l), [200]);
    receive(&mut l, &inv, t0 + ms(500));
    assert!(transmits(&mut l).is_empty(), "retransmitting the 2xx is the TU's job");
    assert!(events(&mut l).is_empty());
    let ack = incoming("ACK", ";branch=z9hG4bKack", Some("s1"));
    receive(&mut l, &ack, t0 + ms(600));
    let same_branch_ack = incoming("ACK", BRANCH, Some("s1"));
    receive(&mut l, &same_branch_ack, t0 + ms(700));
    assert_eq!(
        events(&mut l),
        [Event::Ack { request: ack, source: udp(UAC) }, Event::Ack { request: same_branch_ack, source: udp(UAC) },]
    );
    l.respond(id, ok, t0 + ms(800));
    assert_eq!(statuses(&mut l), [200], "further 2xx from the TU go out");
    l.respond(id, reply(&inv, 486, Some("s1")), t0 + ms(900));
    assert!(transmits(&mut l).is_empty(), "nothing but 2xx after a 2xx");
    let run = run_until(&mut l, t0, t0 + ms(31_999));
    assert!(run.transmits.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 1);
    run_until(&mut l, t0, t0 + ms(32_000));
    assert!(l.is_empty(), "Timer L is 64·T1");
}

#[test]
fn cancel_is_matched_to_its_invite_server_transaction() {
    let mut l = layer();
    let t0 = Instant::now();
    let (invite_id, inv) = invite_transaction(&mut l, udp(UAC), t0);
    let cancel = incoming("CANCEL", BRANCH, None);
    receive(&mut l, &cancel, t0 + ms(100));
    assert!(transmits(&mut l).is_empty(), "no 100 Trying for a CANCEL");
    let (cancel_id, cancels) = new_transaction(&mut l);
    assert_ne!(cancel_id, invite_id);
    assert_eq!(cancels, Some(invite_id));
    l.respond(cancel_id, reply(&cancel, 200, Some("s1")), t0 + ms(110));
    l.respond(invite_id, reply(&inv, 487, Some("s1")), t0 + ms(110));
    assert_eq!(statuses(&mut l), [200, 487]);
    receive(&mut l, &cancel, t0 + ms(200));
    assert_eq!(statuses(&mut l), [200], "a retransmitted CANCEL matches its own transaction");
    receive(&mut l, &incoming("ACK", BRANCH, Some("s1")), t0 + ms(300));
    assert!(events(&mut l).is_empty());

    let stray = incoming("CANCEL", ";branch=z9hG4bKother", None);
    receive(&mut l, &stray, t0 + ms(400));
    assert_eq!(new_transaction(&mut l).1, None, "a CANCEL for no INVITE cancels nothing (the TU answers 481)");
}

#[test]
fn cancel_arriving_after_a_200_gets_its_own_200_while_the_487_is_dropped() {
    let mut l = layer();
    let t0 = Instant::now();
    let (invite_id, inv) = invite_transaction(&mut l, udp(UAC), t0);
    l.respond(invite_id, reply(&inv, 200, Some("s1")), t0 + ms(100));
    let cancel = incoming("CANCEL", BRANCH, None);
    receive(&mut l, &cancel, t0 + ms(110));
    let (cancel_id, cancels) = new_transaction(&mut l);
    assert_eq!(cancels, Some(invite_id));
    l.respond(cancel_id, reply(&cancel, 200, Some("s1")), t0 + ms(120));
    l.respond(invite_id, reply(&inv, 487, Some("s1")), t0 + ms(120));
    assert_eq!(statuses(&mut l), [200, 200]);
}

#[test]
fn rfc2543_request_is_matched_without_a_magic_cookie() {
    let mut l = layer();
    let t0 = Instant::now();
    for via_params in ["", ";branch=1234"] {
        let inv = incoming("INVITE", via_params, None);
        receive(&mut l, &inv, t0);
        new_transaction(&mut l);
        receive(&mut l, &inv, t0 + ms(500));
        assert!(events(&mut l).is_empty(), "the retransmission matches by Request-URI, tags, Call-ID, CSeq, Via");
        assert_eq!(statuses(&mut l), [100, 100]);
        let mut other_call = inv.clone();
        other_call.headers.set(HeaderName::CallId, format!("other{via_params}@example.com"));
        receive(&mut l, &other_call, t0 + ms(600));
        new_transaction(&mut l);
        transmits(&mut l);
    }
    assert_eq!(l.len(), 4);
}

#[test]
fn rfc2543_ack_matches_by_the_to_tag_of_the_response_sent() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = incoming("INVITE", "", None);
    receive(&mut l, &inv, t0);
    let (id, _) = new_transaction(&mut l);
    l.respond(id, reply(&inv, 486, Some("s1")), t0);
    transmits(&mut l);
    let foreign = incoming("ACK", "", Some("zz"));
    receive(&mut l, &foreign, t0 + ms(100));
    assert_eq!(events(&mut l), [Event::Ack { request: foreign, source: udp(UAC) }]);
    assert_eq!(run_until(&mut l, t0, t0 + ms(600)).transmit_times(), [500], "still Completed");
    receive(&mut l, &incoming("ACK", "", Some("s1")), t0 + ms(700));
    assert!(events(&mut l).is_empty());
    assert!(run_until(&mut l, t0, t0 + ms(4000)).transmits.is_empty(), "Confirmed: Timer G stopped");
}

#[test]
fn rfc2543_cancel_finds_its_invite() {
    let mut l = layer();
    let t0 = Instant::now();
    receive(&mut l, &incoming("INVITE", "", None), t0);
    let (invite_id, _) = new_transaction(&mut l);
    receive(&mut l, &incoming("CANCEL", "", None), t0 + ms(100));
    assert_eq!(new_transaction(&mut l).1, Some(invite_id));
}

#[test]
fn full_table_answers_503_with_retry_after_statelessly() {
    let mut l = TransactionLayer::new(TimerConfig::default(), 1);
    let t0 = Instant::now();
    invite_transaction(&mut l, udp(UAC), t0);
    let opt = incoming("OPTIONS", ";branch=z9hG4bKopt", None);
    receive(&mut l, &opt, t0);
    assert!(events(&mut l).is_empty(), "the TU does not see it");
    let sent = transmits(&mut l);
    let [busy] = &sent[..] else { panic!("{sent:?}") };
    assert_eq!(busy.target, udp(UAC));
    let busy = response(&busy.data);
    assert_eq!(busy.status, 503);
    assert_eq!(busy.headers.get(HeaderName::RetryAfter), Some("5"));
    assert!(busy.headers.to().unwrap().tag().is_some_and(|t| t.starts_with("sl")));
    assert_eq!(l.len(), 1);
    receive(&mut l, &opt, t0 + ms(500));
    assert_eq!(transmits(&mut l), sent, "a retransmission gets the same 503");
}

#[test]
fn full_table_still_admits_cancels_for_live_invites_and_client_transactions() {
    let mut l = TransactionLayer::new(TimerConfig::default(), 1);
    let t0 = Instant::now();
    let (invite_id, _) = invite_transaction(&mut l, udp(UAC), t0);
    receive(&mut l, &incoming("CANCEL", BRANCH, None), t0);
    assert_eq!(new_transaction(&mut l).1, Some(invite_id));
    let mut ours = incoming("OPTIONS", ";branch=z9hG4bKours", None);
    ours.uri = crate::sip::Uri::parse("sip:192.0.2.20").unwrap();
    l.send_request(ours, udp(UAS), t0).unwrap();
    assert_eq!(l.len(), 3);
}

#[test]
fn ack_for_a_stateless_503_is_absorbed() {
    let mut l = TransactionLayer::new(TimerConfig::default(), 0);
    let t0 = Instant::now();
    receive(&mut l, &incoming("INVITE", BRANCH, None), t0);
    let sent = transmits(&mut l);
    let busy = response(&sent[0].data);
    assert_eq!(busy.status, 503);
    let tag = busy.headers.to().unwrap().tag().unwrap().to_owned();
    receive(&mut l, &incoming("ACK", BRANCH, Some(&tag)), t0 + ms(10));
    assert!(events(&mut l).is_empty());
    let other = incoming("ACK", BRANCH, Some("s9"));
    receive(&mut l, &other, t0 + ms(20));
    assert_eq!(events(&mut l), [Event::Ack { request: other, source: udp(UAC) }]);
}

#[test]
fn ack_matching_no_transaction_goes_to_the_tu() {
    let mut l = layer();
    let ack = incoming("ACK", ";branch=z9hG4bKack", Some("s1"));
    receive(&mut l, &ack, Instant::now());
    assert_eq!(events(&mut l), [Event::Ack { request: ack, source: udp(UAC) }]);
    assert!(transmits(&mut l).is_empty());
    assert!(l.is_empty());
}

#[test]
fn received_and_rport_are_stamped_and_responses_follow_them() {
    let mut l = layer();
    let t0 = Instant::now();
    for (sent_by, stamped, answer_to) in [
        (
            "10.0.0.5:5070;branch=z9hG4bKnat1;rport",
            "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKnat1;rport=40000;received=203.0.113.9",
            "203.0.113.9:40000",
        ),
        (
            "10.0.0.5:5070;branch=z9hG4bKnat2",
            "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKnat2;received=203.0.113.9",
            "203.0.113.9:5070",
        ),
        (
            // RFC 3581 §4: received even when it equals sent-by, once rport is asked for.
            "203.0.113.9:40000;branch=z9hG4bKnat3;rport",
            "SIP/2.0/UDP 203.0.113.9:40000;branch=z9hG4bKnat3;rport=40000;received=203.0.113.9",
            "203.0.113.9:40000",
        ),
        (
            // Already stamped (by a shell in front of the layer): left as it is.
            "10.0.0.5:5070;branch=z9hG4bKnat4;rport=40000;received=203.0.113.9",
            "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKnat4;rport=40000;received=203.0.113.9",
            "203.0.113.9:40000",
        ),
    ] {
        let nat = udp("203.0.113.9:40000");
        let mut inv = incoming("INVITE", "", None);
        inv.headers.set(HeaderName::Via, format!("SIP/2.0/UDP {sent_by}"));
        receive_from(&mut l, &inv, nat, t0);
        let got = events(&mut l);
        let [Event::Request { request, source, .. }] = &got[..] else { panic!("{got:?}") };
        assert_eq!(*source, nat);
        assert_eq!(request.headers.get(HeaderName::Via), Some(stamped));
        assert_eq!(request.headers.iter().next().map(|h| h.value.as_str()), Some(stamped), "Via stays first");
        let sent = transmits(&mut l);
        assert_eq!(sent[0].target, udp(answer_to));
        assert_eq!(response(&sent[0].data).headers.get(HeaderName::Via), Some(stamped));
    }
}

#[test]
fn request_with_a_mismatched_cseq_is_answered_400_statelessly() {
    let mut l = layer();
    let mut bad = incoming("OPTIONS", BRANCH, None);
    bad.headers.set(HeaderName::CSeq, "1 INVITE");
    receive(&mut l, &bad, Instant::now());
    assert!(events(&mut l).is_empty());
    let sent = transmits(&mut l);
    let answer = response(&sent[0].data);
    assert_eq!(answer.status, 400);
    assert!(answer.reason.contains("CSeq"), "{}", answer.reason);
    assert!(l.is_empty());
}

#[test]
fn transport_error_ends_server_transactions_answering_there() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = invite_transaction(&mut l, tcp(UAC), t0);
    let (other, _) = invite_transaction_on(&mut l, ";branch=z9hG4bKs2", udp(UAC), t0);
    l.transport_error(tcp(UAC));
    assert_eq!(events(&mut l), [Event::ServerTimeout { id }]);
    l.respond(id, reply(&inv, 486, Some("s1")), t0);
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.len(), 1);
    l.respond(other, reply(&inv, 180, Some("s1")), t0);
    assert_eq!(statuses(&mut l), [180]);
}
