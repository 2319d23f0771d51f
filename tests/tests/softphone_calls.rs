//! Two softphones call each other through our registrar on loopback, with a different tone
//! each way, and their recordings prove the audio crossed in both directions.
//!
//! The connected part of a call is the whole recording: the softphone writes one 20 ms frame of
//! the far end's audio per tick from the moment the call is answered to the moment it ends, and
//! nothing before or after. So each recording must last about as long as the call and hold the
//! far end's tone in at least 90% of its 20 ms blocks (Goertzel, `proto::codec::tone`).
//!
//! The Opus and PCMU calls are also judged by Wireshark (`voip_tests::tshark`): each phone sits
//! on a loopback address of its own, tshark captures their traffic on `lo`, and that capture,
//! both phones' `--pcap` files and the registrar's must dissect cleanly with the expected SIP
//! counts, RTP found from the SDP with the negotiated codec, and RTCP.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use voip_tests::softphone::{Softphone, account_args, assert_recording_holds, direct_args, read_wav, tone_blocks};
use voip_tests::tshark::{CaptureSummary, Checksums, LiveCapture, analyze};
use voip_tests::{Peer, Registrar, RegistrarConfig, free_port, peers_ready, temp_dir, unique_loopback_ip};

const DOMAIN: &str = "voip.test";
/// How long the caller runs (`--duration`); the call takes nearly all of it.
const CALL_SECONDS: u32 = 6;
/// A recording must last at least this long: the call, less its set-up and tear-down.
const MIN_SECONDS: f64 = CALL_SECONDS as f64 - 1.5;
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;

/// `args` with the `--bind` address moved to `ip` (same port) and `--pcap FILE` added.
fn on_own_address(mut args: Vec<String>, ip: Ipv4Addr, pcap: &Path) -> Vec<String> {
    if let Some(i) = args.iter().position(|a| a == "--bind") {
        let port = args[i + 1].rsplit(':').next().unwrap_or_default().to_owned();
        args[i + 1] = format!("{ip}:{port}");
    }
    args.extend(["--pcap".to_owned(), pcap.display().to_string()]);
    args
}

/// SIP counts as `-z sip,stat` gives them; exact unless tshark saw retransmissions (a loaded
/// machine), then at least.
fn assert_sip(summary: &CaptureSummary, who: &str, requests: &[(&str, u64)], responses: &[(u16, u64)]) {
    let exact = summary.sip_resent == 0;
    if !exact {
        eprintln!("{who}: {} SIP retransmissions; counts checked as minimums", summary.sip_resent);
    }
    for (method, n) in requests {
        let seen = summary.requests(method);
        assert!(if exact { seen == *n } else { seen >= *n }, "{who}: {seen} {method}, expected {n}: {summary:#?}");
    }
    for (status, n) in responses {
        let seen = summary.responses(*status);
        assert!(if exact { seen == *n } else { seen >= *n }, "{who}: {seen} × {status}, expected {n}: {summary:#?}");
    }
}

/// Clean dissection, and the call's two RTP streams found from the SDP with `payload`
/// (`-z rtp,streams` name) as payload type `pt`, no loss or sequence/timestamp problem, RTCP.
fn assert_clean_media(summary: &CaptureSummary, who: &str, payload: &str, pt: u8) {
    assert!(summary.problems.is_empty(), "{who}: Wireshark found problems: {:#?}", summary.problems);
    assert!(summary.rtp_packets >= 300, "{who}: only {} RTP packets: {summary:#?}", summary.rtp_packets);
    assert_eq!(summary.rtp_not_from_sdp, 0, "{who}: RTP not set up by the SDP: {summary:#?}");
    assert_eq!(summary.rtp_payload_types.iter().copied().collect::<Vec<_>>(), vec![pt], "{who}: {summary:#?}");
    assert_eq!(summary.rtp_streams.len(), 2, "{who}: one stream each way: {summary:#?}");
    for stream in &summary.rtp_streams {
        assert_eq!(stream.payload, payload, "{who}: {stream:?}");
        assert!(!stream.problem && stream.lost == 0, "{who}: sequence or timestamp problem or loss: {stream:?}");
        assert!(stream.packets >= 150, "{who}: {stream:?}");
    }
    assert!(summary.rtcp_packets >= 2, "{who}: {} RTCP packets", summary.rtcp_packets);
}

