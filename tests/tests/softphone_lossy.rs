//! Two softphones call each other through our registrar while every media datagram between them
//! crosses a lossy, jittery path: 5% of the datagrams are dropped and each of the others is
//! delayed by 50 ms ± 30 ms (uniform), independently, so packets also arrive out of order. The
//! call must still sound continuous, and the statistics each phone reports must match what the
//! path did.
//!
//! The path is [`LossyRelay`], a UDP relay inside the test process, not `tc netem` in network
//! namespaces: it needs no privileges or kernel modules (`sch_netem` is often missing from
//! container kernels), it is seeded and so repeatable, and it counts exactly what it dropped and
//! measures the jitter of what it let through, which is the ground truth the phones' figures are
//! held against. Phone B registers through the relay as if through a router: the registrar learns
//! B at the relay's address (its NAT handling), so the INVITE and B's 200 pass the relay, which
//! rewrites their SDP to anchor the media on itself (RTP on an even port, RTCP on the next). SIP
//! itself passes unharmed; RTP and RTCP both ways are dropped and delayed.
//!
//! What is asserted, and why those tolerances:
//! - both phones exit 0 after a 10 s Opus call, and each recording holds the far end's tone in
//!   at least 90% of its 20 ms blocks (`proto::codec::is_dominated_by`): jitter buffer, FEC and
//!   concealment hide the damage;
//! - loss: `lost` in each phone's final stats (RFC 3550 A.3 cumulative loss, counted before any
//!   repair, so Opus FEC does not reduce it; `fec_recovered` and `concealed` count the repairs)
//!   is between 2.5% and 8% of the packets expected, and within ±6 packets of what RFC 3550 A.1
//!   and A.3 make of the packets the relay released (its drops, less those before the end of
//!   source probation, which with this much reordering can take several packets). `lost` and
//!   `packets_received` get the same ±6: the receiver stops at the BYE while the path may still
//!   hold up to 80 ms of packets (four), the far end may send one more before the BYE reaches
//!   it, and one more if its 20 ms clock catches up after a stall; a held packet that another
//!   overtook counts as lost. Runs here differ from the relay's view by 0–4;
//! - repair: Opus in-band FEC rebuilds at least half of the lost frames (the jitter buffer holds
//!   about 3 × jitter + one frame, so the packet after a lost one is nearly always there);
//! - jitter: for a delay uniform over a window W, RFC 3550 jitter estimates the mean of
//!   |d₁ − d₂|, which is W/3 = 20 ms for W = 60 ms (±30 ms); with the reordering this much
//!   jitter causes, a simulation of the estimator gives 21.5 ms, and a 10 s sample drifts by a
//!   few ms around that. The average of the per-second `jitter_ms` reports after the first two
//!   seconds must lie in 15–28 ms, and the final `jitter_ms` within 1.5 ms or 10% of the RFC 3550
//!   jitter the relay measured on its own output (the same arrivals one loopback hop earlier)
//!   as it stood at one of its last eight releases, since the receiver stopped a few releases
//!   before the path did.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use voip_tests::softphone::{Softphone, assert_recording_holds};
use voip_tests::{Registrar, RegistrarConfig, temp_dir};

const DOMAIN: &str = "voip.test";
/// How long the call lasts (`--hangup-after` on the caller).
const CALL_SECONDS: u64 = 10;
/// A recording must last at least this long: the call, less its set-up and tear-down.
const MIN_SECONDS: f64 = CALL_SECONDS as f64 - 1.5;
const TONE_A: u32 = 1000;
const TONE_B: u32 = 1500;
/// Opus's RTP clock, for the relay's own jitter measurement.
const OPUS_CLOCK: f64 = 48_000.0;

/// The share of media datagrams the path drops.
const LOSS: f64 = 0.05;
/// The path's mean one-way delay.
const BASE_DELAY_MS: f64 = 50.0;
/// The delay varies uniformly by up to this much either way.
const JITTER_MS: f64 = 30.0;
/// RFC 3550 jitter of that delay: the mean |d₁ − d₂| of a uniform window 2·JITTER_MS wide.
const EXPECTED_JITTER_MS: f64 = 2.0 * JITTER_MS / 3.0;
/// How far a phone's received and lost counts may be from the relay's view (see the module docs).
const LOSS_SLACK_PACKETS: i64 = 6;

