//! A per-source throttle of repeated authentication failures, against online password guessing
//! (RFC 7616 §5.4, RFC 3261 §26.2).
//!
//! Sources are keyed by IPv4 address, and by /64 prefix for IPv6, since one IPv6 host usually
//! holds a whole /64 and could otherwise take a fresh address per guess. Memory is bounded:
//! past the cap, the source whose record would lapse soonest is dropped.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Limits on failures and on memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failures within one window that lock the source out (at least 1).
    pub max_failures: u32,
    /// The window failures are counted in, starting at a source's first failure.
    pub window: Duration,
    /// How long a locked-out source stays locked.
    pub lockout: Duration,
    /// Hard cap on the sources tracked at once (at least 1).
    pub max_sources: usize,
}

impl Default for LimiterConfig {
    /// 10 failures within 60 s lock a source out for 5 minutes; 65 536 sources tracked at most.
    fn default() -> Self {
        LimiterConfig {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            max_sources: 65_536,
        }
    }
}

/// The longest window or lockout honoured; longer ones are shortened to this.
const MAX_SPAN: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, Clone, Copy)]
struct Source {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    /// When this record stops mattering: the end of its lockout or of its window.
    lapses: Instant,
}

/// Counts authentication failures per source and locks out sources that fail too often.
///
/// Feed it every failed and successful authentication and ask [`FailureLimiter::is_locked`]
/// before doing the work of verifying; a locked source should get a `403` or no answer.
#[derive(Debug)]
pub struct FailureLimiter {
    config: LimiterConfig,
    sources: HashMap<IpAddr, Source>,
    /// The same sources ordered by when they lapse, to drop the right one in O(log n).
    by_lapse: BTreeSet<(Instant, IpAddr)>,
}

/// The key a source is counted under: IPv4 as is (also when mapped into IPv6), IPv6 by /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl FailureLimiter {
    /// A limiter with `config`; zero counts are raised to 1 and spans over a year shortened.
    pub fn new(config: LimiterConfig) -> FailureLimiter {
        FailureLimiter {
            config: LimiterConfig {
                max_failures: config.max_failures.max(1),
                window: config.window.min(MAX_SPAN),
                lockout: config.lockout.min(MAX_SPAN),
                max_sources: config.max_sources.max(1),
            },
            sources: HashMap::new(),
            by_lapse: BTreeSet::new(),
        }
    }

    /// Counts a failed authentication from `ip` at `now`; the failure that reaches the limit
    /// starts the lockout. Failures while locked out do not extend it.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        self.forget_lapsed(now);
        let key = source_key(ip);
        let mut source = match self.sources.get(&key) {
            Some(s) if s.locked_until.is_some() => return,
            Some(s) => {
                self.by_lapse.remove(&(s.lapses, key));
                *s
            }
            None => {
                if self.sources.len() >= self.config.max_sources {
                    self.forget_first();
                }
                Source { window_start: now, failures: 0, locked_until: None, lapses: now }
            }
        };
        source.failures = source.failures.saturating_add(1);
        source.lapses = later(source.window_start, self.config.window);
        if source.failures >= self.config.max_failures {
            let until = later(now, self.config.lockout);
            source.locked_until = Some(until);
            source.lapses = until;
        }
        self.by_lapse.insert((source.lapses, key));
        self.sources.insert(key, source);
    }

    /// Forgets the failures of `ip` after it authenticated.
    pub fn record_success(&mut self, ip: IpAddr) {
        let key = source_key(ip);
        if let Some(s) = self.sources.remove(&key) {
            self.by_lapse.remove(&(s.lapses, key));
        }
    }

    /// True while `ip` is locked out.
    pub fn is_locked(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources.get(&source_key(ip)).and_then(|s| s.locked_until).is_some_and(|until| now < until)
    }

    /// How many sources are tracked (at most the configured cap).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    fn forget_lapsed(&mut self, now: Instant) {
        while self.by_lapse.first().is_some_and(|(lapses, _)| *lapses <= now) {
            self.forget_first();
        }
    }

    fn forget_first(&mut self) {
        if let Some((_, key)) = self.by_lapse.pop_first() {
            self.sources.remove(&key);
        }
    }
}

