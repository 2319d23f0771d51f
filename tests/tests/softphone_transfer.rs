//! Three softphones through our registrar on loopback: a blind transfer (RFC 5589 §6). A calls
//! B; B transfers A to C by REFER (RFC 3515) with Referred-By (RFC 3892); A calls C, reports
//! the transfer's progress to B in `message/sipfrag` NOTIFYs (RFC 3420), and B hangs up once A
//! says `200 OK`. The registrar record-routes all three calls, so it relays the REFER and the
//! NOTIFYs inside the A–B dialog.
//!
//! A reports the end of each call: B's leg when B hangs up on it, then its call to C. A last test
//! plays B itself on plain sockets, hanging up right after the NOTIFY 100, to see A's media to B
//! stop while its call to C is still unanswered.
//!
//! A's recording starts when its first call is answered and goes on into the second, one 20 ms
//! block per tick, so a time after that answer is a block index (50 per second).

use std::time::Duration;

use voip_tests::softphone::{Softphone, account_args, direct_args, read_wav, toned_fraction};
use voip_tests::{Registrar, RegistrarConfig, temp_dir};

const DOMAIN: &str = "voip.test";
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;
const TONE_C: u32 = 2000;
/// When B transfers A, in seconds after B answered.
const TRANSFER_AT: f64 = 2.0;

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
        Softphone::start("c", dir.path(), &account_args(&registrar, "1003", &c_extra))
            .unwrap_or_else(|e| panic!("start softphone C: {e}"))
    });
    let tone_b = format!("tone:{TONE_B}");
    let at = TRANSFER_AT.to_string();
    let b_extra =
        ["--auto-answer", "--audio-in", &tone_b, "--transfer", target, "--transfer-at", &at, "--duration", "30"];
    let mut b = Softphone::start("b", dir.path(), &account_args(&registrar, "1002", &b_extra))
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    if let Some(c) = c.as_mut() {
        c.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    }
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let tone_a = format!("tone:{TONE_A}");
    let a_extra = ["--dial", "1002", "--audio-in", &tone_a, "--audio-out", &a_wav, "--duration", "8", "--sip-trace"];
    let mut a = Softphone::start("a", dir.path(), &account_args(&registrar, "1001", &a_extra))
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
    assert_eq!(c.events_of("answered").len(), 1, "C answered A's call\n{context}");
    let c_hangups = c.events_of("hung_up");
    assert!(c_hangups.len() == 1 && c_hangups[0].contains(r#""reason":"remote""#), "C: {c_hangups:?}\n{context}");

    // B: the transfer went 100 then 200, and its call ended as transferred.
    let b_progress = b.events_of("transfer_progress");
    assert!(b_progress.first().is_some_and(|l| l.contains(r#""status":100"#)), "B: {b_progress:?}\n{context}");
    assert!(b_progress.last().is_some_and(|l| l.contains(r#""status":200"#)), "B: {b_progress:?}\n{context}");
    let b_hangups = b.events_of("hung_up");
    assert_eq!(b_hangups.len(), 1, "B reports one hang-up\n{context}");
    assert!(b_hangups[0].contains(r#""reason":"transferred""#), "B: {}\n{context}", b_hangups[0]);

    // A: referred to C, answered twice, told B 200 OK, and hung up once (at the end).
    let referred = a.events_of("referred");
    assert_eq!(referred.len(), 1, "A accepted one REFER\n{context}");
    assert!(referred[0].contains("sip:1003@voip.test"), "A: {}\n{context}", referred[0]);
    assert_eq!(a.events_of("answered").len(), 2, "A's call to B and then to C\n{context}");
    assert!(a.events_of("transfer_progress").iter().any(|l| l.contains(r#""status":200"#)), "A\n{context}");
    assert!(a.events_of("transfer_failed").is_empty(), "A\n{context}");
    // A's hang-ups: B's leg when B hung up on it, then A's call to C at the end.
    let a_hangups = a.events_of("hung_up");
    assert_eq!(a_hangups.len(), 2, "A reports both calls' ends: {a_hangups:?}\n{context}");
    assert!(a_hangups[0].contains(r#""reason":"remote""#), "A: {}\n{context}", a_hangups[0]);
    assert!(a_hangups[1].contains(r#""reason":"local""#), "A: {}\n{context}", a_hangups[1]);
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
    let b_before = toned_fraction(&samples, rate, TONE_B, 0.3, TRANSFER_AT - 0.2);
    let c_before = toned_fraction(&samples, rate, TONE_C, 0.3, TRANSFER_AT - 0.2);
    let c_after = toned_fraction(&samples, rate, TONE_C, TRANSFER_AT + 1.0, TRANSFER_AT + 4.5);
    let b_after = toned_fraction(&samples, rate, TONE_B, TRANSFER_AT + 1.0, TRANSFER_AT + 4.5);
    eprintln!(
        "A heard B in {b_before:.2} and C in {c_before:.2} before; C in {c_after:.2} and B in {b_after:.2} after"
    );
    assert!(b_before >= 0.9, "B's tone before the transfer: {b_before:.2}\n{context}");
    assert!(c_before <= 0.05, "C's tone before the transfer: {c_before:.2}\n{context}");
    assert!(c_after >= 0.9, "C's tone after the transfer: {c_after:.2}\n{context}");
    assert!(b_after <= 0.05, "B's tone after the transfer: {b_after:.2}\n{context}");

    // C heard A.
    let (rate, samples) = read_wav(dir.path().join("c.wav").as_path()).unwrap_or_else(|e| panic!("C's recording: {e}"));
    let a_at_c = toned_fraction(&samples, rate, TONE_A, 0.3, 3.0);
    eprintln!("C heard A in {a_at_c:.2} of its first 3 s");
    assert!(a_at_c >= 0.9, "A's tone at C: {a_at_c:.2}\n{context}");
}

#[test]
fn a_transfer_to_an_unregistered_extension_fails_and_the_call_stays_up() {
    let Run { a, b, dir, context, .. } = run("1003", false);
    // A's call to 1003 gets 480 from the registrar; A tells B so, and returns to B.
    let failed = a.events_of("transfer_failed");
    assert_eq!(failed.len(), 1, "A reports the failed transfer\n{context}");
    assert!(failed[0].contains(r#""status":480"#), "A: {}\n{context}", failed[0]);
    let failed = b.events_of("transfer_failed");
    assert_eq!(failed.len(), 1, "B reports the failed transfer\n{context}");
    assert!(failed[0].contains(r#""status":480"#), "B: {}\n{context}", failed[0]);
    assert!(b.events_of("hung_up").iter().all(|l| !l.contains("transferred")), "B stays on the call\n{context}");
    assert_eq!(a.events_of("answered").len(), 1, "only A's call to B was answered\n{context}");

    // A hears B all along: before the attempt and after it.
    let (rate, samples) = read_wav(dir.path().join("a.wav").as_path()).unwrap_or_else(|e| panic!("A's recording: {e}"));
    let before = toned_fraction(&samples, rate, TONE_B, 0.3, TRANSFER_AT - 0.2);
    let after = toned_fraction(&samples, rate, TONE_B, TRANSFER_AT + 1.0, TRANSFER_AT + 4.5);
    eprintln!("A heard B in {before:.2} before and {after:.2} after the failed transfer");
    assert!(before >= 0.9 && after >= 0.9, "B's tone: {before:.2} before, {after:.2} after\n{context}");
}

/// The test plays B on its own sockets: a SIP socket, and an RTP/RTCP pair that A's media
/// reaches.
struct Transferor {
    sip: std::net::UdpSocket,
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
}

impl Transferor {
    fn bind() -> Transferor {
        let sip = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind B's SIP socket: {e}"));
        for _ in 0..64 {
            let Ok(rtp) = std::net::UdpSocket::bind("127.0.0.1:0") else { continue };
            let port = rtp.local_addr().map(|a| a.port()).unwrap_or(1);
            if port % 2 != 0 {
                continue;
            }
            if let Ok(rtcp) = std::net::UdpSocket::bind(("127.0.0.1", port + 1)) {
                return Transferor { sip, rtp, rtcp };
            }
        }
        panic!("no free RTP/RTCP port pair for B");
    }

    fn port(socket: &std::net::UdpSocket) -> u16 {
        socket.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    }

    /// The next SIP message within `limit`, and where it came from.
    fn recv(&self, limit: Duration) -> Option<(proto::sip::Message, std::net::SocketAddr)> {
        let deadline = std::time::Instant::now() + limit;
        let mut buf = vec![0u8; 65_536];
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) {
            self.sip.set_read_timeout(Some(left)).unwrap_or_else(|e| panic!("{e}"));
            let Ok((n, from)) = self.sip.recv_from(&mut buf) else { return None };
            if let Ok(message) = proto::sip::Message::parse(buf.get(..n).unwrap_or_default()) {
                return Some((message, from));
            }
        }
        None
    }

    /// The next request of `method` within `limit`; other messages are collected in `seen`.
    fn recv_request(
        &self,
        method: &str,
        limit: Duration,
        seen: &mut Vec<proto::sip::Message>,
    ) -> (proto::sip::Request, std::net::SocketAddr) {
        let deadline = std::time::Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.recv(left) {
                Some((proto::sip::Message::Request(r), from)) if r.method.to_string() == method => return (r, from),
                Some((other, _)) => seen.push(other),
                None => break,
            }
        }
        panic!("B got no {method} within {limit:?}; got {seen:#?}");
    }

    fn send(&self, text: &str, to: std::net::SocketAddr) {
        self.sip.send_to(text.as_bytes(), to).unwrap_or_else(|e| panic!("B sends: {e}"));
    }

    /// The 200 to `request`, with B's tag and, when given, an SDP body.
    fn ok(&self, request: &proto::sip::Request, sdp: Option<String>, to: std::net::SocketAddr) {
        use proto::sip::HeaderName;
        let mut ok = request.response(200);
        if let Some(to) = request.headers.get(HeaderName::To).filter(|to| !to.contains("tag=")) {
            ok.headers.set(HeaderName::To, format!("{to};tag=b"));
        }
        ok.headers.push(HeaderName::Contact, format!("<sip:1002@127.0.0.1:{}>", Self::port(&self.sip)));
        if let Some(sdp) = sdp {
            ok.headers.push(HeaderName::ContentType, "application/sdp");
            ok.body = sdp.into_bytes().into();
        }
        self.sip.send_to(&proto::sip::Message::Response(ok).encode(), to).unwrap_or_else(|e| panic!("B sends: {e}"));
    }

    /// Datagrams on B's RTP and RTCP sockets within `limit`: (RTP count, whether an RTCP BYE came).
    fn media(&self, limit: Duration) -> (usize, bool) {
        let deadline = std::time::Instant::now() + limit;
        let (mut rtp, mut bye) = (0, false);
        let mut buf = vec![0u8; 2048];
        self.rtp.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        self.rtcp.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        while std::time::Instant::now() < deadline {
            while self.rtp.recv_from(&mut buf).is_ok() {
                rtp += 1;
            }
            while let Ok((n, _)) = self.rtcp.recv_from(&mut buf) {
                bye |= has_rtcp_bye(buf.get(..n).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (rtp, bye)
    }
}

/// Whether an RTCP compound packet holds a BYE (packet type 203, RFC 3550 §6.6).
fn has_rtcp_bye(mut compound: &[u8]) -> bool {
    while let [_, kind, high, low, ..] = *compound {
        if kind == 203 {
            return true;
        }
        let len = (usize::from(u16::from_be_bytes([high, low])) + 1) * 4;
        compound = compound.get(len..).unwrap_or_default();
    }
    false
}

#[test]
fn a_transferor_that_hangs_up_before_the_target_answers_stops_a_s_media_at_once() {
    use proto::sip::HeaderName;
    let dir = temp_dir("softphone-transfer-early-bye-").unwrap_or_else(|e| panic!("{e}"));
    let b = Transferor::bind();
    // C takes A's INVITE and never answers it.
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind C: {e}"));
    let c_addr = c.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let a_port = voip_tests::free_port().unwrap_or_else(|e| panic!("{e}"));
    let (bind, target) = (format!("127.0.0.1:{a_port}"), format!("sip:1002@127.0.0.1:{}", Transferor::port(&b.sip)));
    let args = direct_args("1001", &["--bind", &bind, "--dial", &target, "--audio-in", "tone:1000", "--duration", "6"]);
    let mut a = Softphone::start("a", dir.path(), &args).unwrap_or_else(|e| panic!("start softphone A: {e}"));
    let mut seen = Vec::new();

    // A calls B; B answers with PCMU towards its own RTP socket.
    let (invite, a_sip) = b.recv_request("INVITE", Duration::from_secs(10), &mut seen);
    let sdp = format!(
        "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n",
        Transferor::port(&b.rtp)
    );
    b.ok(&invite, Some(sdp), a_sip);
    b.recv_request("ACK", Duration::from_secs(5), &mut seen);
    let (rtp_before, _) = b.media(Duration::from_millis(600));
    assert!(rtp_before >= 10, "A sends B audio: {rtp_before} RTP packets in 0.6 s\n{}", a.output());

    // B transfers A to C, answers the NOTIFY 100, and hangs up at once.
    let header = |name: HeaderName| invite.headers.get(name).unwrap_or_default().to_owned();
    let (from, to, call_id) = (header(HeaderName::From), header(HeaderName::To), header(HeaderName::CallId));
    let b_port = Transferor::port(&b.sip);
    let request = |method: &str, cseq: u32, extra: &str| {
        format!(
            "{method} sip:1001@{bind} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{b_port};branch=z9hG4bKb{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: {to};tag=b\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:1002@127.0.0.1:{b_port}>\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let refer_to = format!("Refer-To: <sip:1003@{c_addr}>\r\nReferred-By: <sip:1002@127.0.0.1:{b_port}>\r\n");
    b.send(&request("REFER", 1, &refer_to), a_sip);
    let (trying, _) = b.recv_request("NOTIFY", Duration::from_secs(5), &mut seen);
    assert!(trying.body.starts_with(b"SIP/2.0 100"), "{trying:?}");
    b.ok(&trying, None, a_sip);
    b.send(&request("BYE", 2, ""), a_sip);
    let bye_sent = std::time::Instant::now();

    // A's media to B stops at once (RTCP BYE), while its call to C is still unanswered.
    let (_, bye) = b.media(Duration::from_millis(500));
    assert!(bye, "A sent B an RTCP BYE within 0.5 s of B's BYE\n{}", a.output());
    let (rtp_after, _) = b.media(Duration::from_millis(1000));
    let mut c_buf = vec![0u8; 65_536];
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap_or_else(|e| panic!("{e}"));
    let (n, _) = c.recv_from(&mut c_buf).unwrap_or_else(|e| panic!("A's INVITE to C: {e}"));
    let c_invite = String::from_utf8_lossy(c_buf.get(..n).unwrap_or_default()).into_owned();
    eprintln!(
        "A sent B {rtp_before} RTP packets in 0.6 s before the transfer, {rtp_after} in the second after B's BYE \
         (RTCP BYE within 0.5 s; {:?} since B's BYE)",
        bye_sent.elapsed()
    );
    assert_eq!(rtp_after, 0, "no audio to B after its BYE\n{}", a.output());
    assert!(c_invite.starts_with("INVITE sip:1003@") && c_invite.contains("Referred-By:"), "{c_invite}");

    // A reports the old call's end at once; its call to C is never answered (and may still be
    // ending when A's shutdown limit cuts it short).
    let status = a.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let events = a.events();
    let context = format!("A:\n{}", a.output());
    assert!(status.success(), "A exited with {status}: its call to B completed\n{context}");
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|l| l.split("\"event\":\"").nth(1)?.split('"').next())
        .filter(|k| *k != "stats")
        .collect();
    let old_end = events.iter().find(|l| l.contains("\"event\":\"hung_up\"")).cloned().unwrap_or_default();
    assert!(old_end.contains(r#""reason":"remote""#) && old_end.contains("\"stats\""), "{old_end}\n{context}");
    assert_eq!(kinds.iter().filter(|k| **k == "answered").count(), 1, "{kinds:?}\n{context}");
    let referred = kinds.iter().position(|k| *k == "referred");
    assert!(referred < kinds.iter().position(|k| *k == "hung_up"), "{kinds:?}\n{context}");
    // Nothing more came on the ended dialog: no final NOTIFY.
    while let Some((message, _)) = b.recv(Duration::from_millis(200)) {
        seen.push(message);
    }
    let late = seen.iter().filter(|m| matches!(m, proto::sip::Message::Request(r) if r.method.to_string() == "NOTIFY"));
    assert_eq!(late.count(), 0, "no NOTIFY after B's BYE: {seen:#?}");
}