/// Releases of the path after which the receiver may have stopped: the path holds at most
/// 80 ms (four packets), the far end may send one more before the BYE reaches it, and the BYE
/// overtakes what the path holds.
const JITTER_WINDOW: usize = 8;

/// How long the relay's threads block before looking at the stop flag.
const RELAY_POLL: Duration = Duration::from_millis(50);

/// SplitMix64: a small seeded generator, so every run of the path drops and delays alike.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The relay's media sockets, by index: the two facing A, then the two facing B.
const RTP_A: usize = 0;
const RTP_B: usize = 2;

/// What the path did to one direction's RTP.
#[derive(Debug, Default, Clone)]
struct PathLog {
    /// RTP packets that entered the path.
    entered: u64,
    /// Sequence numbers of the RTP packets it dropped.
    dropped: Vec<u16>,
    /// Sequence numbers of the RTP packets it released towards the receiver, in release order.
    released: Vec<u16>,
    /// RFC 3550 A.8 jitter of the released packets against their timestamps, in ms (the f64
    /// form), after each release.
    jitter_ms: Vec<f64>,
    transit_ms: Option<f64>,
    epoch: Option<Instant>,
}

impl PathLog {
    fn release(&mut self, sequence: u16, timestamp: u32, at: Instant) {
        self.released.push(sequence);
        let epoch = *self.epoch.get_or_insert(at);
        let arrival_units = (at.duration_since(epoch).as_secs_f64() * OPUS_CLOCK) as u64 as u32;
        let transit = f64::from(arrival_units.wrapping_sub(timestamp) as i32) / OPUS_CLOCK * 1000.0;
        let mut jitter = self.jitter_ms.last().copied().unwrap_or(0.0);
        if let Some(previous) = self.transit_ms {
            jitter += ((transit - previous).abs() - jitter) / 16.0;
        }
        self.jitter_ms.push(jitter);
        self.transit_ms = Some(transit);
    }

    /// What RFC 3550 A.1/A.3 make of the released packets: (received, lost). Counting starts at
    /// the packet that ends probation, the first to arrive right after its predecessor in
    /// sequence (with this much reordering that can take several packets), and runs to the
    /// highest sequence number released; packets behind the base still count as received.
    fn receiver_view(&self) -> (u64, i64) {
        let Some(start) = (1..self.released.len()).find(|&i| self.released[i] == self.released[i - 1].wrapping_add(1))
        else {
            return (0, 0);
        };
        let base = self.released[start];
        let counted = &self.released[start..];
        let highest = counted.iter().map(|seq| i64::from(seq.wrapping_sub(base) as i16)).max().unwrap_or(0);
        let received = counted.len() as u64;
        (received, highest + 1 - received as i64)
    }
}

