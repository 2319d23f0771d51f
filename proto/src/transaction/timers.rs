//! The deadlines of every transaction in one min-heap, with lazy deletion: a transaction keeps its
//! live deadlines in [`Deadlines`], and a heap entry that no longer equals them is skipped when it
//! reaches the top. Arming is O(log n), finding the earliest deadline O(1).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Which transaction a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TxnRef {
    Client(u64),
    Server(u64),
}

/// The two timers a transaction runs at most at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Slot {
    /// Timer A, E or G: retransmit over an unreliable transport.
    Retransmit,
    /// Every other timer (B, D, F, H, I, J, K, L, M): give up or end the transaction.
    Expire,
}

/// A transaction's armed deadlines; `None` means the timer is not running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Deadlines {
    pub(super) retransmit: Option<Instant>,
    pub(super) expire: Option<Instant>,
}

impl Deadlines {
    pub(super) fn get(&self, slot: Slot) -> Option<Instant> {
        match slot {
            Slot::Retransmit => self.retransmit,
            Slot::Expire => self.expire,
        }
    }

    pub(super) fn clear(&mut self, slot: Slot) {
        match slot {
            Slot::Retransmit => self.retransmit = None,
            Slot::Expire => self.expire = None,
        }
    }
}

/// Deadlines of all transactions, earliest first. Entries may be stale; see the module docs.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, TxnRef, Slot)>>,
}

impl TimerQueue {
    /// Pushes the deadlines of `after` that differ from `before` (those just armed).
    pub(super) fn arm(&mut self, txn: TxnRef, before: Deadlines, after: Deadlines) {
        for slot in [Slot::Retransmit, Slot::Expire] {
            if let Some(at) = after.get(slot).filter(|_| after.get(slot) != before.get(slot)) {
                self.heap.push(Reverse((at, txn, slot)));
            }
        }
    }

    /// The earliest entry, live or stale.
    pub(super) fn peek(&self) -> Option<(Instant, TxnRef, Slot)> {
        self.heap.peek().map(|Reverse(entry)| *entry)
    }

    /// Removes and returns the earliest entry.
    pub(super) fn pop(&mut self) -> Option<(Instant, TxnRef, Slot)> {
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TxnRef, Slot)> {
        if self.peek()?.0 <= now { self.pop() } else { None }
    }
}
