//! Our softphone against Kamailio 5.6 as the registrar and proxy (`tests/kamailio/kamailio.cfg`:
//! REGISTER with a digest challenge, bindings in usrloc, INVITE with a proxy challenge,
//! record-routed, BYE along the route set). Two softphones register with it and call each
//! other through it; each sends its own tone and records the other's, and each recording must
//! last about as long as the call and hold the far end's tone in at least 90% of its 20 ms
//! blocks. baresip (another SIP stack) calls our softphone through it too. The figures are
//! printed on stderr.
//!
//! Each call is captured on `lo` (every phone on a loopback address of its own, plus Kamailio's
//! port) and judged by Wireshark (`voip_tests::tshark`): no malformed packet or expert warning,
//! the SIP counts of the flow, both RTP streams found from the SDP with the negotiated codec and
//! no loss or sequence/timestamp problem, and RTCP.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use voip_tests::baresip::{AnswerMode, Baresip, BaresipCodec, BaresipConfig};
use voip_tests::softphone::{Softphone, phone_args_at, tone_share};
use voip_tests::tshark::{CallCapture, CaptureSummary, Media, Rtcp};
use voip_tests::{Kamailio, KamailioConfig, Peer, peers_ready, temp_dir, unique_loopback_ip};

const DOMAIN: &str = "voip.test";
/// How long the caller runs (`--duration`); the call takes nearly all of it.
const CALL_SECONDS: u32 = 6;
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;
const WAIT: Duration = Duration::from_secs(10);

/// The recording at `path` holds `freq` in ≥ 90% of its blocks and lasts at least `seconds`.
fn assert_recording_holds(path: &Path, rate: u32, freq: u32, seconds: f64, who: &str, context: &str) {
    let share = tone_share(path, freq).unwrap_or_else(|e| panic!("{who}'s recording: {e}\n{context}"));
    eprintln!(
        "{who} heard {freq} Hz in {} of {} blocks ({:.1}%, {:.2} s recorded)",
        share.toned,
        share.blocks,
        share.percent(),
        share.seconds()
    );
    assert_eq!(share.rate, rate, "{who}'s recording is at the codec's rate");
    assert!(
        share.seconds() >= seconds,
        "{who}'s recording lasts {:.2} s, less than the call\n{context}",
        share.seconds()
    );
    assert!(
        share.toned * 10 >= share.blocks * 9,
        "{who} heard {freq} Hz in only {} of {} blocks ({:.1}%)\n{context}",
        share.toned,
        share.blocks,
        share.percent()
    );
}

/// Starts capturing the traffic of `hosts` and of Kamailio's port into `dir`.
fn capture(dir: &Path, kamailio: &Kamailio, hosts: &[Ipv4Addr]) -> CallCapture {
    let hosts: Vec<_> = hosts.iter().map(|&ip| ip.into()).collect();
    CallCapture::start(dir, &hosts, &[kamailio.addr().port()]).unwrap_or_else(|e| panic!("start tshark: {e}"))
}

/// The SIP of one call through Kamailio: the caller's INVITE, 407, ACK, INVITE, 100; the relayed
/// INVITE; 180 and 200 both hops; ACK and BYE along the route, and BYE's 200 both hops.
/// The 180's relay is not counted: in one run here the caller got none. Kamailio runs two UDP
/// workers, which can take the callee's 180 and its 200 (sent right after) at once; once the 200
/// has made the transaction final, a late 180 is dropped, not relayed (RFC 3261 §16.7 step 5).
fn assert_call_sip(wire: &CaptureSummary, who: &str) {
    wire.assert_sip(who, &[("INVITE", 3), ("ACK", 3), ("BYE", 2)], &[(407, 1), (100, 1)]);
    assert!(
        (1..=2).contains(&wire.responses(180)),
        "{who}: {} × 180, expected the callee's and maybe its relay",
        wire.responses(180)
    );
}

