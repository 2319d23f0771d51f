//! tshark as the judge of what crossed the wire: [`LiveCapture`] records loopback traffic with a
//! capture filter, and [`analyze`] reads any capture (live or from `--pcap`) back with
//! Wireshark's dissectors and returns a typed [`CaptureSummary`] for tests to assert on.
//!
//! What is checked, with the tshark command that finds it:
//! - malformed packets and expert infos of severity warning or error
//!   (`-Y "_ws.malformed || _ws.expert.severity >= warning"`), with IPv4, UDP and TCP checksum
//!   validation on for our own captures (a live loopback capture holds checksums the kernel left
//!   to offloading, so validation stays off there);
//! - SIP request and response counts and retransmissions (`-q -z sip,stat`);
//! - RTP found from the SDP alone, with no "Decode As" and no heuristics: every `rtp` packet's
//!   `rtp.setup-frame` must be a frame carrying SDP;
//! - each RTP stream's payload name from the SDP rtpmap, packets, loss, and the "Problem?" flag
//!   that marks sequence errors and wrong timestamps (`-q -z rtp,streams`);
//! - RTCP packets dissected, by sender (`-Y rtcp`).
//!
//! [`CallCapture`] wraps a live capture around one call, and [`CaptureSummary::assert_sip`] and
//! [`CaptureSummary::assert_media`] state what a clean call looks like, so that a test adds a
//! few lines to have its call judged.

