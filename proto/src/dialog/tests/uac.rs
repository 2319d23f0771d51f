//! Alice's side: dialogs from responses, requests built on them, responses applied to them.

use bytes::Bytes;

use super::*;

#[test]
fn provisional_with_to_tag_makes_early_dialog_and_2xx_confirms_it_with_reversed_route_set() {
    let invite = invite();
    let ringing = reply(&invite, 180, "bob-tag", Some(BOB_CONTACT), &[P2, P1]);
    let mut dialog = Dialog::uac_from_response(&invite, &ringing).unwrap();
    assert_eq!(dialog.state(), DialogState::Early);
    assert_eq!(
        dialog.id(),
        &DialogId { call_id: CALL_ID.into(), local_tag: "alice-tag".into(), remote_tag: "bob-tag".into() }
    );
    assert_eq!(dialog.route_set(), [name_addr(P1), name_addr(P2)]);
    assert_eq!(dialog.remote_target(), &uri("sip:bob@198.51.100.20:5062"));
    assert_eq!((dialog.local_cseq(), dialog.remote_cseq()), (Some(314159), None));
    assert!(dialog.is_invite_pending() && dialog.owns_call_id() && !dialog.is_secure());
    assert_eq!(dialog.local_contact(), &name_addr(ALICE_CONTACT));

    // The 200 comes from Bob's other device address, and p1 has dropped out of the path.
    let ok = reply(&invite, 200, "bob-tag", Some("<sip:bob@198.51.100.21:5064;transport=tcp>"), &[P2]);
    dialog.receive_response(&ok).unwrap();
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert_eq!(dialog.remote_target(), &uri("sip:bob@198.51.100.21:5064;transport=tcp"));
    assert_eq!(dialog.route_set(), [name_addr(P2)], "route set recomputed from the 2xx");
    assert!(!dialog.is_invite_pending());
}

#[test]
fn sips_request_uri_makes_a_secure_dialog() {
    let mut invite = invite();
    invite.uri = uri("sips:bob@biloxi.example.com");
    let dialog = Dialog::uac_from_response(&invite, &reply(&invite, 200, "bob-tag", Some(BOB_CONTACT), &[])).unwrap();
    assert!(dialog.is_secure());
    assert!(!alice_confirmed().is_secure());
}

#[test]
fn responses_that_name_no_dialog_make_none() {
    let invite = invite();
    let cases = [
        (reply(&invite, 100, "", None, &[]), DialogError::NoDialog(100)),
        (reply(&invite, 180, "", Some(BOB_CONTACT), &[]), DialogError::MissingToTag),
        (reply(&invite, 486, "bob-tag", None, &[]), DialogError::NoDialog(486)),
    ];
    for (response, error) in cases {
        assert_eq!(Dialog::uac_from_response(&invite, &response), Err(error));
    }
    let mut other_call = reply(&invite, 200, "bob-tag", Some(BOB_CONTACT), &[]);
    other_call.headers.set(HeaderName::CallId, "another-call");
    assert_eq!(Dialog::uac_from_response(&invite, &other_call), Err(DialogError::NotThisRequest("Call-ID")));
    let mut no_contact = invite.clone();
    no_contact.headers.remove_all(HeaderName::Contact);
    let ok = reply(&no_contact, 200, "bob-tag", Some(BOB_CONTACT), &[]);
    assert_eq!(Dialog::uac_from_response(&no_contact, &ok), Err(DialogError::MissingContact("INVITE")));
}

#[test]
fn provisional_without_contact_targets_the_request_uri_until_the_2xx_gives_one() {
    let invite = invite();
    let mut dialog = Dialog::uac_from_response(&invite, &reply(&invite, 180, "bob-tag", None, &[])).unwrap();
    assert_eq!(dialog.remote_target(), &invite.uri);
    dialog.receive_response(&reply(&invite, 200, "bob-tag", Some(BOB_CONTACT), &[])).unwrap();
    assert_eq!(dialog.remote_target(), &uri("sip:bob@198.51.100.20:5062"));
}

