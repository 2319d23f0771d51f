//! Bob's side: the dialog an INVITE makes, the responses he sends, the requests Alice sends.

use std::time::Duration;

use super::*;

const BOB: &str = "<sip:bob@biloxi.example.com>;tag=bob-tag";

/// A request Alice sends on Bob's dialog.
fn from_alice(method: &str, cseq: u32, extra: &str) -> Request {
    peer_request(method, cseq, ALICE, BOB, extra)
}

fn rejected(received: Received) -> Response {
    match received {
        Received::Reject(response) => response,
        Received::InOrder => panic!("expected a rejection"),
    }
}

#[test]
fn invite_makes_early_dialog_with_record_route_in_order() {
    let dialog = Dialog::uas_from_request(&invite_at_bob(), "bob-tag", name_addr(BOB_CONTACT)).unwrap();
    assert_eq!(dialog.state(), DialogState::Early);
    assert_eq!(
        dialog.id(),
        &DialogId { call_id: CALL_ID.into(), local_tag: "bob-tag".into(), remote_tag: "alice-tag".into() }
    );
    assert_eq!(dialog.route_set(), [name_addr(P2), name_addr(P1)]);
    assert_eq!(dialog.remote_target(), &uri("sip:alice@192.0.2.10:5060"));
    assert_eq!((dialog.local_cseq(), dialog.remote_cseq()), (None, Some(314159)));
    assert!(dialog.is_remote_invite_pending() && !dialog.owns_call_id());
    assert_eq!(dialog.local(), &name_addr(BOB));
    assert_eq!(dialog.remote(), &name_addr(ALICE));
}

#[test]
fn bye_from_the_callee_goes_through_the_route_set_in_order() {
    let mut dialog = bob_confirmed();
    let bye = on_the_wire(&dialog.request(Method::Bye, &bob_sent_by(), &mut rng()).unwrap());
    assert_eq!(bye.uri, uri("sip:alice@192.0.2.10:5060"));
    assert_eq!(routes(&bye), [P2, P1]);
    assert_eq!(bye.headers.from().unwrap(), name_addr(BOB));
    assert_eq!(bye.headers.to().unwrap(), name_addr(ALICE));
    assert_eq!(dialog.next_hop(), &uri("sip:p2.biloxi.example.com;lr"));
}

#[test]
fn invite_with_a_to_tag_or_without_contact_makes_no_dialog() {
    let mut tagged = invite_at_bob();
    tagged.headers.set(HeaderName::To, BOB);
    assert_eq!(Dialog::uas_from_request(&tagged, "bob-tag", name_addr(BOB_CONTACT)), Err(DialogError::AlreadyInDialog));
    let mut no_contact = invite_at_bob();
    no_contact.headers.remove_all(HeaderName::Contact);
    assert_eq!(
        Dialog::uas_from_request(&no_contact, "bob-tag", name_addr(BOB_CONTACT)),
        Err(DialogError::MissingContact("request"))
    );
}

#[test]
fn invite_without_from_tag_makes_a_dialog_with_an_empty_remote_tag() {
    let mut old = invite_at_bob();
    old.headers.set(HeaderName::From, "<sip:alice@atlanta.example.com>");
    let dialog = Dialog::uas_from_request(&old, "bob-tag", name_addr(BOB_CONTACT)).unwrap();
    assert_eq!(dialog.id().remote_tag, "");
    let bye = peer_request("BYE", 314160, "<sip:alice@atlanta.example.com>", BOB, "");
    assert_eq!(DialogId::of_request(&bye).as_ref(), Some(dialog.id()));
}

#[test]
fn responses_to_the_invite_carry_to_tag_contact_and_record_route_and_2xx_confirms() {
    let invite = invite_at_bob();
    let mut dialog = Dialog::uas_from_request(&invite, "bob-tag", name_addr(BOB_CONTACT)).unwrap();
    let trying = dialog.respond(&invite, 100);
    assert_eq!(trying.headers.to().unwrap().tag(), None);
    assert!(!trying.headers.has(HeaderName::Contact) && !trying.headers.has(HeaderName::RecordRoute));

    for status in [180, 200] {
        let response = dialog.respond(&invite, status);
        assert_eq!(response.headers.to().unwrap().tag(), Some("bob-tag"));
        assert_eq!(response.headers.get(HeaderName::Contact), Some(BOB_CONTACT));
        assert_eq!(response.headers.get_all(HeaderName::RecordRoute).collect::<Vec<_>>(), [P2, P1]);
        assert_eq!(response.headers.get_all(HeaderName::Via).count(), 3);
    }
    assert_eq!(dialog.state(), DialogState::Confirmed);
    assert!(!dialog.is_remote_invite_pending());
}

