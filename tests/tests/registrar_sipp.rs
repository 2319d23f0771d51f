//! The registrar judged by SIPp: digest-authenticated registration, refusals, and
//! calls through its record-routing, transaction-stateful proxy. The same scenarios
//! pass against Kamailio (`kamailio_reference.rs`).

use voip_tests::flows::{self, Target};
use voip_tests::tshark::{CaptureSummary, Checksums, LiveCapture, analyze};
use voip_tests::{Peer, Registrar, RegistrarConfig, free_port, peers_ready, temp_dir, unique_loopback_ip};

const DOMAIN: &str = "voip.test";

fn registrar(trace: bool) -> Registrar {
    let mut config = RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002");
    if trace {
        config = config.sip_trace();
    }
    Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"))
}

fn target(registrar: &Registrar) -> Target {
    Target::new(registrar.addr(), registrar.domain())
}

#[test]
fn register_with_digest_auth_succeeds() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let registrar = registrar(false);
    let outcome = flows::register(&target(&registrar), "1001", "pw1001").unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), registrar.log_tail(30));
    assert_eq!(
        outcome.flow().iter().filter(|line| line.starts_with("REGISTER ")).count(),
        2,
        "one challenge round: {}",
        outcome.report()
    );
}

#[test]
fn register_with_wrong_password_fails() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let registrar = registrar(false);
    let outcome = flows::register_wrong(&target(&registrar), "1001", "not-the-password").unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), registrar.log_tail(30));
}

#[test]
fn register_for_unknown_extension_fails() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let registrar = registrar(false);
    let outcome = flows::register_wrong(&target(&registrar), "1099", "pw1099").unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), registrar.log_tail(30));
}

/// The SIP counts of [`call_through_proxy_passes_ack_and_bye`] as the registrar sees them:
/// the callee's REGISTER/401/REGISTER/200, the caller's INVITE/407/ACK, then INVITE, 100,
/// 180 and 200 both sides of the proxy, and ACK, BYE and its 200 both sides. Exact unless tshark
/// saw retransmissions (a loaded machine), then at least.
fn assert_proxied_call(summary: &CaptureSummary, who: &str, extra_200: u64) {
    assert!(summary.problems.is_empty(), "{who}: Wireshark found problems: {:#?}", summary.problems);
    let requests = [("REGISTER", 2), ("INVITE", 3), ("ACK", 3), ("BYE", 2)];
    let responses = [(401, 1), (407, 1), (100, 1), (180, 2), (200, 5 + extra_200)];
    let exact = summary.sip_resent == 0;
    let check = |seen: u64, n: u64| if exact { seen == n } else { seen >= n };
    for (method, n) in requests {
        assert!(check(summary.requests(method), n), "{who}: expected {n} {method}: {summary:#?}");
    }
    for (status, n) in responses {
        assert!(check(summary.responses(status), n), "{who}: expected {n} × {status}: {summary:#?}");
    }
}

#[test]
fn call_through_proxy_passes_ack_and_bye() {
    if !peers_ready(&[Peer::Sipp, Peer::Tshark]) {
        return;
    }
    // The registrar records its own capture through the config file's `pcap` key; tshark
    // records what crossed the loopback to and from its port.
    let dir = temp_dir("registrar-sipp-pcap-").unwrap();
    let (own, wire) = (dir.path().join("registrar.pcap"), dir.path().join("wire.pcap"));
    let config_file = dir.path().join("registrar.toml");
    std::fs::write(&config_file, format!("pcap = {:?}\n", own.display().to_string())).unwrap();
    let mut config = RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").sip_trace();
    config.config_file = Some(config_file);
    let mut registrar = Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"));
    let probe = unique_loopback_ip();
    let filter = format!("udp and (port {} or host {probe})", registrar.addr().port());
    let live = LiveCapture::start(&wire, &filter, probe.into()).unwrap();
    let call = flows::call_through_proxy(&target(&registrar), ("1001", "pw1001"), ("1002", "pw1002")).unwrap();
    // The callee's scenario already failed unless INVITE, ACK and BYE reached it with
    // the proxy's Via above the caller's; the registrar's own trace must show them too.
    assert!(call.passed(), "{}\n{}", call.report(), registrar.log_tail(60));
    let trace = registrar.log();
    for method in ["ACK", "BYE"] {
        assert!(
            trace.contains(&format!("{method} sip:")),
            "the registrar's --sip-trace shows no `{method} sip:` request line:\n{}",
            registrar.log_tail(80)
        );
    }
    let wire = live.stop().unwrap();
    registrar.stop();
    let wire = analyze(&wire, Checksums::Ignore).unwrap();
    let own = analyze(&own, Checksums::Validate).unwrap();
    eprintln!(
        "SIP on the wire: {:?} {:?}; in the registrar's pcap: {:?} {:?}",
        wire.sip_requests, wire.sip_responses, own.sip_requests, own.sip_responses
    );
    assert_proxied_call(&wire, "tshark -i lo", 0);
    // Plus the harness's readiness OPTIONS and its 200, sent before tshark started.
    assert_proxied_call(&own, "the registrar's pcap", 1);
    assert_eq!(own.requests("OPTIONS"), 1, "{own:#?}");
}

#[test]
fn unregistered_extension_gets_480() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let registrar = registrar(false);
    let outcome = flows::call_expecting(&target(&registrar), "1001", "pw1001", "1002", 480).unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), registrar.log_tail(30));
}

#[test]
fn unknown_extension_gets_404() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let registrar = registrar(false);
    let outcome = flows::call_expecting(&target(&registrar), "1001", "pw1001", "1099", 404).unwrap();
    assert!(outcome.passed(1), "{}\n{}", outcome.report(), registrar.log_tail(30));
}

#[test]
fn binding_survives_registrar_restart() {
    if !peers_ready(&[Peer::Sipp]) {
        return;
    }
    let mut registrar = registrar(false);
    let target = target(&registrar);
    let callee_port = free_port().unwrap();
    let registered = flows::register_from(&target, "1002", "pw1002", callee_port).unwrap();
    assert!(registered.passed(1), "{}", registered.report());

    registrar.restart().unwrap_or_else(|error| panic!("restart the registrar on its data directory: {error}"));

    // The callee does not register again: only the stored binding can reach it.
    let callee = flows::answer_one_call(callee_port).unwrap();
    let caller = flows::call(&target, "1001", "pw1001", "1002").unwrap();
    let callee = callee.wait().unwrap();
    assert!(
        caller.passed(1) && callee.passed(1),
        "caller: {}\n\ncallee: {}\n{}",
        caller.report(),
        callee.report(),
        registrar.log_tail(60)
    );
}