/// `t + d`; spans are capped at [`MAX_SPAN`], so this only falls back to `t` on a clock that
/// cannot represent a year ahead.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limiter(max_sources: usize) -> FailureLimiter {
        FailureLimiter::new(LimiterConfig {
            max_failures: 3,
            window: Duration::from_secs(10),
            lockout: Duration::from_secs(60),
            max_sources,
        })
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from_bits(n))
    }

    #[test]
    fn source_locks_out_at_the_limit_and_unlocks_after_the_lockout() {
        let mut l = limiter(100);
        let t0 = Instant::now();
        let ip = v4(0x0a00_0001);
        l.record_failure(ip, t0);
        l.record_failure(ip, t0 + Duration::from_secs(1));
        assert!(!l.is_locked(ip, t0 + Duration::from_secs(1)));
        l.record_failure(ip, t0 + Duration::from_secs(2));
        assert!(l.is_locked(ip, t0 + Duration::from_secs(2)));
        assert!(l.is_locked(ip, t0 + Duration::from_secs(61)));
        assert!(!l.is_locked(v4(0x0a00_0002), t0 + Duration::from_secs(2)), "others unaffected");

        // Failures during the lockout do not extend it.
        l.record_failure(ip, t0 + Duration::from_secs(50));
        assert!(!l.is_locked(ip, t0 + Duration::from_secs(62)));

        // After it lapses the source starts from zero.
        l.record_failure(ip, t0 + Duration::from_secs(63));
        assert!(!l.is_locked(ip, t0 + Duration::from_secs(63)));
    }

    #[test]
    fn failures_spread_beyond_the_window_never_lock() {
        let mut l = limiter(100);
        let t0 = Instant::now();
        let ip = v4(1);
        for i in 0..20 {
            let now = t0 + Duration::from_secs(6 * i);
            l.record_failure(ip, now);
            assert!(!l.is_locked(ip, now), "failure {i}");
        }
    }

    #[test]
    fn success_clears_the_count() {
        let mut l = limiter(100);
        let t0 = Instant::now();
        let ip = v4(1);
        l.record_failure(ip, t0);
        l.record_failure(ip, t0);
        l.record_success(ip);
        l.record_failure(ip, t0);
        assert!(!l.is_locked(ip, t0));
        assert_eq!(l.tracked_sources(), 1);
    }

    #[test]
    fn ipv6_sources_in_one_slash64_share_a_count() {
        let mut l = limiter(100);
        let t0 = Instant::now();
        let base = 0x2001_0db8_0000_0001_u128 << 64;
        for host in 1..=3u128 {
            l.record_failure(IpAddr::V6(Ipv6Addr::from_bits(base | host)), t0);
        }
        assert!(l.is_locked(IpAddr::V6(Ipv6Addr::from_bits(base | 99)), t0));
        let neighbour = IpAddr::V6(Ipv6Addr::from_bits(base + (1 << 64)));
        assert!(!l.is_locked(neighbour, t0));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        for _ in 0..3 {
            l.record_failure(mapped, t0);
        }
        assert!(l.is_locked(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), t0));
    }

    #[test]
    fn memory_stays_bounded_under_many_sources_and_keeps_lockouts() {
        let mut l = limiter(1000);
        let t0 = Instant::now();
        let attacker = v4(0xcb00_7101);
        for _ in 0..3 {
            l.record_failure(attacker, t0);
        }
        for n in 0..100_000u32 {
            l.record_failure(v4(n), t0 + Duration::from_millis(u64::from(n) / 10));
            assert!(l.tracked_sources() <= 1000);
        }
        // Sources with one failure lapse before a lockout does, so they were dropped first.
        assert!(l.is_locked(attacker, t0 + Duration::from_secs(9)));
    }

    #[test]
    fn lapsed_sources_are_forgotten() {
        let mut l = limiter(100);
        let t0 = Instant::now();
        for n in 0..50 {
            l.record_failure(v4(n), t0);
        }
        assert_eq!(l.tracked_sources(), 50);
        l.record_failure(v4(999), t0 + Duration::from_secs(11));
        assert_eq!(l.tracked_sources(), 1);
    }

    #[test]
    fn zero_limits_are_raised_to_one() {
        let mut l = FailureLimiter::new(LimiterConfig { max_failures: 0, max_sources: 0, ..LimiterConfig::default() });
        let t0 = Instant::now();
        l.record_failure(v4(1), t0);
        assert!(l.is_locked(v4(1), t0));
        l.record_failure(v4(2), t0);
        assert_eq!(l.tracked_sources(), 1);
    }
}
