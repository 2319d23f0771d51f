//! Admission control: who may start work now. Per-source token buckets for REGISTER and INVITE,
//! and the overload answer when the transaction table or the inbound queue is past its
//! high-water mark, or when a new message would wait too long in that queue (its length times
//! the recent time per message). A refused request gets 503 Service Unavailable with Retry-After (RFC 3261
//! §21.5.4, §20.33), which tells a well-behaved client when to come back.
//!
//! The table of sources is bounded: its memory is reserved once, idle sources (full buckets) are
//! swept out periodically, and when it is full an arbitrary entry makes room. An evicted source
//! starts again with full buckets, which costs it nothing it could not have had by waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use proto::sip::Method;

/// Rates and marks that decide admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionSettings {
    /// REGISTERs per second one source IP may send; 0 means unlimited.
    pub register_per_source_per_s: u32,
    /// INVITEs per second one source IP may send; 0 means unlimited.
    pub invite_per_source_per_s: u32,
    /// The most sources tracked at once.
    pub max_sources: usize,
    /// Live transactions at or above which new requests are refused.
    pub transactions_high_water: usize,
    /// Queued inbound messages at or above which new requests are refused.
    pub queue_high_water: usize,
    /// The wait in the inbound queue (queued messages times the recent time per message) at or
    /// above which new requests are refused. Below T1 (500 ms), answers, 503s included, reach
    /// clients before they retransmit and add to the load.
    pub max_queue_delay: Duration,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            register_per_source_per_s: 0,
            invite_per_source_per_s: 0,
            max_sources: 16_384,
            transactions_high_water: 90_000,
            queue_high_water: 3_072,
            max_queue_delay: Duration::from_millis(200),
        }
    }
}

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The server as a whole is past a high-water mark.
    Overloaded,
    /// This source exceeded its rate for the method; the seconds until a token is back.
    RateLimited { retry_after: u32 },
}

impl Refusal {
    /// The Retry-After value, in seconds.
    pub(crate) fn retry_after(self) -> u32 {
        match self {
            Refusal::Overloaded => OVERLOAD_RETRY_AFTER_SECS,
            Refusal::RateLimited { retry_after } => retry_after,
        }
    }

    /// The reason phrase of the 503.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Overloaded => "Service Unavailable (overloaded, retry later)",
            Refusal::RateLimited { .. } => "Service Unavailable (too many requests from your address)",
        }
    }
}

/// The Retry-After of an overload 503: long enough for a queue to drain.
const OVERLOAD_RETRY_AFTER_SECS: u32 = 5;

/// The weight of one new gap in the moving average of the time per message.
const PER_MESSAGE_WEIGHT: f64 = 1.0 / 32.0;

/// How often idle sources are swept out of the table.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One token bucket: up to one second's worth of requests in a burst.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f32,
    at: Instant,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Bucket {
        Bucket { tokens: rate as f32, at: now }
    }

    /// Refills for the time elapsed, then takes a token; `Err` holds the seconds until one is
    /// back.
    fn take(&mut self, rate: u32, now: Instant) -> Result<(), u32> {
        let rate = rate as f32;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f32();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / rate).ceil() as u32).max(1))
        }
    }

    fn is_full(&self, rate: u32, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f32() * rate as f32 >= rate as f32
    }
}

/// The buckets of one source IP.
#[derive(Debug, Clone, Copy)]
struct Source {
    register: Bucket,
    invite: Bucket,
}

/// Decides whether a new request may start work.
#[derive(Debug)]
pub(crate) struct Admission {
    settings: AdmissionSettings,
    sources: HashMap<IpAddr, Source>,
    backlog: usize,
    /// The backlog when the previous message was handled, and when that was.
    previous: Option<(usize, Instant)>,
    /// Moving average of the time per message, in seconds, from the gaps between messages
    /// handled back to back (the later one already queued when the earlier one started).
    per_message: f64,
    next_sweep: Option<Instant>,
}

