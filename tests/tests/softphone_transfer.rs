//! Three softphones through our registrar on loopback: a blind transfer (RFC 5589 §6). A calls
//! B; B transfers A to C by REFER (RFC 3515) with Referred-By (RFC 3892); A calls C, reports
//! the transfer's progress to B in `message/sipfrag` NOTIFYs (RFC 3420), and B hangs up once A
//! says `200 OK`. The registrar record-routes all three calls, so it relays the REFER and the
//! NOTIFYs inside the A–B dialog.
//!
//! A's recording starts when its first call is answered and goes on into the second, one 20 ms
//! block per tick, so a time after that answer is a block index (50 per second).

use std::time::Duration;

use voip_tests::softphone::{Softphone, read_wav, tone_blocks};
use voip_tests::{Registrar, RegistrarConfig, temp_dir};

const DOMAIN: &str = "voip.test";
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;
const TONE_C: u32 = 2000;
/// When B transfers A, in seconds after B answered.
const TRANSFER_AT: f64 = 2.0;

fn args(registrar: &Registrar, user: &str, extra: &[&str]) -> Vec<String> {
    voip_tests::softphone::phone_args(registrar.addr(), DOMAIN, user, extra)
        .unwrap_or_else(|e| panic!("softphone arguments: {e}"))
}

/// The event lines of kind `event`, in order.
fn events_of(phone: &Softphone, event: &str) -> Vec<String> {
    let needle = format!("\"event\":\"{event}\"");
    phone.events().into_iter().filter(|line| line.contains(&needle)).collect()
}

/// The share of 20 ms blocks from `from` to `to` seconds into `samples` that `freq` dominates.
fn toned_share(samples: &[i16], rate: u32, freq: u32, from: f64, to: f64) -> f64 {
    let block = (rate / 50) as usize;
    let start = ((from * 50.0) as usize * block).min(samples.len());
    let end = ((to * 50.0) as usize * block).min(samples.len());
    let (toned, blocks) = tone_blocks(samples.get(start..end).unwrap_or_default(), rate, freq as f32);
    assert!(blocks > 0, "the recording ({} samples) does not reach {to} s", samples.len());
    toned as f64 / blocks as f64
}

/// The three phones after a run, with what the registrar and A logged.
struct Run {
    a: Softphone,
    b: Softphone,
    c: Option<Softphone>,
    dir: tempfile::TempDir,
    a_log: String,
    registrar_log: String,
    context: String,
}

/// A (1001) calls B (1002, auto-answer), which transfers A to `target` [`TRANSFER_AT`] s after
/// the answer; C (1003, auto-answer) runs when `with_c`. Each sends its tone; A and C record.
/// Every phone must exit 0.
fn run(target: &str, with_c: bool) -> Run {
    let registrar = Registrar::start(
        RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").user("1003", "pw1003").sip_trace(),
    )
    .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let dir = temp_dir("softphone-transfer-").unwrap_or_else(|e| panic!("{e}"));
    let wav = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (a_wav, c_wav) = (wav("a.wav"), wav("c.wav"));

    let tone_c = format!("tone:{TONE_C}");
    let c_extra = ["--auto-answer", "--audio-in", &tone_c, "--audio-out", &c_wav, "--duration", "30"];
    let mut c = with_c.then(|| {
        Softphone::start("c", dir.path(), &args(&registrar, "1003", &c_extra))
            .unwrap_or_else(|e| panic!("start softphone C: {e}"))
    });
    let tone_b = format!("tone:{TONE_B}");
    let at = TRANSFER_AT.to_string();
    let b_extra =
        ["--auto-answer", "--audio-in", &tone_b, "--transfer", target, "--transfer-at", &at, "--duration", "30"];
    let mut b = Softphone::start("b", dir.path(), &args(&registrar, "1002", &b_extra))
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    if let Some(c) = c.as_mut() {
        c.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    }
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let tone_a = format!("tone:{TONE_A}");
    let a_extra = ["--dial", "1002", "--audio-in", &tone_a, "--audio-out", &a_wav, "--duration", "8", "--sip-trace"];
    let mut a = Softphone::start("a", dir.path(), &args(&registrar, "1001", &a_extra))
        .unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(25)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let c_status = c.as_mut().map(|c| c.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}")));
    let a_log = std::fs::read_to_string(dir.path().join("a.log")).unwrap_or_default();
    let registrar_log = registrar.log();
    let c_output = c.as_ref().map(Softphone::output).unwrap_or_default();
    let context =
        format!("A:\n{}\nB:\n{}\nC:\n{c_output}\nregistrar:\n{}", a.output(), b.output(), registrar.log_tail(40));
    assert!(a_status.success(), "A exited with {a_status}\n{context}");
    assert!(b_status.success(), "B exited with {b_status}\n{context}");
    assert!(c_status.is_none_or(|s| s.success()), "C exited with {c_status:?}\n{context}");
    Run { a, b, c, dir, a_log, registrar_log, context }
}