use crate::process::{send_signal, tail, wait_for_exit};
use crate::{HarnessError, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long tshark may take to start capturing.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long tshark may take to write out its file and exit after SIGINT.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How long one `tshark -r` may run.
const READ_LIMIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Expert infos of warning or error severity that a correct call may legitimately produce.
///
/// None: the calls in these tests produce no expert info above "chat" at all (checked on Opus
/// and PCMU calls through the registrar, on the wire and in every `--pcap` file), so anything
/// that appears must be looked at, not waved through. The usual suspects are kept out at their
/// source instead of being tolerated here:
/// - "Bad checksum" in a live loopback capture: Linux leaves loopback checksums to offloading
///   that never happens, so [`Checksums::Ignore`] turns validation off for those (our own
///   captures are validated and must be right);
/// - ICMP "port unreachable" for a last RTP packet reaching a phone that already closed its
///   socket: the capture filters start with `udp`, which ICMP is not;
/// - RTP sequence-number wrap-around (a random start near 65535): `-z rtp,streams` counts it as
///   a new cycle, not as loss; a real sequence error shows as the stream's "Problems?" mark and
///   in `lost`, which the tests check separately.
pub const TOLERATED_EXPERT_WARNINGS: &[&str] = &[];

/// tshark capturing on the loopback interface into a file, stopped on [`LiveCapture::stop`] or
/// drop.
#[derive(Debug)]
pub struct LiveCapture {
    child: Option<Child>,
    path: PathBuf,
    log: PathBuf,
}

impl LiveCapture {
    /// Starts `tshark -i lo -f FILTER -w PATH` and returns once packets really reach the file.
    /// The filter is a capture (BPF) filter such as `udp and (host 127.0.0.21 or host
    /// 127.0.0.22)`; a datagram between two sockets on `probe` must match it. tshark says
    /// "Capturing on" before its filter is in place on a loaded machine, so readiness is proven
    /// by sending such datagrams until the file grows (one or more of them stay in the capture,
    /// as plain UDP).
    pub fn start(path: &Path, filter: &str, probe: IpAddr) -> Result<LiveCapture> {
        let bind = |what| {
            UdpSocket::bind(SocketAddr::new(probe, 0))
                .map_err(|e| HarnessError::io(format!("bind the {what} on {probe}"), e))
        };
        let (sender, receiver) = (bind("capture probe")?, bind("capture probe's receiver")?);
        let target = receiver.local_addr().map_err(|e| HarnessError::io("read the probe's address", e))?;
        let send = move || {
            let _ = sender.send_to(b"capture probe", target);
        };
        Self::start_on(None, "lo", path, filter, &format!("a probe from {probe}"), send)
    }

    /// Starts `ip netns exec NETNS tshark -i IFACE -f FILTER -w PATH` (see [`crate::netns`]) and
    /// returns once packets really reach the file: the probe is a UDP datagram to the discard
    /// port of `to`, sent from inside `netns` (bash's `/dev/udp`), which `filter` must match.
    pub fn start_in(netns: &str, iface: &str, path: &Path, filter: &str, to: IpAddr) -> Result<LiveCapture> {
        let netns_owned = netns.to_owned();
        let send = move || {
            let _ = Command::new("ip")
                .args(["netns", "exec", &netns_owned, "bash", "-c"])
                .arg(format!("echo 'capture probe' > /dev/udp/{to}/9"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        Self::start_on(Some(netns), iface, path, filter, &format!("a probe from {netns} to {to}"), send)
    }

    fn start_on(
        netns: Option<&str>,
        iface: &str,
        path: &Path,
        filter: &str,
        probe: &str,
        send_probe: impl Fn(),
    ) -> Result<LiveCapture> {
        let log = path.with_extension("tshark.log");
        let err = File::create(&log).map_err(|e| HarnessError::io(format!("create {}", log.display()), e))?;
        let child = crate::netns::command_in(netns, &tshark()?)
            .args(["-i", iface, "-q", "-f", filter, "-w"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| HarnessError::io("start tshark", e))?;
        let mut capture = LiveCapture { child: Some(child), path: path.to_owned(), log };
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let deadline = Instant::now() + START_LIMIT;
        let mut baseline = None;
        for _ in 0..START_LIMIT.as_millis() / POLL.as_millis() {
            let exited = capture.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                break;
            }
            match baseline {
                None if std::fs::read_to_string(&capture.log).is_ok_and(|l| l.contains("Capturing on")) => {
                    baseline = Some(size(path));
                }
                Some(before) if size(path) > before => return Ok(capture),
                Some(_) => send_probe(),
                None => {}
            }
            std::thread::sleep(POLL);
        }
        capture.halt();
        Err(HarnessError::Timeout {
            what: format!(
                "tshark -i {iface} -f {filter:?} recording {probe} (capturing needs root or the wireshark group)"
            ),
            limit: START_LIMIT,
            output: tail(&capture.log, 20),
        })
    }

    /// Stops capturing, lets tshark write out the file, and returns its path.
    pub fn stop(mut self) -> Result<PathBuf> {
        // Packets already sent may still be in the kernel's capture buffer.
        std::thread::sleep(Duration::from_millis(300));
        self.halt();
        Ok(self.path.clone())
    }

    fn halt(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal("INT", &child.id().to_string());
            if wait_for_exit(&mut child, STOP_LIMIT).is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One call captured on `lo` and judged afterwards: start it before the peers, [`finish`] it
/// once they are done, then assert on the summary with [`CaptureSummary::assert_sip`] and
/// [`CaptureSummary::assert_media`].
///
/// [`finish`]: CallCapture::finish
#[derive(Debug)]
pub struct CallCapture {
    live: LiveCapture,
}

impl CallCapture {
    /// Captures UDP and TCP to and from any of `hosts` (each peer of the call on a loopback
    /// address of its own, see [`crate::unique_loopback_ip`]) or any of `ports` (the server's
    /// SIP port, for peers whose outgoing TCP connections leave from 127.0.0.1) into
    /// `dir/wire.pcap`.
    pub fn start(dir: &Path, hosts: &[IpAddr], ports: &[u16]) -> Result<CallCapture> {
        let Some(&probe) = hosts.first() else {
            return Err(HarnessError::io("capture a call", std::io::Error::other("name at least one host")));
        };
        let mut terms: Vec<String> = hosts.iter().map(|h| format!("host {h}")).collect();
        terms.extend(ports.iter().map(|p| format!("port {p}")));
        let filter = format!("(udp or tcp) and ({})", terms.join(" or "));
        Ok(CallCapture { live: LiveCapture::start(&dir.join("wire.pcap"), &filter, probe)? })
    }

    /// Stops capturing and reads the capture back (checksums not validated: see
    /// [`Checksums::Ignore`]).
    pub fn finish(self) -> Result<CaptureSummary> {
        let path = self.live.stop()?;
        analyze(&path, Checksums::Ignore)
    }
}

/// Whether the phones of a call are expected to send RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rtcp {
    /// At least this many RTCP packets must be dissected.
    AtLeast(u64),
    /// Every RTP stream's sender sent RTCP too, from its RTP port or the next one up
    /// (RFC 3550 §11; the same port with rtcp-mux, RFC 5761).
    FromEachSender,
    /// None may appear (a peer that does not send RTCP, talking to one that does not either).
    Never,
}

/// Whether to validate IPv4, UDP and TCP checksums while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksums {
    /// Our own `--pcap` files: every checksum must be right.
    Validate,
    /// A live loopback capture: the kernel leaves checksums to (absent) offloading.
    Ignore,
}

/// What Wireshark made of a capture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureSummary {
    /// Frames in the file.
    pub frames: usize,
    /// SIP requests by method (`-z sip,stat`).
    pub sip_requests: BTreeMap<String, u64>,
    /// SIP responses by status code (`-z sip,stat`).
    pub sip_responses: BTreeMap<u16, u64>,
    /// SIP messages tshark marked as retransmissions.
    pub sip_resent: u64,
    /// Frames carrying an SDP body.
    pub sdp_frames: BTreeSet<u64>,
    /// RTP packets dissected.
    pub rtp_packets: u64,
    /// RTP packets whose setup frame is not a frame with SDP (found some other way).
    pub rtp_not_from_sdp: u64,
    /// RTP payload types seen.
    pub rtp_payload_types: BTreeSet<u8>,
    /// The RTP streams (`-z rtp,streams`).
    pub rtp_streams: Vec<RtpStream>,
    /// RTCP packets dissected.
    pub rtcp_packets: u64,
    /// RTCP packets by the address they came from.
    pub rtcp_sources: BTreeMap<SocketAddr, u64>,
    /// Malformed packets and expert warnings/errors not in [`TOLERATED_EXPERT_WARNINGS`], one
    /// line each: frame number, protocol, message.
    pub problems: Vec<String>,
}

impl CaptureSummary {
    /// How many `method` requests were seen.
    pub fn requests(&self, method: &str) -> u64 {
        self.sip_requests.get(method).copied().unwrap_or(0)
    }

    /// How many responses with `status` were seen.
    pub fn responses(&self, status: u16) -> u64 {
        self.sip_responses.get(&status).copied().unwrap_or(0)
    }
}

impl CaptureSummary {
    /// Panics unless Wireshark found no problem and saw `requests` (method, count) and `responses`
    /// (status, count) exactly; when it saw SIP retransmissions (a loaded machine), at least
    /// that many. Prints the counts on stderr.
    pub fn assert_sip(&self, who: &str, requests: &[(&str, u64)], responses: &[(u16, u64)]) {
        eprintln!(
            "{who}: {} frames; SIP requests {:?}, responses {:?}, {} resent",
            self.frames, self.sip_requests, self.sip_responses, self.sip_resent
        );
        assert!(self.problems.is_empty(), "{who}: Wireshark found problems: {:#?}", self.problems);
        let exact = self.sip_resent == 0;
        let fits = |seen: u64, n: u64| if exact { seen == n } else { seen >= n };
        for &(method, n) in requests {
            let seen = self.requests(method);
            assert!(fits(seen, n), "{who}: {seen} {method}, expected {n}: {self:#?}");
        }
        for &(status, n) in responses {
            let seen = self.responses(status);
            assert!(fits(seen, n), "{who}: {seen} × {status}, expected {n}: {self:#?}");
        }
    }

    /// Panics unless the capture holds exactly `streams` RTP streams, all found from the SDP
    /// alone, each with at least `min_packets` packets of `payload` (the `-z rtp,streams` name:
    /// `opus`, `g711U`) as payload type `pt` (besides any in `also_pt`, such as
    /// telephone-event), none lost and none flagged for sequence or timestamp errors; and RTCP
    /// as `rtcp` says. Prints the streams on stderr.
    pub fn assert_media(&self, who: &str, media: &Media<'_>) {
        eprintln!(
            "{who}: {} RTP packets, {} RTCP packets (by sender {:?}), streams:",
            self.rtp_packets, self.rtcp_packets, self.rtcp_sources
        );
        for s in &self.rtp_streams {
            eprintln!(
                "  {} → {} 0x{:08X} {} {} packets, {} lost, max delta {:.1} ms, mean jitter {:.2} ms{}",
                s.src,
                s.dst,
                s.ssrc,
                s.payload,
                s.packets,
                s.lost,
                s.max_delta_ms,
                s.mean_jitter_ms,
                if s.problem { " PROBLEM" } else { "" }
            );
        }
        assert!(self.problems.is_empty(), "{who}: Wireshark found problems: {:#?}", self.problems);
        assert_eq!(self.rtp_not_from_sdp, 0, "{who}: RTP not set up by the SDP: {self:#?}");
        let unexpected: Vec<u8> = self
            .rtp_payload_types
            .iter()
            .copied()
            .filter(|pt| *pt != media.pt && !media.also_pt.contains(pt))
            .collect();
        assert!(self.rtp_payload_types.contains(&media.pt), "{who}: no RTP of payload type {}: {self:#?}", media.pt);
        assert!(unexpected.is_empty(), "{who}: RTP of payload types {unexpected:?}: {self:#?}");
        let mut by_size: Vec<&RtpStream> = self.rtp_streams.iter().collect();
        by_size.sort_by_key(|s| std::cmp::Reverse(s.packets));
        let (main, latching) = by_size.split_at(media.streams.min(by_size.len()));
        assert_eq!(main.len(), media.streams, "{who}: RTP streams: {self:#?}");
        for stray in latching {
            assert!(
                stray.packets <= media.latch_packets && main.iter().any(|m| m.ssrc == stray.ssrc && m.src == stray.src),
                "{who}: an RTP stream too many: {stray:?} (up to {} packets to the SDP's address before latching \
                 are allowed): {self:#?}",
                media.latch_packets
            );
        }
        for stream in main {
            assert!(
                stream.payload.split([',', ' ']).any(|p| p == media.payload),
                "{who}: the stream is not {}: {stream:?}",
                media.payload
            );
            assert!(!stream.problem && stream.lost == 0, "{who}: sequence or timestamp problem or loss: {stream:?}");
            assert!(stream.packets >= media.min_packets, "{who}: fewer than {} packets: {stream:?}", media.min_packets);
        }
        match media.rtcp {
            Rtcp::AtLeast(n) => {
                assert!(self.rtcp_packets >= n, "{who}: {} RTCP packets, expected {n}+", self.rtcp_packets)
            }
            Rtcp::FromEachSender => {
                for stream in main {
                    let port = stream.src.port();
                    let sent = self.rtcp_sources.iter().any(|(from, _)| {
                        from.ip() == stream.src.ip()
                            && (from.port() == port || Some(from.port()) == port.checked_add(1))
                    });
                    assert!(sent, "{who}: no RTCP from the sender of {stream:?}: {:?}", self.rtcp_sources);
                }
            }
            Rtcp::Never => assert_eq!(self.rtcp_packets, 0, "{who}: RTCP from a peer that sends none"),
        }
    }
}

/// The media [`CaptureSummary::assert_media`] expects of a call.
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    /// The payload's name in `-z rtp,streams` (`opus`, `g711U`).
    pub payload: &'a str,
    /// Its RTP payload type.
    pub pt: u8,
    /// Other payload types allowed in the streams (telephone-event).
    pub also_pt: &'a [u8],
    /// How many RTP streams (one per direction and sender).
    pub streams: usize,
    /// The fewest packets a stream may have.
    pub min_packets: u64,
    /// A peer whose RTP leaves from another address than its SDP names (baresip 1.0 binds its
    /// RTP socket to the wildcard address, so on loopback its packets come from 127.0.0.1)
    /// gets the softphone's first packets at the SDP's address until the softphone latches onto
    /// the address they really come from (symmetric RTP, RFC 4961): the same sender's stream to
    /// that address may hold up to this many packets. 0 for peers that send from their SDP's
    /// address.
    pub latch_packets: u64,
    /// The RTCP expected.
    pub rtcp: Rtcp,
}

impl<'a> Media<'a> {
    /// Two streams (one each way) of `payload` as `pt`, each of at least `min_packets`, with
    /// RTCP as `rtcp` says.
    pub fn call(payload: &'a str, pt: u8, min_packets: u64, rtcp: Rtcp) -> Self {
        Media { payload, pt, also_pt: &[], streams: 2, min_packets, latch_packets: 0, rtcp }
    }
}

/// One row of `tshark -q -z rtp,streams`.
#[derive(Debug, Clone, PartialEq)]
pub struct RtpStream {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Synchronization source.
    pub ssrc: u32,
    /// The payload's name, from the SDP's rtpmap (`opus`) or the static table (`g711U`).
    pub payload: String,
    /// Packets in the stream.
    pub packets: u64,
    /// Packets lost (negative when duplicated).
    pub lost: i64,
    /// Largest gap between packets, in milliseconds.
    pub max_delta_ms: f64,
    /// Mean RFC 3550 interarrival jitter, in milliseconds.
    pub mean_jitter_ms: f64,
    /// Wireshark flagged the stream: sequence errors, wrong timestamps or payload changes.
    pub problem: bool,
}

/// The `tshark` executable, or the error naming the package to install.
pub fn tshark() -> Result<PathBuf> {
    crate::Peer::Tshark.locate()
}

/// Reads `path` with tshark and sums up what it dissected. See the [module docs](self).
pub fn analyze(path: &Path, checksums: Checksums) -> Result<CaptureSummary> {
    analyze_with(path, checksums, &[])
}

/// [`analyze`] with more tshark options before the reading ones, such as
/// `-o tls.keylog_file:FILE -d tcp.port==5061,tls` so that Wireshark finds the SDP inside TLS.
pub fn analyze_with(path: &Path, checksums: Checksums, options: &[&str]) -> Result<CaptureSummary> {
    let checks: &[&str] = match checksums {
        Checksums::Validate => {
            &["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
        }
        Checksums::Ignore => &[],
    };
    let prefs = &[checks, options].concat()[..];
    let mut summary = CaptureSummary {
        frames: read(path, prefs, &["-T", "fields", "-e", "frame.number"])?.lines().count(),
        ..CaptureSummary::default()
    };

    let problems = read(
        path,
        prefs,
        &[
            "-Y",
            "_ws.malformed || _ws.expert.severity >= warning",
            "-T",
            "fields",
            "-E",
            "aggregator=|",
            "-e",
            "frame.number",
            "-e",
            "_ws.col.Protocol",
            "-e",
            "_ws.expert.severity",
            "-e",
            "_ws.expert.message",
            "-e",
            "_ws.malformed",
        ],
    )?;
    summary.problems = problems_of(&problems);

    parse_sip_stat(&read(path, prefs, &["-q", "-z", "sip,stat"])?, &mut summary);
    summary.sdp_frames = read(path, prefs, &["-Y", "sdp", "-T", "fields", "-e", "frame.number"])?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let rtp = read(path, prefs, &["-Y", "rtp", "-T", "fields", "-e", "rtp.setup-frame", "-e", "rtp.p_type"])?;
    for line in rtp.lines() {
        let mut fields = line.split('\t');
        let setup = fields.next().and_then(|f| f.trim().parse::<u64>().ok());
        summary.rtp_packets += 1;
        if !setup.is_some_and(|s| summary.sdp_frames.contains(&s)) {
            summary.rtp_not_from_sdp += 1;
        }
        if let Some(pt) = fields.next().and_then(|f| f.trim().parse().ok()) {
            summary.rtp_payload_types.insert(pt);
        }
    }
    let rtcp =
        read(path, prefs, &["-Y", "rtcp", "-T", "fields", "-e", "ip.src", "-e", "ipv6.src", "-e", "udp.srcport"])?;
    for line in rtcp.lines() {
        summary.rtcp_packets += 1;
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let ip = fields.iter().take(2).find_map(|f| f.parse::<IpAddr>().ok());
        let port = fields.get(2).and_then(|f| f.parse::<u16>().ok());
        if let (Some(ip), Some(port)) = (ip, port) {
            *summary.rtcp_sources.entry(SocketAddr::new(ip, port)).or_default() += 1;
        }
    }
    summary.rtp_streams = parse_rtp_streams(&read(path, prefs, &["-q", "-z", "rtp,streams"])?);
    Ok(summary)
}

/// How many frames of the capture at `path` match the display filter `filter` (such as
/// `sip.Method == "REGISTER" && sip.Call-ID`): proof that Wireshark understood a field, not
/// just that it did not complain.
pub fn count_frames(path: &Path, filter: &str) -> Result<usize> {
    Ok(read(path, &[], &["-Y", filter, "-T", "fields", "-e", "frame.number"])?.lines().count())
}

/// The `fields` (`-T fields -e …`) of every frame of the capture at `path` that matches the
/// display filter `filter`, read with the tshark `options` (`-d udp.port==P,rtp`), one row
/// per frame.
pub fn frame_fields(path: &Path, options: &[&str], filter: &str, fields: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut args = vec!["-Y", filter, "-T", "fields"];
    for field in fields {
        args.extend(["-e", field]);
    }
    let out = read(path, options, &args)?;
    Ok(out.lines().map(|line| line.split('\t').map(str::to_owned).collect()).collect())
}

/// Runs `tshark -r PATH` with `prefs` and `args`; its standard output.
fn read(path: &Path, prefs: &[&str], args: &[&str]) -> Result<String> {
    let mut child = Command::new(tshark()?)
        .arg("-n")
        .arg("-r")
        .arg(path)
        .args(prefs)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::io("run tshark", e))?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(mut s) = stdout {
            let _ = std::io::Read::read_to_string(&mut s, &mut out);
        }
        out
    });
    let Some(status) = wait_for_exit(&mut child, READ_LIMIT) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(HarnessError::Timeout {
            what: format!("tshark -r {} {}", path.display(), args.join(" ")),
            limit: READ_LIMIT,
            output: String::new(),
        });
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut s, &mut err);
        }
        return Err(HarnessError::io(
            format!("read {} with tshark {}", path.display(), args.join(" ")),
            std::io::Error::other(format!("{status}: {err}")),
        ));
    }
    Ok(out)
}

