//! A bounded single-producer single-consumer queue of samples between a sound card's real-time
//! callback and the phone's 20 ms media clock.
//!
//! Lock-free: each slot is an atomic, the writer publishes with a release store of its index
//! and the reader frees slots with a release store of its own, so neither side ever waits or
//! allocates. Latency is bounded by the reader: [`SampleReader::read`] first drops the oldest
//! samples beyond its delay limit (the producer ran ahead, or the reader was late) and then
//! zero-fills whatever is missing (the producer fell behind). A writer that finds the queue
//! full drops what does not fit. Every dropped and zero-filled sample is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicI16, AtomicU64, AtomicUsize, Ordering};

/// What a queue has lost and invented so far, in samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingCounts {
    /// Samples dropped: the oldest beyond the delay limit, or new ones that found the queue full.
    pub dropped: u64,
    /// Samples of silence played or sent because the queue ran dry.
    pub zero_filled: u64,
}

#[derive(Debug)]
struct Shared {
    slots: Box<[AtomicI16]>,
    /// Samples ever read; only the reader stores it.
    head: AtomicUsize,
    /// Samples ever written; only the writer stores it.
    tail: AtomicUsize,
    dropped: AtomicU64,
    zero_filled: AtomicU64,
}

impl Shared {
    fn counts(&self) -> RingCounts {
        RingCounts {
            dropped: self.dropped.load(Ordering::Relaxed),
            zero_filled: self.zero_filled.load(Ordering::Relaxed),
        }
    }
}

/// The writing end.
#[derive(Debug)]
pub struct SampleWriter {
    shared: Arc<Shared>,
}

/// The reading end.
#[derive(Debug)]
pub struct SampleReader {
    shared: Arc<Shared>,
    max_delay: usize,
}

/// A queue of at most `capacity` samples whose reader keeps at most `max_delay` queued after
/// each read (dropping the oldest beyond that).
pub fn sample_ring(capacity: usize, max_delay: usize) -> (SampleWriter, SampleReader) {
    let capacity = capacity.max(1);
    let shared = Arc::new(Shared {
        slots: (0..capacity).map(|_| AtomicI16::new(0)).collect(),
        head: AtomicUsize::new(0),
        tail: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
        zero_filled: AtomicU64::new(0),
    });
    (SampleWriter { shared: shared.clone() }, SampleReader { shared, max_delay: max_delay.min(capacity) })
}

impl SampleWriter {
    /// Appends `samples`; those that do not fit are dropped and counted. Returns how many went in.
    pub fn write(&mut self, samples: &[i16]) -> usize {
        let s = &*self.shared;
        let capacity = s.slots.len();
        let tail = s.tail.load(Ordering::Relaxed);
        let queued = tail.wrapping_sub(s.head.load(Ordering::Acquire));
        let n = samples.len().min(capacity.saturating_sub(queued));
        for (i, &x) in samples.iter().take(n).enumerate() {
            if let Some(slot) = s.slots.get(tail.wrapping_add(i) % capacity) {
                slot.store(x, Ordering::Relaxed);
            }
        }
        s.tail.store(tail.wrapping_add(n), Ordering::Release);
        s.dropped.fetch_add((samples.len() - n) as u64, Ordering::Relaxed);
        n
    }

    /// What the queue has dropped and zero-filled so far.
    pub fn counts(&self) -> RingCounts {
        self.shared.counts()
    }
}