#[test]
fn b_transfers_a_to_c_and_a_hears_b_then_c_while_b_ends_as_transferred() {
    let Run { a, b, c, dir, a_log, registrar_log, context } = run("1003", true);
    let c = c.unwrap_or_else(|| panic!("C ran"));
    assert_eq!(events_of(&c, "answered").len(), 1, "C answered A's call\n{context}");
    let c_hangups = events_of(&c, "hung_up");
    assert!(c_hangups.len() == 1 && c_hangups[0].contains(r#""reason":"remote""#), "C: {c_hangups:?}\n{context}");

    // B: the transfer went 100 then 200, and its call ended as transferred.
    let b_progress = events_of(&b, "transfer_progress");
    assert!(b_progress.first().is_some_and(|l| l.contains(r#""status":100"#)), "B: {b_progress:?}\n{context}");
    assert!(b_progress.last().is_some_and(|l| l.contains(r#""status":200"#)), "B: {b_progress:?}\n{context}");
    let b_hangups = events_of(&b, "hung_up");
    assert_eq!(b_hangups.len(), 1, "B reports one hang-up\n{context}");
    assert!(b_hangups[0].contains(r#""reason":"transferred""#), "B: {}\n{context}", b_hangups[0]);

    // A: referred to C, answered twice, told B 200 OK, and hung up once (at the end).
    let referred = events_of(&a, "referred");
    assert_eq!(referred.len(), 1, "A accepted one REFER\n{context}");
    assert!(referred[0].contains("sip:1003@voip.test"), "A: {}\n{context}", referred[0]);
    assert_eq!(events_of(&a, "answered").len(), 2, "A's call to B and then to C\n{context}");
    assert!(events_of(&a, "transfer_progress").iter().any(|l| l.contains(r#""status":200"#)), "A\n{context}");
    assert!(events_of(&a, "transfer_failed").is_empty(), "A\n{context}");
    assert_eq!(events_of(&a, "hung_up").len(), 1, "the old leg ends quietly on A\n{context}");
    assert!(a_log.contains("Referred-By: <sip:1002@voip.test>"), "A's INVITE to C names B (RFC 3892)\n{context}");
    assert!(a_log.contains("Content-Type: message/sipfrag"), "A's trace holds no sipfrag NOTIFY\n{context}");

    // The registrar relayed the REFER (and its 202) from B to A and the NOTIFYs from A to B.
    let refers = registrar_log.matches("\nREFER sip:1001@").count();
    assert!(refers >= 2, "the registrar took B's REFER and relayed it ({refers} seen)\n{context}");
    let accepted = registrar_log.matches("SIP/2.0 202 ").count();
    assert!(accepted >= 2, "the registrar relayed A's 202 ({accepted} seen)\n{context}");
    let notifies = registrar_log.matches("\nNOTIFY sip:1002@").count();
    assert!(notifies >= 4, "the registrar took and relayed NOTIFY 100 and 200 ({notifies} seen)\n{context}");

    // A heard B before the transfer and C after it, in one recording.
    let (rate, samples) = read_wav(dir.path().join("a.wav").as_path()).unwrap_or_else(|e| panic!("A's recording: {e}"));
    let b_before = toned_share(&samples, rate, TONE_B, 0.3, TRANSFER_AT - 0.2);
    let c_before = toned_share(&samples, rate, TONE_C, 0.3, TRANSFER_AT - 0.2);
    let c_after = toned_share(&samples, rate, TONE_C, TRANSFER_AT + 1.0, TRANSFER_AT + 4.5);
    let b_after = toned_share(&samples, rate, TONE_B, TRANSFER_AT + 1.0, TRANSFER_AT + 4.5);
    eprintln!(
        "A heard B in {b_before:.2} and C in {c_before:.2} before; C in {c_after:.2} and B in {b_after:.2} after"
    );
    assert!(b_before >= 0.9, "B's tone before the transfer: {b_before:.2}\n{context}");
    assert!(c_before <= 0.05, "C's tone before the transfer: {c_before:.2}\n{context}");
    assert!(c_after >= 0.9, "C's tone after the transfer: {c_after:.2}\n{context}");
    assert!(b_after <= 0.05, "B's tone after the transfer: {b_after:.2}\n{context}");

    // C heard A.
    let (rate, samples) = read_wav(dir.path().join("c.wav").as_path()).unwrap_or_else(|e| panic!("C's recording: {e}"));
    let a_at_c = toned_share(&samples, rate, TONE_A, 0.3, 3.0);
    eprintln!("C heard A in {a_at_c:.2} of its first 3 s");
    assert!(a_at_c >= 0.9, "A's tone at C: {a_at_c:.2}\n{context}");
}

#[test]
fn a_transfer_to_an_unregistered_extension_fails_and_the_call_stays_up() {
    let Run { a, b, dir, context, .. } = run("1003", false);
    // A's call to 1003 gets 480 from the registrar; A tells B so, and returns to B.
    let failed = events_of(&a, "transfer_failed");
    assert_eq!(failed.len(), 1, "A reports the failed transfer\n{context}");
    assert!(failed[0].contains(r#""status":480"#), "A: {}\n{context}", failed[0]);
    let failed = events_of(&b, "transfer_failed");
    assert_eq!(failed.len(), 1, "B reports the failed transfer\n{context}");
    assert!(failed[0].contains(r#""status":480"#), "B: {}\n{context}", failed[0]);
    assert!(events_of(&b, "hung_up").iter().all(|l| !l.contains("transferred")), "B stays on the call\n{context}");
    assert_eq!(events_of(&a, "answered").len(), 1, "only A's call to B was answered\n{context}");

    // A hears B all along: before the attempt and after it.
    let (rate, samples) = read_wav(dir.path().join("a.wav").as_path()).unwrap_or_else(|e| panic!("A's recording: {e}"));
    let before = toned_share(&samples, rate, TONE_B, 0.3, TRANSFER_AT - 0.2);
    let after = toned_share(&samples, rate, TONE_B, TRANSFER_AT + 1.0, TRANSFER_AT + 4.5);
    eprintln!("A heard B in {before:.2} before and {after:.2} after the failed transfer");
    assert!(before >= 0.9 && after >= 0.9, "B's tone: {before:.2} before, {after:.2} after\n{context}");
}
