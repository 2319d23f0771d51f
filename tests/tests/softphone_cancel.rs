//! Softphones through our registrar on loopback giving up on a call: a caller
//! that CANCELs a ringing call (RFC 3261 §9), the proxy relaying the CANCEL and the callee's 487
//! back (§16.10, §16.7).

use std::time::Duration;

use voip_tests::softphone::{Softphone, account_args};
use voip_tests::{Registrar, RegistrarConfig, temp_dir};

const DOMAIN: &str = "voip.test";

#[test]
fn caller_cancels_a_ringing_call_and_both_sides_report_cancelled() {
    let registrar =
        Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").sip_trace())
            .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let dir = temp_dir("softphone-cancel-").unwrap_or_else(|e| panic!("{e}"));

    // B rings and never answers; it stays up for its whole --duration.
    let mut b = Softphone::start("b", dir.path(), &account_args(&registrar, "1002", &["--duration", "6"]))
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let a_extra = ["--dial", "1002", "--cancel-after", "1.5", "--duration", "20", "--sip-trace"];
    let mut a = Softphone::start("a", dir.path(), &account_args(&registrar, "1001", &a_extra))
        .unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let a_log = std::fs::read_to_string(dir.path().join("a.log")).unwrap_or_default();
    let registrar_log = registrar.log();
    let context = format!("A:\n{}\nB:\n{}\nregistrar:\n{}", a.output(), b.output(), registrar.log_tail(40));

    // A: ringing, then the call ended as cancelled with no media; the script was done as asked.
    assert!(a_status.success(), "A exits 0 when --cancel-after cancelled the call: {a_status}\n{context}");
    assert!(a.position("ringing").is_some(), "A heard the 180\n{context}");
    assert!(a.position("answered").is_none(), "the call was never answered\n{context}");
    let a_hangups = a.events_of("hung_up");
    assert_eq!(a_hangups.len(), 1, "A reports one hang-up\n{context}");
    assert!(a_hangups[0].contains(r#""reason":"cancelled""#), "A: {}\n{context}", a_hangups[0]);
    assert!(a.position("ringing") < a.position("hung_up"), "A: ringing before the hang-up\n{context}");

    // B: an incoming call that rang (it answered 180), then the caller's CANCEL ended it.
    assert!(b_status.success(), "B (registered, no call asked) exits 0: {b_status}\n{context}");
    assert!(b.position("answered").is_none(), "B never answered\n{context}");
    let b_hangups = b.events_of("hung_up");
    assert_eq!(b_hangups.len(), 1, "B reports one hang-up\n{context}");
    assert!(b_hangups[0].contains(r#""reason":"cancelled""#), "B: {}\n{context}", b_hangups[0]);
    assert!(b.position("incoming").is_some(), "B saw the incoming call\n{context}");
    assert!(b.position("incoming") < b.position("hung_up"), "B: incoming before the hang-up\n{context}");

    // On the wire: A sent CANCEL, and a 487 for the INVITE came back through the registrar.
    assert!(a_log.contains("\nCANCEL sip:1002@"), "A's trace holds no CANCEL\n{context}");
    assert!(a_log.contains("SIP/2.0 487 "), "A's trace holds no 487\n{context}");
    let cancels = registrar_log.matches("CANCEL sip:1002@").count();
    assert!(cancels >= 2, "the registrar saw A's CANCEL and relayed one to B ({cancels} seen)\n{context}");
    let terminated = registrar_log.matches("SIP/2.0 487 ").count();
    assert!(terminated >= 2, "the registrar took B's 487 and sent one to A ({terminated} seen)\n{context}");
}
