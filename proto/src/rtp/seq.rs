//! Wrapping RTP sequence-number arithmetic (RFC 3550 §5.1, §A.1).
//!
//! Sequence numbers are 16 bits and wrap. Two numbers are ordered by their signed 16-bit
//! difference, which is well defined for any pair (unlike `rtp_rs::Seq`'s `Ord`, which its own
//! docs call non-transitive). [`SeqCounter`] extends them to the 32-bit "extended sequence
//! number" of RFC 3550 report blocks: cycles × 65536 + seq.

/// The signed distance `a − b` between two sequence numbers, taking wrap-around into account.
///
/// `seq_delta(0, 65535) == 1`; a distance of exactly 32768 reads as −32768.
pub fn seq_delta(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// Whether sequence number `a` comes after `b` (by less than half the number space).
pub fn seq_newer(a: u16, b: u16) -> bool {
    seq_delta(a, b) > 0
}

/// The signed distance `a − b` between two extended (32-bit) sequence numbers.
pub fn ext_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Extends 16-bit sequence numbers to 32 bits as packets arrive, in any order.
///
/// The first number seen starts cycle 0. Each later one is placed at the signed 16-bit distance
/// from the highest seen so far, so a late packet from before a wrap keeps its old cycle. The
/// result wraps at 2³², like the RFC 3550 extended highest sequence number; compare two results
/// with [`ext_delta`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounter {
    highest: Option<u32>,
}

impl SeqCounter {
    /// A counter that has seen no packet yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extends `seq`, moving the highest number forward if it is newer.
    pub fn extend(&mut self, seq: u16) -> u32 {
        let Some(highest) = self.highest else {
            self.highest = Some(u32::from(seq));
            return u32::from(seq);
        };
        let delta = seq_delta(seq, highest as u16);
        let extended = highest.wrapping_add_signed(i32::from(delta));
        if delta > 0 {
            self.highest = Some(extended);
        }
        extended
    }

    /// Extends `seq` without recording it.
    pub fn peek(&self, seq: u16) -> u32 {
        match self.highest {
            None => u32::from(seq),
            Some(highest) => highest.wrapping_add_signed(i32::from(seq_delta(seq, highest as u16))),
        }
    }

    /// The highest extended sequence number seen, if any.
    pub fn highest(&self) -> Option<u32> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_across_the_wrap() {
        assert!(seq_newer(0, 65535));
        assert!(seq_newer(5, 65530));
        assert!(!seq_newer(65535, 0));
        assert!(!seq_newer(7, 7));
        assert_eq!(seq_delta(0, 65535), 1);
        assert_eq!(seq_delta(65535, 0), -1);
    }

    /// rtp-rs's `Seq` ordering is not transitive (a < b, b < c, yet not a < c). Ours is not an
    /// `Ord` at all: it answers "newer" for a pair, and stays consistent across 32767 steps.
    #[test]
    fn newer_is_consistent_where_rtp_rs_seq_ord_is_not() {
        let (a, b, c) = (0u16, 0x7fff, 0xfffe);
        let (ra, rb, rc) = (rtp_rs::Seq::from(a), rtp_rs::Seq::from(b), rtp_rs::Seq::from(c));
        // rtp-rs: a < b and b < c but a > c.
        assert!(ra < rb && rb < rc && ra > rc);
        // Ours reads the same pairs by the signed distance, which is what wrap-around means.
        assert!(seq_newer(b, a));
        assert!(seq_newer(c, b));
        assert!(seq_newer(a, c), "0 follows 0xfffe by two steps");
    }

    #[test]
    fn counter_extends_across_wraps_and_keeps_late_packets_in_their_cycle() {
        let mut counter = SeqCounter::new();
        assert_eq!(counter.extend(65534), 65534);
        assert_eq!(counter.extend(65535), 65535);
        assert_eq!(counter.extend(0), 65536);
        assert_eq!(counter.extend(1), 65537);
        // A reordered packet from before the wrap stays in cycle 0.
        assert_eq!(counter.extend(65533), 65533);
        assert_eq!(counter.highest(), Some(65537));
        for seq in 2..=u16::MAX {
            counter.extend(seq);
        }
        assert_eq!(counter.extend(0), 2 * 65536);
    }

    #[test]
    fn counter_places_a_packet_from_before_the_first_behind_it() {
        let mut counter = SeqCounter::new();
        assert_eq!(counter.extend(0), 0);
        let early = counter.extend(65535);
        assert_eq!(ext_delta(early, 0), -1);
        assert_eq!(counter.highest(), Some(0));
        assert_eq!(counter.peek(1), 1);
    }
}