/// Judges the four captures of a call from A (caller, `a_ip`) to B through the registrar.
fn assert_captures(dir: &Path, live: &Path, a_ip: Ipv4Addr, payload: &str, pt: u8) {
    let read = |path: &Path, checksums| analyze(path, checksums).unwrap_or_else(|e| panic!("{e}"));
    let wire = read(live, Checksums::Ignore);
    let a = read(&dir.join("a.pcap"), Checksums::Validate);
    let b = read(&dir.join("b.pcap"), Checksums::Validate);
    let registrar = read(&dir.join("registrar.pcap"), Checksums::Validate);
    eprintln!(
        "captures: wire {} frames, A {}, B {}, registrar {}; RTP streams on the wire: {:?}",
        wire.frames, a.frames, b.frames, registrar.frames, wire.rtp_streams
    );

    // Caller: REGISTER, 401, REGISTER, 200; INVITE, 407, ACK, INVITE, 100, 180, 200, ACK; BYE, 200;
    // REGISTER (expires 0), 200. Callee: the same without the proxy's 407 round and 100.
    let a_requests = [("REGISTER", 3), ("INVITE", 2), ("ACK", 2), ("BYE", 1)];
    let b_requests = [("REGISTER", 3), ("INVITE", 1), ("ACK", 1), ("BYE", 1)];
    let both_requests = [("REGISTER", 6), ("INVITE", 3), ("ACK", 3), ("BYE", 2)];
    assert_sip(&a, "A's --pcap", &a_requests, &[(401, 1), (407, 1), (100, 1), (180, 1), (200, 4)]);
    assert_sip(&b, "B's --pcap", &b_requests, &[(401, 1), (180, 1), (200, 4)]);
    assert_sip(&wire, "tshark -i lo", &both_requests, &[(401, 2), (407, 1), (180, 2), (200, 8)]);
    // The registrar also answered the harness's readiness OPTIONS, which the wire filter leaves out.
    assert_sip(&registrar, "registrar's --pcap", &both_requests, &[(401, 2), (407, 1), (180, 2)]);
    assert!(registrar.problems.is_empty(), "registrar's --pcap: {:#?}", registrar.problems);
    assert_eq!(registrar.rtp_packets, 0, "the registrar carries no media");

    assert_clean_media(&wire, "tshark -i lo", payload, pt);
    assert_clean_media(&a, "A's --pcap", payload, pt);
    assert_clean_media(&b, "B's --pcap", payload, pt);
    // A sender's own record holds every packet it sent, as seen on the wire.
    for stream in &wire.rtp_streams {
        let sender = if stream.src.ip() == a_ip { &a } else { &b };
        let own = sender.rtp_streams.iter().find(|s| s.ssrc == stream.ssrc && s.src == stream.src);
        assert_eq!(own.map(|s| s.packets), Some(stream.packets), "sender's --pcap vs the wire: {stream:?}");
    }
}

