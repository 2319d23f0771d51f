//! Two hosts on a LAN, simulated on one machine: network namespaces `a` (10.99.0.1: the
//! registrar and phone 1001) and `b` (10.99.0.2: phone 1002) joined by a veth pair. The
//! addresses in Via, Contact and SDP are real LAN addresses, and a call carries audio both ways
//! across the link. Needs root (CI runs as root).
//!
//! tshark captures the link inside host A (`ip netns exec a tshark -i <veth>`), and Wireshark
//! must dissect what crossed it cleanly: phone B's side of the signalling (A's own legs to the
//! registrar stay on host A's loopback), and both RTP streams with their RTCP.

use std::time::Duration;

use voip_tests::netns::{HOST_A, HOST_B, Lan};
use voip_tests::softphone::{Softphone, phone_args_at, read_wav, tone_blocks};
use voip_tests::tshark::{Checksums, LiveCapture, Media, Rtcp, analyze};
use voip_tests::{Peer, Registrar, RegistrarConfig, peers_ready, temp_dir};

const DOMAIN: &str = "lan.test";

/// The command line of phone `user` on `host`, registering with the registrar on host A, with
/// its SIP trace on.
fn phone_args(user: &str, host: std::net::Ipv4Addr, extra: &[&str]) -> Vec<String> {
    let extra = [extra, &["--sip-trace"]].concat();
    phone_args_at(host, format!("{HOST_A}:5060").parse().unwrap(), DOMAIN, user, &extra)
        .unwrap_or_else(|e| panic!("softphone arguments: {e}"))
}

#[test]
fn call_between_two_lan_hosts_carries_audio_both_ways_with_lan_addresses() {
    if !peers_ready(&[Peer::Tshark]) {
        return;
    }
    let lan = Lan::create().unwrap_or_else(|e| panic!("create the two hosts: {e}"));
    let mut config = RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").sip_trace();
    config.binds.push(format!("{HOST_A}:5060").parse().unwrap());
    config.netns = Some(lan.a().to_owned());
    let registrar = Registrar::start(config).unwrap_or_else(|e| panic!("start the registrar on host A: {e}"));

    let dir = temp_dir("softphone-lan-").unwrap_or_else(|e| panic!("{e}"));
    let wire = dir.path().join("veth.pcap");
    let capture = LiveCapture::start_in(lan.a(), lan.veth_a(), &wire, "udp", HOST_B.into())
        .unwrap_or_else(|e| panic!("start tshark on host A's link: {e}"));
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let b_extra =
        ["--auto-answer", "--audio-in", "tone:1500", "--audio-out", b_wav.to_str().unwrap(), "--duration", "30"];
    let mut b = Softphone::start_in(Some(lan.b()), "b", dir.path(), &phone_args("1002", HOST_B, &b_extra))
        .unwrap_or_else(|e| panic!("start phone B on host B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let a_extra =
        ["--dial", "1002", "--audio-in", "tone:1000", "--audio-out", a_wav.to_str().unwrap(), "--duration", "6"];
    let mut a = Softphone::start_in(Some(lan.a()), "a", dir.path(), &phone_args("1001", HOST_A, &a_extra))
        .unwrap_or_else(|e| panic!("start phone A on host A: {e}"));
    let a_status = a.wait(Duration::from_secs(25)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}\nregistrar:\n{}", a.output(), b.output(), registrar.log_tail(30));
    assert!(a_status.success() && b_status.success(), "A: {a_status}, B: {b_status}\n{context}");

    // The far end's media address in each phone's answered event is the other host's LAN address.
    let a_answered = a.event("answered").unwrap_or_else(|| panic!("A not answered\n{context}"));
    assert!(a_answered.contains(&format!("\"remote_rtp\":\"{HOST_B}:")), "{a_answered}");
    let b_answered = b.event("answered").unwrap_or_else(|| panic!("B not answered\n{context}"));
    assert!(b_answered.contains(&format!("\"remote_rtp\":\"{HOST_A}:")), "{b_answered}");
    // The registrar saw B's binding and B's SDP with B's LAN address, and nothing on loopback.
    let trace = registrar.log();
    assert!(trace.contains(&format!("Contact: <sip:1002@{HOST_B}:")), "{}", registrar.log_tail(80));
    assert!(trace.contains(&format!("c=IN IP4 {HOST_B}")), "{}", registrar.log_tail(80));
    assert!(!trace.contains("127.0.0.1"), "loopback leaked into the signalling:\n{}", registrar.log_tail(80));

    for (who, wav, freq) in [("A", &a_wav, 1500.0), ("B", &b_wav, 1000.0)] {
        let (rate, samples) = read_wav(wav).unwrap_or_else(|e| panic!("{who}'s recording: {e}"));
        let (toned, blocks) = tone_blocks(&samples, rate, freq);
        eprintln!("{who} heard {freq} Hz in {toned} of {blocks} blocks");
        assert!(blocks >= 200, "{who}'s recording is {blocks} blocks, shorter than the call");
        assert!(toned * 10 >= blocks * 9, "{who} heard {freq} Hz in only {toned} of {blocks} blocks");
    }

    let wire = capture.stop().unwrap_or_else(|e| panic!("stop tshark: {e}"));
    // veth offloads checksums like loopback does: the sender's copy holds none yet.
    let wire = analyze(&wire, Checksums::Ignore).unwrap_or_else(|e| panic!("read the capture: {e}"));
    // B: REGISTER, 401, REGISTER, 200, and REGISTER (expires 0), 200 as it quits; the relayed
    // INVITE, 180, 200, ACK; BYE and its 200.
    let requests = [("REGISTER", 3), ("INVITE", 1), ("ACK", 1), ("BYE", 1)];
    wire.assert_sip("the link", &requests, &[(401, 1), (180, 1), (200, 4)]);
    wire.assert_media("the link", &Media::call("opus", 96, 250, Rtcp::FromEachSender));
    for stream in &wire.rtp_streams {
        let ends = [stream.src.ip(), stream.dst.ip()];
        assert!(ends.contains(&HOST_A.into()) && ends.contains(&HOST_B.into()), "LAN addresses: {stream:?}");
    }
}
