//! SRTP with SDES keys (RFC 3711, RFC 4568) between our binaries on loopback: two softphones
//! register with the registrar over TLS and call each other with the default `--srtp offer` (and
//! with `require`); each hears the other's tone, tshark on `lo` sees encrypted RTP on the wire
//! while the phone's own `--pcap` holds the same packets decrypted. Keys never cross plain
//! signalling: `--srtp require` will not dial over UDP, answers 488 to a plain offer, and the
//! registrar relays no `a=crypto` over UDP.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use voip_tests::softphone::{Softphone, assert_recording_holds, over_tls, phone_args_at};
use voip_tests::tshark::{Checksums, LiveCapture, Media, Rtcp, analyze_with, frame_fields};
use voip_tests::{Peer, Registrar, RegistrarConfig, peers_ready, temp_dir, unique_loopback_ip};

const DOMAIN: &str = "voip.test";
/// How long the caller runs (`--duration`); the call takes nearly all of it.
const CALL_SECONDS: u32 = 5;
/// A recording must last at least this long: the call, less its set-up and tear-down.
const MIN_SECONDS: f64 = CALL_SECONDS as f64 - 1.5;
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;
const RATE: u32 = 8000;
const SUITE: &str = "\"srtp\":\"AES_CM_128_HMAC_SHA1_80\"";
/// The authentication tag AES_CM_128_HMAC_SHA1_80 appends to each SRTP packet (RFC 3711 §4.2).
const TAG_LEN: usize = 10;

fn registrar() -> Registrar {
    Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").sip_trace())
        .unwrap_or_else(|e| panic!("start the registrar: {e}"))
}

/// How a phone reaches the registrar.
#[derive(Clone, Copy, PartialEq)]
enum Signalling {
    Udp,
    Tls,
}

/// A phone's command line: `user` bound to `ip`, registering over `signalling` (over TLS
/// trusting the registrar's certificate), with `extra` after.
fn args(registrar: &Registrar, ip: Ipv4Addr, user: &str, signalling: Signalling, extra: &[&str]) -> Vec<String> {
    let args = phone_args_at(ip, registrar.addr(), DOMAIN, user, extra).unwrap_or_else(|e| panic!("{e}"));
    match signalling {
        Signalling::Udp => args,
        Signalling::Tls => over_tls(args, registrar, Some(&registrar.tls_certificate())),
    }
}

/// One side of a call: its account, address, signalling and extra arguments.
struct Side<'a> {
    user: &'a str,
    ip: Ipv4Addr,
    signalling: Signalling,
    extra: &'a [&'a str],
}

/// Callee `b` (auto-answer, tone B) and caller `a` (dials 1002, tone A) in `dir`; returns both,
/// and how A exited, once A has ended. A writes its TLS secrets to `a.keys`.
fn run_call(registrar: &Registrar, dir: &Path, a: &Side, b: &Side) -> (Softphone, ExitStatus, Softphone) {
    let (a_wav, b_wav) = (dir.join("a.wav"), dir.join("b.wav"));
    let (tone_a, tone_b) = (format!("tone:{TONE_A}"), format!("tone:{TONE_B}"));
    let b_extra = [
        &["--auto-answer", "--codecs", "pcmu", "--audio-in", &tone_b, "--audio-out", b_wav.to_str().unwrap()][..],
        &["--duration", "30"],
        b.extra,
    ]
    .concat();
    let mut callee = Softphone::start("b", dir, &args(registrar, b.ip, b.user, b.signalling, &b_extra))
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    callee.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let duration = CALL_SECONDS.to_string();
    let a_extra = [
        &["--dial", "1002", "--codecs", "pcmu", "--audio-in", &tone_a, "--audio-out", a_wav.to_str().unwrap()][..],
        &["--duration", &duration],
        a.extra,
    ]
    .concat();
    let keys = dir.join("a.keys");
    let a_args = args(registrar, a.ip, a.user, a.signalling, &a_extra);
    let mut caller = Softphone::start_with_env("a", dir, &a_args, &[("SSLKEYLOGFILE", keys.as_path())])
        .unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let status = caller.wait(Duration::from_secs(u64::from(CALL_SECONDS) + 15)).unwrap_or_else(|e| panic!("{e}"));
    (caller, status, callee)
}