impl Admission {
    pub(crate) fn new(settings: AdmissionSettings) -> Admission {
        let limited = settings.register_per_source_per_s > 0 || settings.invite_per_source_per_s > 0;
        let capacity = if limited { settings.max_sources.max(1) } else { 0 };
        Admission {
            settings,
            sources: HashMap::with_capacity(capacity),
            backlog: 0,
            previous: None,
            per_message: 0.0,
            next_sweep: None,
        }
    }

    /// Records how many inbound messages wait behind the one about to be handled.
    pub(crate) fn set_backlog(&mut self, queued: usize) {
        self.backlog = queued;
    }

    /// Records that a message starts being handled at `now` (after [`Admission::set_backlog`]).
    /// When others were queued as the previous one started, the server went from that one
    /// straight to this one, and the gap is the time a message takes.
    pub(crate) fn message_started(&mut self, now: Instant) {
        if let Some((queued, at)) = self.previous
            && queued > 0
        {
            let gap = now.saturating_duration_since(at).as_secs_f64();
            self.per_message += (gap - self.per_message) * PER_MESSAGE_WEIGHT;
        }
        self.previous = Some((self.backlog, now));
    }

    /// How long a message joining the queue now would wait, at the recent time per message.
    fn queue_delay(&self) -> Duration {
        Duration::from_secs_f64(self.backlog as f64 * self.per_message)
    }