#[test]
fn error_final_to_the_invite_terminates_the_early_dialog() {
    let invite = invite_at_bob();
    let mut dialog = Dialog::uas_from_request(&invite, "bob-tag", name_addr(BOB_CONTACT)).unwrap();
    let _ = dialog.respond(&invite, 180);
    let busy = dialog.respond(&invite, 486);
    assert_eq!(busy.headers.to().unwrap().tag(), Some("bob-tag"));
    assert!(!busy.headers.has(HeaderName::Contact));
    assert_eq!(dialog.state(), DialogState::Terminated);
}

#[test]
fn callee_cannot_bye_an_early_dialog() {
    let mut dialog = Dialog::uas_from_request(&invite_at_bob(), "bob-tag", name_addr(BOB_CONTACT)).unwrap();
    assert_eq!(dialog.request(Method::Bye, &bob_sent_by(), &mut rng()), Err(DialogError::ByeOnEarlyDialog));
    assert_eq!(dialog.local_cseq(), None);
}

#[test]
fn request_with_cseq_below_the_last_is_rejected_500_and_changes_nothing() {
    let mut dialog = bob_confirmed();
    assert_eq!(dialog.receive_request(&from_alice("INFO", 314161, ""), &mut rng()), Received::InOrder);
    assert_eq!(dialog.remote_cseq(), Some(314161));

    let late = from_alice("UPDATE", 314160, "Contact: <sip:alice@203.0.113.50>\r\n");
    let response = rejected(dialog.receive_request(&late, &mut rng()));
    assert_eq!(response.status, 500);
    assert_eq!(response.headers.cseq().unwrap().to_string(), "314160 UPDATE");
    assert_eq!(dialog.remote_cseq(), Some(314161));
    assert_eq!(dialog.remote_target(), &uri("sip:alice@192.0.2.10:5060"));

    assert_eq!(dialog.receive_request(&from_alice("INFO", 314170, ""), &mut rng()), Received::InOrder);
    assert_eq!(dialog.remote_cseq(), Some(314170), "gaps are fine");
}

#[test]
fn ack_and_cancel_pass_with_their_invite_cseq() {
    let mut dialog = bob_confirmed();
    let _ = dialog.receive_request(&from_alice("INFO", 314165, ""), &mut rng());
    for method in ["ACK", "CANCEL"] {
        assert_eq!(dialog.receive_request(&from_alice(method, 314159, ""), &mut rng()), Received::InOrder);
    }
    assert_eq!(dialog.remote_cseq(), Some(314165));
}

#[test]
fn reinvite_from_the_peer_refreshes_the_remote_target() {
    let mut dialog = bob_confirmed();
    let reinvite = from_alice(
        "INVITE",
        314160,
        "Contact: <sip:alice@203.0.113.50:5080>\r\nRecord-Route: <sip:p2.biloxi.example.com;lr>\r\n",
    );
    assert_eq!(dialog.receive_request(&reinvite, &mut rng()), Received::InOrder);
    assert_eq!(dialog.remote_target(), &uri("sip:alice@203.0.113.50:5080"));
    assert!(dialog.is_remote_invite_pending());
    assert_eq!(dialog.request(Method::Invite, &bob_sent_by(), &mut rng()), Err(DialogError::InvitePending));

    let ok = dialog.respond(&reinvite, 200);
    assert_eq!(ok.headers.get(HeaderName::Contact), Some(BOB_CONTACT));
    assert_eq!(ok.headers.to().unwrap(), name_addr(BOB), "the To tag is not added twice");
    assert!(!ok.headers.has(HeaderName::RecordRoute), "only the dialog-creating response copies Record-Route");
    assert!(!dialog.is_remote_invite_pending());

    let bye = dialog.request(Method::Bye, &bob_sent_by(), &mut rng()).unwrap();
    assert_eq!(bye.uri, uri("sip:alice@203.0.113.50:5080"));
}

