//! Per-source reception statistics, exactly as RFC 3550 Appendix A computes them.
//!
//! - §A.1: source validation. A new source is on probation until two packets arrive in
//!   sequence; a jump of 3000 or more is believed only when the next packet follows it, and then
//!   restarts the counts (the far end restarted); up to 100 behind is a duplicate or reordering.
//! - §A.3: expected and lost packets, and the fraction lost since the previous report, from
//!   `expected_prior` and `received_prior`.
//! - §A.8: interarrival jitter in timestamp units, with arrival times converted to the source's
//!   RTP clock rate, in the integer form with 4 fraction bits.
//!
//! One deviation: §A.1's C code compares `seq == s->max_seq + 1` after integer promotion, so a
//! source whose probation crosses 65535 → 0 fails it once; the comparison here wraps.

use std::time::{Duration, Instant};

use super::ntp::{NtpTime, to_ntp_short};
use super::packet::RtpHeader;
use super::rtcp::ReportBlock;

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const MIN_SEQUENTIAL: u32 = 2;

/// What §A.1's `update_seq` made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStatus {
    /// The source is not yet validated; the packet is not counted.
    Probation,
    /// Counted (in order, reordered or duplicate).
    Valid,
    /// Counted, after a large jump was confirmed: the counts started over from this packet.
    Restarted,
    /// A large jump not (yet) confirmed by a following packet: not counted, do not play it.
    Invalid,
}