    /// Whether a new `method` request from `ip` may proceed, given the live transactions.
    pub(crate) fn admit(
        &mut self,
        method: &Method,
        ip: IpAddr,
        transactions: usize,
        now: Instant,
    ) -> Result<(), Refusal> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if transactions >= self.settings.transactions_high_water
            || self.backlog >= self.settings.queue_high_water
            || self.queue_delay() >= self.settings.max_queue_delay
        {
            return Err(Refusal::Overloaded);
        }
        let rate = match method {
            Method::Register => self.settings.register_per_source_per_s,
            Method::Invite => self.settings.invite_per_source_per_s,
            _ => return Ok(()),
        };
        if rate == 0 {
            return Ok(());
        }
        let source = self.source(ip, now);
        let bucket = if *method == Method::Register { &mut source.register } else { &mut source.invite };
        bucket.take(rate, now).map_err(|retry_after| Refusal::RateLimited { retry_after })
    }

    /// When [`Admission::handle_timeout`] wants to sweep idle sources.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.sources.is_empty() { None } else { self.next_sweep }
    }

    /// Drops the sources whose buckets are full again: they are indistinguishable from new ones.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| t > now) {
            return;
        }
        let (register, invite) = (self.settings.register_per_source_per_s, self.settings.invite_per_source_per_s);
        self.sources.retain(|_, s| !(s.register.is_full(register, now) && s.invite.is_full(invite, now)));
        self.next_sweep = Some(now + SWEEP_EVERY);
    }

    /// How many sources are tracked.
    #[cfg(test)]
    pub(crate) fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    fn source(&mut self, ip: IpAddr, now: Instant) -> &mut Source {
        if !self.sources.contains_key(&ip)
            && self.sources.len() >= self.settings.max_sources.max(1)
            && let Some(victim) = self.sources.keys().next().copied()
        {
            self.sources.remove(&victim);
        }
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP_EVERY);
        }
        let (register, invite) = (self.settings.register_per_source_per_s, self.settings.invite_per_source_per_s);
        self.sources
            .entry(ip)
            .or_insert_with(|| Source { register: Bucket::full(register, now), invite: Bucket::full(invite, now) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(register: u32, invite: u32) -> Admission {
        Admission::new(AdmissionSettings {
            register_per_source_per_s: register,
            invite_per_source_per_s: invite,
            max_sources: 4,
            ..AdmissionSettings::default()
        })
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_source_gets_its_rate_then_waits_for_tokens() {
        let mut a = admission(5, 0);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(a.admit(&Method::Register, ip(1), 0, t0), Ok(()));
        }
        assert_eq!(a.admit(&Method::Register, ip(1), 0, t0), Err(Refusal::RateLimited { retry_after: 1 }));
        // Another source is not affected, nor another method.
        assert_eq!(a.admit(&Method::Register, ip(2), 0, t0), Ok(()));
        assert_eq!(a.admit(&Method::Invite, ip(1), 0, t0), Ok(()));
        // 200 ms later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(a.admit(&Method::Register, ip(1), 0, t1), Ok(()));
        assert!(a.admit(&Method::Register, ip(1), 0, t1).is_err());
    }

    #[test]
    fn sustained_flood_is_held_to_the_configured_rate() {
        let mut a = admission(0, 10);
        let t0 = Instant::now();
        let mut admitted = 0;
        // 1000 INVITEs/s for 10 s of simulated time.
        for i in 0..10_000u64 {
            if a.admit(&Method::Invite, ip(1), 0, t0 + Duration::from_millis(i)).is_ok() {
                admitted += 1;
            }
        }
        // One burst of 10 plus 10 per second.
        assert!((105..=111).contains(&admitted), "admitted {admitted}");
    }

    #[test]
    fn other_methods_and_unlimited_rates_pass() {
        let mut a = admission(0, 0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(a.admit(&Method::Register, ip(1), 0, t0), Ok(()));
            assert_eq!(a.admit(&Method::Options, ip(1), 0, t0), Ok(()));
        }
        assert_eq!(a.tracked_sources(), 0);
    }

    #[test]
    fn past_the_high_water_marks_new_requests_are_refused_but_cancel_passes() {
        let mut a = Admission::new(AdmissionSettings {
            transactions_high_water: 100,
            queue_high_water: 50,
            ..AdmissionSettings::default()
        });
        let t0 = Instant::now();
        assert_eq!(a.admit(&Method::Options, ip(1), 99, t0), Ok(()));
        assert_eq!(a.admit(&Method::Options, ip(1), 100, t0), Err(Refusal::Overloaded));
        assert_eq!(a.admit(&Method::Cancel, ip(1), 100, t0), Ok(()));
        a.set_backlog(50);
        assert_eq!(a.admit(&Method::Register, ip(1), 0, t0), Err(Refusal::Overloaded));
        a.set_backlog(49);
        assert_eq!(a.admit(&Method::Register, ip(1), 0, t0), Ok(()));
    }

    #[test]
    fn a_queue_that_would_hold_a_new_message_too_long_gets_refused() {
        let mut a = Admission::new(AdmissionSettings {
            max_queue_delay: Duration::from_millis(200),
            ..AdmissionSettings::default()
        });
        let mut now = Instant::now();
        // 400 messages handled back to back, 2 ms each, with 40 still queued: 80 ms of wait.
        for _ in 0..400 {
            a.set_backlog(40);
            a.message_started(now);
            now += Duration::from_millis(2);
        }
        assert_eq!(a.admit(&Method::Register, ip(1), 0, now), Ok(()));
        // 120 queued at 2 ms each is 240 ms: past the mark, though far below the length mark.
        a.set_backlog(120);
        assert_eq!(a.admit(&Method::Register, ip(1), 0, now), Err(Refusal::Overloaded));
        assert_eq!(a.admit(&Method::Cancel, ip(1), 0, now), Ok(()));
        // Gaps while nothing was queued are idle time, not work: they do not count.
        for _ in 0..400 {
            a.set_backlog(0);
            a.message_started(now);
            now += Duration::from_secs(1);
        }
        a.set_backlog(90);
        assert_eq!(a.admit(&Method::Register, ip(1), 0, now), Ok(()), "90 × 2 ms is 180 ms");
    }

    #[test]
    fn the_source_table_stays_bounded_and_idle_sources_are_swept() {
        let mut a = admission(2, 2);
        let t0 = Instant::now();
        for n in 0..200 {
            let _ = a.admit(&Method::Register, ip(n), 0, t0);
            assert!(a.tracked_sources() <= 4);
        }
        assert_eq!(a.tracked_sources(), 4);
        let sweep = a.poll_timeout().expect("a sweep is scheduled");
        a.handle_timeout(sweep);
        assert_eq!(a.tracked_sources(), 0);
        assert_eq!(a.poll_timeout(), None);
    }
}