fn call_through_kamailio(codecs: &str, codec_name: &str, rate: u32, payload: &str, pt: u8) {
    if !peers_ready(&[Peer::Kamailio, Peer::Tshark]) {
        return;
    }
    let kamailio = Kamailio::start(KamailioConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002"))
        .unwrap_or_else(|e| panic!("start kamailio: {e}"));
    let dir = temp_dir("interop-kamailio-").unwrap_or_else(|e| panic!("{e}"));
    let (a_ip, b_ip) = (unique_loopback_ip(), unique_loopback_ip());
    let capture = capture(dir.path(), &kamailio, &[a_ip, b_ip]);
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));

    let tone_b = format!("tone:{TONE_B}");
    let b_extra = [
        "--auto-answer",
        "--audio-in",
        &tone_b,
        "--audio-out",
        b_wav.to_str().unwrap(),
        "--duration",
        "25",
        "--codecs",
        codecs,
    ];
    let b_args = phone_args_at(b_ip, kamailio.addr(), DOMAIN, "1002", &b_extra).unwrap_or_else(|e| panic!("{e}"));
    let mut b = Softphone::start("b", dir.path(), &b_args).unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", WAIT).unwrap_or_else(|e| panic!("{e}\nkamailio:\n{}", kamailio.log_tail(30)));

    let tone_a = format!("tone:{TONE_A}");
    let duration = CALL_SECONDS.to_string();
    let a_extra = [
        "--dial",
        "1002",
        "--audio-in",
        &tone_a,
        "--audio-out",
        a_wav.to_str().unwrap(),
        "--duration",
        &duration,
        "--codecs",
        codecs,
    ];
    let a_args = phone_args_at(a_ip, kamailio.addr(), DOMAIN, "1001", &a_extra).unwrap_or_else(|e| panic!("{e}"));
    let mut a = Softphone::start("a", dir.path(), &a_args).unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let a_status = a.wait(Duration::from_secs(u64::from(CALL_SECONDS)) + WAIT).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}\nkamailio:\n{}", a.output(), b.output(), kamailio.log_tail(30));

    assert!(a_status.success(), "A exited with {a_status}\n{context}");
    assert!(b_status.success(), "B exited with {b_status}\n{context}");
    for (who, phone, reason) in [("A", &a, "local"), ("B", &b, "remote")] {
        assert!(phone.event("registered").is_some(), "{who} did not register with Kamailio\n{context}");
        let answered = phone.event("answered").unwrap_or_else(|| panic!("{who}: no answered event\n{context}"));
        assert!(answered.contains(&format!("\"codec\":\"{codec_name}\"")), "{who}: {answered}");
        let hung_up = phone.event("hung_up").unwrap_or_else(|| panic!("{who}: no hung_up event\n{context}"));
        assert!(hung_up.contains(&format!("\"reason\":\"{reason}\"")), "{who}: {hung_up}\n{context}");
    }
    let seconds = f64::from(CALL_SECONDS) - 1.5;
    assert_recording_holds(&a_wav, rate, TONE_B, seconds, "A", &context);
    assert_recording_holds(&b_wav, rate, TONE_A, seconds, "B", &context);

    let wire = capture.finish().unwrap_or_else(|e| panic!("read the capture: {e}"));
    let who = format!("a {codec_name} call through Kamailio");
    assert_call_sip(&wire, &who);
    wire.assert_media(&who, &Media::call(payload, pt, 200, Rtcp::FromEachSender));
}

#[test]
fn softphones_register_with_kamailio_and_an_opus_call_through_it_carries_both_tones() {
    call_through_kamailio("opus", "opus", 48_000, "opus", 96);
}

#[test]
fn softphones_register_with_kamailio_and_a_pcmu_call_through_it_carries_both_tones() {
    call_through_kamailio("pcmu", "PCMU", 8_000, "g711U", 0);
}