#[test]
fn reinvite_with_a_malformed_contact_is_rejected_400() {
    let mut dialog = bob_confirmed();
    let reinvite = from_alice("INVITE", 314160, "Contact: <sip:alice@\r\n");
    assert_eq!(rejected(dialog.receive_request(&reinvite, &mut rng())).status, 400);
    assert!(!dialog.is_remote_invite_pending());
    assert_eq!(dialog.remote_target(), &uri("sip:alice@192.0.2.10:5060"));
}

#[test]
fn reinvite_crossing_ours_is_answered_491_and_we_retry_after_the_section_14_1_delay() {
    let mut dialog = bob_confirmed();
    let ours = dialog.request(Method::Invite, &bob_sent_by(), &mut rng()).unwrap();
    assert!(dialog.is_invite_pending());
    let theirs = from_alice("INVITE", 314160, "Contact: <sip:alice@203.0.113.50>\r\n");
    let response = rejected(dialog.receive_request(&theirs, &mut rng()));
    assert_eq!(response.status, 491);
    assert_eq!(dialog.remote_target(), &uri("sip:alice@192.0.2.10:5060"), "a rejected INVITE refreshes nothing");
    assert!(!dialog.is_remote_invite_pending());

    // Ours meets the same fate at Alice's end.
    dialog.receive_response(&reply(&ours, 491, "", None, &[])).unwrap();
    assert!(!dialog.is_invite_pending());
    // Bob did not choose the Call-ID: he waits 0–2 s.
    for seed in 0..200 {
        let delay = dialog.glare_retry_delay(&mut StdRng::seed_from_u64(seed));
        assert!(delay <= Duration::from_secs(2), "{delay:?}");
    }
}

#[test]
fn glare_retry_delays_cover_the_section_14_1_ranges_in_10_ms_steps() {
    for (owner, low, high) in [(true, 2100, 4000), (false, 0, 2000)] {
        let delays: Vec<u128> =
            (0..2000).map(|seed| glare_retry_delay(owner, &mut StdRng::seed_from_u64(seed)).as_millis()).collect();
        assert!(delays.iter().all(|&ms| (low..=high).contains(&ms) && ms % 10 == 0), "{owner}: {delays:?}");
        let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(*min < low + 50 && *max > high - 50, "{owner}: spread {min}..{max}");
    }
    assert!(alice_confirmed().glare_retry_delay(&mut rng()) >= Duration::from_millis(2100), "Alice owns the Call-ID");
}

#[test]
fn second_invite_before_the_first_is_answered_gets_500_with_retry_after() {
    let invite = invite_at_bob();
    let mut dialog = Dialog::uas_from_request(&invite, "bob-tag", name_addr(BOB_CONTACT)).unwrap();
    let _ = dialog.respond(&invite, 180);
    let again = from_alice("INVITE", 314160, "Contact: <sip:alice@192.0.2.10:5060>\r\n");
    let response = rejected(dialog.receive_request(&again, &mut rng()));
    assert_eq!(response.status, 500);
    let retry_after: u32 = response.headers.get(HeaderName::RetryAfter).unwrap().parse().unwrap();
    assert!(retry_after <= 10);
    assert!(dialog.is_remote_invite_pending(), "the first INVITE still awaits its answer");
}

#[test]
fn bye_from_the_peer_terminates_and_later_requests_get_481() {
    let mut dialog = bob_confirmed();
    assert_eq!(dialog.receive_request(&from_alice("BYE", 314160, ""), &mut rng()), Received::InOrder);
    assert_eq!(dialog.state(), DialogState::Terminated);
    assert_eq!(rejected(dialog.receive_request(&from_alice("INFO", 314161, ""), &mut rng())).status, 481);
}

#[test]
fn request_of_another_dialog_gets_481() {
    let mut dialog = bob_confirmed();
    let stranger = peer_request("INFO", 314160, "<sip:carol@chicago.example.com>;tag=carol-tag", BOB, "");
    let response = rejected(dialog.receive_request(&stranger, &mut rng()));
    assert_eq!(response.status, 481);
    assert_eq!(dialog.remote_cseq(), Some(314159));
}
