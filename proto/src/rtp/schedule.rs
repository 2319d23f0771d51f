//! When to send RTCP, and which report (RFC 3550 §6.2, §6.3, §A.7).
//!
//! [`RtcpScheduler`] computes the report interval of §6.3.1: the members' share of 5 % of the
//! session bandwidth (a quarter of it for senders when they are few), at least the minimum
//! interval (5 s, halved before the first report), multiplied by a random factor in [0.5, 1.5]
//! from the caller's rng and divided by e − 3/2 as §6.3.1 compensates for timer reconsideration.
//! For a two-party call this gives a report every 2.1–6.2 s, about 4.1 s on average. A report is
//! an SR if we sent RTP since the previous one, else an RR; stopping asks for a final report with
//! a BYE, which a group under 50 members sends at once (§6.3.7).

use std::time::{Duration, Instant};

use rand::RngCore;

/// e − 3/2, the §6.3.1 compensation for timer reconsideration.
const COMPENSATION: f64 = std::f64::consts::E - 1.5;
/// IPv4 + UDP header octets, counted in the average RTCP size (§6.3.3).
const UDP_IP_OVERHEAD: f64 = 28.0;

/// Scheduler settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtcpConfig {
    /// Session bandwidth in bits per second, headers included (SDP `b=AS`, or the codec's rate
    /// plus overhead); RTCP takes 5 % of it.
    pub session_bandwidth: u32,
    /// The minimum report interval, 5 s by default (§6.2).
    pub min_interval: Duration,
}

impl Default for RtcpConfig {
    fn default() -> Self {
        RtcpConfig { session_bandwidth: 80_000, min_interval: Duration::from_secs(5) }
    }
}

/// Which report leads the compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// We sent RTP since the last report: SR.
    Sender,
    /// We did not: RR.
    Receiver,
}

/// Decides when the next RTCP compound packet is due.
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    config: RtcpConfig,
    members: u32,
    senders: u32,
    we_sent: bool,
    initial: bool,
    avg_rtcp_size: f64,
    next: Option<Instant>,
}

impl RtcpScheduler {
    /// A scheduler for a two-party session starting at `now`; the first report is due after
    /// half the usual interval.
    pub fn new<R: RngCore + ?Sized>(config: RtcpConfig, now: Instant, rng: &mut R) -> Self {
        let mut scheduler = RtcpScheduler {
            config,
            members: 2,
            senders: 2,
            we_sent: false,
            initial: true,
            avg_rtcp_size: 100.0,
            next: None,
        };
        scheduler.next = Some(now + scheduler.interval(rng));
        scheduler
    }

    /// Records that we sent an RTP packet, so the next report is an SR.
    pub fn on_rtp_sent(&mut self) {
        self.we_sent = true;
    }

    /// Updates the session size used for the interval: `members` sources including us, of which
    /// `senders` sent RTP recently.
    pub fn set_members(&mut self, members: u32, senders: u32) {
        self.members = members.max(1);
        self.senders = senders.min(self.members);
    }

    /// Records an RTCP compound of `len` bytes sent or received, for the average size (§6.3.3).
    pub fn on_rtcp_size(&mut self, len: usize) {
        self.avg_rtcp_size += (len as f64 + UDP_IP_OVERHEAD - self.avg_rtcp_size) / 16.0;
    }

    /// When the next report is due; `None` once stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Returns the report to send if one is due at `now`, and schedules the next.
    pub fn handle_timeout<R: RngCore + ?Sized>(&mut self, now: Instant, rng: &mut R) -> Option<ReportKind> {
        if now < self.next? {
            return None;
        }
        let kind = self.take_kind();
        self.initial = false;
        self.next = Some(now + self.interval(rng));
        Some(kind)
    }

    /// Stops reporting; returns the report to send with the BYE.
    pub fn stop(&mut self) -> ReportKind {
        self.next = None;
        self.take_kind()
    }

    fn take_kind(&mut self) -> ReportKind {
        let kind = if self.we_sent { ReportKind::Sender } else { ReportKind::Receiver };
        self.we_sent = false;
        kind
    }