/// A calls B through the registrar and each hears the other's tone; with `capture` (the
/// `-z rtp,streams` payload name and the payload type), the call is captured and judged too.
fn call_carries_both_tones(codecs: Option<&str>, expect_codec: &str, rate: u32, capture: Option<(&str, u8)>) {
    let capture = capture.filter(|_| peers_ready(&[Peer::Tshark]));
    let dir = temp_dir("softphone-calls-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = Registrar::start(
        RegistrarConfig::new(DOMAIN)
            .user("1001", "pw1001")
            .user("1002", "pw1002")
            .pcap(&dir.path().join("registrar.pcap")),
    )
    .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let codec_args: Vec<&str> = codecs.map(|c| vec!["--codecs", c]).unwrap_or_default();
    let (a_ip, b_ip) = (unique_loopback_ip(), unique_loopback_ip());
    let live_path = dir.path().join("wire.pcap");
    let live = capture.map(|_| {
        LiveCapture::start(&live_path, &format!("udp and (host {a_ip} or host {b_ip})"), a_ip.into())
            .unwrap_or_else(|e| panic!("start tshark: {e}"))
    });

    let tone_b = format!("tone:{TONE_B}");
    let mut b_extra =
        vec!["--auto-answer", "--audio-in", &tone_b, "--audio-out", b_wav.to_str().unwrap(), "--duration", "30"];
    b_extra.extend(&codec_args);
    let b_args = on_own_address(account_args(&registrar, "1002", &b_extra), b_ip, &dir.path().join("b.pcap"));
    let mut b = Softphone::start("b", dir.path(), &b_args).unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let tone_a = format!("tone:{TONE_A}");
    let duration = CALL_SECONDS.to_string();
    let mut a_extra =
        vec!["--dial", "1002", "--audio-in", &tone_a, "--audio-out", a_wav.to_str().unwrap(), "--duration", &duration];
    a_extra.extend(&codec_args);
    let a_args = on_own_address(account_args(&registrar, "1001", &a_extra), a_ip, &dir.path().join("a.pcap"));
    let mut a = Softphone::start("a", dir.path(), &a_args).unwrap_or_else(|e| panic!("start softphone A: {e}"));

    let a_status = a.wait(Duration::from_secs(u64::from(CALL_SECONDS) + 15)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}\nregistrar:\n{}", a.output(), b.output(), registrar.log_tail(20));
    assert!(a_status.success(), "A exited with {a_status}\n{context}");
    assert!(b_status.success(), "B exited with {b_status}\n{context}");
    for (who, phone) in [("A", &a), ("B", &b)] {
        let answered = phone.event("answered").unwrap_or_else(|| panic!("{who} reported no answered event\n{context}"));
        assert!(answered.contains(&format!("\"codec\":\"{expect_codec}\"")), "{who}: {answered}");
        let hung_up = phone.event("hung_up").unwrap_or_else(|| panic!("{who} reported no hung_up event\n{context}"));
        let reason = if who == "A" { "local" } else { "remote" };
        assert!(hung_up.contains(&format!("\"reason\":\"{reason}\"")), "{who}: {hung_up}");
    }
    assert_recording_holds(&a_wav, rate, TONE_B, MIN_SECONDS, "A");
    assert_recording_holds(&b_wav, rate, TONE_A, MIN_SECONDS, "B");
    if let (Some((payload, pt)), Some(live)) = (capture, live) {
        let live = live.stop().unwrap_or_else(|e| panic!("stop tshark: {e}"));
        let mut registrar = registrar;
        registrar.stop(); // writes out its capture
        assert_captures(dir.path(), &live, a_ip, payload, pt);
    }
}

#[test]
fn opus_call_through_registrar_carries_each_tone_and_wireshark_decodes_it_cleanly() {
    call_carries_both_tones(None, "opus", 48_000, Some(("opus", 96)));
}

#[test]
fn pcmu_call_through_registrar_carries_each_tone_and_wireshark_decodes_it_cleanly() {
    call_carries_both_tones(Some("pcmu"), "PCMU", 8_000, Some(("g711U", 0)));
}

#[test]
fn direct_call_to_a_sip_uri_needs_no_registrar() {
    let dir = temp_dir("softphone-direct-").unwrap_or_else(|e| panic!("{e}"));
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let b_port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let a_port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let b_bind = format!("127.0.0.1:{b_port}");
    let a_bind = format!("127.0.0.1:{a_port}");
    let tone_a = format!("tone:{TONE_A}");
    let tone_b = format!("tone:{TONE_B}");
    let target = format!("sip:1002@127.0.0.1:{b_port}");
    let duration = CALL_SECONDS.to_string();
    let b_args = direct_args(
        "1002",
        &[
            "--bind",
            &b_bind,
            "--auto-answer",
            "--audio-in",
            &tone_b,
            "--audio-out",
            b_wav.to_str().unwrap(),
            "--duration",
            "30",
        ],
    );
    let mut b = Softphone::start("b", dir.path(), &b_args).unwrap_or_else(|e| panic!("start softphone B: {e}"));
    // B has no registration to wait for: wait until its SIP port is taken.
    for _ in 0..250 {
        if std::net::UdpSocket::bind(&b_bind).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let a_args = direct_args(
        "1001",
        &[
            "--bind",
            &a_bind,
            "--dial",
            &target,
            "--audio-in",
            &tone_a,
            "--audio-out",
            a_wav.to_str().unwrap(),
            "--duration",
            &duration,
        ],
    );
    let mut a = Softphone::start("a", dir.path(), &a_args).unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(u64::from(CALL_SECONDS) + 15)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}", a.output(), b.output());
    assert!(a_status.success() && b_status.success(), "A: {a_status}, B: {b_status}\n{context}");
    assert!(a.event("registered").is_none(), "no registrar, no registration\n{context}");
    assert_recording_holds(&a_wav, 48_000, TONE_B, MIN_SECONDS, "A");
    assert_recording_holds(&b_wav, 48_000, TONE_A, MIN_SECONDS, "B");
}

