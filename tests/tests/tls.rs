//! SIP over TLS (RFC 3261 §26.2, RFC 5630) between our binaries on loopback: softphones register
//! with the registrar over TLS, trusting its self-signed certificate with `--ca`, and call each
//! other (and a UDP phone) with a different tone each way, judged from their recordings; a phone
//! that does not trust the certificate fails to register with one clear line.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use voip_tests::baresip::{AnswerMode, Baresip, BaresipCodec, BaresipConfig};
use voip_tests::softphone::{Softphone, account_args, assert_recording_holds, over_tls, tone_share};
use voip_tests::tshark::{LiveCapture, tshark};
use voip_tests::{Peer, Registrar, RegistrarConfig, peers_ready, temp_dir, unique_loopback_ip};

const DOMAIN: &str = "voip.test";
/// How long the caller runs (`--duration`); the call takes nearly all of it.
const CALL_SECONDS: u32 = 5;
/// A recording must last at least this long: the call, less its set-up and tear-down.
const MIN_SECONDS: f64 = CALL_SECONDS as f64 - 1.5;
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;
const RATE: u32 = 8000;

fn registrar() -> Registrar {
    Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").sip_trace())
        .unwrap_or_else(|e| panic!("start the registrar: {e}"))
}

/// `account_args` with the registrar named `sips:` at its TLS address, trusting `ca`.
fn tls_args(registrar: &Registrar, user: &str, ca: Option<&Path>, extra: &[&str]) -> Vec<String> {
    over_tls(account_args(registrar, user, extra), registrar, ca)
}

/// Runs callee B (auto-answer, tone B) with `b_args` and caller A (dials 1002, tone A) with
/// `a_args`, each built from its extra arguments; both must end cleanly and hear each other.
/// Each phone writes its TLS secrets to `a.keys` / `b.keys` in `dir` (`SSLKEYLOGFILE`).
fn call(
    dir: &Path,
    b_args: impl FnOnce(&[&str]) -> Vec<String>,
    a_args: impl FnOnce(&[&str]) -> Vec<String>,
) -> (Softphone, Softphone) {
    let (a_wav, b_wav) = (dir.join("a.wav"), dir.join("b.wav"));
    let (tone_a, tone_b) = (format!("tone:{TONE_A}"), format!("tone:{TONE_B}"));
    let b_extra = ["--auto-answer", "--codecs", "pcmu", "--audio-in", &tone_b, "--audio-out", b_wav.to_str().unwrap()];
    let (a_keys, b_keys) = (dir.join("a.keys"), dir.join("b.keys"));
    let b_env = [("SSLKEYLOGFILE", b_keys.as_path())];
    let mut b = Softphone::start_with_env("b", dir, &b_args(&[&b_extra[..], &["--duration", "30"]].concat()), &b_env)
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let duration = CALL_SECONDS.to_string();
    let a_extra = ["--dial", "1002", "--codecs", "pcmu", "--audio-in", &tone_a, "--audio-out", a_wav.to_str().unwrap()];
    let a_env = [("SSLKEYLOGFILE", a_keys.as_path())];
    let a_args = a_args(&[&a_extra[..], &["--duration", &duration]].concat());
    let mut a =
        Softphone::start_with_env("a", dir, &a_args, &a_env).unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(u64::from(CALL_SECONDS) + 15)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}", a.output(), b.output());
    assert!(a_status.success(), "A exited with {a_status}\n{context}");
    assert!(b_status.success(), "B exited with {b_status}\n{context}");
    for (who, phone, reason) in [("A", &a, "local"), ("B", &b, "remote")] {
        let answered = phone.event("answered").unwrap_or_else(|| panic!("{who} reported no answered event\n{context}"));
        assert!(answered.contains("\"codec\":\"PCMU\""), "{who}: {answered}");
        let hung_up = phone.event("hung_up").unwrap_or_else(|| panic!("{who} reported no hung_up event\n{context}"));
        assert!(hung_up.contains(&format!("\"reason\":\"{reason}\"")), "{who}: {hung_up}");
    }
    assert_recording_holds(&a_wav, RATE, TONE_B, MIN_SECONDS, "A");
    assert_recording_holds(&b_wav, RATE, TONE_A, MIN_SECONDS, "B");
    (a, b)
}

