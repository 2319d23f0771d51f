//! Calls between baresip 1.0 (Debian's `baresip-core`, another SIP stack) and our softphone,
//! and between two baresips, all registered with our registrar and routed through it, once
//! with Opus only and once with G.711 µ-law only.
//!
//! Each side sends its own tone and records what it hears; a call passes when each recording
//! lasts about as long as the connected call and the far end's tone dominates at least 90% of
//! its 20 ms blocks (Goertzel, `proto::codec::tone`). The figures are printed on stderr.
//!
//! Every call is also captured on `lo` (each phone on a loopback address of its own) and judged by
//! Wireshark (`voip_tests::tshark`): every SIP message dissected with no malformed packet or
//! expert warning, the SIP counts of the flow, and the RTP streams found from the SDP alone
//! with the negotiated codec, none lost or flagged for sequence or timestamp errors. baresip 1.0
//! sends RTCP (two to four packets in these short calls, from its RTP port + 1, as our softphone
//! does), so every RTP sender's RTCP must be there and dissect cleanly.
//!
//! The registrar challenges with MD5 only here: baresip's SIP stack (libre 1.0) gives up on a
//! 401 or 407 that also offers SHA-256, which the registrar does by default.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use voip_tests::baresip::{AnswerMode, Baresip, BaresipCodec, BaresipConfig};
use voip_tests::softphone::{Softphone, phone_args_at, read_wav, tone_blocks, tone_share};
use voip_tests::tshark::{CallCapture, CaptureSummary, Media, Rtcp};
use voip_tests::{Peer, Registrar, RegistrarConfig, peers_ready, temp_dir, unique_loopback_ip};

const DOMAIN: &str = "voip.test";
/// How long each call stays connected.
const CALL: Duration = Duration::from_secs(5);
/// The tone baresip sends (the caller's, when two baresips call).
const TONE_BARESIP: u32 = 1000;
/// The tone our softphone sends (the callee's, when two baresips call).
const TONE_OTHER: u32 = 1500;
const WAIT: Duration = Duration::from_secs(10);

/// Our registrar with 1001..1003 (password `pw<ext>`) and its default challenge (MD5 alone, which
/// baresip needs), tracing SIP so that the tests can see what it relayed.
fn registrar() -> Registrar {
    let config =
        RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002").user("1003", "pw1003").sip_trace();
    Registrar::start(config).unwrap_or_else(|e| panic!("start the registrar: {e}"))
}

/// How the baresip under test reaches the registrar.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Udp,
    Tcp,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Udp => "UDP",
            Via::Tcp => "TCP",
        }
    }
}

fn baresip(
    registrar: &Registrar,
    name: &str,
    user: &str,
    codec: BaresipCodec,
    tone: u32,
    answer: AnswerMode,
    (via, ip): (Via, Ipv4Addr),
) -> Baresip {
    let mut config = BaresipConfig::new(user, &format!("pw{user}"), DOMAIN, registrar.addr())
        .codec(codec)
        .tone(tone)
        .answer(answer)
        .ip(ip);
    if via == Via::Tcp {
        config = config.tcp();
    }
    let mut phone = Baresip::start(name, &config).unwrap_or_else(|e| panic!("start baresip {name}: {e}"));
    phone.wait_registered(WAIT).unwrap_or_else(|e| panic!("{e}\nregistrar:\n{}", registrar.log_tail(40)));
    phone
}

/// Starts capturing the traffic of `hosts` and of the registrar's port (baresip's TCP
/// connections leave from 127.0.0.1) into `dir`.
fn capture(dir: &Path, registrar: &Registrar, hosts: &[Ipv4Addr]) -> CallCapture {
    let hosts: Vec<_> = hosts.iter().map(|&ip| ip.into()).collect();
    CallCapture::start(dir, &hosts, &[registrar.addr().port()]).unwrap_or_else(|e| panic!("start tshark: {e}"))
}