#[test]
fn bye_through_loose_routes_goes_to_the_remote_target_with_routes_in_order() {
    let mut dialog = alice_confirmed();
    let bye = on_the_wire(&dialog.request(Method::Bye, &alice_sent_by(), &mut rng()).unwrap());
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri, uri("sip:bob@198.51.100.20:5062"));
    assert_eq!(routes(&bye), [P1, P2]);
    assert_eq!(bye.headers.from().unwrap(), name_addr(ALICE));
    assert_eq!(bye.headers.to().unwrap().tag(), Some("bob-tag"));
    assert_eq!(bye.headers.call_id().unwrap(), CALL_ID);
    assert_eq!(cseq(&bye), "314160 BYE");
    assert_eq!(bye.headers.max_forwards().unwrap(), Some(70));
    assert!(!bye.headers.has(HeaderName::Contact), "BYE refreshes no target");
    let via = bye.headers.via().unwrap();
    assert_eq!(
        (via.transport(), via.host.to_string(), via.port),
        (Some(Transport::Udp), "192.0.2.10".into(), Some(5060))
    );
    assert!(via.params.has("rport"));
    assert!(branch(&bye).starts_with("z9hG4bK") && branch(&bye) != "z9hG4bKinvite1");
    assert_eq!(dialog.next_hop(), &uri("sip:p1.atlanta.example.com;lr"));
    assert_eq!(next_hop(&bye).unwrap(), uri("sip:p1.atlanta.example.com;lr"));
}

#[test]
fn strict_router_goes_in_the_request_uri_and_the_remote_target_becomes_the_last_route() {
    let invite = invite();
    // p1 routes strictly (no lr) and is first after reversal.
    let ok = reply(&invite, 200, "bob-tag", Some(BOB_CONTACT), &[P2, "<sip:p1.atlanta.example.com;method=INVITE>"]);
    let mut dialog = Dialog::uac_from_response(&invite, &ok).unwrap();
    let info = on_the_wire(&dialog.request(Method::Info, &alice_sent_by(), &mut rng()).unwrap());
    assert_eq!(info.uri, uri("sip:p1.atlanta.example.com"), "method parameter stripped from the Request-URI");
    assert_eq!(routes(&info), [P2, BOB_CONTACT]);
    assert_eq!(dialog.next_hop().host, Host::Domain("p1.atlanta.example.com".into()));
}

#[test]
fn without_route_set_requests_go_straight_to_the_remote_target() {
    let invite = invite();
    let ok = reply(&invite, 200, "bob-tag", Some("<sip:bob@198.51.100.20:5062?Subject=x>"), &[]);
    let mut dialog = Dialog::uac_from_response(&invite, &ok).unwrap();
    let bye = on_the_wire(&dialog.request(Method::Bye, &alice_sent_by(), &mut rng()).unwrap());
    assert_eq!(bye.uri, uri("sip:bob@198.51.100.20:5062"), "URI headers are not allowed in a Request-URI");
    assert!(routes(&bye).is_empty());
    assert_eq!(next_hop(&bye).unwrap(), bye.uri);
}

#[test]
fn cseq_increments_per_request_and_ack_and_cancel_reuse_the_reinvite_number() {
    let mut dialog = alice_confirmed();
    let mut rng = rng();
    let by = alice_sent_by();
    let info = dialog.request(Method::Info, &by, &mut rng).unwrap();
    assert_eq!(cseq(&info), "314160 INFO");
    assert!(!info.headers.has(HeaderName::Contact));

    let reinvite = dialog.request(Method::Invite, &by, &mut rng).unwrap();
    assert_eq!(cseq(&reinvite), "314161 INVITE");
    assert_eq!(reinvite.headers.get(HeaderName::Contact), Some(ALICE_CONTACT));
    assert!(dialog.is_invite_pending());

    let cancel = on_the_wire(&dialog.request(Method::Cancel, &by, &mut rng).unwrap());
    assert_eq!(cseq(&cancel), "314161 CANCEL");
    assert_eq!(cancel.headers.get(HeaderName::Via), reinvite.headers.get(HeaderName::Via), "§9.1: same Via");
    assert_eq!((&cancel.uri, routes(&cancel)), (&reinvite.uri, routes(&reinvite)));

    dialog.receive_response(&reply(&reinvite, 200, "", Some(BOB_CONTACT), &[])).unwrap();
    assert!(!dialog.is_invite_pending());
    let ack = on_the_wire(&dialog.request(Method::Ack, &by, &mut rng).unwrap());
    assert_eq!(cseq(&ack), "314161 ACK");
    assert_ne!(branch(&ack), branch(&reinvite), "the ACK for a 2xx is a transaction of its own");
    assert_eq!(dialog.request(Method::Cancel, &by, &mut rng), Err(DialogError::NoInvite), "nothing left to cancel");

    let refer = dialog.request(Method::Refer, &by, &mut rng).unwrap();
    assert_eq!(cseq(&refer), "314162 REFER");
    assert!(refer.headers.has(HeaderName::Contact));
    assert_eq!(dialog.local_cseq(), Some(314162));
}

