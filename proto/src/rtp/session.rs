//! One two-party RTP session: our stream out, the far end's stream in, RTCP both ways
//! (RFC 3550 §6, RFC 4961, RFC 5761).
//!
//! [`RtpSession`] joins the pieces of this module the way a softphone call needs them. It is fed
//! every datagram from the media socket ([`RtpSession::handle_datagram`]; RTP and RTCP are told
//! apart as RFC 5761 §4 says, so rtcp-mux works), asked to send each encoded frame
//! ([`RtpSession::send`]) and polled for RTCP ([`RtpSession::poll_timeout`],
//! [`RtpSession::poll_rtcp`]). It writes datagrams into the caller's buffer and says where to send
//! them; the far end's valid media comes back for the jitter buffer.
//!
//! RFC 3550 §A.1 keeps a new source on probation until packets arrive in sequence, which under
//! reordering takes a few packets. Those packets are not counted, but they are kept (a bounded
//! few, [`MAX_PROBATION_HELD`]) and handed back once the source is valid
//! ([`RtpSession::take_probation`]), so the first 40 to 160 ms of a call still play.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::latch::RemoteAddress;
use super::ntp::NtpTime;
use super::packet::{RtpError, RtpHeader, RtpPacket, is_rtcp};
use super::rtcp::{self, Bye, ReceiverReport, ReportBlock, RtcpError, RtcpPacket, SdesChunk, SenderReport};
use super::rtt::RttEstimator;
use super::schedule::{ReportKind, RtcpConfig, RtcpScheduler};
use super::sender::RtpSender;
use super::stats::{ReceiverStats, SeqStatus};

/// Packets of a source on probation kept to play once it is validated; older ones are dropped.
pub const MAX_PROBATION_HELD: usize = 8;

/// Session settings, mostly from the SDP offer/answer.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Payload type we send.
    pub payload_type: u8,
    /// Clock rate of our and the far end's timestamps.
    pub clock_rate: u32,
    /// Payload types we accept from the far end.
    pub accept_payload_types: Vec<u8>,
    /// The far end's RTP address from its SDP.
    pub remote_rtp: SocketAddr,
    /// Its RTCP address, or `None` with rtcp-mux.
    pub remote_rtcp: Option<SocketAddr>,
    /// Our canonical name for SDES (RFC 7022: random per call is fine).
    pub cname: String,
    /// RTCP timing.
    pub rtcp: RtcpConfig,
}

/// What a datagram turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// Valid media from the far end: push it into the jitter buffer.
    Media {
        /// The packet.
        packet: RtpPacket<'a>,
        /// The far end started a new stream (new SSRC or restart): reset the jitter buffer.
        new_stream: bool,
    },
    /// RTCP, taken into account.
    Control,
    /// The far end said goodbye.
    Bye,
    /// Not for us or not yet trusted (unknown payload type, stranger's SSRC, source on probation).
    Ignored,
}

/// A packet that arrived while its source was on probation, kept for the jitter buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPacket {
    /// Its header.
    pub header: RtpHeader,
    /// Its payload.
    pub payload: Vec<u8>,
    /// When it arrived.
    pub arrival: Instant,
}

