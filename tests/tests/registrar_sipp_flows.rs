//! The proxy through the call flows that go wrong or change midway, driven by SIPp on
//! both sides: a busy callee (486), one that never answers (Timer B → 408), a caller
//! that gives up while it rings (CANCEL → 487), a callee that re-INVITEs (hold), and
//! requests written in compact and unusual but legal form.
//!
//! The callee side is `uas.xml` with an out-of-call scenario that makes its own checks
//! (`uas_*.xml`); it fails unless every check held. The caller side fails on any
//! unexpected response.
//!
//! Every flow is also captured on `lo` (the registrar's port) and judged by Wireshark
//! (`voip_tests::tshark`): each SIP message, compact-form headers included, must dissect with
//! no malformed packet or expert warning, and `-z sip,stat` must count the flow's messages.
//! These flows carry no RTP (SIPp sends none).

use voip_tests::flows::{self, Target};
use voip_tests::tshark::{CallCapture, CaptureSummary, count_frames};
use voip_tests::{Peer, Registrar, RegistrarConfig, SippOutcome, peers_ready, temp_dir, unique_loopback_ip};

const DOMAIN: &str = "voip.test";

fn registrar(config_file: Option<std::path::PathBuf>) -> Registrar {
    let mut config = RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").sip_trace();
    config.config_file = config_file;
    Registrar::start(config).unwrap_or_else(|error| panic!("start the registrar: {error}"))
}

fn target(registrar: &Registrar) -> Target {
    Target::new(registrar.addr(), registrar.domain())
}

/// Runs `flow` while capturing the registrar's port, and returns what Wireshark made of it.
fn captured(registrar: &Registrar, flow: impl FnOnce()) -> CaptureSummary {
    captured_with(registrar, flow, None)
}

/// [`captured`], also asserting that `expect` frames of the capture sent to the registrar
/// match the display filter `filter` (with `expect = (filter, count)`).
fn captured_with(registrar: &Registrar, flow: impl FnOnce(), expect: Option<(&str, usize)>) -> CaptureSummary {
    let dir = temp_dir("registrar-flows-pcap-").unwrap_or_else(|e| panic!("{e}"));
    let port = registrar.addr().port();
    let capture = CallCapture::start(dir.path(), &[unique_loopback_ip().into()], &[port])
        .unwrap_or_else(|e| panic!("start tshark: {e}"));
    flow();
    let wire = capture.finish().unwrap_or_else(|e| panic!("read the capture: {e}"));
    assert_eq!(wire.rtp_packets + wire.rtcp_packets, 0, "no media in these flows: {wire:#?}");
    if let Some((filter, count)) = expect {
        let filter = format!("udp.dstport == {port} && {filter}");
        let seen = count_frames(&dir.path().join("wire.pcap"), &filter).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, count, "frames matching {filter:?}: {wire:#?}");
    }
    wire
}

/// The request lines of `method` in the registrar's SIP trace.
fn traced(registrar: &Registrar, method: &str) -> usize {
    registrar.log().lines().filter(|line| line.contains(&format!("{method} sip:"))).count()
}

/// 1001 calls 1002 through the proxy with the caller scenario `caller`, while 1002 answers
/// with `handler` (and `globals`); both sides must pass.
fn run_call(registrar: &Registrar, caller: &str, handler: &str, globals: &[(&str, &str)]) {
    run_against(registrar, handler, globals, |target| flows::call_with(target, caller, "1001", "pw1001", "1002"));
}

/// 1001 calls 1002 with `uac_expect.xml` and must get `code`, while 1002 answers with
/// `handler`.
fn run_refused_call(registrar: &Registrar, handler: &str, globals: &[(&str, &str)], code: u16) {
    run_against(registrar, handler, globals, |target| flows::call_expecting(target, "1001", "pw1001", "1002", code));
}

/// Registers 1002 with the callee scenario `handler` (and `globals`), runs `caller` against
/// the proxy, and asserts that both sides passed.
fn run_against(
    registrar: &Registrar,
    handler: &str,
    globals: &[(&str, &str)],
    caller: impl FnOnce(&Target) -> voip_tests::Result<SippOutcome>,
) {
    let target = target(registrar);
    let callee = flows::spawn_callee(&target, "1002", "pw1002", handler, globals)
        .unwrap_or_else(|error| panic!("start the callee: {error}"));
    let caller = caller(&target).unwrap_or_else(|error| panic!("run the caller: {error}"));
    let callee = callee.wait().unwrap_or_else(|error| panic!("the callee: {error}"));
    assert!(
        caller.passed(1) && callee.passed(1),
        "caller: {}\n\ncallee: {}\n{}",
        caller.report(),
        callee.report(),
        registrar.log_tail(80)
    );
}

#[test]
fn busy_callee_gets_its_486_relayed_and_acknowledged_hop_by_hop() {
    if !peers_ready(&[Peer::Sipp, Peer::Tshark]) {
        return;
    }
    let registrar = registrar(None);
    let wire = captured(&registrar, || run_refused_call(&registrar, "uas_busy.xml", &[], 486));
    // Callee: REGISTER, 401, REGISTER, 200. Caller: INVITE, 407, ACK, INVITE, 100; relayed INVITE;
    // 486 on both hops, each acknowledged by its own ACK.
    wire.assert_sip(
        "busy",
        &[("REGISTER", 2), ("INVITE", 3), ("ACK", 3), ("CANCEL", 0)],
        &[(200, 1), (401, 1), (407, 1), (486, 2)],
    );
}