/// A datagram waiting in the path.
struct Held {
    due: Instant,
    order: u64,
    socket: usize,
    dest: SocketAddr,
    data: Vec<u8>,
    /// The direction (0: towards B, 1: towards A), sequence number and timestamp of an RTP packet.
    rtp: Option<(usize, u16, u32)>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// State shared by the relay's threads.
struct Shared {
    stop: AtomicBool,
    queue: Mutex<(BinaryHeap<Reverse<Held>>, u64)>,
    wake: Condvar,
    /// The real RTP addresses of A and B, learned from their SDP.
    media: Mutex<[Option<SocketAddr>; 2]>,
    /// Where B's SIP comes from.
    phone_sip: Mutex<Option<SocketAddr>>,
    logs: Mutex<[PathLog; 2]>,
    /// The media sockets: RTP and RTCP facing A, then RTP and RTCP facing B.
    sockets: [UdpSocket; 4],
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The lossy path in front of phone B; see the module docs. Dropping it stops its threads.
struct LossyRelay {
    shared: Arc<Shared>,
    /// Where B sends its SIP (its `--registrar`).
    phone_side: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl LossyRelay {
    /// A relay between phone B and the registrar at `registrar`, dropping and delaying media
    /// with generators seeded from `seed`.
    fn start(registrar: SocketAddr, seed: u64) -> std::io::Result<Self> {
        let bind = || UdpSocket::bind((Ipv4Addr::LOCALHOST, 0));
        let (phone_sip, server_sip) = (bind()?, bind()?);
        let (rtp_a, rtcp_a) = bind_pair(seed)?;
        let (rtp_b, rtcp_b) = bind_pair(seed.wrapping_add(1))?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            queue: Mutex::new((BinaryHeap::new(), 0)),
            wake: Condvar::new(),
            media: Mutex::new([None, None]),
            phone_sip: Mutex::new(None),
            logs: Mutex::new([PathLog::default(), PathLog::default()]),
            sockets: [rtp_a, rtcp_a, rtp_b, rtcp_b],
        });
        let phone_side = phone_sip.local_addr()?;
        let face = |index: usize| shared.sockets[index].local_addr();
        let (face_a, face_b) = (face(RTP_A)?, face(RTP_B)?);
        let phone_sip = Arc::new(phone_sip);
        let server_sip = Arc::new(server_sip);
        let mut threads = Vec::new();
        for socket in [&*phone_sip, &*server_sip] {
            socket.set_read_timeout(Some(RELAY_POLL))?;
        }
        for socket in &shared.sockets {
            socket.set_read_timeout(Some(RELAY_POLL))?;
        }
        // SIP from B: its SDP now points A at the relay's A-facing port; on to the registrar.
        {
            let (shared, from, to) = (shared.clone(), phone_sip.clone(), server_sip.clone());
            threads.push(std::thread::spawn(move || {
                sip_loop(&shared, &from, |shared, data, source| {
                    *lock(&shared.phone_sip) = Some(source);
                    let data = rewrite_sdp(data, face_a).map_or(data.to_vec(), |(data, media)| {
                        lock(&shared.media)[1] = Some(media);
                        data
                    });
                    let _ = to.send_to(&data, registrar);
                })
            }));
        }
        // SIP from the registrar: its SDP (A's) now points B at the relay's B-facing port.
        {
            let (shared, from, to) = (shared.clone(), server_sip.clone(), phone_sip.clone());
            threads.push(std::thread::spawn(move || {
                sip_loop(&shared, &from, |shared, data, _| {
                    let data = rewrite_sdp(data, face_b).map_or(data.to_vec(), |(data, media)| {
                        lock(&shared.media)[0] = Some(media);
                        data
                    });
                    if let Some(phone) = *lock(&shared.phone_sip) {
                        let _ = to.send_to(&data, phone);
                    }
                })
            }));
        }
        for index in 0..4 {
            let shared = shared.clone();
            let rng = SplitMix(seed ^ (0xA5A5_0000 + index as u64));
            threads.push(std::thread::spawn(move || media_loop(&shared, index, rng)));
        }
        {
            let shared = shared.clone();
            threads.push(std::thread::spawn(move || release_loop(&shared)));
        }
        Ok(LossyRelay { shared, phone_side, threads })
    }

    /// What the path did to the RTP towards B (index 0) and towards A (index 1).
    fn logs(&self) -> [PathLog; 2] {
        lock(&self.shared.logs).clone()
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// An RTP socket on an even port and its RTCP socket on the next one.
fn bind_pair(seed: u64) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let mut rng = SplitMix(seed);
    for _ in 0..200 {
        let port = 20_000 + 2 * (rng.next_u64() % 5_000) as u16;
        let Ok(rtp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)) else { continue };
        let Ok(rtcp) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port + 1)) else { continue };
        return Ok((rtp, rtcp));
    }
    Err(std::io::Error::other("no free even/odd UDP port pair on 127.0.0.1 for the relay"))
}