#[test]
fn two_phones_register_over_tls_with_the_pinned_self_signed_certificate_and_hear_each_other() {
    let dir = temp_dir("tls-call-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let ca = registrar.tls_certificate();
    assert!(ca.is_file(), "no self-signed certificate at {}", ca.display());
    call(
        dir.path(),
        |extra| tls_args(&registrar, "1002", Some(&ca), extra),
        |extra| tls_args(&registrar, "1001", Some(&ca), extra),
    );
    // Every request of both phones reached the registrar over TLS, none over UDP or TCP.
    let log = registrar.log();
    let received = |method: &str, transport: &str| {
        log.split("recv ").filter(|m| m.starts_with(transport) && m.contains(&format!(":\n{method} "))).count()
    };
    for method in ["REGISTER", "INVITE", "ACK", "BYE"] {
        let (tls, udp, tcp) = (received(method, "TLS"), received(method, "UDP"), received(method, "TCP"));
        eprintln!("registrar received {method}: {tls} over TLS, {udp} over UDP, {tcp} over TCP");
        assert!(tls >= 1 && udp == 0 && tcp == 0, "{method}: {tls} TLS, {udp} UDP, {tcp} TCP");
    }
}

#[test]
fn udp_phone_and_tls_phone_call_each_other_through_the_registrar_both_ways() {
    let registrar = registrar();
    let ca = registrar.tls_certificate();
    for (caller_tls, name) in [(false, "udp-calls-tls"), (true, "tls-calls-udp")] {
        let dir = temp_dir(&format!("tls-{name}-")).unwrap_or_else(|e| panic!("{e}"));
        let phone = |user: &'static str, tls: bool| {
            let registrar = &registrar;
            let ca = ca.clone();
            move |extra: &[&str]| {
                if tls { tls_args(registrar, user, Some(&ca), extra) } else { account_args(registrar, user, extra) }
            }
        };
        eprintln!("{name}:");
        call(dir.path(), phone("1002", !caller_tls), phone("1001", caller_tls));
    }
}

/// Starts a phone that registers over TLS with `ca` and returns how it exited and its stderr.
fn register_with(registrar: &Registrar, ca: Option<&Path>, dir: &Path) -> (ExitStatus, String) {
    let args = tls_args(registrar, "1001", ca, &["--duration", "5", "--audio-in", "tone:440", "--audio-out", "null"]);
    let mut phone = Softphone::start("untrusting", dir, &args).unwrap_or_else(|e| panic!("start the softphone: {e}"));
    let status = phone.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    (status, phone.log())
}

#[test]
fn phone_that_does_not_trust_the_certificate_fails_to_register_with_one_clear_line() {
    let dir = temp_dir("tls-untrusted-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let (other_cert, _) = proto::io::tls::generate_self_signed(&["127.0.0.1".to_owned()]).unwrap();
    let wrong_ca = dir.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, other_cert).unwrap();
    for (case, ca) in [("no --ca", None), ("a wrong --ca", Some(wrong_ca.as_path()))] {
        let (status, log) = register_with(&registrar, ca, dir.path());
        eprintln!("{case}: {status}: {}", log.trim());
        assert_eq!(status.code(), Some(3), "{case}: registration must fail (exit 3):\n{log}");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("not trusted")).collect();
        assert_eq!(lines.len(), 1, "{case}: one line says what is wrong:\n{log}");
        let line = lines[0];
        let at = registrar.tls_addr().to_string();
        assert!(line.contains("not trusted") && line.contains(&at) && line.contains("--ca FILE"), "{case}: {line}");
    }
    let (status, log) = register_with(&registrar, Some(&registrar.tls_certificate()), dir.path());
    assert!(status.success(), "with the registrar's certificate the phone registers:\n{log}");
}