#[test]
fn ack_or_cancel_without_a_reinvite_is_refused() {
    let mut dialog = alice_confirmed();
    for method in [Method::Ack, Method::Cancel] {
        assert_eq!(dialog.request(method, &alice_sent_by(), &mut rng()), Err(DialogError::NoInvite));
    }
    assert_eq!(dialog.local_cseq(), Some(314159), "a refused request uses no CSeq");
}

#[test]
fn ack_for_2xx_keeps_the_invite_cseq_and_credentials_with_a_fresh_branch() {
    // The INVITE that got through after a 407: CSeq moved on, credentials added.
    let mut invite = invite();
    invite.headers.set(HeaderName::CSeq, "314160 INVITE");
    invite.headers.push(HeaderName::ProxyAuthorization, "Digest username=\"alice\", realm=\"atlanta.example.com\"");
    let dialog =
        Dialog::uac_from_response(&invite, &reply(&invite, 200, "bob-tag", Some(BOB_CONTACT), &[P2, P1])).unwrap();
    let sdp = Bytes::from_static(b"v=0\r\n");
    let ack = on_the_wire(&dialog.ack_for_2xx(&invite, Some(sdp.clone()), &alice_sent_by(), &mut rng()).unwrap());
    assert_eq!(cseq(&ack), "314160 ACK");
    assert_eq!(ack.uri, uri("sip:bob@198.51.100.20:5062"));
    assert_eq!(routes(&ack), [P1, P2]);
    assert_eq!(ack.headers.to().unwrap().tag(), Some("bob-tag"));
    assert_eq!(ack.headers.get(HeaderName::ProxyAuthorization), invite.headers.get(HeaderName::ProxyAuthorization));
    assert_eq!((ack.headers.get(HeaderName::ContentType), &ack.body), (Some("application/sdp"), &sdp));
    assert_ne!(branch(&ack), branch(&invite));
    assert_eq!(dialog.local_cseq(), Some(314160), "the ACK takes no new CSeq");
    let info = request("INFO sip:x SIP/2.0\r\nCSeq: 2 INFO\r\n\r\n");
    assert_eq!(
        dialog.ack_for_2xx(&info, None, &alice_sent_by(), &mut rng()),
        Err(DialogError::NotThisRequest("method"))
    );
}

#[test]
fn invite_while_another_is_in_progress_is_refused() {
    let invite = invite();
    let mut early =
        Dialog::uac_from_response(&invite, &reply(&invite, 183, "bob-tag", Some(BOB_CONTACT), &[])).unwrap();
    assert_eq!(early.request(Method::Invite, &alice_sent_by(), &mut rng()), Err(DialogError::InvitePending));
    assert!(early.request(Method::Update, &alice_sent_by(), &mut rng()).is_ok(), "UPDATE is fine on an early dialog");

    let mut dialog = alice_confirmed();
    dialog.request(Method::Invite, &alice_sent_by(), &mut rng()).unwrap();
    assert_eq!(dialog.request(Method::Invite, &alice_sent_by(), &mut rng()), Err(DialogError::InvitePending));
}