/// Reception statistics of one synchronisation source.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: u32,
    clock_rate: u32,
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet, in timestamp units.
    transit: Option<u32>,
    /// Jitter × 16, as §A.8's integer form keeps it.
    jitter: u64,
    epoch: Option<Instant>,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Statistics for `ssrc`, whose timestamps run at `clock_rate` Hz (48000 for Opus, 8000 for
    /// G.711).
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        ReceiverStats {
            ssrc,
            clock_rate: clock_rate.max(1),
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter: 0,
            epoch: None,
            last_sr: None,
        }
    }

    /// The source these statistics are about.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Accounts one RTP packet of this source that arrived at `arrival`.
    pub fn on_rtp(&mut self, header: &RtpHeader, arrival: Instant) -> SeqStatus {
        if !self.started {
            self.started = true;
            self.init_seq(header.sequence);
            self.max_seq = header.sequence.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let status = self.update_seq(header.sequence);
        if matches!(status, SeqStatus::Valid | SeqStatus::Restarted) {
            if status == SeqStatus::Restarted {
                self.transit = None;
            }
            self.update_jitter(header.timestamp, arrival);
        }
        status
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    fn update_seq(&mut self, seq: u16) -> SeqStatus {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqStatus::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqStatus::Probation;
        }
        let mut status = SeqStatus::Valid;
        if udelta < MAX_DROPOUT {
            // In order, with permissible gap.
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: believe it only if the next packet follows it.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
                status = SeqStatus::Restarted;
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return SeqStatus::Invalid;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, max_seq unchanged.
        self.received = self.received.wrapping_add(1);
        status
    }

    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let elapsed_us = u64::try_from(arrival.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX);
        // Wrapping to 32 bits is what the RTP clock does too; u64 holds 12 years at 48 kHz.
        let arrival_units = (elapsed_us.saturating_mul(u64::from(self.clock_rate)) / 1_000_000) as u32;
        let transit = arrival_units.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            let d = u64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            self.jitter = self.jitter.saturating_add(d) - ((self.jitter + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Records a sender report from this source, for the LSR and DLSR of the next report block.
    pub fn on_sender_report(&mut self, ntp: NtpTime, arrival: Instant) {
        self.last_sr = Some((ntp.middle32(), arrival));
    }

    /// Whether the source has passed probation.
    pub fn is_valid(&self) -> bool {
        self.started && self.probation == 0
    }

    /// Packets counted, duplicates included (§A.3).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// The extended highest sequence number received.
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected: extended highest − base + 1 (§A.3).
    pub fn expected(&self) -> u32 {
        self.extended_highest_seq().wrapping_sub(self.base_seq).wrapping_add(1)
    }

    /// Cumulative packets lost: expected − received, negative when duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Interarrival jitter in timestamp units, as reported.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter >> 4).unwrap_or(u32::MAX)
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_nanos((self.jitter >> 4).saturating_mul(1_000_000_000) / u64::from(self.clock_rate))
    }

    /// The report block about this source at `now`, starting a new fraction-lost interval; `None`
    /// while the source is on probation.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        if !self.is_valid() {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_ntp_short(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn header(sequence: u16, timestamp: u32) -> RtpHeader {
        RtpHeader { sequence, timestamp, ssrc: 1, payload_type: 111, marker: false }
    }

    fn feed(stats: &mut ReceiverStats, seqs: &[u16], at: Instant) -> Vec<SeqStatus> {
        seqs.iter().map(|&s| stats.on_rtp(&header(s, u32::from(s) * 960), at)).collect()
    }

    #[test]
    fn source_is_valid_after_two_in_sequence_and_the_first_is_not_counted() {
        let t = Instant::now();
        let mut stats = ReceiverStats::new(1, 48_000);
        assert_eq!(feed(&mut stats, &[500], t), [SeqStatus::Probation]);
        assert!(stats.report_block(t).is_none());
        assert_eq!(feed(&mut stats, &[501], t), [SeqStatus::Valid]);
        assert!(stats.is_valid());
        assert_eq!((stats.received(), stats.expected(), stats.lost()), (1, 1, 0));
    }

    #[test]
    fn probation_restarts_on_a_gap() {
        let t = Instant::now();
        let mut stats = ReceiverStats::new(1, 48_000);
        let statuses = feed(&mut stats, &[10, 12, 20, 21], t);
        assert_eq!(statuses, [SeqStatus::Probation, SeqStatus::Probation, SeqStatus::Probation, SeqStatus::Valid]);
    }

    /// §A.1's C code promotes `max_seq + 1` to int, so 65535 → 0 would fail probation there.
    #[test]
    fn probation_accepts_a_sequence_across_the_wrap() {
        let t = Instant::now();
        let mut stats = ReceiverStats::new(1, 48_000);
        assert_eq!(feed(&mut stats, &[65535, 0], t), [SeqStatus::Probation, SeqStatus::Valid]);
    }

    #[test]
    fn loss_counts_with_losses_duplicates_and_reordering() {
        let t = Instant::now();
        let mut stats = ReceiverStats::new(1, 48_000);
        // 100 is probation; 101 starts the counts. 103 comes late, 105 twice, 106 never.
        feed(&mut stats, &[100, 101, 102, 104, 105, 105, 103, 107, 108], t);
        assert_eq!(stats.extended_highest_seq(), 108);
        assert_eq!(stats.expected(), 8);
        assert_eq!(stats.received(), 8, "duplicates count as received (§A.3)");
        assert_eq!(stats.lost(), 0, "the duplicate hides the loss of 106");
        let first = stats.report_block(t).unwrap();
        assert_eq!((first.fraction_lost, first.cumulative_lost, first.extended_highest_seq), (0, 0, 108));

        // 109..=118 with 110 and 111 lost: 2 of 10 expected in this interval.
        feed(&mut stats, &[109, 112, 113, 114, 115, 116, 117, 118], t);
        let second = stats.report_block(t).unwrap();
        assert_eq!(second.cumulative_lost, 2);
        assert_eq!(second.fraction_lost, 51, "(2 << 8) / 10");

        // An interval with only duplicates reports no fraction lost, never a negative one.
        feed(&mut stats, &[118, 118], t);
        let third = stats.report_block(t).unwrap();
        assert_eq!((third.fraction_lost, third.cumulative_lost), (0, 0));
    }

    #[test]
    fn extended_highest_counts_cycles() {
        let t = Instant::now();
        let mut stats = ReceiverStats::new(1, 8_000);
        feed(&mut stats, &[65533, 65534, 65535, 0, 1, 65532], t);
        assert_eq!(stats.extended_highest_seq(), 65536 + 1);
        assert_eq!(stats.expected(), 4, "65534 ..= 65537");
        assert_eq!(stats.received(), 5, "65532 is a reordered old packet, still counted");
    }

    #[test]
    fn a_large_jump_is_held_until_confirmed_then_restarts_the_counts() {
        let t = Instant::now();
        let mut stats = ReceiverStats::new(1, 48_000);
        feed(&mut stats, &[1, 2, 3], t);
        assert_eq!(feed(&mut stats, &[40_000], t), [SeqStatus::Invalid]);
        assert_eq!(feed(&mut stats, &[4], t), [SeqStatus::Valid], "a stray packet changes nothing");
        assert_eq!(stats.extended_highest_seq(), 4);
        assert_eq!(
            feed(&mut stats, &[50_000, 50_001, 50_002], t),
            [SeqStatus::Invalid, SeqStatus::Restarted, SeqStatus::Valid]
        );
        assert_eq!((stats.extended_highest_seq(), stats.expected(), stats.received()), (50_002, 2, 2));
    }

    /// A synthetic 48 kHz stream of 20 ms frames, each arriving with uniform ±N ms noise.
    /// For independent uniform noise, E|D| = E|X − Y| = 2N/3, which §A.8 tracks.
    fn measured_jitter(clock_rate: u32, noise_ms: f64, seed: u64) -> (f64, f64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Instant::now() + Duration::from_secs(1);
        let mut stats = ReceiverStats::new(1, clock_rate);
        let samples = clock_rate / 50;
        let mut sum = 0.0;
        let mut reports = 0;
        for i in 0..30_000u32 {
            let offset_ms = rng.random_range(-noise_ms..=noise_ms);
            let arrival = start + Duration::from_millis(u64::from(i) * 20) + Duration::from_secs(1);
            let arrival = if offset_ms >= 0.0 {
                arrival + Duration::from_secs_f64(offset_ms / 1000.0)
            } else {
                arrival - Duration::from_secs_f64(-offset_ms / 1000.0)
            };
            stats.on_rtp(&header(i as u16, 12_345u32.wrapping_add(i * samples)), arrival);
            if i > 1_000 && i % 50 == 0 {
                sum += stats.jitter_duration().as_secs_f64() * 1000.0;
                reports += 1;
            }
        }
        (sum / f64::from(reports), 2.0 * noise_ms / 3.0)
    }

    #[test]
    fn jitter_converges_to_the_injected_noise() {
        for (rate, noise) in [(48_000, 10.0), (8_000, 10.0), (48_000, 3.0)] {
            let (measured, expected) = measured_jitter(rate, noise, 11);
            // Tolerance: 5 %, well above the estimator's averaging error over 29 000 packets.
            assert!(
                (measured - expected).abs() < expected * 0.05,
                "{rate} Hz ±{noise} ms: {measured:.3} ms vs {expected:.3}"
            );
        }
    }

    #[test]
    fn jitter_is_zero_for_a_perfectly_paced_stream_and_in_timestamp_units() {
        let start = Instant::now();
        let mut stats = ReceiverStats::new(1, 8_000);
        for i in 0..200u16 {
            stats.on_rtp(&header(i, u32::from(i) * 160), start + Duration::from_millis(u64::from(i) * 20));
        }
        assert_eq!(stats.jitter(), 0);
        // One packet 10 ms late: |D| = 80 units at 8 kHz, so jitter jumps to 80/16 = 5.
        stats.on_rtp(&header(200, 200 * 160), start + Duration::from_millis(200 * 20 + 10));
        assert_eq!(stats.jitter(), 5);
    }

    #[test]
    fn report_block_carries_lsr_and_dlsr_of_the_last_sender_report() {
        let t = Instant::now();
        let mut stats = ReceiverStats::new(9, 48_000);
        feed(&mut stats, &[1, 2], t);
        assert_eq!(stats.report_block(t).unwrap().last_sr, 0);
        stats.on_sender_report(NtpTime(0xaaaa_bbbb_cccc_dddd), t);
        let block = stats.report_block(t + Duration::from_millis(1_500)).unwrap();
        assert_eq!(block.ssrc, 9);
        assert_eq!(block.last_sr, 0xbbbb_cccc);
        assert_eq!(block.delay_since_last_sr, 98_304, "1.5 s in 1/65536 s");
    }

    #[test]
    fn hostile_sequences_and_timestamps_never_panic() {
        let mut rng = StdRng::seed_from_u64(2);
        let t = Instant::now();
        let mut stats = ReceiverStats::new(1, 48_000);
        for i in 0..50_000u64 {
            let arrival = t + Duration::from_micros(rng.random_range(0..i * 100 + 1));
            stats.on_rtp(&header(rng.random(), rng.random()), arrival);
            if i % 97 == 0 {
                let _ = stats.report_block(arrival);
            }
        }
        let _ = (stats.lost(), stats.jitter_duration());
    }
}