/// Lines of `frame<TAB>protocol<TAB>severities<TAB>messages<TAB>malformed` → the problems not
/// tolerated. Severities and messages are `|`-separated lists in the same order.
fn problems_of(fields: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for line in fields.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [frame, protocol, severities, messages, malformed, ..] = cols[..] else { continue };
        if !malformed.is_empty() {
            problems.push(format!("frame {frame} ({protocol}): malformed packet"));
        }
        for (severity, message) in severities.split('|').zip(messages.split('|')) {
            if severity.trim().is_empty() {
                continue;
            }
            let level = severity.trim().parse::<u64>().unwrap_or(u64::MAX);
            // PI_WARN is 0x00600000, PI_ERROR 0x00800000 (epan/proto.h).
            if level >= 0x0060_0000 && !TOLERATED_EXPERT_WARNINGS.iter().any(|t| message.contains(t)) {
                problems.push(format!("frame {frame} ({protocol}): {message}"));
            }
        }
    }
    problems
}

/// Fills the SIP counts from `-z sip,stat` output:
/// `  SIP 200 OK  : 5 Packets`, `  INVITE  : 1 Packets`, `Number of resent SIP messages: 0`.
fn parse_sip_stat(text: &str, summary: &mut CaptureSummary) {
    let mut in_methods = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("* List of SIP Request methods") {
            in_methods = true;
            continue;
        }
        if trimmed.starts_with('*') || trimmed.starts_with('=') {
            in_methods = false;
        }
        if let Some(resent) = trimmed.strip_prefix("Number of resent SIP messages:") {
            summary.sip_resent = resent.trim().parse().unwrap_or(0);
            continue;
        }
        let Some((name, count)) = trimmed.rsplit_once(':') else { continue };
        let Some(count) = count.trim().strip_suffix("Packets").and_then(|c| c.trim().parse::<u64>().ok()) else {
            continue;
        };
        let name = name.trim();
        if let Some(status) = name.strip_prefix("SIP ").and_then(|s| s.split_whitespace().next()?.parse().ok()) {
            *summary.sip_responses.entry(status).or_default() += count;
        } else if in_methods && !name.is_empty() {
            *summary.sip_requests.entry(name.to_owned()).or_default() += count;
        }
    }
}