impl SampleReader {
    /// Fills `out` with the oldest queued samples, after dropping any that would leave more
    /// than the delay limit queued; zero-fills and counts what is missing.
    pub fn read(&mut self, out: &mut [i16]) {
        let s = &*self.shared;
        let capacity = s.slots.len();
        let mut head = s.head.load(Ordering::Relaxed);
        let queued = s.tail.load(Ordering::Acquire).wrapping_sub(head);
        let excess = queued.saturating_sub(out.len() + self.max_delay);
        head = head.wrapping_add(excess);
        let n = out.len().min(queued - excess);
        for (i, x) in out.iter_mut().enumerate() {
            *x = match i < n {
                true => s.slots.get(head.wrapping_add(i) % capacity).map_or(0, |slot| slot.load(Ordering::Relaxed)),
                false => 0,
            };
        }
        s.head.store(head.wrapping_add(n), Ordering::Release);
        s.dropped.fetch_add(excess as u64, Ordering::Relaxed);
        s.zero_filled.fetch_add((out.len() - n) as u64, Ordering::Relaxed);
    }

    /// Samples queued now.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        let s = &*self.shared;
        s.tail.load(Ordering::Acquire).wrapping_sub(s.head.load(Ordering::Relaxed))
    }

    /// What the queue has dropped and zero-filled so far.
    pub fn counts(&self) -> RingCounts {
        self.shared.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_out_in_order_across_the_wrap() {
        let (mut w, mut r) = sample_ring(8, 8);
        let mut out = [0i16; 5];
        for round in 0..10i16 {
            let block: Vec<i16> = (0..5).map(|i| round * 5 + i).collect();
            assert_eq!(w.write(&block), 5);
            r.read(&mut out);
            assert_eq!(out.as_slice(), block.as_slice());
        }
        assert_eq!(r.counts(), RingCounts::default());
    }

    #[test]
    fn a_full_queue_drops_and_counts_what_does_not_fit() {
        let (mut w, mut r) = sample_ring(4, 4);
        assert_eq!(w.write(&[1, 2, 3]), 3);
        assert_eq!(w.write(&[4, 5, 6]), 1);
        assert_eq!(w.counts(), RingCounts { dropped: 2, zero_filled: 0 });
        let mut out = [0i16; 4];
        r.read(&mut out);
        assert_eq!(out, [1, 2, 3, 4]);
    }

    #[test]
    fn the_reader_drops_the_oldest_beyond_its_delay_limit() {
        let (mut w, mut r) = sample_ring(32, 2);
        w.write(&(1..=10).collect::<Vec<i16>>());
        let mut out = [0i16; 3];
        r.read(&mut out);
        // 10 queued, 3 read, at most 2 may stay: the 5 oldest go.
        assert_eq!(out, [6, 7, 8]);
        assert_eq!(r.queued(), 2);
        assert_eq!(r.counts(), RingCounts { dropped: 5, zero_filled: 0 });
    }

    #[test]
    fn an_empty_queue_zero_fills_and_counts_the_shortfall() {
        let (mut w, mut r) = sample_ring(16, 16);
        w.write(&[7, 7]);
        let mut out = [1i16; 5];
        r.read(&mut out);
        assert_eq!(out, [7, 7, 0, 0, 0]);
        r.read(&mut out);
        assert_eq!(out, [0; 5]);
        assert_eq!(r.counts(), RingCounts { dropped: 0, zero_filled: 8 });
    }

    #[test]
    fn a_writer_thread_and_a_reader_thread_agree_on_every_sample() {
        let (mut w, mut r) = sample_ring(64, 64);
        const TOTAL: usize = 20_000;
        let writer = std::thread::spawn(move || {
            let mut next = 0usize;
            while next < TOTAL {
                let block: Vec<i16> = (next..(next + 7).min(TOTAL)).map(|i| (i % 30_000) as i16).collect();
                next += w.write(&block);
                std::thread::yield_now();
            }
        });
        let mut seen = 0usize;
        let mut one = [0i16; 1];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen < TOTAL && std::time::Instant::now() < deadline {
            if r.queued() > 0 {
                r.read(&mut one);
                assert_eq!(one[0], (seen % 30_000) as i16, "sample {seen}");
                seen += 1;
            }
        }
        writer.join().unwrap();
        assert_eq!(seen, TOTAL);
        assert_eq!(r.counts().zero_filled, 0);
    }
}
