//! The SIPp scenarios against Kamailio configured like our registrar
//! (`tests/kamailio/kamailio.cfg`): these prove the scenarios themselves right, so
//! that when they fail against the registrar, the registrar is what is wrong.

use voip_tests::flows::{self, Target};
use voip_tests::{Kamailio, KamailioConfig, Peer, peers_ready};

const DOMAIN: &str = "voip.test";

fn kamailio() -> Kamailio {
    let config = KamailioConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002");
    Kamailio::start(config).unwrap_or_else(|error| panic!("start kamailio: {error}"))
}

fn target(kamailio: &Kamailio) -> Target {
    Target::new(kamailio.addr(), kamailio.domain())
}

#[test]
fn register_with_digest_auth_succeeds() {
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let outcome = flows::register(&target(&kamailio), "1001", "pw1001").unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), kamailio.log_tail(30));
    assert_eq!(
        outcome.flow().iter().filter(|line| line.starts_with("REGISTER ")).count(),
        2,
        "one challenge round: {}",
        outcome.report()
    );
}

#[test]
fn register_with_wrong_password_fails() {
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let outcome = flows::register_wrong(&target(&kamailio), "1001", "not-the-password").unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), kamailio.log_tail(30));
}

#[test]
fn register_for_unknown_extension_fails() {
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let outcome = flows::register_wrong(&target(&kamailio), "1099", "pw1099").unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), kamailio.log_tail(30));
}

#[test]
fn register_scenario_rejects_a_refusal() {
    // The scenario must fail when the server refuses: proves register.xml can fail.
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let outcome = flows::register(&target(&kamailio), "1001", "wrong").unwrap();
    assert!(!outcome.passed(1), "{}", outcome.report());
}

#[test]
fn call_through_proxy_passes_ack_and_bye() {
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let call = flows::call_through_proxy(&target(&kamailio), ("1001", "pw1001"), ("1002", "pw1002")).unwrap();
    assert!(call.passed(), "{}\n{}", call.report(), kamailio.log_tail(30));
    let via_proxy = format!("Via: SIP/2.0/UDP {}", kamailio.addr());
    for method in ["ACK", "BYE"] {
        let seen = call
            .callee
            .messages
            .split("message received")
            .any(|message| message.contains(&format!("\n{method} sip:")) && message.contains(&via_proxy));
        assert!(seen, "the callee got no {method} via {}:\n{}", kamailio.addr(), call.report());
    }
}

#[test]
fn unregistered_extension_gets_480() {
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let outcome = flows::call_expecting(&target(&kamailio), "1001", "pw1001", "1002", 480).unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), kamailio.log_tail(30));
}

#[test]
fn unknown_extension_gets_404() {
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let outcome = flows::call_expecting(&target(&kamailio), "1001", "pw1001", "1099", 404).unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), kamailio.log_tail(30));
}

#[test]
fn expect_scenario_rejects_another_final_response() {
    // 1099 is unknown, so Kamailio answers 404: expecting 480 must fail.
    if !peers_ready(&[Peer::Sipp, Peer::Kamailio]) {
        return;
    }
    let kamailio = kamailio();
    let outcome = flows::call_expecting(&target(&kamailio), "1001", "pw1001", "1099", 480).unwrap();
    assert!(!outcome.passed(1), "{}", outcome.report());
}
