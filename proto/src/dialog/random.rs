//! The random values a user agent mints (RFC 3261 §8.1.1.4, §8.1.1.5, §8.1.1.7, §19.3) and the
//! glare back-off (§14.1), all drawn from the caller's `RngCore`.

use std::time::Duration;

use rand::{Rng, RngCore};

use crate::transaction::MAGIC_COOKIE;

/// A fresh tag for From or To (§19.3: at least 32 random bits; this has 64).
pub fn new_tag<R: RngCore + ?Sized>(rng: &mut R) -> String {
    format!("{:016x}", rng.next_u64())
}

/// A fresh RFC 3261 branch for a new request's top Via (§8.1.1.7): the magic cookie and 64
/// random bits.
pub fn new_branch<R: RngCore + ?Sized>(rng: &mut R) -> String {
    format!("{MAGIC_COOKIE}{:016x}", rng.next_u64())
}

/// A fresh Call-ID (§8.1.1.4): 128 random bits in hex, naming no host.
pub fn new_call_id<R: RngCore + ?Sized>(rng: &mut R) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// A first CSeq number (§8.1.1.5): random, and below 2^30 so that a dialog's numbers stay under
/// the 2^31 bound for its first billion requests.
pub fn initial_cseq<R: RngCore + ?Sized>(rng: &mut R) -> u32 {
    rng.random_range(1..1 << 30)
}

/// How long to wait before retrying an INVITE that got 491 (§14.1), in units of 10 ms: 2.1–4 s
/// when we own the dialog's Call-ID (we sent the INVITE that made it), else 0–2 s, so the two
/// sides retry at different times.
pub fn glare_retry_delay<R: RngCore + ?Sized>(owns_call_id: bool, rng: &mut R) -> Duration {
    let tens_of_ms = if owns_call_id { rng.random_range(210..=400) } else { rng.random_range(0..=200) };
    Duration::from_millis(tens_of_ms * 10)
}
