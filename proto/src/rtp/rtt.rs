//! Round-trip time from report blocks (RFC 3550 §6.4.1).
//!
//! A report block about us echoes the middle 32 bits of our last SR (LSR) and how long the far
//! end held it (DLSR). [`rtt_from_lsr`] is the RFC's arithmetic on NTP time: arrival − LSR − DLSR.
//! [`RttEstimator`] does the same against the monotonic `Instant` at which each SR was sent,
//! so a wall-clock step between sending and receiving does not disturb it.

use std::time::{Duration, Instant};

use super::ntp::{NtpTime, from_ntp_short};
use super::rtcp::ReportBlock;

/// SRs remembered; reports answer one of the last few.
const REMEMBERED: usize = 8;

/// RTT from a report block that arrived at wall-clock `arrival`: `None` if the far end has not
/// seen an SR from us (LSR 0) or the result would be negative.
pub fn rtt_from_lsr(arrival: NtpTime, last_sr: u32, delay_since_last_sr: u32) -> Option<Duration> {
    if last_sr == 0 {
        return None;
    }
    let units = arrival.middle32().wrapping_sub(last_sr).wrapping_sub(delay_since_last_sr) as i32;
    u32::try_from(units).ok().map(from_ntp_short)
}

/// Remembers the SRs we sent and measures RTT from the report blocks that answer them.
#[derive(Debug, Clone, Default)]
pub struct RttEstimator {
    sent: [Option<(u32, Instant)>; REMEMBERED],
    next: usize,
    latest: Option<Duration>,
}

impl RttEstimator {
    /// An estimator that has sent nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that an SR carrying `ntp` left at `now`.
    pub fn on_sender_report_sent(&mut self, ntp: NtpTime, now: Instant) {
        self.sent[self.next] = Some((ntp.middle32(), now));
        self.next = (self.next + 1) % REMEMBERED;
    }

    /// Measures RTT from a report block about our SSRC that arrived at `now`: time since the SR
    /// it echoes, less the far end's DLSR. `None` if it echoes no SR we remember, or the DLSR is
    /// longer than the time elapsed.
    pub fn on_report_block(&mut self, block: &ReportBlock, now: Instant) -> Option<Duration> {
        if block.last_sr == 0 {
            return None;
        }
        let (_, sent_at) = self.sent.iter().flatten().find(|(lsr, _)| *lsr == block.last_sr)?;
        let rtt = now.checked_duration_since(*sent_at)?.checked_sub(from_ntp_short(block.delay_since_last_sr))?;
        self.latest = Some(rtt);
        Some(rtt)
    }

    /// The most recent measurement.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::ntp::to_ntp_short;

    fn block(last_sr: u32, dlsr: Duration) -> ReportBlock {
        ReportBlock { last_sr, delay_since_last_sr: to_ntp_short(dlsr), ..ReportBlock::default() }
    }

    #[test]
    fn rtt_is_elapsed_since_our_sr_less_the_far_ends_hold() {
        let t0 = Instant::now();
        let ntp = NtpTime(0xeeb1_5278_e288_df37);
        let mut rtt = RttEstimator::new();
        rtt.on_sender_report_sent(ntp, t0);
        let measured =
            rtt.on_report_block(&block(ntp.middle32(), Duration::from_millis(100)), t0 + Duration::from_millis(150));
        let measured = measured.unwrap();
        assert!(measured.abs_diff(Duration::from_millis(50)) < Duration::from_micros(20), "{measured:?}");
        assert_eq!(rtt.latest(), Some(measured));
    }

    #[test]
    fn reports_echoing_an_unknown_sr_or_none_measure_nothing() {
        let t0 = Instant::now();
        let mut rtt = RttEstimator::new();
        rtt.on_sender_report_sent(NtpTime(1 << 32), t0);
        assert_eq!(rtt.on_report_block(&block(0, Duration::ZERO), t0), None);
        assert_eq!(rtt.on_report_block(&block(0x1234, Duration::ZERO), t0), None);
        // A DLSR longer than the time since our SR is nonsense, not a negative RTT.
        let bogus = block(NtpTime(1 << 32).middle32(), Duration::from_secs(5));
        assert_eq!(rtt.on_report_block(&bogus, t0 + Duration::from_secs(1)), None);
        assert_eq!(rtt.latest(), None);
    }

    #[test]
    fn older_srs_are_still_matched() {
        let t0 = Instant::now();
        let mut rtt = RttEstimator::new();
        for i in 0..5u64 {
            rtt.on_sender_report_sent(NtpTime((100 + i) << 32), t0 + Duration::from_secs(5 * i));
        }
        let echo_second = block(NtpTime(101 << 32).middle32(), Duration::from_secs(1));
        let measured = rtt.on_report_block(&echo_second, t0 + Duration::from_secs(7)).unwrap();
        assert!(measured.abs_diff(Duration::from_secs(1)) < Duration::from_micros(20));
    }

    /// baresip's SR left at NTP 0xeeb15278_e288df37; the RR answering it (LSR 0x5278e288,
    /// DLSR 65/65536 s) arrived 1.164 ms later on loopback.
    #[test]
    fn rtt_from_a_real_phones_report_is_a_fraction_of_a_millisecond() {
        let sent = NtpTime(0xeeb1_5278_e288_df37);
        let arrival = NtpTime(sent.0 + ((1_164u64 << 32) / 1_000_000));
        let rtt = rtt_from_lsr(arrival, 0x5278_e288, 65).unwrap();
        assert!(rtt > Duration::ZERO && rtt < Duration::from_millis(1), "{rtt:?}");
        assert_eq!(rtt_from_lsr(arrival, 0, 65), None);
        assert_eq!(rtt_from_lsr(sent, 0x5278_e288, 65_536), None, "negative");
    }
}