/// Runs a call that must succeed: both end cleanly, both hear each other, both say the media is
/// `AES_CM_128_HMAC_SHA1_80` (or plain RTP when not `srtp`) with no SRTP authentication failure.
fn secured_call(registrar: &Registrar, dir: &Path, a: &Side, b: &Side, srtp: bool) -> (Softphone, Softphone) {
    let (caller, a_status, mut callee) = run_call(registrar, dir, a, b);
    let b_status = callee.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}", caller.output(), callee.output());
    assert!(a_status.success() && b_status.success(), "A exited with {a_status}, B with {b_status}\n{context}");
    for (who, phone) in [("A", &caller), ("B", &callee)] {
        let answered = phone.event("answered").unwrap_or_else(|| panic!("{who} reported no answered event\n{context}"));
        assert!(answered.contains("\"codec\":\"PCMU\""), "{who}: {answered}");
        assert_eq!(answered.contains(SUITE), srtp, "{who}'s media security: {answered}");
        let hung_up = phone.event("hung_up").unwrap_or_else(|| panic!("{who} reported no hung_up event\n{context}"));
        eprintln!("{who}: {answered}\n{who}: {hung_up}");
        if srtp {
            assert!(hung_up.contains("\"srtp_auth_failures\":0"), "{who}: {hung_up}");
        } else {
            assert!(!hung_up.contains("srtp"), "{who}: plain RTP reports no SRTP: {hung_up}");
        }
    }
    assert_recording_holds(&dir.join("a.wav"), RATE, TONE_B, MIN_SECONDS, "A");
    assert_recording_holds(&dir.join("b.wav"), RATE, TONE_A, MIN_SECONDS, "B");
    (caller, callee)
}

/// The address in the `remote_rtp` field of `phone`'s `answered` event.
fn remote_rtp(phone: &Softphone) -> SocketAddr {
    let answered = phone.event("answered").expect("an answered event");
    let value = answered.split("\"remote_rtp\":\"").nth(1).and_then(|r| r.split('"').next());
    value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no remote_rtp in {answered}"))
}

/// Every PCMU packet of `capture` read as RTP on `ports`: (SSRC, sequence number) → payload bytes.
fn rtp_payloads(capture: &Path, ports: [u16; 2]) -> HashMap<(String, String), Vec<u8>> {
    let decode = ports.map(|p| format!("udp.port=={p},rtp"));
    let options = ["-d", &decode[0], "-d", &decode[1]];
    let rows = frame_fields(capture, &options, "rtp.p_type == 0", &["rtp.ssrc", "rtp.seq", "rtp.payload"])
        .unwrap_or_else(|e| panic!("{e}"));
    let hex = |s: &str| {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect::<Vec<u8>>()
    };
    rows.into_iter()
        .filter_map(|row| match &row[..] {
            [ssrc, seq, payload, ..] => Some(((ssrc.clone(), seq.clone()), hex(payload))),
            _ => None,
        })
        .collect()
}