#[test]
fn callee_that_never_answers_times_out_with_408_and_no_cancel() {
    if !peers_ready(&[Peer::Sipp, Peer::Tshark]) {
        return;
    }
    // T1 = 100 ms makes the proxy's Timer B (64·T1) 6.4 s instead of 32 s.
    let dir = temp_dir("registrar-timers-").unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("registrar.toml");
    std::fs::write(&file, "[timers]\nt1_ms = 100\n").unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let registrar = registrar(Some(file));
    let wire = captured(&registrar, || run_refused_call(&registrar, "uas_silent.xml", &[("silence_ms", "9000")], 408));
    // INVITE, 407, ACK, INVITE, 100; the relayed INVITE and its Timer A retransmissions (counted
    // as minimums); the proxy's own 408 and the caller's ACK.
    wire.assert_sip("no answer", &[("INVITE", 3), ("ACK", 2), ("CANCEL", 0)], &[(407, 1), (408, 1)]);
    assert!(wire.sip_resent >= 2, "Wireshark saw the proxy's INVITE retransmissions: {wire:#?}");
    // The proxy retransmitted the INVITE to the silent phone (Timer A) before giving up, and sent
    // no CANCEL: nothing provisional came back (RFC 3261 §9.1).
    let invites_out = registrar.log().lines().filter(|line| line.contains("INVITE sip:1002@127.0.0.1")).count();
    assert!(invites_out >= 3, "expected the INVITE retransmitted, saw {invites_out}\n{}", registrar.log_tail(80));
    assert_eq!(traced(&registrar, "CANCEL"), 0, "{}", registrar.log_tail(80));
}

#[test]
fn caller_cancels_while_ringing_and_gets_487_through_the_proxy() {
    if !peers_ready(&[Peer::Sipp, Peer::Tshark]) {
        return;
    }
    let registrar = registrar(None);
    let wire = captured(&registrar, || run_call(&registrar, "uac_cancel.xml", "uas_ring_cancel.xml", &[]));
    // INVITE, 407, ACK, INVITE, 100, relayed INVITE, 180 both hops; CANCEL and its 200 on both
    // hops (with the callee's registration, three 200s); 487 on both hops, each acknowledged.
    wire.assert_sip("cancel", &[("INVITE", 3), ("CANCEL", 2), ("ACK", 3)], &[(407, 1), (180, 2), (200, 3), (487, 2)]);
    // One CANCEL from the caller, one of the proxy's own towards the phone.
    assert_eq!(traced(&registrar, "CANCEL"), 2, "{}", registrar.log_tail(80));
}

#[test]
fn callee_re_invite_for_hold_is_routed_through_the_proxy_both_ways() {
    if !peers_ready(&[Peer::Sipp, Peer::Tshark]) {
        return;
    }
    let registrar = registrar(None);
    let wire = captured(&registrar, || run_call(&registrar, "uac_reinvited.xml", "uas_reinvite.xml", &[]));
    // The call (INVITE ×3, ACK ×3, BYE ×2) plus the callee's re-INVITE, its 100, 200 and ACK on
    // both hops; 200s: REGISTER, INVITE ×2, re-INVITE ×2, BYE ×2.
    wire.assert_sip("re-INVITE", &[("INVITE", 5), ("ACK", 5), ("BYE", 2)], &[(100, 2), (407, 1), (200, 7)]);
    // The initial INVITE twice (challenged, then with credentials), in and out, and the
    // re-INVITE in and out.
    assert!(traced(&registrar, "INVITE") >= 5, "{}", registrar.log_tail(120));
}

#[test]
fn compact_and_unusually_formatted_register_succeeds() {
    if !peers_ready(&[Peer::Sipp, Peer::Tshark]) {
        return;
    }
    let registrar = registrar(None);
    // Both REGISTERs (before and after the challenge) with every compact header understood:
    // v (Via), f (From, with an escaped quote in its display name), t (To), i (Call-ID),
    // m (Contact), l (Content-Length), and the lower-case long names.
    let understood = "sip.Method == \"REGISTER\" && sip.Via.branch && sip.from.user == \"1001\" \
                      && sip.to.user == \"1001\" && sip.Call-ID && sip.contact.uri && sip.Content-Length == 0 \
                      && sip.Max-Forwards == 70 && sip.CSeq.method == \"REGISTER\"";
    let flow = || {
        let outcome = target(&registrar)
            .sipp("register_compact.xml")
            .account("1001", "pw1001")
            .auth_uri(DOMAIN)
            .run()
            .unwrap_or_else(|error| panic!("run SIPp: {error}"));
        assert!(outcome.passed(1), "{}\n{}", outcome.report(), registrar.log_tail(40));
    };
    let wire = captured_with(&registrar, flow, Some((understood, 2)));
    wire.assert_sip("compact REGISTER", &[("REGISTER", 2)], &[(401, 1), (200, 1)]);
}

#[test]
fn compact_and_unusually_formatted_call_goes_through_the_proxy() {
    if !peers_ready(&[Peer::Sipp, Peer::Tshark]) {
        return;
    }
    let registrar = registrar(None);
    // The caller's two INVITEs with every compact header understood: s (Subject), k (Supported),
    // c (Content-Type) and l (Content-Length) around an SDP body Wireshark dissected too.
    let understood = "sip.Method == \"INVITE\" && sip.Via.branch && sip.from.user == \"1001\" && sip.Call-ID \
                      && sip.contact.uri && sip.Subject && sip.Supported == \"timer\" \
                      && sip.Content-Type == \"application/sdp\" && sdp.media.format";
    let flow = || run_call(&registrar, "uac_compact.xml", "uas_answer.xml", &[]);
    let wire = captured_with(&registrar, flow, Some((understood, 2)));
    // The whole call, written compactly, dissected like any other: 200s for REGISTER, INVITE ×2, BYE ×2.
    wire.assert_sip("compact call", &[("INVITE", 3), ("ACK", 3), ("BYE", 2)], &[(407, 1), (180, 2), (200, 5)]);
}
