//! CRLF keep-alives on the phone's TCP or TLS flow to its registrar (RFC 5626 §4.4.1, §3.5.1).
//!
//! A phone reached back over the connection it opened must keep that connection, and every NAT
//! and firewall binding on its path, alive: it writes a double CRLF ("ping") on the flow at an
//! interval drawn afresh each time between 80% and 100% of the configured one (RFC 5626 §4.4.1
//! recommends 120 s for connection-oriented transports, hence 96 to 120 s by default), so that
//! many phones behind one NAT do not ping in step. The server's single-CRLF "pong" is swallowed
//! by the stream framer. UDP flows get none: STUN keep-alives are not implemented.

use std::time::{Duration, Instant};

use rand::Rng;

/// The recommended keep-alive interval for connection-oriented flows (RFC 5626 §4.4.1).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);

/// The double CRLF written on the flow.
pub(crate) const PING: &[u8] = b"\r\n\r\n";

/// When the next ping is due on one flow.
#[derive(Debug, Clone)]
pub(crate) struct KeepAlive {
    interval: Duration,
    next: Instant,
}

impl KeepAlive {
    /// Keep-alives every 80% to 100% of `interval`, the first one counted from `now`.
    pub(crate) fn start(interval: Duration, now: Instant, rng: &mut impl Rng) -> KeepAlive {
        let mut keepalive = KeepAlive { interval, next: now };
        keepalive.schedule(now, rng);
        keepalive
    }

    fn schedule(&mut self, now: Instant, rng: &mut impl Rng) {
        let wait = self.interval.mul_f64(rng.random_range(0.8..=1.0)).max(Duration::from_secs(1));
        self.next = now.checked_add(wait).unwrap_or(now);
    }

    /// When the next ping is due.
    pub(crate) fn deadline(&self) -> Instant {
        self.next
    }

    /// True when a ping is due at `now`; the next one is then scheduled.
    pub(crate) fn due(&mut self, now: Instant, rng: &mut impl Rng) -> bool {
        if now < self.next {
            return false;
        }
        self.schedule(now, rng);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn pings_come_between_80_and_100_percent_of_the_interval_and_not_in_step() {
        let mut rng = StdRng::seed_from_u64(5);
        let t0 = Instant::now();
        let mut keepalive = KeepAlive::start(DEFAULT_INTERVAL, t0, &mut rng);
        let (mut last, mut gaps) = (t0, Vec::new());
        for _ in 0..50 {
            let at = keepalive.deadline();
            assert!(!keepalive.due(at - Duration::from_millis(1), &mut rng), "not due before its deadline");
            assert!(keepalive.due(at, &mut rng));
            gaps.push(at - last);
            last = at;
        }
        let secs: Vec<f64> = gaps.iter().map(Duration::as_secs_f64).collect();
        assert!(secs.iter().all(|s| (96.0..=120.0).contains(s)), "gaps {secs:?}");
        let (min, max) = secs.iter().fold((f64::MAX, 0f64), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
        assert!(max - min > 10.0, "the gaps are randomised: {min:.1}..{max:.1} s");
    }
}
