//! Client transactions: retransmission and timeout timers, ACK and CANCEL construction, RFC 6026.

use super::*;

/// An INVITE as a proxy forwards it: our Via on top of the caller's, a route set, a body.
fn invite(branch: &str) -> Request {
    request(&format!(
        "INVITE sip:bob@192.0.2.20 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n\
         Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKcaller\r\n\
         Max-Forwards: 69\r\n\
         Route: <sip:192.0.2.30;lr>\r\n\
         Route: <sip:192.0.2.40;lr>\r\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-1@example.com\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@198.51.100.1>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 5\r\n\r\nv=0\r\n"
    ))
}

fn options(branch: &str) -> Request {
    request(&format!(
        "OPTIONS sip:bob@192.0.2.20 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: opt-1@example.com\r\n\
         CSeq: 7 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

const ACK: &str = "ACK sip:bob@192.0.2.20 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv1\r\n\
    Max-Forwards: 69\r\n\
    Route: <sip:192.0.2.30;lr>\r\n\
    Route: <sip:192.0.2.40;lr>\r\n\
    From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
    To: <sip:bob@example.com>;tag=b1\r\n\
    Call-ID: call-1@example.com\r\n\
    CSeq: 1 ACK\r\n\
    Content-Length: 0\r\n\r\n";

const CANCEL: &str = "CANCEL sip:bob@192.0.2.20 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv1\r\n\
    Max-Forwards: 69\r\n\
    Route: <sip:192.0.2.30;lr>\r\n\
    Route: <sip:192.0.2.40;lr>\r\n\
    From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
    To: <sip:bob@example.com>\r\n\
    Call-ID: call-1@example.com\r\n\
    CSeq: 1 CANCEL\r\n\
    Content-Length: 0\r\n\r\n";

fn text(t: &Transmit) -> &str {
    std::str::from_utf8(&t.data).unwrap()
}

/// Starts an INVITE client transaction at `t0` and takes the INVITE off the queue.
fn start_invite(layer: &mut TransactionLayer, target: Target, t0: Instant) -> (ClientId, Request) {
    let inv = invite("z9hG4bKinv1");
    let id = layer.send_request(inv.clone(), target, t0).unwrap();
    let sent = transmits(layer);
    assert_eq!(sent, [Transmit { target, data: inv.encode() }]);
    (id, inv)
}

fn feed(layer: &mut TransactionLayer, response: &Response, at: Instant) {
    layer.handle_message(Message::Response(response.clone()), udp(UAS), at);
}

#[test]
fn invite_client_retransmits_on_timer_a_doubling_from_t1_over_udp() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, inv) = start_invite(&mut l, udp(UAS), t0);
    let run = run_until(&mut l, t0, t0 + ms(31_999));
    assert_eq!(run.transmit_times(), [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(run.transmits.iter().all(|(_, t)| t.data == inv.encode() && t.target == udp(UAS)));
    assert!(run.events.is_empty());
}

#[test]
fn invite_client_times_out_on_timer_b_at_64_t1() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = start_invite(&mut l, udp(UAS), t0);
    let run = run_until(&mut l, t0, t0 + ms(100_000));
    assert_eq!(run.events, [(ms(32_000), Event::Timeout { id })]);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn invite_client_over_tcp_never_retransmits_but_still_times_out() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, _) = start_invite(&mut l, tcp(UAS), t0);
    let run = run_until(&mut l, t0, t0 + ms(100_000));
    assert!(run.transmits.is_empty());
    assert_eq!(run.events, [(ms(32_000), Event::Timeout { id })]);
}

#[test]
fn provisional_response_stops_timers_a_and_b() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    let ringing = reply(&inv, 180, Some("b1"));
    feed(&mut l, &ringing, t0 + ms(100));
    assert_eq!(events(&mut l), [Event::Response { id, response: ringing }]);
    assert_eq!(l.poll_timeout(), None, "stale A and B entries must not wake the shell");
    let run = run_until(&mut l, t0, t0 + ms(300_000));
    assert!(run.transmits.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 1);
}

#[test]
fn invite_client_acks_487_with_the_headers_of_rfc3261_17_1_1_3() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    let ringing = reply(&inv, 180, Some("b1"));
    let terminated = reply(&inv, 487, Some("b1"));
    feed(&mut l, &ringing, t0 + ms(100));
    feed(&mut l, &terminated, t0 + ms(900));
    let sent = transmits(&mut l);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].target, udp(UAS));
    assert_eq!(text(&sent[0]), ACK);
    assert_eq!(
        events(&mut l),
        [Event::Response { id, response: ringing }, Event::Response { id, response: terminated }]
    );
}