    /// §6.3.1 / §A.7 `rtcp_interval`.
    fn interval<R: RngCore + ?Sized>(&self, rng: &mut R) -> Duration {
        let min = if self.initial { self.config.min_interval / 2 } else { self.config.min_interval };
        let rtcp_bw = f64::from(self.config.session_bandwidth) / 8.0 * 0.05;
        let (members, senders) = (f64::from(self.members), f64::from(self.senders));
        let (n, share) = if senders <= members * 0.25 {
            if self.we_sent { (senders, 0.25) } else { (members - senders, 0.75) }
        } else {
            (members, 1.0)
        };
        let deterministic = if rtcp_bw > 0.0 { n * self.avg_rtcp_size / (share * rtcp_bw) } else { f64::INFINITY };
        let deterministic = deterministic.clamp(min.as_secs_f64(), 24.0 * 3600.0);
        let factor = 0.5 + f64::from(rng.next_u32()) / f64::from(u32::MAX);
        Duration::from_secs_f64(deterministic * factor / COMPENSATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn bounds(min: f64) -> (Duration, Duration) {
        (Duration::from_secs_f64(min * 0.5 / COMPENSATION), Duration::from_secs_f64(min * 1.5 / COMPENSATION))
    }

    #[test]
    fn first_report_after_half_the_minimum_then_randomised_around_five_seconds() {
        let mut rng = StdRng::seed_from_u64(8);
        let t0 = Instant::now();
        let mut s = RtcpScheduler::new(RtcpConfig::default(), t0, &mut rng);
        let first = s.poll_timeout().unwrap() - t0;
        let (lo, hi) = bounds(2.5);
        assert!(first >= lo && first <= hi, "{first:?}");

        let (lo, hi) = bounds(5.0);
        let mut now = s.poll_timeout().unwrap();
        let mut intervals = Vec::new();
        for _ in 0..400 {
            assert!(s.handle_timeout(now, &mut rng).is_some());
            let next = s.poll_timeout().unwrap();
            let interval = next - now;
            assert!(interval >= lo && interval <= hi, "{interval:?}");
            intervals.push(interval.as_secs_f64());
            now = next;
        }
        let mean = intervals.iter().sum::<f64>() / intervals.len() as f64;
        assert!((mean - 5.0 / COMPENSATION).abs() < 0.2, "mean {mean}");
        let spread =
            intervals.iter().cloned().fold(f64::MIN, f64::max) - intervals.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 3.0, "randomised over most of 0.5–1.5×: spread {spread}");
    }

    #[test]
    fn nothing_is_due_before_the_timeout() {
        let mut rng = StdRng::seed_from_u64(9);
        let t0 = Instant::now();
        let mut s = RtcpScheduler::new(RtcpConfig::default(), t0, &mut rng);
        let due = s.poll_timeout().unwrap();
        assert_eq!(s.handle_timeout(due - Duration::from_millis(1), &mut rng), None);
        assert_eq!(s.poll_timeout(), Some(due));
    }

    #[test]
    fn sender_report_only_when_we_sent_since_the_last_report() {
        let mut rng = StdRng::seed_from_u64(10);
        let t0 = Instant::now();
        let mut s = RtcpScheduler::new(RtcpConfig::default(), t0, &mut rng);
        assert_eq!(s.handle_timeout(s.poll_timeout().unwrap(), &mut rng), Some(ReportKind::Receiver));
        s.on_rtp_sent();
        assert_eq!(s.handle_timeout(s.poll_timeout().unwrap(), &mut rng), Some(ReportKind::Sender));
        assert_eq!(s.handle_timeout(s.poll_timeout().unwrap(), &mut rng), Some(ReportKind::Receiver));
    }

    #[test]
    fn stop_gives_the_report_for_the_bye_and_ends_scheduling() {
        let mut rng = StdRng::seed_from_u64(11);
        let t0 = Instant::now();
        let mut s = RtcpScheduler::new(RtcpConfig::default(), t0, &mut rng);
        s.on_rtp_sent();
        assert_eq!(s.stop(), ReportKind::Sender);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.handle_timeout(t0 + Duration::from_secs(60), &mut rng), None);
    }

    #[test]
    fn a_large_low_bandwidth_session_reports_less_often_than_the_minimum() {
        let mut rng = StdRng::seed_from_u64(12);
        let t0 = Instant::now();
        let config = RtcpConfig { session_bandwidth: 16_000, ..RtcpConfig::default() };
        let mut s = RtcpScheduler::new(config, t0, &mut rng);
        s.set_members(40, 30);
        for _ in 0..16 {
            s.on_rtcp_size(200);
        }
        let now = s.poll_timeout().unwrap();
        s.handle_timeout(now, &mut rng);
        // 40 members × ~210 octets / (5 % of 2000 octets/s) ≈ 84 s before randomisation.
        let interval = s.poll_timeout().unwrap() - now;
        assert!(interval > Duration::from_secs(20), "{interval:?}");
    }
}