/// The rows of `-z rtp,streams`. A row reads, by whitespace: start, end, source IP, port,
/// destination IP, port, SSRC, payload name (possibly several words), packets, lost,
/// `(percent)`, min/mean/max delta, min/mean/max jitter, and `X` when Wireshark found a
/// problem.
fn parse_rtp_streams(text: &str) -> Vec<RtpStream> {
    let mut streams = Vec::new();
    for line in text.lines() {
        let mut cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 17 || !cols[6].starts_with("0x") {
            continue;
        }
        let problem = cols.last() == Some(&"X");
        if problem {
            cols.pop();
        }
        let n = cols.len();
        let float = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        let addr = |ip: &str, port: &str| Some(SocketAddr::new(ip.parse::<IpAddr>().ok()?, port.parse().ok()?));
        let (Some(src), Some(dst)) = (addr(cols[2], cols[3]), addr(cols[4], cols[5])) else { continue };
        let Ok(ssrc) = u32::from_str_radix(cols[6].trim_start_matches("0x"), 16) else { continue };
        // From the right: 6 delta/jitter figures, "(x%)", lost, packets.
        streams.push(RtpStream {
            src,
            dst,
            ssrc,
            payload: cols[7..n - 9].join(" "),
            packets: cols[n - 9].parse().unwrap_or(0),
            lost: cols[n - 8].parse().unwrap_or(i64::MAX),
            max_delta_ms: float(cols[n - 4]),
            mean_jitter_ms: float(cols[n - 2]),
            problem,
        });
    }
    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_stat_counts_requests_responses_and_resends() {
        let text = "===\nSIP Statistics\nNumber of SIP messages: 9\nNumber of resent SIP messages: 1\n\n \
                    * SIP Status Codes in reply packets\n  SIP 100 Trying   : 1 Packets\n  SIP 200 OK    : 4 Packets\n  \
                    SIP 407 Proxy Authentication Required : 1 Packets\n \
                    * List of SIP Request methods\n  INVITE   : 2 Packets\n  ACK : 1 Packets\n  BYE : 1 Packets\n \
                    * Average setup time 120 ms\n Min 120 ms\n Max 120 ms\n===\n";
        let mut summary = CaptureSummary::default();
        parse_sip_stat(text, &mut summary);
        assert_eq!(summary.sip_resent, 1);
        assert_eq!((summary.responses(100), summary.responses(200), summary.responses(407)), (1, 4, 1));
        assert_eq!((summary.requests("INVITE"), summary.requests("ACK"), summary.requests("BYE")), (2, 1, 1));
        assert_eq!(summary.sip_requests.len(), 3);
    }

    #[test]
    fn expert_warnings_are_problems_and_chat_or_notes_are_not() {
        let lines = "5\tSIP\t2097152|6291456\tRequest: INVITE|Some warning\t\n7\tRTP\t\t\t\n9\tUDP\t8388608\tBad checksum\t\n11\tSIP\t\t\t1\n";
        let problems = problems_of(lines);
        assert_eq!(
            problems,
            vec!["frame 5 (SIP): Some warning", "frame 9 (UDP): Bad checksum", "frame 11 (SIP): malformed packet"]
        );
    }

    /// Rows as tshark 4.0 prints them (from a call here, and a lossy one with its "X" mark).
    #[test]
    fn rtp_streams_rows_are_read_with_their_problem_mark() {
        let text = "========================= RTP Streams ========================\n   Start time      End time     \
            Src IP addr  Port    Dest IP addr  Port       SSRC          Payload  Pkts         Lost   Min Delta(ms)  \
            Mean Delta(ms)   Max Delta(ms)  Min Jitter(ms) Mean Jitter(ms)  Max Jitter(ms) Problems?\n     \
            0.016419      4.011413       127.0.0.1 55120       127.0.0.1 28568 0xB17198FE             opus   201     \
            0 (0.0%)           0.016          19.975          79.423           0.244           1.385           7.051 \n     \
            2.121324      7.716511       127.0.0.1 26428       127.0.0.1 37780 0x849E2A7D             opus   267    \
            14 (5.0%)           0.028          21.035          77.989           1.007          21.754          29.277 X\n\
            ==============================================================\n";
        let streams = parse_rtp_streams(text);
        assert_eq!(streams.len(), 2, "{streams:?}");
        let clean = &streams[0];
        assert_eq!(clean.src, "127.0.0.1:55120".parse().unwrap());
        assert_eq!(clean.dst, "127.0.0.1:28568".parse().unwrap());
        assert_eq!((clean.ssrc, clean.payload.as_str(), clean.packets, clean.lost), (0xB171_98FE, "opus", 201, 0));
        assert!((clean.max_delta_ms - 79.423).abs() < 1e-9 && (clean.mean_jitter_ms - 1.385).abs() < 1e-9);
        assert!(!clean.problem);
        assert_eq!((streams[1].lost, streams[1].problem), (14, true));
    }

    fn stream(src: &str, dst: &str, ssrc: u32, packets: u64) -> RtpStream {
        RtpStream {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ssrc,
            payload: "opus".into(),
            packets,
            lost: 0,
            max_delta_ms: 21.0,
            mean_jitter_ms: 0.4,
            problem: false,
        }
    }

    /// A call as baresip's peer sees it: the softphone's two first packets went to the SDP's
    /// address before it latched onto 127.0.0.1, where baresip's RTP really comes from.
    fn latched_call() -> CaptureSummary {
        CaptureSummary {
            rtp_packets: 504,
            rtp_payload_types: BTreeSet::from([96]),
            rtp_streams: vec![
                stream("127.9.0.2:4000", "127.0.0.1:5000", 1, 250),
                stream("127.0.0.1:5000", "127.9.0.2:4000", 2, 252),
                stream("127.9.0.2:4000", "127.9.0.3:5000", 1, 2),
            ],
            rtcp_packets: 4,
            ..CaptureSummary::default()
        }
    }

    #[test]
    fn a_short_stream_before_latching_passes_only_where_latching_is_expected() {
        let call = Media::call("opus", 96, 150, Rtcp::AtLeast(2));
        latched_call().assert_media("latching allowed", &Media { latch_packets: 25, ..call });
        let strict = std::panic::catch_unwind(|| latched_call().assert_media("no latching", &call));
        assert!(strict.is_err(), "a third stream must fail where the peer sends from its SDP's address");
    }

    #[test]
    fn lost_packets_a_problem_mark_or_missing_rtcp_fail_the_media_check() {
        let call = Media { latch_packets: 25, ..Media::call("opus", 96, 150, Rtcp::AtLeast(2)) };
        let broken: [fn(&mut CaptureSummary); 4] = [
            |s| s.rtp_streams[0].lost = 1,
            |s| s.rtp_streams[1].problem = true,
            |s| s.rtcp_packets = 0,
            |s| s.rtp_not_from_sdp = 3,
        ];
        for breaks in broken {
            let mut summary = latched_call();
            breaks(&mut summary);
            assert!(std::panic::catch_unwind(|| summary.assert_media("broken", &call)).is_err(), "{summary:#?}");
        }
    }
}