/// What was wrong with a datagram, or with what we were asked to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// An RTP datagram did not parse.
    #[error(transparent)]
    Rtp(#[from] RtpError),
    /// An RTCP datagram did not parse.
    #[error(transparent)]
    Rtcp(#[from] RtcpError),
}

/// A two-party RTP session; see the module docs.
#[derive(Debug, Clone)]
pub struct RtpSession {
    sender: RtpSender,
    scheduler: RtcpScheduler,
    rtt: RttEstimator,
    far: Option<ReceiverStats>,
    media: RemoteAddress,
    control: Option<RemoteAddress>,
    clock_rate: u32,
    cname: String,
    bye_received: bool,
    /// Packets of the far end's source while on probation; released ones once it is valid.
    probation: Vec<HeldPacket>,
    released: Vec<HeldPacket>,
    /// The newest report block about our stream not yet taken.
    report: Option<ReportBlock>,
}

impl RtpSession {
    /// A session starting at `now`; SSRC, sequence, timestamp and RTCP timing come from `rng`.
    pub fn new<R: RngCore + ?Sized>(config: SessionConfig, now: Instant, rng: &mut R) -> Self {
        RtpSession {
            sender: RtpSender::new(config.payload_type, config.clock_rate, rng),
            scheduler: RtcpScheduler::new(config.rtcp, now, rng),
            rtt: RttEstimator::new(),
            far: None,
            media: RemoteAddress::new(config.remote_rtp, &config.accept_payload_types),
            control: config.remote_rtcp.map(|addr| RemoteAddress::new(addr, &[])),
            clock_rate: config.clock_rate,
            cname: config.cname,
            bye_received: false,
            probation: Vec::new(),
            released: Vec::new(),
            report: None,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// Writes the RTP packet for one encoded frame of `samples` samples into `out` (cleared
    /// first) and returns where to send it.
    pub fn send(
        &mut self,
        payload: &[u8],
        samples: u32,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<SocketAddr, RtpError> {
        out.clear();
        self.sender.next_packet(payload, samples, now).write_to(out)?;
        self.scheduler.on_rtp_sent();
        Ok(self.media.target())
    }

    /// Advances our timestamp over `samples` not sent (DTX); the next packet starts a talk spurt.
    pub fn silence(&mut self, samples: u32) {
        self.sender.silence(samples);
    }

    /// Takes one datagram that arrived on the media (or RTCP) socket from `from` at `now`.
    pub fn handle_datagram<'a>(
        &mut self,
        datagram: &'a [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<Received<'a>, SessionError> {
        if is_rtcp(datagram) {
            self.handle_rtcp(datagram, from, now)
        } else {
            Ok(self.handle_rtp(datagram, from, now)?)
        }
    }

    fn handle_rtp<'a>(&mut self, datagram: &'a [u8], from: SocketAddr, now: Instant) -> Result<Received<'a>, RtpError> {
        let packet = RtpPacket::parse(datagram)?;
        let header = packet.header;
        // The latch decides whose SSRC we accept; it moves only once the source is valid.
        if !self.media.accepts(from, &header) {
            return Ok(Received::Ignored);
        }
        let far = match &mut self.far {
            Some(far) if far.ssrc() == header.ssrc => far,
            slot => {
                self.probation.clear();
                slot.insert(ReceiverStats::new(header.ssrc, self.clock_rate))
            }
        };
        let was_valid = far.is_valid();
        match far.on_rtp(&header, now) {
            SeqStatus::Probation => {
                if self.probation.len() >= MAX_PROBATION_HELD {
                    self.probation.remove(0);
                }
                self.probation.push(HeldPacket { header, payload: packet.payload.to_vec(), arrival: now });
                return Ok(Received::Ignored);
            }
            SeqStatus::Invalid => return Ok(Received::Ignored),
            SeqStatus::Valid | SeqStatus::Restarted => {}
        }
        // The first packet counted after probation or a restart starts a stream.
        let new_stream = far.received() == 1;
        if new_stream && !was_valid {
            // Release what arrived on probation near this packet's place in the sequence; a
            // stray from further away would make the jitter buffer start over.
            let window = MAX_PROBATION_HELD as u16;
            self.released.clear();
            self.released.extend(self.probation.drain(..).filter(|held| {
                let distance = (held.header.sequence.wrapping_sub(header.sequence) as i16).unsigned_abs();
                distance != 0 && distance <= window
            }));
        }
        self.probation.clear();
        self.media.on_rtp(from, &header);
        if new_stream {
            self.bye_received = false;
        }
        Ok(Received::Media { packet, new_stream })
    }

    fn handle_rtcp<'a>(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<Received<'a>, SessionError> {
        let packets = rtcp::parse_compound(datagram)?;
        self.scheduler.on_rtcp_size(datagram.len());
        let far_ssrc = self.far.as_ref().map(ReceiverStats::ssrc);
        let mut result = Received::Control;
        for packet in &packets {
            let (sender, blocks) = match packet {
                RtcpPacket::SenderReport(sr) => {
                    if let Some(far) = self.far.as_mut().filter(|f| f.ssrc() == sr.ssrc) {
                        far.on_sender_report(sr.info.ntp, now);
                    }
                    (sr.ssrc, &sr.reports[..])
                }
                RtcpPacket::ReceiverReport(rr) => (rr.ssrc, &rr.reports[..]),
                RtcpPacket::Bye(bye) => {
                    if far_ssrc.is_some_and(|ssrc| bye.sources.contains(&ssrc)) {
                        self.bye_received = true;
                        result = Received::Bye;
                    }
                    continue;
                }
                _ => continue,
            };
            if far_ssrc != Some(sender) {
                continue;
            }
            if let Some(control) = &mut self.control {
                control.on_rtcp(from, sender, self.media.ssrc());
            }
            for block in blocks.iter().filter(|b| b.ssrc == self.sender.ssrc()) {
                self.rtt.on_report_block(block, now);
                self.report = Some(*block);
            }
        }
        Ok(result)
    }

    /// When [`poll_rtcp`](Self::poll_rtcp) next has something to send; `None` once stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.scheduler.poll_timeout()
    }

    /// If a report is due at `now`, writes the RTCP compound (SR or RR, then SDES) into `out`
    /// (cleared first) and returns where to send it. `wall` is the wall clock now, for the SR.
    pub fn poll_rtcp<R: RngCore + ?Sized>(
        &mut self,
        now: Instant,
        wall: NtpTime,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<Option<SocketAddr>, RtcpError> {
        let Some(kind) = self.scheduler.handle_timeout(now, rng) else { return Ok(None) };
        self.write_report(kind, None, now, wall, out)?;
        Ok(Some(self.rtcp_target()))
    }

    /// Stops the session: writes the final report with a BYE into `out` (cleared first) and
    /// returns where to send it (RFC 3550 §6.3.7).
    pub fn stop(
        &mut self,
        reason: Option<&str>,
        now: Instant,
        wall: NtpTime,
        out: &mut Vec<u8>,
    ) -> Result<SocketAddr, RtcpError> {
        let kind = self.scheduler.stop();
        let bye = Bye { sources: vec![self.sender.ssrc()], reason: reason.map(str::to_owned) };
        self.write_report(kind, Some(bye), now, wall, out)?;
        Ok(self.rtcp_target())
    }

    fn write_report(
        &mut self,
        kind: ReportKind,
        bye: Option<Bye>,
        now: Instant,
        wall: NtpTime,
        out: &mut Vec<u8>,
    ) -> Result<(), RtcpError> {
        out.clear();
        let ssrc = self.sender.ssrc();
        let reports: Vec<_> = self.far.as_mut().and_then(|far| far.report_block(now)).into_iter().collect();
        let report = match kind {
            ReportKind::Sender => {
                self.rtt.on_sender_report_sent(wall, now);
                RtcpPacket::SenderReport(SenderReport { ssrc, info: self.sender.sender_info(now, wall), reports })
            }
            ReportKind::Receiver => RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports }),
        };
        let sdes = RtcpPacket::SourceDescription(vec![SdesChunk::cname(ssrc, &self.cname)]);
        let mut packets = vec![report, sdes];
        packets.extend(bye.map(RtcpPacket::Bye));
        rtcp::write_compound(&packets, out)?;
        self.scheduler.on_rtcp_size(out.len());
        Ok(())
    }

    fn rtcp_target(&self) -> SocketAddr {
        self.control.as_ref().unwrap_or(&self.media).target()
    }

    /// Where our RTP goes now (the latched address once the far end's media arrived).
    pub fn remote_target(&self) -> SocketAddr {
        self.media.target()
    }

    /// Reception statistics of the far end's stream, once it has sent.
    pub fn far_stats(&self) -> Option<&ReceiverStats> {
        self.far.as_ref()
    }

    /// The last round-trip time measured from the far end's reports.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.latest()
    }

    /// The packets that arrived while the far end's source was on probation, in arrival order,
    /// once the packet that validated it came back as [`Received::Media`] with `new_stream`:
    /// push them into the jitter buffer (after resetting it) with their arrival times, then that
    /// packet. Empty otherwise. They are not in the RFC 3550 counts, which start at validation.
    pub fn take_probation(&mut self) -> std::vec::Drain<'_, HeldPacket> {
        self.released.drain(..)
    }

    /// The newest report block the far end sent about our stream (in an SR or RR) since the
    /// last call, for the encoder to follow its fraction lost.
    pub fn take_report(&mut self) -> Option<ReportBlock> {
        self.report.take()
    }

    /// Whether the far end's current stream said goodbye.
    pub fn bye_received(&self) -> bool {
        self.bye_received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
    use crate::rtp::packet::RtpHeader;
    use crate::rtp::sender::OPUS_CLOCK_RATE;
    use rand::{SeedableRng, rngs::StdRng};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn config(remote: &str, cname: &str) -> SessionConfig {
        SessionConfig {
            payload_type: 111,
            clock_rate: OPUS_CLOCK_RATE,
            accept_payload_types: vec![111],
            remote_rtp: addr(remote),
            remote_rtcp: None,
            cname: cname.into(),
            rtcp: RtcpConfig::default(),
        }
    }

    /// Alice and Bob on a simulated network with 30 ms one-way delay, Bob's uplink losing every
    /// tenth packet, for 30 s. Bob's NAT maps his port: Alice must latch to it.
    #[test]
    fn two_sessions_report_loss_and_measure_rtt() {
        let mut rng = StdRng::seed_from_u64(21);
        let t0 = Instant::now();
        let (alice_addr, bob_nat) = (addr("192.0.2.1:4000"), addr("198.51.100.9:61000"));
        let mut alice = RtpSession::new(config("192.0.2.2:5000", "alice"), t0, &mut rng);
        let mut bob = RtpSession::new(config("192.0.2.1:4000", "bob"), t0, &mut rng);
        let mut alice_buffer = JitterBuffer::new(JitterConfig::default());
        let delay = Duration::from_millis(30);
        // In-flight datagrams: (arrival, to_alice, bytes).
        let mut flight: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
        let mut out = Vec::new();
        let mut played = 0;
        let mut bye_seen = false;
        for tick in 0..1_500u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(tick));
            let wall = NtpTime(((3_900_000_000u64) << 32) + ((u64::from(tick) * 20) << 32) / 1000);
            let dest = alice.send(&tick.to_be_bytes(), 960, now, &mut out).unwrap();
            if tick <= 3 {
                // Bob's first packet lands on tick 2 (probation), his second validates on tick 3.
                assert_eq!(dest, addr("192.0.2.2:5000"), "signalled address until Bob's media is valid");
            }
            flight.push((now + delay, false, out.clone()));
            bob.send(&tick.to_be_bytes(), 960, now, &mut out).unwrap();
            if tick % 10 != 3 {
                flight.push((now + delay, true, out.clone()));
            }
            for (session, to_alice) in [(&mut alice, false), (&mut bob, true)] {
                if session.poll_rtcp(now, wall, &mut rng, &mut out).unwrap().is_some() {
                    flight.push((now + delay, to_alice, out.clone()));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = flight.drain(..).partition(|(at, _, _)| *at <= now);
            flight = later;
            for (_, to_alice, bytes) in due {
                if to_alice {
                    match alice.handle_datagram(&bytes, bob_nat, now).unwrap() {
                        Received::Media { packet, .. } => {
                            alice_buffer.push(packet.header.sequence, packet.header.timestamp, packet.payload, now);
                        }
                        Received::Bye => bye_seen = true,
                        _ => {}
                    }
                } else {
                    bob.handle_datagram(&bytes, alice_addr, now).unwrap();
                }
            }
            if let Playout::Frame(_) = alice_buffer.pop(now) {
                played += 1;
            }
        }
        assert_eq!(alice.remote_target(), bob_nat, "latched to Bob's real source");
        let far = alice.far_stats().unwrap();
        assert!(far.lost() >= 145 && far.lost() <= 150, "Bob's uplink lost {} of ~1500", far.lost());
        assert!(played > 1_300);
        // 30 ms each way, delivered on the next 20 ms tick: 40 ms each way.
        let rtt = alice.rtt().expect("Bob's reports answer Alice's SRs");
        assert!(rtt.abs_diff(Duration::from_millis(80)) < Duration::from_millis(1), "{rtt:?}");
        assert!(bob.rtt().is_some());

        let now = t0 + Duration::from_secs(31);
        bob.stop(Some("bye"), now, NtpTime(0), &mut out).unwrap();
        assert_eq!(alice.handle_datagram(&out, bob_nat, now).unwrap(), Received::Bye);
        assert!(alice.bye_received() && !bye_seen);
        assert_eq!(bob.poll_timeout(), None);
        let parsed = rtcp::parse_compound(&out).unwrap();
        assert!(matches!(parsed[0], RtcpPacket::SenderReport(_)));
        assert!(matches!(&parsed[2], RtcpPacket::Bye(b) if b.sources == [bob.ssrc()]));
    }

    #[test]
    fn a_strangers_stream_is_ignored_and_a_restart_is_signalled() {
        let mut rng = StdRng::seed_from_u64(22);
        let t0 = Instant::now();
        let mut alice = RtpSession::new(config("192.0.2.2:5000", "alice"), t0, &mut rng);
        let far = addr("192.0.2.2:5000");
        let mut datagram = Vec::new();
        let mut feed = |alice: &mut RtpSession, ssrc: u32, seq: u16, pt: u8, from: SocketAddr| {
            let header =
                RtpHeader { ssrc, sequence: seq, timestamp: u32::from(seq) * 960, payload_type: pt, marker: false };
            datagram.clear();
            RtpPacket::new(header, b"x").write_to(&mut datagram).unwrap();
            match alice.handle_datagram(&datagram, from, t0).unwrap() {
                Received::Media { new_stream, .. } => Some(new_stream),
                _ => None,
            }
        };
        assert_eq!(feed(&mut alice, 7, 10, 111, far), None, "on probation");
        assert_eq!(feed(&mut alice, 7, 11, 111, far), Some(true));
        assert_eq!(feed(&mut alice, 7, 12, 111, far), Some(false));
        assert_eq!(feed(&mut alice, 7, 13, 0, far), None, "payload type not negotiated");
        let stranger = addr("203.0.113.5:9");
        assert_eq!(feed(&mut alice, 66, 100, 111, stranger), None);
        assert_eq!(feed(&mut alice, 66, 101, 111, stranger), None);
        assert_eq!(alice.remote_target(), far);
        assert_eq!(alice.far_stats().unwrap().ssrc(), 7);
        // The far end restarts with a new SSRC from the same address.
        assert_eq!(feed(&mut alice, 8, 5000, 111, far), None);
        assert_eq!(feed(&mut alice, 8, 5001, 111, far), Some(true));
    }

    #[test]
    fn packets_that_arrive_on_probation_play_once_the_source_is_valid() {
        let mut rng = StdRng::seed_from_u64(24);
        let t0 = Instant::now();
        let mut alice = RtpSession::new(config("192.0.2.2:5000", "alice"), t0, &mut rng);
        let mut buffer = JitterBuffer::new(JitterConfig::default());
        let far = addr("192.0.2.2:5000");
        let mut datagram = Vec::new();
        // A stray far from the stream, then the stream reordered: probation lasts until 14.
        for (i, seq) in [300u16, 10, 12, 11, 13, 14, 15].into_iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            let header = RtpHeader { ssrc: 7, sequence: seq, timestamp: u32::from(seq) * 960, ..RtpHeader::default() };
            let header = RtpHeader { payload_type: 111, ..header };
            datagram.clear();
            RtpPacket::new(header, &seq.to_be_bytes()).write_to(&mut datagram).unwrap();
            match alice.handle_datagram(&datagram, far, now).unwrap() {
                Received::Media { packet, new_stream } => {
                    assert_eq!(new_stream, seq == 14);
                    if new_stream {
                        buffer.reset();
                        let held: Vec<u16> = alice.take_probation().map(|p| p.header.sequence).collect();
                        assert_eq!(held, [10, 12, 11, 13], "the stray is not released");
                        for p in [10u16, 12, 11, 13] {
                            buffer.push(p, u32::from(p) * 960, &p.to_be_bytes(), now);
                        }
                    }
                    buffer.push(packet.header.sequence, packet.header.timestamp, packet.payload, now);
                }
                other => assert!(seq != 14 && seq != 15, "{seq}: {other:?}"),
            }
            assert_eq!(alice.take_probation().count(), 0, "released once");
        }
        let played: Vec<u16> = (0..6)
            .filter_map(|i| match buffer.pop(t0 + Duration::from_millis(140 + 20 * i)) {
                Playout::Frame(p) => Some(u16::from_be_bytes(p.try_into().unwrap())),
                _ => None,
            })
            .collect();
        assert_eq!(played, [10, 11, 12, 13, 14, 15], "nothing from the probation period is lost");
        assert_eq!(alice.far_stats().unwrap().received(), 2, "RFC 3550 counts start at validation");
    }

    #[test]
    fn probation_holds_a_bounded_number_of_packets() {
        let mut rng = StdRng::seed_from_u64(25);
        let t0 = Instant::now();
        let mut alice = RtpSession::new(config("192.0.2.2:5000", "alice"), t0, &mut rng);
        let far = addr("192.0.2.2:5000");
        let mut datagram = Vec::new();
        // Every other packet, so the source stays on probation, then the one that follows.
        let seqs = (0..40u16).map(|i| 1000 + 2 * i).chain([1079, 1080]);
        let mut released = Vec::new();
        for seq in seqs {
            let header = RtpHeader { ssrc: 9, sequence: seq, payload_type: 111, ..RtpHeader::default() };
            datagram.clear();
            RtpPacket::new(header, b"x").write_to(&mut datagram).unwrap();
            alice.handle_datagram(&datagram, far, t0).unwrap();
            released.extend(alice.take_probation().map(|p| p.header.sequence));
        }
        // 1079 validates; of the last eight held (1064 to 1078) those within eight of it.
        assert_eq!(released, [1072, 1074, 1076, 1078]);
    }

    #[test]
    fn a_report_about_our_stream_is_taken_once() {
        let mut rng = StdRng::seed_from_u64(26);
        let t0 = Instant::now();
        let mut alice = RtpSession::new(config("192.0.2.2:5000", "alice"), t0, &mut rng);
        let far = addr("192.0.2.2:5000");
        let mut datagram = Vec::new();
        for seq in 1..=2u16 {
            let header = RtpHeader { ssrc: 7, sequence: seq, payload_type: 111, ..RtpHeader::default() };
            datagram.clear();
            RtpPacket::new(header, b"x").write_to(&mut datagram).unwrap();
            alice.handle_datagram(&datagram, far, t0).unwrap();
        }
        let block = |ssrc| ReportBlock { ssrc, fraction_lost: 13, ..ReportBlock::default() };
        let rr = |ssrc, about| RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports: vec![block(about)] });
        for (from, about) in [(8, alice.ssrc()), (7, 12345)] {
            datagram.clear();
            rtcp::write_compound(&[rr(from, about)], &mut datagram).unwrap();
            alice.handle_datagram(&datagram, far, t0).unwrap();
            assert_eq!(alice.take_report(), None, "from a stranger, or about another stream");
        }
        datagram.clear();
        rtcp::write_compound(&[rr(7, alice.ssrc())], &mut datagram).unwrap();
        alice.handle_datagram(&datagram, far, t0).unwrap();
        assert_eq!(alice.take_report(), Some(block(alice.ssrc())));
        assert_eq!(alice.take_report(), None);
    }

    #[test]
    fn garbage_datagrams_are_errors_not_panics() {
        let mut rng = StdRng::seed_from_u64(23);
        let t0 = Instant::now();
        let mut s = RtpSession::new(config("192.0.2.2:5000", "a"), t0, &mut rng);
        let from = addr("192.0.2.2:5000");
        assert!(s.handle_datagram(&[], from, t0).is_err());
        assert!(s.handle_datagram(&[0x80, 200, 0xff, 0xff], from, t0).is_err());
        assert!(s.handle_datagram(&[0x40; 20], from, t0).is_err());
    }
}