/// SIP found by tshark in `capture`, decrypting TLS on `port` with the secrets in `keys`: every
/// method and status code, and the frames it found malformed or in error.
fn decrypted_sip(capture: &Path, keys: &Path, port: u16) -> (Vec<String>, String) {
    let tshark = tshark().unwrap_or_else(|e| panic!("{e}"));
    let run = |filter: &str, fields: &[&str]| {
        let mut command = std::process::Command::new(&tshark);
        command.arg("-r").arg(capture).arg("-o").arg(format!("tls.keylog_file:{}", keys.display()));
        command.args(["-d", &format!("tcp.port=={port},tls"), "-d", &format!("tls.port=={port},sip"), "-Y", filter]);
        command.args(fields);
        let out = command.output().unwrap_or_else(|e| panic!("run tshark: {e}"));
        assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sip = run("sip", &["-T", "fields", "-e", "sip.Method", "-e", "sip.Status-Code"]);
    let messages = sip.split(['\t', '\n', ',']).filter(|f| !f.is_empty()).map(str::to_owned).collect();
    (messages, run("_ws.malformed || _ws.expert.severity >= error", &[]))
}

fn count(messages: &[String], what: &str) -> usize {
    messages.iter().filter(|m| *m == what).count()
}

#[test]
fn tshark_decrypts_a_tls_call_on_the_wire_and_in_the_phones_own_capture_with_the_key_log() {
    if !peers_ready(&[Peer::Tshark]) {
        return;
    }
    let dir = temp_dir("tls-tshark-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let (ca, port) = (registrar.tls_certificate(), registrar.tls_addr().port());
    let probe = unique_loopback_ip();
    let wire = dir.path().join("wire.pcap");
    let live = LiveCapture::start(&wire, &format!("tcp port {port} or (udp and host {probe})"), probe.into())
        .unwrap_or_else(|e| panic!("start tshark: {e}"));
    let a_pcap = dir.path().join("a.pcap");
    let a_pcap_arg = a_pcap.display().to_string();
    call(
        dir.path(),
        |extra| tls_args(&registrar, "1002", Some(&ca), extra),
        |extra| tls_args(&registrar, "1001", Some(&ca), &[extra, &["--pcap", &a_pcap_arg]].concat()),
    );
    let wire = live.stop().unwrap_or_else(|e| panic!("stop tshark: {e}"));
    let keys = dir.path().join("all.keys");
    let both = [dir.path().join("a.keys"), dir.path().join("b.keys")].map(|k| std::fs::read(k).unwrap_or_default());
    assert!(both.iter().all(|k| String::from_utf8_lossy(k).contains("CLIENT_")), "each phone logged its secrets");
    std::fs::write(&keys, both.concat()).unwrap();

    // The wire: both phones' legs. A: REGISTER ×3 (challenge, then unregister), INVITE ×2 (407),
    // ACK ×2, BYE; B: REGISTER ×3, INVITE, ACK, and the BYE forwarded to it.
    let (messages, bad) = decrypted_sip(&wire, &keys, port);
    eprintln!("wire: {} SIP messages decrypted: {messages:?}", messages.len());
    assert_eq!(bad, "", "tshark found malformed or erroneous frames on the wire");
    for (what, n) in [("REGISTER", 6), ("INVITE", 3), ("ACK", 3), ("BYE", 2), ("401", 2), ("407", 1), ("180", 2)] {
        assert_eq!(count(&messages, what), n, "{what} on the wire: {messages:?}");
    }
    assert!(count(&messages, "200") >= 8, "200s on the wire: {messages:?}");

    // A's own --pcap holds its TLS records as TCP on the real ports; its key log decrypts them.
    let (messages, bad) = decrypted_sip(&a_pcap, &dir.path().join("a.keys"), port);
    eprintln!("A's --pcap: {} SIP messages decrypted", messages.len());
    assert_eq!(bad, "", "tshark found malformed or erroneous frames in A's --pcap");
    for (what, n) in [("REGISTER", 3), ("INVITE", 2), ("ACK", 2), ("BYE", 1), ("401", 1), ("407", 1), ("180", 1)] {
        assert_eq!(count(&messages, what), n, "{what} in A's --pcap: {messages:?}");
    }
}

#[test]
fn baresip_registers_over_tls_and_calls_a_tls_softphone_and_each_hears_the_other() {
    if !peers_ready(&[Peer::Baresip]) {
        return;
    }
    let dir = temp_dir("tls-baresip-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let ca = registrar.tls_certificate();
    let wav = dir.path().join("softphone.wav");
    let tone = format!("tone:{TONE_B}");
    let extra = ["--auto-answer", "--codecs", "pcmu", "--audio-in", &tone, "--audio-out", wav.to_str().unwrap()];
    let args = tls_args(&registrar, "1001", Some(&ca), &[&extra[..], &["--duration", "25"]].concat());
    let mut softphone = Softphone::start("softphone", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    softphone.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let config = BaresipConfig::new("1002", "pw1002", DOMAIN, registrar.tls_addr())
        .codec(BaresipCodec::Pcmu)
        .tone(TONE_A)
        .answer(AnswerMode::Manual)
        .tls(&ca);
    let mut baresip = Baresip::start("caller", &config).unwrap_or_else(|e| panic!("start baresip: {e}"));
    let wait = Duration::from_secs(10);
    baresip.wait_registered(wait).unwrap_or_else(|e| panic!("{e}\nregistrar:\n{}", registrar.log_tail(40)));
    baresip.dial(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    let established = baresip
        .wait_for_event("CALL_ESTABLISHED", wait)
        .unwrap_or_else(|e| panic!("{e}\nsoftphone:\n{}\nregistrar:\n{}", softphone.output(), registrar.log_tail(60)));
    std::thread::sleep(Duration::from_secs(u64::from(CALL_SECONDS)));
    baresip.hangup().unwrap_or_else(|e| panic!("{e}"));
    let closed = baresip.wait_for_event("CALL_CLOSED", wait).unwrap_or_else(|e| panic!("{e}"));
    let status = softphone.wait(wait).unwrap_or_else(|e| panic!("{e}"));
    baresip.quit(wait).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("softphone:\n{}\n{}", softphone.output(), baresip.output());
    assert!(status.success(), "the softphone exited with {status}\n{context}");

    // baresip's REGISTER, INVITE and BYE reached the registrar over TLS.
    let log = registrar.log();
    for method in ["REGISTER", "INVITE", "BYE"] {
        let over_tls =
            log.split("recv TLS from ").any(|m| m.split_once('\n').is_some_and(|(_, r)| r.starts_with(method)));
        assert!(over_tls, "no {method} over TLS in the registrar's trace\n{}", registrar.log_tail(60));
    }
    let connected = closed.at.duration_since(established.at).as_secs_f64();
    let recording = baresip.recording().unwrap_or_else(|e| panic!("{e}"));
    for (who, path, freq) in [("the softphone", wav.as_path(), TONE_A), ("baresip", recording.as_path(), TONE_B)] {
        let share = tone_share(path, freq).unwrap_or_else(|e| panic!("{who}'s recording: {e}\n{context}"));
        eprintln!(
            "{who} heard {freq} Hz in {} of {} blocks ({:.2} s, call {connected:.2} s)",
            share.toned,
            share.blocks,
            share.seconds()
        );
        assert!(share.seconds() >= connected - 1.0, "{who}'s recording is shorter than the call\n{context}");
        assert!(
            share.toned * 10 >= share.blocks * 9,
            "{who} heard {freq} Hz in only {} of {} blocks",
            share.toned,
            share.blocks
        );
    }
}

#[test]
fn phone_pings_its_tls_flow_with_crlf_keepalives_and_keeps_using_it() {
    let dir = temp_dir("tls-keepalive-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let extra = ["--keepalive", "1", "--sip-trace", "--duration", "4", "--audio-in", "tone:440", "--audio-out", "null"];
    let args = tls_args(&registrar, "1001", Some(&registrar.tls_certificate()), &extra);
    let mut phone = Softphone::start("keepalive", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    let status = phone.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let (log, output) = (phone.log(), phone.output());
    assert!(status.success(), "the phone exited with {status}\n{output}");
    let ping = format!("send TLS to {}:\n\r\n\r\n", registrar.tls_addr());
    let pings = log.matches(&ping).count();
    eprintln!("{pings} CRLF keep-alives in 4 s with --keepalive 1");
    assert!((2..=5).contains(&pings), "{pings} keep-alives in 4 s:\n{log}");
    // The flow survived them: the REGISTER that removes the binding went over it and was answered.
    assert!(phone.event("unregistered").is_some(), "the phone did not unregister\n{output}");
    let registers = registrar.log().split("recv TLS from ").filter(|m| m.contains(":\nREGISTER ")).count();
    assert_eq!(registers, 3, "REGISTER ×3 (challenged, then the unregister) over TLS");
}