#[test]
fn wrong_password_fails_registration_with_exit_status_3() {
    let registrar = Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001"))
        .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let dir = temp_dir("softphone-badpw-").unwrap_or_else(|e| panic!("{e}"));
    let mut args = account_args(&registrar, "1001", &["--duration", "10"]);
    let pw = args.iter().position(|a| a == "--password").unwrap() + 1;
    args[pw] = "wrong".into();
    let mut phone = Softphone::start("p", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    let status = phone.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(3), "{}", phone.output());
    let failed = phone.event("registration_failed").unwrap_or_else(|| panic!("no event\n{}", phone.output()));
    assert!(failed.contains("\"status\":401") || failed.contains("\"status\":403"), "{failed}");
}

#[test]
fn calling_an_extension_nobody_registered_fails_with_exit_status_1() {
    let registrar = Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002"))
        .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let dir = temp_dir("softphone-nobody-").unwrap_or_else(|e| panic!("{e}"));
    let args = account_args(&registrar, "1001", &["--dial", "1002", "--duration", "10"]);
    let mut phone = Softphone::start("a", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    let status = phone.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(1), "{}", phone.output());
    let hung_up = phone.event("hung_up").unwrap_or_else(|| panic!("no hung_up event\n{}", phone.output()));
    assert!(hung_up.contains("\"reason\":\"rejected\""), "{hung_up}");
    assert!(phone.event("answered").is_none());
}

#[test]
fn account_chosen_from_a_config_file_registers_and_calls() {
    let registrar = Registrar::start(
        RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").user("1003", "pw1003"),
    )
    .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let dir = temp_dir("softphone-config-").unwrap_or_else(|e| panic!("{e}"));
    let b_wav = dir.path().join("b.wav");
    let mut b = Softphone::start(
        "b",
        dir.path(),
        &account_args(
            &registrar,
            "1002",
            &["--auto-answer", "--audio-out", b_wav.to_str().unwrap(), "--duration", "20"],
        ),
    )
    .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    // A's whole identity comes from the file, which holds two accounts: 1003 (the default) and
    // 1001 (picked by `--account desk`).
    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("softphone.toml");
    let registrar_addr = registrar.addr();
    let text = format!(
        "bind = \"127.0.0.1:{port}\"\ncodecs = [\"pcmu\"]\naudio_in = \"tone:{TONE_A}\"\n\n\
         [[account]]\nname = \"spare\"\nuser = \"1003\"\npassword = \"pw1003\"\nregistrar = \"{registrar_addr}\"\n\
         domain = \"{DOMAIN}\"\ndefault = true\n\n\
         [[account]]\nname = \"desk\"\nuser = \"1001\"\npassword = \"pw1001\"\nregistrar = \"{registrar_addr}\"\n\
         domain = \"{DOMAIN}\"\n"
    );
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let file = file.to_str().unwrap();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let spare_args = strings(&["--config", file, "--duration", "1", "--events", "json"]);
    let mut spare = Softphone::start("spare", dir.path(), &spare_args)
        .unwrap_or_else(|e| panic!("start the phone with the default account: {e}"));
    let spare_status = spare.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    assert!(spare_status.success(), "the default account registers: {spare_status}\n{}", spare.output());
    let registered = spare.event("registered").unwrap_or_else(|| panic!("no registration\n{}", spare.output()));
    assert!(registered.contains("sip:1003@voip.test"), "the default account was used: {registered}");

    let a_args =
        strings(&["--config", file, "--account", "desk", "--dial", "1002", "--duration", "4", "--events", "json"]);
    let mut a = Softphone::start("a", dir.path(), &a_args).unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}", a.output(), b.output());
    assert!(a_status.success(), "A exited with {a_status}\n{context}");
    let registered = a.event("registered").unwrap_or_else(|| panic!("A did not register\n{context}"));
    assert!(registered.contains("sip:1001@voip.test"), "{registered}");
    let answered = a.event("answered").unwrap_or_else(|| panic!("A's call was not answered\n{context}"));
    assert!(answered.contains("\"codec\":\"PCMU\""), "the file's codec list was used: {answered}");
    b.stop();
    let (_, samples) = read_wav(&b_wav).unwrap_or_else(|e| panic!("B's recording: {e}"));
    let (toned, blocks) = tone_blocks(&samples, 8_000, TONE_A as f32);
    assert!(toned * 10 >= blocks * 9, "B heard the file's tone:{TONE_A} in only {toned} of {blocks} blocks");
}