#[test]
fn baresip_calls_the_softphone_through_kamailio_and_each_hears_the_other() {
    if !peers_ready(&[Peer::Kamailio, Peer::Baresip, Peer::Tshark]) {
        return;
    }
    let kamailio = Kamailio::start(KamailioConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002"))
        .unwrap_or_else(|e| panic!("start kamailio: {e}"));
    let dir = temp_dir("interop-kamailio-").unwrap_or_else(|e| panic!("{e}"));
    let (phone_ip, baresip_ip) = (unique_loopback_ip(), unique_loopback_ip());
    let capture = capture(dir.path(), &kamailio, &[phone_ip, baresip_ip]);
    let wav = dir.path().join("softphone.wav");
    let tone_b = format!("tone:{TONE_B}");
    let extra = ["--auto-answer", "--audio-in", &tone_b, "--audio-out", wav.to_str().unwrap(), "--duration", "25"];
    let args = phone_args_at(phone_ip, kamailio.addr(), DOMAIN, "1001", &extra).unwrap_or_else(|e| panic!("{e}"));
    let mut softphone = Softphone::start("softphone", dir.path(), &args).unwrap_or_else(|e| panic!("{e}"));
    softphone.wait_for_event("registered", WAIT).unwrap_or_else(|e| panic!("{e}\n{}", kamailio.log_tail(30)));
    let config = BaresipConfig::new("1002", "pw1002", DOMAIN, kamailio.addr())
        .codec(BaresipCodec::Opus)
        .tone(TONE_A)
        .ip(baresip_ip);
    let mut baresip = Baresip::start("caller", &config.answer(AnswerMode::Manual)).unwrap_or_else(|e| panic!("{e}"));
    baresip.wait_registered(WAIT).unwrap_or_else(|e| panic!("{e}\n{}", kamailio.log_tail(30)));

    baresip.dial(&format!("sip:1001@{DOMAIN}")).unwrap_or_else(|e| panic!("{e}"));
    let established = baresip
        .wait_for_event("CALL_ESTABLISHED", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}\nkamailio:\n{}", softphone.output(), kamailio.log_tail(30)));
    std::thread::sleep(Duration::from_secs(5));
    baresip.hangup().unwrap_or_else(|e| panic!("{e}"));
    let closed = baresip.wait_for_event("CALL_CLOSED", WAIT).unwrap_or_else(|e| panic!("{e}"));
    let status = softphone.wait(WAIT).unwrap_or_else(|e| panic!("{e}"));
    baresip.quit(WAIT).unwrap_or_else(|e| panic!("{e}"));
    let context =
        format!("softphone:\n{}\n{}\nkamailio:\n{}", softphone.output(), baresip.output(), kamailio.log_tail(30));

    assert!(status.success(), "the softphone exited with {status}\n{context}");
    let hung_up = softphone.event("hung_up").unwrap_or_else(|| panic!("no hung_up event\n{context}"));
    assert!(hung_up.contains("\"reason\":\"remote\""), "{hung_up}\n{context}");
    let seconds = closed.at.duration_since(established.at).as_secs_f64() - 1.0;
    assert_recording_holds(&wav, 48_000, TONE_A, seconds, "the softphone", &context);
    let recording = baresip.recording().unwrap_or_else(|e| panic!("{e}"));
    assert_recording_holds(&recording, 48_000, TONE_B, seconds, "baresip", &context);
    let wire = capture.finish().unwrap_or_else(|e| panic!("read the capture: {e}"));
    assert_call_sip(&wire, "baresip calls the softphone through Kamailio");
    // baresip 1.0 sends RTP from 127.0.0.1 (its RTP socket is bound to the wildcard address),
    // not from its SDP's address: the softphone's first packets go there until it latches.
    let media = Media { latch_packets: 25, ..Media::call("opus", 96, 150, Rtcp::FromEachSender) };
    wire.assert_media("baresip calls the softphone through Kamailio", &media);
}