#[test]
fn tls_phones_encrypt_their_rtp_on_the_wire_and_record_it_decrypted_in_their_own_capture() {
    if !peers_ready(&[Peer::Tshark]) {
        return;
    }
    let dir = temp_dir("srtp-wire-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let a_ip = unique_loopback_ip();
    let wire = dir.path().join("wire.pcap");
    let live = LiveCapture::start(&wire, &format!("udp and host {a_ip}"), a_ip.into())
        .unwrap_or_else(|e| panic!("start tshark: {e}"));
    let a_pcap = dir.path().join("a.pcap");
    let a_pcap_arg = a_pcap.display().to_string();
    let a = Side { user: "1001", ip: a_ip, signalling: Signalling::Tls, extra: &["--pcap", &a_pcap_arg] };
    let b = Side { user: "1002", ip: Ipv4Addr::LOCALHOST, signalling: Signalling::Tls, extra: &[] };
    let (caller, callee) = secured_call(&registrar, dir.path(), &a, &b, true);
    let wire = live.stop().unwrap_or_else(|e| panic!("stop tshark: {e}"));

    // The same packets, by SSRC and sequence number: on the wire the payload is ciphertext with
    // the tag after it, in A's capture it is the plain G.711 A sent or B's packet decrypted.
    let ports = [remote_rtp(&callee).port(), remote_rtp(&caller).port()];
    let (on_wire, in_pcap) = (rtp_payloads(&wire, ports), rtp_payloads(&a_pcap, ports));
    // B starts sending as it answers, so its first packet or two may reach A before the 200 OK
    // with B's key has come round through the registrar: A drops them, and its capture holds
    // them as they arrived.
    let (mut matched, mut before_the_answer) = (0, 0);
    for (id, plain) in &in_pcap {
        let Some(sealed) = on_wire.get(id) else { continue };
        if sealed == plain {
            before_the_answer += 1;
            continue;
        }
        matched += 1;
        assert_eq!(sealed.len(), plain.len() + TAG_LEN, "packet {id:?}: the wire holds the payload and its tag");
        assert_ne!(&sealed[..plain.len()], &plain[..], "packet {id:?} crossed the wire in clear");
    }
    eprintln!(
        "{} RTP packets on the wire, {} in A's --pcap, {matched} found in both, each encrypted on the wire; \
         {before_the_answer} recorded as they arrived before the answer",
        on_wire.len(),
        in_pcap.len()
    );
    assert!(before_the_answer <= 3, "{before_the_answer} packets in A's --pcap were not decrypted");
    let per_direction = u64::from(CALL_SECONDS - 1) * 50;
    assert!(matched as u64 >= 2 * per_direction, "only {matched} packets found in both captures");

    // A's capture read with its TLS secrets: Wireshark finds the RTP from the SDP in the TLS
    // INVITE and its 200, and the decrypted streams are whole. It takes the RTCP port of an
    // RTP/SAVP line for SRTCP, so it reads the plain RTCP of the capture as SRTCP: the last 14
    // bytes as E flag, index and tag, and when that "E flag" happens to be set it notes
    // "Encrypted RTCP Payload - not dissected". That note, and only it, is an artefact of
    // recording decrypted media under an SRTP offer.
    let port = registrar.tls_addr().port();
    let keylog = format!("tls.keylog_file:{}", dir.path().join("a.keys").display());
    let (tls, sip_port) = (format!("tcp.port=={port},tls"), format!("tls.port=={port},sip"));
    let options = ["-o", &keylog, "-d", &tls, "-d", &sip_port];
    let mut summary = analyze_with(&a_pcap, Checksums::Validate, &options).unwrap_or_else(|e| panic!("{e}"));
    summary.problems.retain(|p| !p.contains("(SRTCP): Encrypted RTCP Payload - not dissected"));
    summary.assert_media("A's --pcap", &Media::call("g711U", 0, per_direction, Rtcp::AtLeast(0)));
    let sip = (summary.requests("INVITE"), summary.requests("BYE"), summary.responses(200));
    eprintln!("A's --pcap, decrypted: INVITE ×{}, BYE ×{}, 200 ×{}", sip.0, sip.1, sip.2);
    assert!(sip.0 >= 1 && sip.1 == 1 && sip.2 >= 2, "A's SIP was not decrypted: {summary:#?}");
    let rtcp = frame_fields(&a_pcap, &options, "srtcp", &["frame.number"]).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("A's --pcap: {} RTCP packets (dissected as srtcp)", rtcp.len());
    assert!(!rtcp.is_empty(), "A's --pcap holds no RTCP");

    // The registrar relayed the keys, over TLS only.
    assert!(registrar.log().contains("a=crypto:"), "the registrar's trace shows no a=crypto line");
}

#[test]
fn tls_phones_that_both_require_srtp_get_it() {
    let dir = temp_dir("srtp-require-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let require = ["--srtp", "require"];
    let a = Side { user: "1001", ip: Ipv4Addr::LOCALHOST, signalling: Signalling::Tls, extra: &require };
    let b = Side { user: "1002", ip: Ipv4Addr::LOCALHOST, signalling: Signalling::Tls, extra: &require };
    secured_call(&registrar, dir.path(), &a, &b, true);
}

#[test]
fn over_plain_udp_signalling_the_phones_talk_plain_rtp_and_no_key_crosses_the_registrar() {
    let dir = temp_dir("srtp-plain-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let a = Side { user: "1001", ip: Ipv4Addr::LOCALHOST, signalling: Signalling::Udp, extra: &[] };
    let b = Side { user: "1002", ip: Ipv4Addr::LOCALHOST, signalling: Signalling::Udp, extra: &[] };
    secured_call(&registrar, dir.path(), &a, &b, false);
    let log = registrar.log();
    let offers = log.matches("m=audio ").count();
    eprintln!("the registrar relayed {offers} SDP bodies over UDP");
    assert!(offers >= 2, "the registrar's trace shows no offer and answer:\n{}", registrar.log_tail(60));
    assert!(!log.contains("a=crypto"), "a key crossed plain signalling:\n{log}");
    assert!(!log.contains("RTP/SAVP"), "an SRTP offer crossed plain signalling:\n{log}");
}

/// Runs a call that must fail with 488 at the caller; returns both phones' output.
fn refused_call(registrar: &Registrar, dir: &Path, a: &Side, b: &Side) -> String {
    let (caller, _, mut callee) = run_call(registrar, dir, a, b);
    callee.stop();
    let context = format!("A:\n{}\nB:\n{}", caller.output(), callee.output());
    assert!(caller.event("answered").is_none(), "the call was answered\n{context}");
    let hung_up = caller.event("hung_up").unwrap_or_else(|| panic!("A reported no hung_up event\n{context}"));
    eprintln!("A: {hung_up}");
    assert!(hung_up.contains("\"status\":488"), "A's call must end with 488: {hung_up}\n{context}");
    context
}

#[test]
fn srtp_require_refuses_plain_signalling_and_plain_offers_with_488() {
    let dir = temp_dir("srtp-refused-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let local = Ipv4Addr::LOCALHOST;
    let require = ["--srtp", "require"];

    // A caller that requires SRTP over UDP does not dial, and says why.
    let extra = ["--dial", "1002", "--duration", "5", "--srtp", "require", "--audio-in", "tone:440"];
    let mut phone =
        Softphone::start("udp-require", dir.path(), &args(&registrar, local, "1001", Signalling::Udp, &extra))
            .unwrap_or_else(|e| panic!("{e}"));
    let status = phone.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let log = phone.log();
    eprintln!("require over UDP: {status}: {}", log.trim());
    assert_eq!(status.code(), Some(1), "the dial must fail:\n{}", phone.output());
    assert!(phone.event("dialling").is_none(), "it dialled:\n{}", phone.output());
    assert!(log.contains("SRTP is required but SIP does not run over TLS"), "{log}");
    assert!(!registrar.log().contains("INVITE sip:"), "an INVITE left:\n{}", registrar.log_tail(40));

    // A callee that requires SRTP answers a plain offer from a UDP caller with 488, and one
    // from a TLS caller with `--srtp off`.
    let (udp, tls, off) = (Signalling::Udp, Signalling::Tls, &["--srtp", "off"][..]);
    let cases = [
        ("UDP caller, TLS callee", udp, &[][..], tls),
        ("UDP caller and callee", udp, &[], udp),
        ("--srtp off", tls, off, tls),
    ];
    for (case, a_signalling, a_extra, b_signalling) in cases {
        let dir = temp_dir("srtp-488-").unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{case}:");
        let a = Side { user: "1001", ip: local, signalling: a_signalling, extra: a_extra };
        let b = Side { user: "1002", ip: local, signalling: b_signalling, extra: &require };
        refused_call(&registrar, dir.path(), &a, &b);
    }
    let udp = registrar.log().split("recv UDP").skip(1).filter(|m| m.contains("a=crypto")).count();
    assert_eq!(udp, 0, "a key reached the registrar over UDP");
}

/// SRTP authentication failures the softphone may count in a call with baresip 1.0: its RTCP
/// runs in clear outside the SRTP session, an APP "PINGPONG" packet before the keys are in
/// place and a BYE with SDES as it hangs up, and the softphone rightly refuses both as
/// unauthenticated SRTCP. Its RTP, which carries the audio, must never fail.
const BARESIP_CLEAR_RTCP: u64 = 2;

/// The `srtp_auth_failures` figure in `event`.
fn auth_failures(event: &str) -> u64 {
    let value = event.split("\"srtp_auth_failures\":").nth(1).map(|r| r.chars().take_while(char::is_ascii_digit));
    value.and_then(|v| v.collect::<String>().parse().ok()).unwrap_or_else(|| panic!("no srtp_auth_failures in {event}"))
}

#[test]
fn baresip_with_mandatory_srtp_over_tls_calls_a_softphone_and_is_called_by_it_and_both_hear_each_other() {
    use voip_tests::baresip::{AnswerMode, Baresip, BaresipCodec, BaresipConfig};
    use voip_tests::softphone::tone_share;
    if !peers_ready(&[Peer::Baresip]) {
        return;
    }
    let registrar = registrar();
    let wait = Duration::from_secs(10);
    for baresip_calls in [true, false] {
        let dir = temp_dir("srtp-baresip-").unwrap_or_else(|e| panic!("{e}"));
        let wav = dir.path().join("softphone.wav");
        let tone = format!("tone:{TONE_B}");
        let mut extra = vec!["--codecs", "pcmu", "--audio-in", &tone, "--audio-out", wav.to_str().unwrap()];
        let duration = (CALL_SECONDS + 3).to_string();
        if baresip_calls {
            extra.extend(["--auto-answer", "--duration", "25"]);
        } else {
            extra.extend(["--dial", "1002", "--duration", &duration]);
        }
        let config = BaresipConfig::new("1002", "pw1002", DOMAIN, registrar.tls_addr())
            .codec(BaresipCodec::Pcmu)
            .tone(TONE_A)
            .answer(if baresip_calls { AnswerMode::Manual } else { AnswerMode::Auto })
            .tls(&registrar.tls_certificate())
            .srtp();
        let mut baresip = Baresip::start("srtp", &config).unwrap_or_else(|e| panic!("start baresip: {e}"));
        baresip.wait_registered(wait).unwrap_or_else(|e| panic!("{e}\nregistrar:\n{}", registrar.log_tail(40)));
        let args = args(&registrar, Ipv4Addr::LOCALHOST, "1001", Signalling::Tls, &extra);
        let mut softphone = Softphone::start("softphone", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
        if baresip_calls {
            softphone.wait_for_event("registered", wait).unwrap_or_else(|e| panic!("{e}"));
            baresip.dial(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
        }
        let established = baresip.wait_for_event("CALL_ESTABLISHED", wait).unwrap_or_else(|e| {
            panic!(
                "{e}\nsoftphone:\n{}\n{}\nregistrar:\n{}",
                softphone.output(),
                baresip.output(),
                registrar.log_tail(60)
            )
        });
        if baresip_calls {
            std::thread::sleep(Duration::from_secs(u64::from(CALL_SECONDS)));
            baresip.hangup().unwrap_or_else(|e| panic!("{e}"));
        }
        let closed = baresip.wait_for_event("CALL_CLOSED", wait + wait).unwrap_or_else(|e| panic!("{e}"));
        let status = softphone.wait(wait).unwrap_or_else(|e| panic!("{e}"));
        baresip.quit(wait).unwrap_or_else(|e| panic!("{e}"));
        let context = format!("softphone:\n{}\n{}", softphone.output(), baresip.output());
        let case = if baresip_calls { "baresip calls" } else { "the softphone calls" };
        assert!(status.success(), "{case}: the softphone exited with {status}\n{context}");

        let answered = softphone.event("answered").unwrap_or_else(|| panic!("no answered event\n{context}"));
        assert!(answered.contains(SUITE), "{case}: {answered}");
        let hung_up = softphone.event("hung_up").unwrap_or_else(|| panic!("no hung_up event\n{context}"));
        let failures = auth_failures(&hung_up);
        eprintln!("{case}: {answered}\n{case}: {hung_up}");
        assert!(failures <= BARESIP_CLEAR_RTCP, "{case}: {failures} SRTP authentication failures\n{context}");
        let sdp = registrar.log();
        assert!(sdp.contains("RTP/SAVP") && sdp.contains("a=crypto:"), "{case}: no SDES offer crossed the registrar");

        let connected = closed.at.duration_since(established.at).as_secs_f64();
        let recording = baresip.recording().unwrap_or_else(|e| panic!("{e}"));
        for (who, path, freq) in [("the softphone", wav.as_path(), TONE_A), ("baresip", recording.as_path(), TONE_B)] {
            let share = tone_share(path, freq).unwrap_or_else(|e| panic!("{who}'s recording: {e}\n{context}"));
            eprintln!(
                "{case}: {who} heard {freq} Hz in {} of {} blocks ({:.2} s, call {connected:.2} s)",
                share.toned,
                share.blocks,
                share.seconds()
            );
            assert!(
                share.seconds() >= connected - 1.0,
                "{case}: {who}'s recording is shorter than the call\n{context}"
            );
            assert!(
                share.toned * 10 >= share.blocks * 9,
                "{case}: {who} heard {freq} Hz in only {} of {} blocks",
                share.toned,
                share.blocks
            );
        }
    }
}