#[test]
fn retransmitted_final_is_absorbed_and_acked_again() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    let busy = reply(&inv, 486, Some("b1"));
    feed(&mut l, &busy, t0 + ms(100));
    assert_eq!(events(&mut l), [Event::Response { id, response: busy.clone() }]);
    let first_ack = transmits(&mut l);
    feed(&mut l, &busy, t0 + ms(700));
    assert!(events(&mut l).is_empty(), "a retransmitted final must not reach the TU again");
    assert_eq!(transmits(&mut l), first_ack);
}

#[test]
fn timer_d_keeps_completed_invite_client_32_s_over_udp() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, inv) = start_invite(&mut l, udp(UAS), t0);
    let busy = reply(&inv, 486, Some("b1"));
    feed(&mut l, &busy, t0 + ms(1000));
    transmits(&mut l);
    events(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(32_999));
    assert!(run.transmits.is_empty(), "Timer A stops in Completed");
    assert_eq!(l.len(), 1);
    run_until(&mut l, t0, t0 + ms(33_000));
    assert!(l.is_empty());
    feed(&mut l, &busy, t0 + ms(33_001));
    assert!(matches!(events(&mut l)[..], [Event::StrayResponse { .. }]));
}

#[test]
fn invite_client_over_tcp_ends_at_once_on_non_2xx_final() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, inv) = start_invite(&mut l, tcp(UAS), t0);
    feed(&mut l, &reply(&inv, 486, Some("b1")), t0 + ms(100));
    let sent = transmits(&mut l);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].target, tcp(UAS));
    assert!(text(&sent[0]).starts_with("ACK "));
    assert!(l.is_empty());
}

#[test]
fn invite_client_2xx_enters_accepted_and_passes_every_2xx_up_until_timer_m() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    let ok = reply(&inv, 200, Some("b1"));
    let forked = reply(&inv, 200, Some("b2"));
    feed(&mut l, &ok, t0 + ms(1000));
    feed(&mut l, &ok, t0 + ms(1500));
    feed(&mut l, &forked, t0 + ms(1600));
    feed(&mut l, &reply(&inv, 486, Some("b3")), t0 + ms(1700));
    assert!(transmits(&mut l).is_empty(), "the ACK for a 2xx is the TU's");
    assert_eq!(
        events(&mut l),
        [
            Event::Response { id, response: ok.clone() },
            Event::Response { id, response: ok.clone() },
            Event::Response { id, response: forked },
        ]
    );
    let run = run_until(&mut l, t0, t0 + ms(32_999));
    assert!(run.transmits.is_empty() && run.events.is_empty());
    assert_eq!(l.len(), 1);
    run_until(&mut l, t0, t0 + ms(33_000));
    assert!(l.is_empty(), "Timer M is 64·T1");
    feed(&mut l, &ok, t0 + ms(33_001));
    assert!(matches!(&events(&mut l)[..], [Event::StrayResponse { response, .. }] if *response == ok));
}

#[test]
fn non_invite_client_timer_e_doubles_up_to_t2() {
    let mut l = layer();
    let t0 = Instant::now();
    l.send_request(options("z9hG4bKopt1"), udp(UAS), t0).unwrap();
    transmits(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(20_000));
    assert_eq!(run.transmit_times(), [500, 1500, 3500, 7500, 11500, 15500, 19500]);
}

#[test]
fn non_invite_client_retransmits_every_t2_once_proceeding() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = options("z9hG4bKopt1");
    let id = l.send_request(opt.clone(), udp(UAS), t0).unwrap();
    transmits(&mut l);
    assert_eq!(run_until(&mut l, t0, t0 + ms(600)).transmit_times(), [500]);
    let trying = reply(&opt, 100, None);
    feed(&mut l, &trying, t0 + ms(600));
    assert_eq!(events(&mut l), [Event::Response { id, response: trying }]);
    // E was armed for 1500 before the 100; after it fires in Proceeding it is T2.
    assert_eq!(run_until(&mut l, t0, t0 + ms(14_000)).transmit_times(), [1500, 5500, 9500, 13500]);
}