/// Our softphone as 1001 at `ip`, registering with `registrar`, with `extra` arguments; and its
/// command line.
fn softphone_at(dir: &Path, registrar: &Registrar, ip: Ipv4Addr, extra: &[&str]) -> (Softphone, Vec<String>) {
    let args = phone_args_at(ip, registrar.addr(), DOMAIN, "1001", extra).unwrap_or_else(|e| panic!("{e}"));
    let softphone = Softphone::start("softphone", dir, &args).unwrap_or_else(|e| panic!("{e}"));
    (softphone, args)
}

/// baresip as 1002 at `ip` over UDP, sending its tone with Opus, answering as `answer` says.
fn opus_baresip(registrar: &Registrar, name: &str, answer: AnswerMode, ip: Ipv4Addr) -> Baresip {
    baresip(registrar, name, "1002", BaresipCodec::Opus, TONE_BARESIP, answer, (Via::Udp, ip))
}

/// A fresh registrar, a loopback address each for the softphone and the baresip of one test, and
/// a capture of what passes between them, in a scratch folder.
fn scene() -> (tempfile::TempDir, Registrar, (Ipv4Addr, Ipv4Addr), CallCapture) {
    let dir = temp_dir("interop-baresip-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let (phone_ip, baresip_ip) = (unique_loopback_ip(), unique_loopback_ip());
    let capture = capture(dir.path(), &registrar, &[phone_ip, baresip_ip]);
    (dir, registrar, (phone_ip, baresip_ip), capture)
}

/// Stops `capture` and reads it back.
fn finish(capture: CallCapture) -> CaptureSummary {
    capture.finish().unwrap_or_else(|e| panic!("read the capture: {e}"))
}

/// The media of a 5 s call between the softphone and baresip with `codec` as Wireshark names
/// it, with RTCP both ways. baresip 1.0 binds RTP to the wildcard address, so its packets come
/// from 127.0.0.1, not from the address in its SDP: the softphone's first few packets go to the
/// SDP's address until it latches onto 127.0.0.1 (allowed up to half a second's worth).
fn media(codec: BaresipCodec) -> Media<'static> {
    let media = match codec {
        BaresipCodec::Opus => Media::call("opus", 96, 150, Rtcp::FromEachSender),
        BaresipCodec::Pcmu => Media::call("g711U", 0, 150, Rtcp::FromEachSender),
    };
    Media { latch_packets: 25, ..media }
}

/// The softphone's `--codecs` value and the codec name its events report.
fn softphone_codec(codec: BaresipCodec) -> (&'static str, &'static str) {
    match codec {
        BaresipCodec::Opus => ("opus", "opus"),
        BaresipCodec::Pcmu => ("pcmu", "PCMU"),
    }
}

/// The recording at `path` holds `freq` in ≥ 90% of its 20 ms blocks and lasts about as long
/// as the `connected` call.
fn assert_recording_holds(path: &Path, rate: u32, freq: u32, connected: Duration, who: &str, context: &str) {
    let share = tone_share(path, freq).unwrap_or_else(|e| panic!("{who}'s recording: {e}\n{context}"));
    eprintln!(
        "{who} heard {freq} Hz in {} of {} blocks ({:.1}%, {:.2} s recorded, {:.2} s connected)",
        share.toned,
        share.blocks,
        share.percent(),
        share.seconds(),
        connected.as_secs_f64()
    );
    assert_eq!(share.rate, rate, "{who}'s recording is at the codec's rate\n{context}");
    assert!(
        share.seconds() >= connected.as_secs_f64() - 1.0,
        "{who}'s recording lasts {:.2} s, less than the {:.2} s call\n{context}",
        share.seconds(),
        connected.as_secs_f64()
    );
    assert!(
        share.toned * 10 >= share.blocks * 9,
        "{who} heard {freq} Hz in only {} of {} blocks of 20 ms ({:.1}%)\n{context}",
        share.toned,
        share.blocks,
        share.percent()
    );
}