/// Receives SIP on `socket` until the relay stops, handing each datagram to `forward`.
fn sip_loop(shared: &Shared, socket: &UdpSocket, mut forward: impl FnMut(&Shared, &[u8], SocketAddr)) {
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::SeqCst) {
        if let Ok((n, source)) = socket.recv_from(&mut buf) {
            forward(shared, &buf[..n], source);
        }
    }
}

/// Receives media on socket `index`, drops or schedules each datagram for the other side.
fn media_loop(shared: &Shared, index: usize, mut rng: SplitMix) {
    let mut buf = vec![0u8; 2048];
    // Facing A (0, 1) → towards B; facing B (2, 3) → towards A.
    let direction = index / 2;
    let is_rtp = index.is_multiple_of(2);
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((n, _)) = shared.sockets[index].recv_from(&mut buf) else { continue };
        let Some(receiver) = lock(&shared.media)[1 - direction] else { continue };
        let data = buf[..n].to_vec();
        let header = (is_rtp && n >= 12 && data[0] >> 6 == 2).then(|| {
            (u16::from_be_bytes([data[2], data[3]]), u32::from_be_bytes([data[4], data[5], data[6], data[7]]))
        });
        let dropped = rng.unit() < LOSS;
        let delay = BASE_DELAY_MS + JITTER_MS * (2.0 * rng.unit() - 1.0);
        if let Some((sequence, _)) = header {
            let mut logs = lock(&shared.logs);
            logs[direction].entered += 1;
            if dropped {
                logs[direction].dropped.push(sequence);
            }
        }
        if dropped {
            continue;
        }
        let dest = SocketAddr::new(receiver.ip(), receiver.port() + u16::from(!is_rtp));
        let mut queue = lock(&shared.queue);
        queue.1 += 1;
        let held = Held {
            due: Instant::now() + Duration::from_secs_f64(delay / 1000.0),
            order: queue.1,
            socket: (index + 2) % 4,
            dest,
            data,
            rtp: header.map(|(sequence, timestamp)| (direction, sequence, timestamp)),
        };
        queue.0.push(Reverse(held));
        shared.wake.notify_all();
    }
}