#[test]
fn non_invite_client_times_out_on_timer_f_even_when_proceeding() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = options("z9hG4bKopt1");
    let id = l.send_request(opt.clone(), udp(UAS), t0).unwrap();
    feed(&mut l, &reply(&opt, 100, None), t0 + ms(50));
    events(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(60_000));
    assert_eq!(run.events, [(ms(32_000), Event::Timeout { id })]);
    assert!(l.is_empty());
}

#[test]
fn non_invite_client_over_tcp_never_retransmits() {
    let mut l = layer();
    let t0 = Instant::now();
    let id = l.send_request(options("z9hG4bKopt1"), tcp(UAS), t0).unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    let run = run_until(&mut l, t0, t0 + ms(60_000));
    assert!(run.transmits.is_empty());
    assert_eq!(run.events, [(ms(32_000), Event::Timeout { id })]);
}

#[test]
fn timer_k_absorbs_final_retransmissions_for_t4_over_udp() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = options("z9hG4bKopt1");
    let id = l.send_request(opt.clone(), udp(UAS), t0).unwrap();
    transmits(&mut l);
    let ok = reply(&opt, 200, Some("b1"));
    feed(&mut l, &ok, t0 + ms(1000));
    assert_eq!(events(&mut l), [Event::Response { id, response: ok.clone() }]);
    feed(&mut l, &ok, t0 + ms(2000));
    assert!(events(&mut l).is_empty());
    let run = run_until(&mut l, t0, t0 + ms(5999));
    assert!(run.transmits.is_empty(), "Timer E stops in Completed");
    assert_eq!(l.len(), 1);
    run_until(&mut l, t0, t0 + ms(6000));
    assert!(l.is_empty(), "Timer K is T4");
    feed(&mut l, &ok, t0 + ms(6001));
    assert!(matches!(events(&mut l)[..], [Event::StrayResponse { .. }]));
}

#[test]
fn timer_k_is_zero_over_tcp() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = options("z9hG4bKopt1");
    l.send_request(opt.clone(), tcp(UAS), t0).unwrap();
    feed(&mut l, &reply(&opt, 200, Some("b1")), t0 + ms(100));
    assert!(l.is_empty());
}

#[test]
fn cancel_waits_for_a_provisional_response_then_goes_out() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    let cancel = l.cancel(id, t0 + ms(100)).expect("an INVITE in Calling can be cancelled");
    assert_ne!(cancel, id);
    assert!(transmits(&mut l).is_empty(), "no CANCEL before a provisional response (§9.1)");
    assert_eq!(l.cancel(id, t0 + ms(200)), Some(cancel), "asking again returns the same CANCEL");
    assert_eq!(run_until(&mut l, t0, t0 + ms(600)).transmit_times(), [500], "the INVITE is still retransmitted");
    feed(&mut l, &reply(&inv, 100, None), t0 + ms(700));
    let sent = transmits(&mut l);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].target, udp(UAS));
    assert_eq!(text(&sent[0]), CANCEL);
    // The CANCEL is a non-INVITE client transaction of its own: Timer E from when it went out.
    let run = run_until(&mut l, t0, t0 + ms(2199));
    assert_eq!(run.transmit_times(), [1200], "only the CANCEL, 500 ms after it went out");
    assert_eq!(text(&run.transmits[0].1), CANCEL);
}

#[test]
fn cancel_after_a_provisional_goes_out_at_once_and_487_is_acked() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    feed(&mut l, &reply(&inv, 180, Some("b1")), t0 + ms(100));
    let cancel = l.cancel(id, t0 + ms(200)).unwrap();
    assert_eq!(transmits(&mut l).iter().map(text).collect::<Vec<_>>(), [CANCEL]);
    let cancel_request = request(CANCEL);
    let cancel_ok = reply(&cancel_request, 200, Some("b1"));
    feed(&mut l, &cancel_ok, t0 + ms(300));
    let terminated = reply(&inv, 487, Some("b1"));
    feed(&mut l, &terminated, t0 + ms(310));
    assert_eq!(transmits(&mut l).iter().map(text).collect::<Vec<_>>(), [ACK]);
    let got = events(&mut l);
    assert_eq!(
        got[1..],
        [Event::Response { id: cancel, response: cancel_ok }, Event::Response { id, response: terminated }]
    );
}

