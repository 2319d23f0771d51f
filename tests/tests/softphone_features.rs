//! Two softphones through our registrar on loopback exercise the mid-call features: hold and
//! resume by re-INVITE (RFC 3264 §8.4), DTMF as RFC 4733 telephone-events or, when those are
//! not negotiated, as SIP INFO, and mute (RTP goes on carrying silence; stats say so).
//!
//! B's recording starts when the call is answered, one 20 ms block per tick, so a time after
//! the answer is a block index (50 per second).

use std::path::Path;
use std::time::Duration;

use voip_tests::softphone::{Softphone, account_args, read_wav, toned_fraction};
use voip_tests::{Registrar, RegistrarConfig, temp_dir};

const DOMAIN: &str = "voip.test";
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;

/// A (1001) calls B (1002, auto-answer) with these extra arguments each and a tone each way;
/// both run to completion. Returns both phones and a failure context.
fn call(dir: &Path, a_extra: &[&str], b_extra: &[&str], a_seconds: u64) -> (Softphone, Softphone, String) {
    let registrar = Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002"))
        .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let tone_b = format!("tone:{TONE_B}");
    let b_wav = dir.join("b.wav");
    let mut b_args =
        vec!["--auto-answer", "--audio-in", &tone_b, "--audio-out", b_wav.to_str().unwrap(), "--duration", "30"];
    b_args.extend(b_extra);
    let mut b = Softphone::start("b", dir, &account_args(&registrar, "1002", &b_args))
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let tone_a = format!("tone:{TONE_A}");
    let a_wav = dir.join("a.wav");
    let duration = a_seconds.to_string();
    let mut a_args =
        vec!["--dial", "1002", "--audio-in", &tone_a, "--audio-out", a_wav.to_str().unwrap(), "--duration", &duration];
    a_args.extend(a_extra);
    let mut a = Softphone::start("a", dir, &account_args(&registrar, "1001", &a_args))
        .unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(a_seconds + 15)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}\nregistrar:\n{}", a.output(), b.output(), registrar.log_tail(20));
    assert!(a_status.success(), "A exited with {a_status}\n{context}");
    assert!(b_status.success(), "B exited with {b_status}\n{context}");
    (a, b, context)
}

#[test]
fn hold_then_resume_silences_the_held_window_and_both_sides_report_it() {
    let dir = temp_dir("softphone-hold-").unwrap_or_else(|e| panic!("{e}"));
    let hold = ["--hold-at", "2", "--resume-at", "4"];
    let (a, b, context) = call(dir.path(), &hold, &[], 6);

    let expect = |phone: &Softphone, event: &str, by: &str, who: &str| {
        let lines = phone.events_of(event);
        assert_eq!(lines.len(), 1, "{who} reports one {event} event\n{context}");
        assert!(lines[0].contains(&format!("\"by\":\"{by}\"")), "{who}: {}\n{context}", lines[0]);
    };
    expect(&a, "held", "local", "A");
    expect(&a, "resumed", "local", "A");
    expect(&b, "held", "remote", "B");
    expect(&b, "resumed", "remote", "B");

    let (rate, samples) = read_wav(&dir.path().join("b.wav")).unwrap_or_else(|e| panic!("B's recording: {e}"));
    let before = toned_fraction(&samples, rate, TONE_A, 0.3, 1.9);
    let held = toned_fraction(&samples, rate, TONE_A, 2.3, 3.9);
    let after = toned_fraction(&samples, rate, TONE_A, 4.4, 5.4);
    eprintln!("B heard A's tone in {before:.2} before, {held:.2} during, {after:.2} after the hold");
    assert!(before >= 0.9, "A's tone before the hold: {before:.2}\n{context}");
    assert!(held <= 0.1, "A's tone while A holds B: {held:.2}\n{context}");
    assert!(after >= 0.9, "A's tone after the resume: {after:.2}\n{context}");

    // A holds B with sendonly and B answers recvonly: B sends nothing, A plays silence.
    let (rate, samples) = read_wav(&dir.path().join("a.wav")).unwrap_or_else(|e| panic!("A's recording: {e}"));
    let held = toned_fraction(&samples, rate, TONE_B, 2.3, 3.9);
    let after = toned_fraction(&samples, rate, TONE_B, 4.4, 5.4);
    assert!(held <= 0.1, "B's tone while held: {held:.2}\n{context}");
    assert!(after >= 0.9, "B's tone after the resume: {after:.2}\n{context}");
}

