//! The sending side of an RTP stream (RFC 3550 §5.1, §6.4.1; RFC 3551 §4.1; RFC 7587 §4.1).
//!
//! [`RtpSender`] draws a random SSRC, initial sequence number and initial timestamp from the
//! caller's rng (§5.1 asks for random starting values), advances the timestamp by the samples in
//! each frame at the codec's clock rate (48000 Hz for Opus whatever the channels, RFC 7587 §4.1;
//! 8000 Hz for G.711), sets the marker on the first packet of each talk spurt, and keeps the
//! packet and octet counts an SR reports.

use std::time::{Duration, Instant};

use rand::RngCore;

use super::ntp::NtpTime;
use super::packet::{RtpHeader, RtpPacket};
use super::rtcp::SenderInfo;

/// The RTP clock rate of Opus, for any number of channels (RFC 7587 §4.1).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// The RTP clock rate of G.711 (RFC 3551 §4.5.14).
pub const G711_CLOCK_RATE: u32 = 8_000;

/// Samples in one frame of `frame` duration at `clock_rate` (960 for 20 ms of Opus).
pub fn samples_per_frame(clock_rate: u32, frame: Duration) -> u32 {
    u32::try_from(u128::from(clock_rate) * frame.as_nanos() / 1_000_000_000).unwrap_or(u32::MAX)
}

/// One outgoing RTP stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    clock_rate: u32,
    sequence: u16,
    timestamp: u32,
    talk_spurt_starts: bool,
    packet_count: u32,
    octet_count: u32,
    /// Timestamp of the last packet sent and when.
    last_sent: Option<(u32, Instant)>,
}

impl RtpSender {
    /// A stream of `payload_type` (0–127; higher bits are dropped) at `clock_rate` Hz, with
    /// random SSRC, sequence and timestamp.
    pub fn new<R: RngCore + ?Sized>(payload_type: u8, clock_rate: u32, rng: &mut R) -> Self {
        RtpSender {
            ssrc: rng.next_u32(),
            payload_type: payload_type & 0x7f,
            clock_rate,
            sequence: rng.next_u32() as u16,
            timestamp: rng.next_u32(),
            talk_spurt_starts: true,
            packet_count: 0,
            octet_count: 0,
            last_sent: None,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The clock rate of our timestamps.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Whether any packet has been sent.
    pub fn has_sent(&self) -> bool {
        self.packet_count > 0
    }

    /// The next packet, carrying `payload` of `samples` samples per channel, sent at `now`.
    /// Its timestamp is that of its first sample; the next one's is `samples` later.
    pub fn next_packet<'a>(&mut self, payload: &'a [u8], samples: u32, now: Instant) -> RtpPacket<'a> {
        let header = RtpHeader {
            marker: self.talk_spurt_starts,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        self.talk_spurt_starts = false;
        self.last_sent = Some((self.timestamp, now));
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.packet_count = self.packet_count.wrapping_add(1);
        self.octet_count = self.octet_count.wrapping_add(payload.len() as u32);
        RtpPacket::new(header, payload)
    }

    /// Skips `samples` of silence that are not sent (discontinuous transmission): the timestamp
    /// moves on, the sequence number does not, and the next packet starts a talk spurt.
    pub fn silence(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.talk_spurt_starts = true;
    }

    /// The sender information for an SR sent at `now`, wall clock `ntp`: the RTP timestamp is
    /// extrapolated from the last packet sent to `now` (§6.4.1).
    pub fn sender_info(&self, now: Instant, ntp: NtpTime) -> SenderInfo {
        let rtp_timestamp = match self.last_sent {
            Some((timestamp, at)) => {
                let elapsed = now.saturating_duration_since(at).as_nanos();
                timestamp.wrapping_add((elapsed * u128::from(self.clock_rate) / 1_000_000_000) as u32)
            }
            None => self.timestamp,
        };
        SenderInfo { ntp, rtp_timestamp, packet_count: self.packet_count, octet_count: self.octet_count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn starting_values_come_from_the_rng() {
        let a = RtpSender::new(111, OPUS_CLOCK_RATE, &mut StdRng::seed_from_u64(1));
        let b = RtpSender::new(111, OPUS_CLOCK_RATE, &mut StdRng::seed_from_u64(1));
        let c = RtpSender::new(111, OPUS_CLOCK_RATE, &mut StdRng::seed_from_u64(2));
        assert_eq!((a.ssrc, a.sequence, a.timestamp), (b.ssrc, b.sequence, b.timestamp));
        assert_ne!((a.ssrc, a.sequence, a.timestamp), (c.ssrc, c.sequence, c.timestamp));
    }

    #[test]
    fn opus_advances_960_per_20ms_frame_and_g711_160() {
        assert_eq!(samples_per_frame(OPUS_CLOCK_RATE, Duration::from_millis(20)), 960);
        assert_eq!(samples_per_frame(G711_CLOCK_RATE, Duration::from_millis(20)), 160);
        let t = Instant::now();
        let mut s = RtpSender::new(111, OPUS_CLOCK_RATE, &mut StdRng::seed_from_u64(3));
        let first = s.next_packet(b"a", 960, t).header;
        let second = s.next_packet(b"b", 960, t).header;
        assert_eq!(second.sequence, first.sequence.wrapping_add(1));
        assert_eq!(second.timestamp, first.timestamp.wrapping_add(960));
        assert_eq!((first.ssrc, first.payload_type), (second.ssrc, 111));
    }

    #[test]
    fn marker_on_the_first_packet_of_each_talk_spurt() {
        let t = Instant::now();
        let mut s = RtpSender::new(0, G711_CLOCK_RATE, &mut StdRng::seed_from_u64(4));
        let markers: Vec<bool> = (0..3).map(|_| s.next_packet(b"x", 160, t).header.marker).collect();
        assert_eq!(markers, [true, false, false]);
        let before = s.next_packet(b"x", 160, t).header;
        s.silence(160 * 50);
        let after = s.next_packet(b"x", 160, t).header;
        assert!(after.marker);
        assert_eq!(after.sequence, before.sequence.wrapping_add(1), "no sequence gap over silence");
        assert_eq!(after.timestamp, before.timestamp.wrapping_add(160 * 51));
    }

    #[test]
    fn sender_info_counts_and_extrapolates_the_timestamp() {
        let t = Instant::now();
        let mut s = RtpSender::new(111, OPUS_CLOCK_RATE, &mut StdRng::seed_from_u64(5));
        for i in 0..10 {
            s.next_packet(&[0; 80], 960, t + Duration::from_millis(20 * i));
        }
        let last_ts = s.timestamp.wrapping_sub(960);
        let info = s.sender_info(t + Duration::from_millis(180 + 5), NtpTime(7));
        assert_eq!((info.packet_count, info.octet_count, info.ntp), (10, 800, NtpTime(7)));
        assert_eq!(info.rtp_timestamp, last_ts.wrapping_add(240), "5 ms after the last packet");
    }
}
