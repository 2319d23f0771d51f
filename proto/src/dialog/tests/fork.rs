//! A forked INVITE: Bob has a desk phone (tag "desk") and a mobile (tag "mobile").

use super::*;

const DESK: &str = "<sip:bob@198.51.100.30:5060>";
const MOBILE: &str = "<sip:bob@198.51.100.40:5060>";

fn id(remote_tag: &str) -> DialogId {
    DialogId { call_id: CALL_ID.into(), local_tag: "alice-tag".into(), remote_tag: remote_tag.into() }
}

/// Both phones ring.
fn ringing_both(set: &mut DialogSet, invite: &Request) {
    for (tag, contact) in [("desk", DESK), ("mobile", MOBILE)] {
        let progress = set.handle_invite_response(invite, &reply(invite, 180, tag, Some(contact), &[P2, P1])).unwrap();
        assert_eq!(progress, InviteProgress::Early(id(tag)));
    }
}

#[test]
fn forked_provisionals_make_one_early_dialog_per_remote_tag() {
    let invite = invite();
    let mut set = DialogSet::new();
    assert_eq!(set.handle_invite_response(&invite, &reply(&invite, 100, "", None, &[])), Ok(InviteProgress::Ignored));
    ringing_both(&mut set, &invite);
    assert_eq!(set.len(), 2);
    assert_eq!(set.get(&id("desk")).unwrap().remote_target(), &uri("sip:bob@198.51.100.30:5060"));
    assert_eq!(set.get(&id("mobile")).unwrap().remote_target(), &uri("sip:bob@198.51.100.40:5060"));
    assert!(set.iter().all(|d| d.state() == DialogState::Early));
    // A second 180 from the desk phone adds nothing.
    let again = reply(&invite, 180, "desk", Some(DESK), &[P2, P1]);
    assert_eq!(set.handle_invite_response(&invite, &again), Ok(InviteProgress::Early(id("desk"))));
    assert_eq!(set.len(), 2);
    assert!(set.confirmed().is_none());
}

#[test]
fn first_2xx_confirms_its_fork_and_a_later_fork_2xx_is_acked_and_byed() {
    let invite = invite();
    let mut set = DialogSet::new();
    ringing_both(&mut set, &invite);

    let mobile_ok = reply(&invite, 200, "mobile", Some(MOBILE), &[P2, P1]);
    assert_eq!(set.handle_invite_response(&invite, &mobile_ok), Ok(InviteProgress::Confirmed(id("mobile"))));
    assert_eq!(set.confirmed().unwrap().state(), DialogState::Confirmed);
    assert_eq!(set.confirmed().unwrap().id(), &id("mobile"));

    let desk_ok = reply(&invite, 200, "desk", Some(DESK), &[P2, P1]);
    let InviteProgress::Redundant(mut desk) = set.handle_invite_response(&invite, &desk_ok).unwrap() else {
        panic!("the desk's 2xx should be redundant");
    };
    assert!(set.get(&id("desk")).is_none(), "the set no longer holds the redundant dialog");
    assert_eq!(desk.id(), &id("desk"));

    let (ack, bye) = desk.ack_and_bye(&invite, &alice_sent_by(), &mut rng()).unwrap();
    let (ack, bye) = (on_the_wire(&ack), on_the_wire(&bye));
    assert_eq!((cseq(&ack), cseq(&bye)), ("314159 ACK".to_owned(), "314160 BYE".to_owned()));
    for request in [&ack, &bye] {
        assert_eq!(request.uri, uri("sip:bob@198.51.100.30:5060"));
        assert_eq!(request.headers.to().unwrap().tag(), Some("desk"));
        assert_eq!(routes(request), [P1, P2]);
    }
    assert_ne!(branch(&ack), branch(&bye));
    assert_eq!(desk.state(), DialogState::Terminated);
    assert_eq!(set.confirmed().unwrap().state(), DialogState::Confirmed, "the mobile's call goes on");
}

#[test]
fn repeated_2xx_is_a_retransmission_for_kept_and_redundant_forks_alike() {
    let invite = invite();
    let mut set = DialogSet::new();
    let mobile_ok = reply(&invite, 200, "mobile", Some(MOBILE), &[]);
    assert_eq!(set.handle_invite_response(&invite, &mobile_ok), Ok(InviteProgress::Confirmed(id("mobile"))));
    let desk_ok = reply(&invite, 200, "desk", Some(DESK), &[]);
    assert!(matches!(set.handle_invite_response(&invite, &desk_ok), Ok(InviteProgress::Redundant(_))));
    for (ok, tag) in [(&mobile_ok, "mobile"), (&desk_ok, "desk")] {
        assert_eq!(set.handle_invite_response(&invite, ok), Ok(InviteProgress::Retransmission(id(tag))));
    }
    assert_eq!(set.len(), 1);
}

#[test]
fn error_final_before_any_2xx_removes_every_early_dialog() {
    let invite = invite();
    let mut set = DialogSet::new();
    ringing_both(&mut set, &invite);
    assert_eq!(
        set.handle_invite_response(&invite, &reply(&invite, 486, "desk", None, &[])),
        Ok(InviteProgress::Rejected)
    );
    assert!(set.is_empty());
}

#[test]
fn end_early_drops_the_forks_that_never_answered() {
    let invite = invite();
    let mut set = DialogSet::new();
    ringing_both(&mut set, &invite);
    let _ = set.handle_invite_response(&invite, &reply(&invite, 200, "desk", Some(DESK), &[])).unwrap();
    set.end_early();
    assert_eq!(set.iter().map(|d| d.id().remote_tag.as_str()).collect::<Vec<_>>(), ["desk"]);
    assert_eq!(set.confirmed_mut().map(|d| d.state()), Some(DialogState::Confirmed));
}

#[test]
fn peer_request_finds_its_fork_by_remote_tag() {
    let invite = invite();
    let mut set = DialogSet::new();
    ringing_both(&mut set, &invite);
    let update = peer_request("UPDATE", 1, "<sip:bob@biloxi.example.com>;tag=mobile", ALICE, "");
    assert_eq!(set.match_request(&update).map(|d| d.id().clone()), Some(id("mobile")));
    let stranger = peer_request("UPDATE", 1, "<sip:bob@biloxi.example.com>;tag=tablet", ALICE, "");
    assert!(set.match_request(&stranger).is_none());
    assert_eq!(set.remove(&id("desk")).map(|d| d.id().clone()), Some(id("desk")));
    assert_eq!(set.len(), 1);
}

#[test]
fn response_of_another_call_or_a_2xx_without_to_tag_is_refused() {
    let invite = invite();
    let mut set = DialogSet::new();
    let mut other = reply(&invite, 180, "desk", Some(DESK), &[]);
    other.headers.set(HeaderName::CallId, "another-call");
    assert_eq!(set.handle_invite_response(&invite, &other), Err(DialogError::NotThisRequest("Call-ID")));
    assert_eq!(
        set.handle_invite_response(&invite, &reply(&invite, 200, "", Some(DESK), &[])),
        Err(DialogError::MissingToTag)
    );
    assert_eq!(
        set.handle_invite_response(&invite, &reply(&invite, 180, "", Some(DESK), &[])),
        Ok(InviteProgress::Ignored)
    );
    assert!(set.is_empty());
}