/// A sends `123#` one second after the answer; B reports exactly those digits, in order, by `via`.
fn dtmf_arrives(extra: &[&str], via: &str) {
    let dir = temp_dir("softphone-dtmf-").unwrap_or_else(|e| panic!("{e}"));
    let mut a_extra = vec!["--dtmf", "123#", "--dtmf-at", "1"];
    a_extra.extend(extra);
    let (_a, b, context) = call(dir.path(), &a_extra, extra, 4);
    let digits: Vec<String> = b.events_of("dtmf");
    let expected: Vec<String> =
        "123#".chars().map(|d| format!(r#"{{"event":"dtmf","digit":"{d}","via":"{via}"}}"#)).collect();
    assert_eq!(digits, expected, "\n{context}");
}

#[test]
fn dtmf_goes_as_rfc_4733_events_when_negotiated() {
    dtmf_arrives(&[], "rtp");
}

#[test]
fn dtmf_goes_as_sip_info_without_telephone_event() {
    dtmf_arrives(&["--codecs", "pcmu", "--no-telephone-event"], "info");
}

/// The number after `"name":` in a JSON event line.
fn number(line: &str, name: &str) -> Option<f64> {
    let start = line.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = line.get(start..)?;
    rest.get(..rest.find([',', '}']).unwrap_or(rest.len()))?.trim().parse().ok()
}

#[test]
fn mute_silences_the_muted_window_while_rtp_goes_on_and_the_stats_say_so() {
    let dir = temp_dir("softphone-mute-").unwrap_or_else(|e| panic!("{e}"));
    let (a, b, context) = call(dir.path(), &["--mute-at", "2", "--unmute-at", "4"], &[], 6);

    let (rate, samples) = read_wav(&dir.path().join("b.wav")).unwrap_or_else(|e| panic!("B's recording: {e}"));
    let before = toned_fraction(&samples, rate, TONE_A, 0.3, 1.9);
    let muted = toned_fraction(&samples, rate, TONE_A, 2.3, 3.9);
    let after = toned_fraction(&samples, rate, TONE_A, 4.4, 5.4);
    eprintln!("B heard A's tone in {before:.2} before, {muted:.2} during, {after:.2} after the mute");
    assert!(before >= 0.9 && muted <= 0.1 && after >= 0.9, "{before:.2} {muted:.2} {after:.2}\n{context}");

    // A's per-second stats say when it was muted; B's show A's packets arriving all along.
    let a_muted: Vec<bool> = a.events_of("stats").iter().map(|l| l.contains("\"muted\":true")).collect();
    assert!(a_muted.iter().filter(|m| **m).count() >= 1 && !a_muted[0], "{a_muted:?}\n{context}");
    let b_received: Vec<f64> = b.events_of("stats").iter().filter_map(|l| number(l, "packets_received")).collect();
    let per_second: Vec<f64> = b_received.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(per_second.iter().all(|n| *n >= 45.0), "B received per second: {per_second:?}\n{context}");
    let b_levels: Vec<f64> = b.events_of("stats").iter().filter_map(|l| number(l, "output_level_dbfs")).collect();
    assert!(b_levels.iter().any(|l| *l < -60.0), "B's meter fell while A was muted: {b_levels:?}\n{context}");

    // The final stats: a clean loopback call scores near the top of the E-model's scale, with an
    // RTT from RTCP. An RTT needs the far end's report on one of our sender reports; with the
    // first RTCP interval randomised over about 1–3 s (RFC 3550 §6.3.1, §A.7), in a 6 s call that is
    // certain only for the side whose first report came first, so one of the two must have it.
    let hung_up = b.event("hung_up").unwrap_or_else(|| panic!("B reported no hung_up\n{context}"));
    let mos = number(&hung_up, "mos").unwrap_or_else(|| panic!("no mos in {hung_up}"));
    assert!(mos > 4.3 && mos <= 4.41, "{hung_up}");
    assert!(hung_up.contains("\"muted\":false"), "{hung_up}");
    let a_hung_up = a.event("hung_up").unwrap_or_else(|| panic!("A reported no hung_up\n{context}"));
    let rtts: Vec<f64> = [&a_hung_up, &hung_up].iter().filter_map(|line| number(line, "rtt_ms")).collect();
    assert!(!rtts.is_empty() && rtts.iter().all(|rtt| *rtt < 50.0), "A: {a_hung_up}\nB: {hung_up}");
}