#[test]
fn caller_may_bye_an_early_dialog() {
    let invite = invite();
    let mut early =
        Dialog::uac_from_response(&invite, &reply(&invite, 180, "bob-tag", Some(BOB_CONTACT), &[])).unwrap();
    assert!(early.request(Method::Bye, &alice_sent_by(), &mut rng()).is_ok());
}

#[test]
fn reinvite_and_update_2xx_replace_the_remote_target_but_info_2xx_does_not() {
    let mut dialog = alice_confirmed();
    let mut rng = rng();
    let info = dialog.request(Method::Info, &alice_sent_by(), &mut rng).unwrap();
    dialog.receive_response(&reply(&info, 200, "", Some("<sip:bob@203.0.113.9>"), &[])).unwrap();
    assert_eq!(dialog.remote_target(), &uri("sip:bob@198.51.100.20:5062"));

    let reinvite = dialog.request(Method::Invite, &alice_sent_by(), &mut rng).unwrap();
    dialog.receive_response(&reply(&reinvite, 200, "", Some("<sip:bob@203.0.113.9:5070>"), &[P1])).unwrap();
    assert_eq!(dialog.remote_target(), &uri("sip:bob@203.0.113.9:5070"));
    assert_eq!(dialog.route_set(), [name_addr(P1), name_addr(P2)], "a target refresh keeps the route set");

    let update = dialog.request(Method::Update, &alice_sent_by(), &mut rng).unwrap();
    dialog.receive_response(&reply(&update, 200, "", Some("<sip:bob@203.0.113.10>"), &[])).unwrap();
    assert_eq!(dialog.remote_target(), &uri("sip:bob@203.0.113.10"));
}

#[test]
fn rejected_reinvite_keeps_the_dialog_and_ends_the_pending_invite() {
    let mut dialog = alice_confirmed();
    let reinvite = dialog.request(Method::Invite, &alice_sent_by(), &mut rng()).unwrap();
    dialog.receive_response(&reply(&reinvite, 491, "", None, &[])).unwrap();
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert!(!dialog.is_invite_pending());
    assert!(dialog.request(Method::Invite, &alice_sent_by(), &mut rng()).is_ok(), "retry allowed after 491");
}

#[test]
fn response_481_or_408_terminates_the_dialog() {
    for status in [481, 408] {
        let mut dialog = alice_confirmed();
        let info = dialog.request(Method::Info, &alice_sent_by(), &mut rng()).unwrap();
        dialog.receive_response(&reply(&info, status, "", None, &[])).unwrap();
        assert_eq!(dialog.state(), DialogState::Terminated);
        assert_eq!(dialog.request(Method::Bye, &alice_sent_by(), &mut rng()), Err(DialogError::Terminated));
    }
}

#[test]
fn non_2xx_final_to_the_invite_terminates_the_early_dialog() {
    let invite = invite();
    let mut dialog =
        Dialog::uac_from_response(&invite, &reply(&invite, 180, "bob-tag", Some(BOB_CONTACT), &[])).unwrap();
    dialog.receive_response(&reply(&invite, 486, "bob-tag", None, &[])).unwrap();
    assert_eq!(dialog.state(), DialogState::Terminated);
    assert!(!dialog.is_invite_pending());
}

#[test]
fn bye_final_terminates_but_a_challenge_does_not() {
    let mut dialog = alice_confirmed();
    let bye = dialog.request(Method::Bye, &alice_sent_by(), &mut rng()).unwrap();
    dialog.receive_response(&reply(&bye, 407, "", None, &[])).unwrap();
    assert_eq!(dialog.state(), DialogState::Confirmed, "the BYE is retried with credentials");
    let retry = dialog.request(Method::Bye, &alice_sent_by(), &mut rng()).unwrap();
    assert_eq!(cseq(&retry), "314161 BYE");
    dialog.receive_response(&reply(&retry, 200, "", None, &[])).unwrap();
    assert_eq!(dialog.state(), DialogState::Terminated);
}