#[test]
fn cancel_crossing_200_delivers_the_200_and_the_cancels_own_200() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    feed(&mut l, &reply(&inv, 180, Some("b1")), t0 + ms(100));
    let cancel = l.cancel(id, t0 + ms(200)).unwrap();
    transmits(&mut l);
    events(&mut l);
    // The callee answered before the CANCEL reached it.
    let ok = reply(&inv, 200, Some("b1"));
    feed(&mut l, &ok, t0 + ms(210));
    let cancel_ok = reply(&request(CANCEL), 200, Some("b1"));
    feed(&mut l, &cancel_ok, t0 + ms(250));
    assert_eq!(
        events(&mut l),
        [Event::Response { id, response: ok }, Event::Response { id: cancel, response: cancel_ok }]
    );
    assert!(transmits(&mut l).is_empty(), "no ACK from the layer for a 2xx");
    assert_eq!(l.cancel(id, t0 + ms(300)), Some(cancel));
}

#[test]
fn cancelled_invite_without_final_response_gives_up_after_64_t1() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    feed(&mut l, &reply(&inv, 180, Some("b1")), t0 + ms(100));
    l.cancel(id, t0 + ms(1000)).unwrap();
    feed(&mut l, &reply(&request(CANCEL), 200, Some("b1")), t0 + ms(1100));
    events(&mut l);
    let run = run_until(&mut l, t0, t0 + ms(60_000));
    assert_eq!(run.events, [(ms(33_000), Event::Timeout { id })]);
    assert!(l.is_empty());
}

#[test]
fn pending_cancel_is_dropped_when_a_final_comes_first() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    l.cancel(id, t0 + ms(100)).unwrap();
    feed(&mut l, &reply(&inv, 486, Some("b1")), t0 + ms(200));
    assert_eq!(transmits(&mut l).iter().map(text).collect::<Vec<_>>(), [ACK]);
    assert_eq!(l.len(), 1, "only the INVITE, in Completed");
}

#[test]
fn cancel_is_refused_after_a_final_and_for_non_invite() {
    let mut l = layer();
    let t0 = Instant::now();
    let (id, inv) = start_invite(&mut l, udp(UAS), t0);
    feed(&mut l, &reply(&inv, 486, Some("b1")), t0 + ms(100));
    assert_eq!(l.cancel(id, t0 + ms(200)), None);
    let opt = l.send_request(options("z9hG4bKopt1"), udp(UAS), t0).unwrap();
    assert_eq!(l.cancel(opt, t0 + ms(200)), None);
}

#[test]
fn send_request_refuses_what_cannot_be_a_transaction() {
    let mut l = layer();
    let t0 = Instant::now();
    let no_cookie = invite("1234");
    assert_eq!(l.send_request(no_cookie, udp(UAS), t0), Err(SendError::NoRfc3261Branch("1234".into())));
    let mut ack = request(ACK);
    assert_eq!(l.send_request(ack.clone(), udp(UAS), t0), Err(SendError::Ack));
    ack.method = Method::Bye;
    assert!(matches!(l.send_request(ack, udp(UAS), t0), Err(SendError::Malformed(_))), "CSeq says ACK");
    l.send_request(invite("z9hG4bKsame"), udp(UAS), t0).unwrap();
    assert!(matches!(l.send_request(invite("z9hG4bKsame"), udp(UAS), t0), Err(SendError::BranchInUse { .. })));
    assert_eq!(l.len(), 1);
}

#[test]
fn response_matching_no_client_transaction_is_stray() {
    let mut l = layer();
    let t0 = Instant::now();
    let (_, inv) = start_invite(&mut l, udp(UAS), t0);
    let mut other = reply(&inv, 180, None);
    other.headers.set(HeaderName::CSeq, "1 BYE");
    feed(&mut l, &other, t0);
    assert_eq!(
        events(&mut l),
        [Event::StrayResponse { response: other, source: udp(UAS) }],
        "the method is part of the match"
    );
}

#[test]
fn transport_error_times_out_the_transactions_to_that_target() {
    let mut l = layer();
    let t0 = Instant::now();
    let failed = l.send_request(invite("z9hG4bKa"), tcp(UAS), t0).unwrap();
    let other = tcp("192.0.2.21:5060");
    l.send_request(invite("z9hG4bKb"), other, t0).unwrap();
    l.transport_error(tcp(UAS));
    assert_eq!(events(&mut l), [Event::Timeout { id: failed }]);
    assert_eq!(l.len(), 1);
    let run = run_until(&mut l, t0, t0 + ms(100_000));
    assert_eq!(run.events.len(), 1, "only the other INVITE's Timer B");
}