/// The registrar relayed an INVITE to `callee` (the call went through it, not around it); over
/// TCP, on the connection the callee registered from, whatever its port.
fn assert_invite_relayed_to(registrar: &Registrar, callee: std::net::SocketAddr, via: Via) {
    let log = registrar.log();
    let relayed = match via {
        Via::Udp => log.contains(&format!("send UDP to {callee}:\nINVITE ")),
        Via::Tcp => log
            .split("send TCP to ")
            .skip(1)
            .any(|rest| rest.split_once('\n').is_some_and(|(_, message)| message.starts_with("INVITE "))),
    };
    assert!(relayed, "the registrar relayed no INVITE to {callee} over {}\n{}", via.name(), registrar.log_tail(60));
}

fn baresip_calls_softphone(codec: BaresipCodec, via: Via) {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let (dir, registrar, (phone_ip, baresip_ip), capture) = scene();
    let (codecs, codec_name) = softphone_codec(codec);
    let wav = dir.path().join("softphone.wav");
    let tone = format!("tone:{TONE_OTHER}");
    let extra = [
        "--auto-answer",
        "--audio-in",
        &tone,
        "--audio-out",
        wav.to_str().unwrap(),
        "--duration",
        "25",
        "--codecs",
        codecs,
    ];
    let (mut softphone, args) = softphone_at(dir.path(), &registrar, phone_ip, &extra);
    softphone.wait_for_event("registered", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let mut baresip = baresip(&registrar, "caller", "1002", codec, TONE_BARESIP, AnswerMode::Manual, (via, baresip_ip));

    baresip.dial(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    let established = baresip
        .wait_for_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\nsoftphone:\n{}\nregistrar:\n{}", softphone.output(), registrar.log_tail(60)));
    std::thread::sleep(CALL);
    baresip.hangup().unwrap_or_else(|e| panic!("{e}"));
    let closed = baresip.wait_for_event("CALL_CLOSED", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let status = softphone.wait(WAIT).unwrap_or_else(|e| panic!("{e}"));
    baresip.quit(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("softphone:\n{}\n{}", softphone.output(), baresip.output());

    assert!(status.success(), "the softphone exited with {status}\n{context}");
    let answered = softphone.event("answered").unwrap_or_else(|| panic!("no answered event\n{context}"));
    assert!(answered.contains(&format!("\"codec\":\"{codec_name}\"")), "{answered}\n{context}");
    let hung_up = softphone.event("hung_up").unwrap_or_else(|| panic!("no hung_up event\n{context}"));
    assert!(hung_up.contains("\"reason\":\"remote\""), "{hung_up}\n{context}");
    assert_invite_relayed_to(&registrar, phone_addr(&args), Via::Udp);

    let connected = closed.at.duration_since(established.at);
    assert_recording_holds(&wav, codec.rate(), TONE_BARESIP, connected, "the softphone", &context);
    let recording = baresip.recording().unwrap_or_else(|e| panic!("{e}"));
    assert_recording_holds(&recording, codec.rate(), TONE_OTHER, connected, "baresip", &context);

    let wire = finish(capture);
    // baresip: INVITE, 407, ACK, INVITE, 100; relayed: INVITE, 180 and 200 back both hops, ACK
    // and BYE both hops, and BYE's 200 both hops.
    let call = [("INVITE", 3), ("ACK", 3), ("BYE", 2)];
    wire.assert_sip(&format!("baresip ({}) calls the softphone", via.name()), &call, &[(407, 1), (180, 2)]);
    wire.assert_media("baresip calls the softphone", &media(codec));
}

fn softphone_calls_baresip(codec: BaresipCodec, answer: AnswerMode, via: Via) {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let (dir, registrar, (phone_ip, baresip_ip), capture) = scene();
    let (codecs, codec_name) = softphone_codec(codec);
    let mut baresip = baresip(&registrar, "callee", "1002", codec, TONE_BARESIP, answer, (via, baresip_ip));

    let wav = dir.path().join("softphone.wav");
    let tone = format!("tone:{TONE_OTHER}");
    let hangup = CALL.as_secs().to_string();
    let extra = [
        "--dial",
        "1002",
        "--audio-in",
        &tone,
        "--audio-out",
        wav.to_str().unwrap(),
        "--hangup-after",
        &hangup,
        "--duration",
        "20",
        "--codecs",
        codecs,
    ];
    let (mut softphone, _) = softphone_at(dir.path(), &registrar, phone_ip, &extra);
    if answer == AnswerMode::Early {
        // 183 with baresip's SDP first; the 200 a second later.
        softphone.wait_for_event("ringing", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", baresip.output()));
        std::thread::sleep(Duration::from_secs(1));
        baresip.accept().unwrap_or_else(|e| panic!("{e}"));
    }
    // Read baresip's events while the call runs: their arrival times measure the call.
    let established = baresip.wait_for_event("CALL_ESTABLISHED", WAIT);
    let closed = baresip.wait_for_event("CALL_CLOSED", CALL + WAIT);
    let status = softphone.wait(WAIT).unwrap_or_else(|e| panic!("{e}"));
    baresip.quit(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context =
        format!("softphone:\n{}\n{}\nregistrar:\n{}", softphone.output(), baresip.output(), registrar.log_tail(40));
    let (established, closed) = match (established, closed) {
        (Ok(established), Ok(closed)) => (established, closed),
        (Err(e), _) | (_, Err(e)) => panic!("{e}\n{context}"),
    };

    assert!(status.success(), "the softphone exited with {status}\n{context}");
    let answered = softphone.event("answered").unwrap_or_else(|| panic!("no answered event\n{context}"));
    assert!(answered.contains(&format!("\"codec\":\"{codec_name}\"")), "{answered}\n{context}");
    let hung_up = softphone.event("hung_up").unwrap_or_else(|| panic!("no hung_up event\n{context}"));
    assert!(hung_up.contains("\"reason\":\"local\""), "{hung_up}\n{context}");
    assert_invite_relayed_to(&registrar, baresip.sip_addr(), via);

    let connected = closed.at.duration_since(established.at);
    assert_recording_holds(&wav, codec.rate(), TONE_BARESIP, connected, "the softphone", &context);
    let recording = baresip.recording().unwrap_or_else(|e| panic!("{e}"));
    assert_recording_holds(&recording, codec.rate(), TONE_OTHER, connected, "baresip", &context);

    let wire = finish(capture);
    // The softphone: INVITE, 407, ACK, INVITE, 100; relayed: INVITE, baresip's provisional (180,
    // or 183 with early media) and 200 back both hops, ACK and BYE both hops, BYE's 200 both hops.
    let call = [("INVITE", 3), ("ACK", 3), ("BYE", 2)];
    let provisional = if answer == AnswerMode::Early { (183, 2) } else { (180, 2) };
    wire.assert_sip(&format!("the softphone calls baresip ({})", via.name()), &call, &[(407, 1), provisional]);
    wire.assert_media("the softphone calls baresip", &media(codec));
}

fn baresip_calls_baresip(codec: BaresipCodec) {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let dir = temp_dir("interop-baresip-").unwrap_or_else(|e| panic!("{e}"));
    let registrar = registrar();
    let (callee_ip, caller_ip) = (unique_loopback_ip(), unique_loopback_ip());
    let capture = capture(dir.path(), &registrar, &[callee_ip, caller_ip]);
    let mut callee = baresip(&registrar, "callee", "1003", codec, TONE_OTHER, AnswerMode::Auto, (Via::Udp, callee_ip));
    let mut caller =
        baresip(&registrar, "caller", "1002", codec, TONE_BARESIP, AnswerMode::Manual, (Via::Udp, caller_ip));

    caller.dial(&format!("sip:1003@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    let established = caller
        .wait_for_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}\nregistrar:\n{}", callee.output(), registrar.log_tail(60)));
    std::thread::sleep(CALL);
    caller.hangup().unwrap_or_else(|e| panic!("{e}"));
    let closed = caller.wait_for_event("CALL_CLOSED", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let callee_closed = callee.wait_for_event("CALL_CLOSED", WAIT);
    caller.quit(WAIT).unwrap_or_else(|e| panic!("{e}"));
    callee.quit(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("{}\n{}\nregistrar:\n{}", caller.output(), callee.output(), registrar.log_tail(40));
    callee_closed.unwrap_or_else(|e| panic!("the BYE did not reach the callee: {e}\n{context}"));
    assert_invite_relayed_to(&registrar, callee.sip_addr(), Via::Udp);

    let connected = closed.at.duration_since(established.at);
    let caller_wav = caller.recording().unwrap_or_else(|e| panic!("{e}"));
    let callee_wav = callee.recording().unwrap_or_else(|e| panic!("{e}"));
    assert_recording_holds(&caller_wav, codec.rate(), TONE_OTHER, connected, "the calling baresip", &context);
    assert_recording_holds(&callee_wav, codec.rate(), TONE_BARESIP, connected, "the called baresip", &context);

    let wire = finish(capture);
    let call = [("INVITE", 3), ("ACK", 3), ("BYE", 2)];
    wire.assert_sip("baresip calls baresip", &call, &[(407, 1), (180, 2)]);
    // Neither baresip latches: each sends to the address in the other's SDP.
    wire.assert_media("baresip calls baresip", &Media { latch_packets: 0, ..media(codec) });
}

/// The `--bind` address in softphone arguments.
fn phone_addr(args: &[String]) -> std::net::SocketAddr {
    let at = args.iter().position(|a| a == "--bind").expect("phone_args gives --bind") + 1;
    args[at].parse().expect("--bind is an address")
}

#[test]
fn baresip_calls_softphone_with_opus_and_each_hears_the_other() {
    baresip_calls_softphone(BaresipCodec::Opus, Via::Udp);
}

#[test]
fn baresip_calls_softphone_with_pcmu_and_each_hears_the_other() {
    baresip_calls_softphone(BaresipCodec::Pcmu, Via::Udp);
}

#[test]
fn baresip_over_tcp_calls_softphone_over_udp_through_the_registrar() {
    baresip_calls_softphone(BaresipCodec::Opus, Via::Tcp);
}

#[test]
fn softphone_calls_baresip_with_opus_and_each_hears_the_other() {
    softphone_calls_baresip(BaresipCodec::Opus, AnswerMode::Auto, Via::Udp);
}

#[test]
fn softphone_calls_baresip_with_pcmu_and_each_hears_the_other() {
    softphone_calls_baresip(BaresipCodec::Pcmu, AnswerMode::Auto, Via::Udp);
}

#[test]
fn softphone_over_udp_calls_baresip_over_tcp_through_the_registrar() {
    softphone_calls_baresip(BaresipCodec::Opus, AnswerMode::Auto, Via::Tcp);
}

#[test]
fn softphone_calls_baresip_answering_183_with_early_media_then_200() {
    softphone_calls_baresip(BaresipCodec::Opus, AnswerMode::Early, Via::Udp);
}

#[test]
fn baresip_calls_baresip_through_registrar_with_opus() {
    baresip_calls_baresip(BaresipCodec::Opus);
}

#[test]
fn baresip_calls_baresip_through_registrar_with_pcmu() {
    baresip_calls_baresip(BaresipCodec::Pcmu);
}

/// Of the last `seconds` of the recording at `path`, the share of 20 ms blocks `freq` dominates.
fn tail_share(path: &Path, freq: u32, seconds: u32) -> (usize, usize) {
    let (rate, samples) = read_wav(path).unwrap_or_else(|e| panic!("{e}"));
    let tail = samples.len().saturating_sub((rate * seconds) as usize);
    tone_blocks(&samples[tail..], rate, freq as f32)
}

#[test]
fn baresip_holds_and_resumes_the_softphone_by_reinvite_and_audio_returns() {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let (dir, registrar, (phone_ip, baresip_ip), capture) = scene();
    let wav = dir.path().join("softphone.wav");
    let tone = format!("tone:{TONE_OTHER}");
    let extra = ["--auto-answer", "--audio-in", &tone, "--audio-out", wav.to_str().unwrap(), "--duration", "25"];
    let (mut softphone, _) = softphone_at(dir.path(), &registrar, phone_ip, &extra);
    softphone.wait_for_event("registered", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let mut baresip = opus_baresip(&registrar, "caller", AnswerMode::Manual, baresip_ip);

    baresip.dial(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    baresip.wait_for_event("CALL_ESTABLISHED", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", softphone.output()));
    std::thread::sleep(Duration::from_millis(1500));
    baresip.hold().unwrap_or_else(|e| panic!("{e}"));
    softphone.wait_for_event("held", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", baresip.output()));
    std::thread::sleep(Duration::from_millis(1500));
    baresip.resume().unwrap_or_else(|e| panic!("{e}"));
    softphone.wait_for_event("resumed", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", baresip.output()));
    std::thread::sleep(Duration::from_millis(2500));
    baresip.hangup().unwrap_or_else(|e| panic!("{e}"));
    baresip.wait_for_event("CALL_CLOSED", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let status = softphone.wait(WAIT).unwrap_or_else(|e| panic!("{e}"));
    baresip.quit(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("softphone:\n{}\n{}", softphone.output(), baresip.output());

    assert!(status.success(), "the softphone exited with {status}\n{context}");
    for event in ["held", "resumed"] {
        let line = softphone.event(event).unwrap_or_else(|| panic!("no {event} event\n{context}"));
        assert!(line.contains("\"by\":\"remote\""), "{line}\n{context}");
    }
    // The softphone hears baresip's tone again in the last two seconds, after the resume.
    // (baresip 1.0 itself stops decoding into its recording once it has held a call, with a
    // baresip at the other end too, so its recording cannot judge the other direction.)
    let (toned, blocks) = tail_share(&wav, TONE_BARESIP, 2);
    eprintln!("after the resume the softphone heard {TONE_BARESIP} Hz in {toned} of {blocks} blocks");
    assert!(blocks >= 90 && toned * 10 >= blocks * 9, "after the resume: {toned} of {blocks}\n{context}");
    // …and sends again: its packet count grows after the resume.
    let sent = |line: &str| {
        let at = line.find("\"packets_sent\":").map(|i| i + 15).unwrap_or(line.len());
        line[at..].split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
    };
    let events = softphone.events();
    let resumed = events.iter().position(|l| l.contains("\"event\":\"resumed\"")).unwrap_or(0);
    let at_resume = events[..resumed].iter().rev().find(|l| l.contains("packets_sent")).map_or(0, |l| sent(l));
    let at_end = softphone.event("hung_up").map_or(0, |l| sent(&l));
    assert!(
        at_end >= at_resume + 90,
        "the softphone sent {at_resume} packets by the resume, {at_end} in all\n{context}"
    );

    let wire = finish(capture);
    // The call as in `baresip_calls_softphone`, plus baresip's re-INVITEs for hold and for
    // resume, each relayed (two hops) with its 200 and ACK.
    let call = [("INVITE", 7), ("ACK", 7), ("BYE", 2)];
    wire.assert_sip("baresip holds and resumes the softphone", &call, &[(407, 1), (180, 2)]);
    wire.assert_media("baresip holds and resumes the softphone", &media(BaresipCodec::Opus));
}

#[test]
fn baresip_options_reach_the_softphone_through_the_registrar_and_get_200_with_a_to_tag() {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let (dir, registrar, (phone_ip, baresip_ip), capture) = scene();
    let (mut softphone, args) = softphone_at(dir.path(), &registrar, phone_ip, &["--duration", "20"]);
    softphone.wait_for_event("registered", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let mut baresip = opus_baresip(&registrar, "asker", AnswerMode::Manual, baresip_ip);

    baresip.options(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    // baresip prints the response under "----- OPTIONS of <uri> -----".
    let answer = (0..100)
        .find_map(|_| {
            let log = baresip.log();
            let answer = log.split_once("----- OPTIONS of").map(|(_, rest)| rest.to_owned());
            if answer.as_deref().is_none_or(|a| !a.contains("SIP/2.0")) {
                std::thread::sleep(Duration::from_millis(50));
                return None;
            }
            answer
        })
        .unwrap_or_else(|| panic!("baresip printed no answer to its OPTIONS\n{}", baresip.output()));
    assert!(answer.contains("SIP/2.0 200 OK"), "{answer}\nregistrar:\n{}", registrar.log_tail(60));

    // The softphone's own 200 (before the registrar relays it) carries a To tag.
    let from_phone = format!("recv UDP from {}:\nSIP/2.0 200 OK", phone_addr(&args));
    let log = registrar.log();
    let response = log.split(&from_phone).nth(1).unwrap_or_else(|| panic!("no 200 from the softphone\n{log}"));
    let to = response.lines().find(|l| l.starts_with("To:")).unwrap_or_default();
    assert!(to.contains(";tag="), "the softphone's 200 to OPTIONS has no To tag: {to:?}");

    let wire = finish(capture);
    // baresip's OPTIONS, the registrar's 407, again with credentials, relayed to the softphone.
    wire.assert_sip("baresip's OPTIONS to the softphone", &[("OPTIONS", 3), ("INVITE", 0)], &[(407, 1)]);
    assert_eq!(wire.rtp_packets + wire.rtcp_packets, 0, "no media without a call: {wire:#?}");
}

#[test]
fn baresip_cancels_a_ringing_call_and_the_softphone_reports_cancelled() {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let (dir, registrar, (phone_ip, baresip_ip), capture) = scene();
    let (mut softphone, args) = softphone_at(dir.path(), &registrar, phone_ip, &["--duration", "20"]);
    softphone.wait_for_event("registered", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let mut baresip = opus_baresip(&registrar, "caller", AnswerMode::Manual, baresip_ip);

    baresip.dial(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    baresip.wait_for_event("CALL_RINGING", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", softphone.output()));
    softphone.wait_for_event("incoming", WAIT).unwrap_or_else(|e| panic!("{e}"));
    baresip.hangup().unwrap_or_else(|e| panic!("{e}"));
    baresip.wait_for_event("CALL_CLOSED", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let hung_up = softphone.wait_for_event("hung_up", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", baresip.output()));
    let context =
        format!("softphone:\n{}\n{}\nregistrar:\n{}", softphone.output(), baresip.output(), registrar.log_tail(60));
    assert!(hung_up.contains("\"reason\":\"cancelled\""), "{hung_up}\n{context}");
    assert!(softphone.event("answered").is_none(), "{context}");
    let cancel = format!("send UDP to {}:\nCANCEL ", phone_addr(&args));
    assert!(registrar.log().contains(&cancel), "the registrar relayed no CANCEL to the softphone\n{context}");

    let wire = finish(capture);
    // INVITE, 407, ACK, INVITE, 100, relayed INVITE, 180 both hops; CANCEL and its 200 both hops,
    // 487 both hops, each acknowledged hop by hop.
    let call = [("INVITE", 3), ("CANCEL", 2), ("ACK", 3), ("BYE", 0)];
    wire.assert_sip("baresip cancels", &call, &[(407, 1), (180, 2), (487, 2)]);
    assert_eq!(wire.rtp_packets, 0, "no media before an answer: {wire:#?}");
}

#[test]
fn baresip_dtmf_reaches_the_softphone_as_rfc4733_events() {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let (dir, registrar, (phone_ip, baresip_ip), capture) = scene();
    let extra = ["--auto-answer", "--audio-out", "null", "--duration", "20"];
    let (mut softphone, _) = softphone_at(dir.path(), &registrar, phone_ip, &extra);
    softphone.wait_for_event("registered", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let mut baresip = opus_baresip(&registrar, "caller", AnswerMode::Manual, baresip_ip);

    baresip.dial(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    baresip.wait_for_event("CALL_ESTABLISHED", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", softphone.output()));
    std::thread::sleep(Duration::from_millis(500));
    let digits = ['1', '5', '9', '#'];
    for digit in digits {
        baresip.send_digit(digit).unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_millis(500));
    baresip.hangup().unwrap_or_else(|e| panic!("{e}"));
    baresip.wait_for_event("CALL_CLOSED", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let status = softphone.wait(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("softphone:\n{}\n{}", softphone.output(), baresip.output());
    assert!(status.success(), "the softphone exited with {status}\n{context}");
    let received: Vec<String> = softphone.events().into_iter().filter(|l| l.contains("\"event\":\"dtmf\"")).collect();
    let expected: Vec<String> =
        digits.iter().map(|d| format!("{{\"event\":\"dtmf\",\"digit\":\"{d}\",\"via\":\"rtp\"}}")).collect();
    assert_eq!(received, expected, "each digit once, in order, by RTP\n{context}");

    let wire = finish(capture);
    let call = [("INVITE", 3), ("ACK", 3), ("BYE", 2)];
    wire.assert_sip("baresip sends DTMF", &call, &[(407, 1), (180, 2)]);
    // A 3 s call; baresip's digits go as telephone-event (its offer's payload type 101).
    let dtmf_media = Media { also_pt: &[101], min_packets: 100, ..media(BaresipCodec::Opus) };
    wire.assert_media("baresip sends DTMF", &dtmf_media);
}

#[test]
fn softphone_dtmf_reaches_baresip_as_rfc4733_events() {
    if !peers_ready(&[Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let (dir, registrar, (phone_ip, baresip_ip), capture) = scene();
    let mut baresip = opus_baresip(&registrar, "callee", AnswerMode::Auto, baresip_ip);
    let extra = ["--dial", "1002", "--audio-out", "null", "--dtmf", "159#", "--dtmf-at", "1", "--hangup-after", "4"];
    let (mut softphone, _) = softphone_at(dir.path(), &registrar, phone_ip, &extra);
    baresip.wait_for_event("CALL_ESTABLISHED", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", softphone.output()));
    let closed = baresip.wait_for_event("CALL_CLOSED", WAIT);
    let status = softphone.wait(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("softphone:\n{}\n{}", softphone.output(), baresip.output());
    closed.unwrap_or_else(|e| panic!("{e}\n{context}"));
    assert!(status.success(), "the softphone exited with {status}\n{context}");
    let digits: Vec<String> = baresip.events("CALL_DTMF_START").iter().filter_map(|m| m.field("param")).collect();
    assert_eq!(digits, ["1", "5", "9", "#"], "each digit once, in order\n{context}");

    let wire = finish(capture);
    // baresip's answer takes no telephone-event, so the softphone sends each digit by INFO (two hops).
    let call = [("INVITE", 3), ("ACK", 3), ("BYE", 2), ("INFO", 8)];
    wire.assert_sip("the softphone sends DTMF", &call, &[(407, 1), (180, 2)]);
    wire.assert_media("the softphone sends DTMF", &Media { min_packets: 100, ..media(BaresipCodec::Opus) });
}