#[test]
fn response_of_another_dialog_is_refused_and_changes_nothing() {
    let mut dialog = alice_confirmed();
    let info = dialog.request(Method::Info, &alice_sent_by(), &mut rng()).unwrap();
    let mut other = reply(&info, 481, "", None, &[]);
    other.headers.set(HeaderName::To, "<sip:bob@biloxi.example.com>;tag=other-fork");
    assert_eq!(dialog.receive_response(&other), Err(DialogError::NotThisDialog));
    assert_eq!(dialog.state(), DialogState::Confirmed);
}

#[test]
fn malformed_record_route_in_the_confirming_2xx_leaves_the_dialog_early() {
    let invite = invite();
    let mut dialog =
        Dialog::uac_from_response(&invite, &reply(&invite, 180, "bob-tag", Some(BOB_CONTACT), &[])).unwrap();
    let broken = reply(&invite, 200, "bob-tag", Some("<sip:bob@203.0.113.9>"), &["<sip:p2.biloxi.example.com;lr"]);
    assert!(matches!(dialog.receive_response(&broken), Err(DialogError::Malformed(_))));
    assert_eq!(dialog.state(), DialogState::Early);
    assert_eq!(dialog.remote_target(), &uri("sip:bob@198.51.100.20:5062"));
}

#[test]
fn sent_by_stamp_rewrites_the_top_via_and_keeps_its_branch() {
    let mut dialog = alice_confirmed();
    let mut bye = dialog.request(Method::Bye, &alice_sent_by(), &mut rng()).unwrap();
    let before = branch(&bye);
    let tcp = SentBy { transport: Transport::Tcp, host: Host::Domain("alice.example.com".into()), port: None };
    tcp.stamp(&mut bye).unwrap();
    let bye = on_the_wire(&bye);
    let via = bye.headers.via().unwrap();
    assert_eq!(
        (via.transport(), via.host.to_string(), via.port),
        (Some(Transport::Tcp), "alice.example.com".into(), None)
    );
    assert_eq!(via.branch(), Some(before.as_str()));
    assert!(via.params.has("rport"));
    assert_eq!(bye.headers.get_all(HeaderName::Via).count(), 1);
}

#[test]
fn first_cseq_of_a_dialog_the_peer_began_is_random_reproducible_and_below_2_31() {
    for seed in 0..50 {
        let mut dialog = bob_confirmed();
        let info = dialog.request(Method::Info, &bob_sent_by(), &mut StdRng::seed_from_u64(seed)).unwrap();
        let first = info.headers.cseq().unwrap().seq;
        assert_eq!(first, initial_cseq(&mut StdRng::seed_from_u64(seed)));
        assert!(first > 0 && first < 1 << 31);
        let next = dialog.request(Method::Info, &bob_sent_by(), &mut rng()).unwrap();
        assert_eq!(next.headers.cseq().unwrap().seq, first + 1);
    }
    let firsts: std::collections::HashSet<u32> =
        (0..50).map(|seed| initial_cseq(&mut StdRng::seed_from_u64(seed))).collect();
    assert!(firsts.len() > 45, "first CSeqs vary with the rng");
}

#[test]
fn local_cseq_at_the_limit_is_refused_not_wrapped() {
    let mut invite = invite();
    invite.headers.set(HeaderName::CSeq, format!("{} INVITE", u32::MAX));
    let mut dialog =
        Dialog::uac_from_response(&invite, &reply(&invite, 200, "bob-tag", Some(BOB_CONTACT), &[])).unwrap();
    assert_eq!(dialog.request(Method::Bye, &alice_sent_by(), &mut rng()), Err(DialogError::CSeqExhausted));
}

#[test]
fn next_hop_of_a_request_is_its_first_route_else_its_request_uri() {
    let mut req = invite();
    assert_eq!(next_hop(&req).unwrap(), uri("sip:bob@biloxi.example.com"));
    req.headers.push(HeaderName::Route, "<sip:outbound.atlanta.example.com;lr>");
    req.headers.push(HeaderName::Route, P2);
    assert_eq!(next_hop(&req).unwrap(), uri("sip:outbound.atlanta.example.com;lr"));
    req.headers.set(HeaderName::Route, "<sip:broken");
    assert!(next_hop(&req).is_err());
}