/// Sends each held datagram when it is due.
fn release_loop(shared: &Shared) {
    let mut queue = lock(&shared.queue);
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let due = queue.0.peek().map(|Reverse(held)| held.due);
        if due.is_some_and(|due| due <= now)
            && let Some(Reverse(held)) = queue.0.pop()
        {
            drop(queue);
            let _ = shared.sockets[held.socket].send_to(&held.data, held.dest);
            if let Some((direction, sequence, timestamp)) = held.rtp {
                lock(&shared.logs)[direction].release(sequence, timestamp, Instant::now());
            }
            queue = lock(&shared.queue);
        } else {
            let wait = due.map_or(RELAY_POLL, |due| due.saturating_duration_since(now)).min(RELAY_POLL);
            queue = shared.wake.wait_timeout(queue, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

/// If `datagram` is a SIP message with an audio SDP body, the message with its media moved to
/// `relay` (RTP there, RTCP on the next port, Content-Length fixed) and the RTP address it named.
fn rewrite_sdp(datagram: &[u8], relay: SocketAddr) -> Option<(Vec<u8>, SocketAddr)> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let (mut ip, mut port) = (None, None);
    let body: Vec<String> = body
        .split("\r\n")
        .map(|line| {
            if let Some(address) = line.strip_prefix("c=IN IP4 ") {
                ip = address.trim().parse::<IpAddr>().ok().or(ip);
                format!("c=IN IP4 {}", relay.ip())
            } else if let Some(rest) = line.strip_prefix("m=audio ") {
                let (p, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                port = p.parse::<u16>().ok();
                format!("m=audio {} {tail}", relay.port())
            } else if line.starts_with("a=rtcp:") {
                format!("a=rtcp:{}", relay.port() + 1)
            } else {
                line.to_owned()
            }
        })
        .collect();
    let media = SocketAddr::new(ip?, port?);
    let body = body.join("\r\n");
    let head: Vec<String> = head
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((name, _))
                if name.trim().eq_ignore_ascii_case("content-length") || name.trim().eq_ignore_ascii_case("l") =>
            {
                format!("Content-Length: {}", body.len())
            }
            _ => line.to_owned(),
        })
        .collect();
    Some((format!("{}\r\n\r\n{body}", head.join("\r\n")).into_bytes(), media))
}

/// The number after `"name":` in a JSON event line.
fn number(line: &str, name: &str) -> Option<f64> {
    let start = line.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = line.get(start..)?;
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn args(registrar: SocketAddr, user: &str, extra: &[&str]) -> Vec<String> {
    voip_tests::softphone::phone_args(registrar, DOMAIN, user, extra)
        .unwrap_or_else(|e| panic!("softphone arguments: {e}"))
}

/// The receiving phone's statistics agree with what the path did to the stream it received.
fn assert_stats_match_path(phone: &Softphone, log: &PathLog, who: &str) {
    let hung_up = phone.event("hung_up").unwrap_or_else(|| panic!("{who} reported no hung_up event"));
    let field = |name: &str| number(&hung_up, name).unwrap_or_else(|| panic!("{who}: no {name} in {hung_up}"));
    let (received, lost, jitter) = (field("packets_received") as i64, field("lost") as i64, field("jitter_ms"));
    let (fec, concealed) = (field("fec_recovered"), field("concealed"));
    // The per-second reports after the estimator has settled.
    let reports: Vec<f64> = phone
        .events()
        .iter()
        .filter(|line| line.contains("\"event\":\"stats\""))
        .filter_map(|line| number(line, "jitter_ms"))
        .skip(2)
        .collect();
    let average = reports.iter().sum::<f64>() / reports.len().max(1) as f64;
    let share = lost as f64 / (received + lost).max(1) as f64;
    let (path_received, path_lost) = log.receiver_view();
    let (path_received, path_lost) = (path_received as i64, path_lost);
    // The path's jitter after the first two seconds (100 releases), as the reports are averaged.
    let settled = log.jitter_ms.get(100..).unwrap_or_default();
    eprintln!(
        "{who}: received {received}, lost {lost} ({:.2}%), jitter {jitter:.2} ms (per-second average {average:.2} ms \
         over {} reports), fec_recovered {fec}, concealed {concealed}. The path: {} RTP packets in, {} dropped \
         ({:.2}%), {} released; RFC 3550 on its output: received {path_received}, lost {path_lost}, \
         jitter {:.2} ms at the end, {:.2} ms on average after 2 s",
        100.0 * share,
        reports.len(),
        log.entered,
        log.dropped.len(),
        100.0 * log.dropped.len() as f64 / log.entered.max(1) as f64,
        log.released.len(),
        log.jitter_ms.last().copied().unwrap_or(0.0),
        settled.iter().sum::<f64>() / settled.len().max(1) as f64,
    );
    assert!(log.entered >= 400, "{who}: only {} RTP packets crossed the relay; the media bypassed it", log.entered);
    assert!(
        (lost - path_lost).abs() <= LOSS_SLACK_PACKETS,
        "{who} reports {lost} packets lost; RFC 3550 on the path's output gives {path_lost} (±{LOSS_SLACK_PACKETS})"
    );
    assert!(
        (received - path_received).abs() <= LOSS_SLACK_PACKETS,
        "{who} counted {received} packets received; RFC 3550 on the path's output gives {path_received} \
         (±{LOSS_SLACK_PACKETS})"
    );
    assert!(fec * 2.0 >= lost as f64, "{who}: FEC rebuilt only {fec} of {lost} lost frames");
    assert!((0.025..=0.08).contains(&share), "{who} reports {:.2}% loss, not 2.5–8%", 100.0 * share);
    assert!(
        (0.75 * EXPECTED_JITTER_MS..=1.4 * EXPECTED_JITTER_MS).contains(&average),
        "{who}'s jitter averaged {average:.2} ms; ±{JITTER_MS} ms uniform delay gives about {EXPECTED_JITTER_MS:.1} ms"
    );
    // The receiver stopped when the call ended, up to JITTER_WINDOW releases before the path did.
    let last = &log.jitter_ms[log.jitter_ms.len().saturating_sub(JITTER_WINDOW)..];
    let nearest = last.iter().copied().min_by(|x, y| (x - jitter).abs().total_cmp(&(y - jitter).abs())).unwrap_or(0.0);
    let tolerance = (0.1 * nearest).max(1.5);
    assert!(
        (jitter - nearest).abs() <= tolerance,
        "{who} reports {jitter:.2} ms jitter; over its last {JITTER_WINDOW} releases the path's output measured \
         {last:.2?} ms (±{tolerance:.2} allowed)"
    );
}

#[test]
fn opus_call_over_a_lossy_jittery_path_stays_continuous_and_reports_the_damage() {
    let registrar = Registrar::start(RegistrarConfig::new(DOMAIN).user("1001", "pw1001").user("1002", "pw1002"))
        .unwrap_or_else(|e| panic!("start the registrar: {e}"));
    let relay = LossyRelay::start(registrar.addr(), 0x5EED_1055).unwrap_or_else(|e| panic!("start the relay: {e}"));
    let dir = temp_dir("softphone-lossy-").unwrap_or_else(|e| panic!("{e}"));
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));

    let tone_b = format!("tone:{TONE_B}");
    let b_extra = ["--auto-answer", "--audio-in", &tone_b, "--audio-out", b_wav.to_str().unwrap(), "--duration", "40"];
    let mut b = Softphone::start("b", dir.path(), &args(relay.phone_side, "1002", &b_extra))
        .unwrap_or_else(|e| panic!("start softphone B: {e}"));
    b.wait_for_event("registered", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));

    let tone_a = format!("tone:{TONE_A}");
    let hangup = CALL_SECONDS.to_string();
    let a_extra = [
        "--dial",
        "1002",
        "--audio-in",
        &tone_a,
        "--audio-out",
        a_wav.to_str().unwrap(),
        "--hangup-after",
        &hangup,
        "--duration",
        "30",
    ];
    let mut a = Softphone::start("a", dir.path(), &args(registrar.addr(), "1001", &a_extra))
        .unwrap_or_else(|e| panic!("start softphone A: {e}"));

    let a_status = a.wait(Duration::from_secs(CALL_SECONDS + 20)).unwrap_or_else(|e| panic!("{e}"));
    let b_status = b.wait(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}"));
    let context = format!("A:\n{}\nB:\n{}\nregistrar:\n{}", a.output(), b.output(), registrar.log_tail(20));
    assert!(a_status.success(), "A exited with {a_status}\n{context}");
    assert!(b_status.success(), "B exited with {b_status}\n{context}");
    for (who, phone) in [("A", &a), ("B", &b)] {
        let answered = phone.event("answered").unwrap_or_else(|| panic!("{who} reported no answered event\n{context}"));
        assert!(answered.contains("\"codec\":\"opus\""), "{who}: {answered}");
    }
    let logs = relay.logs();
    drop(relay);
    assert_recording_holds(&a_wav, 48_000, TONE_B, MIN_SECONDS, "A");
    assert_recording_holds(&b_wav, 48_000, TONE_A, MIN_SECONDS, "B");
    assert_stats_match_path(&b, &logs[0], "B");
    assert_stats_match_path(&a, &logs[1], "A");
}

#[test]
fn sdp_rewrite_moves_the_audio_and_fixes_the_length() {
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 30000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n";
    let message = format!("SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let relay: SocketAddr = "127.0.0.1:24000".parse().unwrap();
    let (rewritten, media) = rewrite_sdp(message.as_bytes(), relay).expect("an SDP body");
    let rewritten = String::from_utf8(rewritten).unwrap();
    assert_eq!(media, "127.0.0.1:30000".parse().unwrap());
    let (head, new_body) = rewritten.split_once("\r\n\r\n").unwrap();
    assert!(new_body.contains("m=audio 24000 RTP/AVP 96\r\n"), "{new_body}");
    assert!(head.contains(&format!("Content-Length: {}", new_body.len())), "{head}");
    assert!(rewrite_sdp(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n", relay).is_none());
}
