//! An adaptive jitter buffer for fixed-duration audio frames, one frame per RTP packet.
//!
//! The network delivers packets early, late, out of order, twice or not at all; the audio device
//! wants one frame every frame period. [`JitterBuffer::push`] takes packets as they arrive and
//! [`JitterBuffer::pop`] gives the device what to play next as a [`Playout`]:
//!
//! - Frames come out in sequence order; a reordered packet that arrives before its turn plays in
//!   its place, one that arrives after is counted late and discarded, a duplicate is dropped.
//! - A frame that is due but absent while later ones have arrived is lost:
//!   [`Playout::Missing`] carries the next packet if it is here, so an Opus decoder can rebuild
//!   the lost frame from its in-band FEC, or else conceal it.
//! - The buffer aims to hold `target = clamp(k · jitter + frame, min, max)`, where jitter is the
//!   RFC 3550 §6.4.1 interarrival jitter of the arrivals against their timestamps. The depth is
//!   averaged over the last fraction of a second; held above target + one frame for half a
//!   second, one frame is dropped (compress); held below target − half a frame, one
//!   [`Playout::Stretch`] is inserted. The same loop absorbs the sender's clock running fast or
//!   slow against ours, so a long call neither grows its delay nor runs dry. A depth far above
//!   `max` (after a network stall) is cut back to the target at once.
//! - When the buffer runs dry, it conceals until it has refilled to the target. A jump of the
//!   sequence number out of the window, or of the timestamp far from the arrival time, is taken
//!   as the far end restarting once a second packet follows it, and the buffer starts over.
//!
//! Sans-IO: arrival and playout times are passed in. Payload buffers are reused, so after the
//! first pass through the ring no call allocates.

use std::time::{Duration, Instant};

use super::seq::{SeqCounter, ext_delta};

/// A packet further behind the playout point than this many frames is not "late" but a jump.
const LATE_LIMIT: i32 = 1000;
/// A timestamp this far from where the arrival time puts it means the far end restarted.
const RESYNC_MS: f64 = 30_000.0;
/// Pops the depth must stay out of band before compressing or stretching.
const HOLD_POPS: u32 = 25;
/// Gain of the depth average, per pop.
const DEPTH_GAIN: f64 = 1.0 / 16.0;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterConfig {
    /// Audio per packet, and per pop: 20 ms by default.
    pub frame: Duration,
    /// The RTP clock rate of the timestamps (48000 for Opus, 8000 for G.711).
    pub clock_rate: u32,
    /// Lowest target depth.
    pub min_delay: Duration,
    /// Highest target depth.
    pub max_delay: Duration,
    /// Target depth before any jitter has been measured.
    pub initial_delay: Duration,
    /// k in target = k · jitter + frame.
    pub jitter_factor: f64,
    /// Frames the ring holds (rounded up to a power of two); a packet further ahead is a jump.
    pub capacity: usize,
    /// Larger payloads are refused.
    pub max_payload: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            frame: Duration::from_millis(20),
            clock_rate: 48_000,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            initial_delay: Duration::from_millis(40),
            jitter_factor: 3.0,
            capacity: 64,
            max_payload: 1500,
        }
    }
}

/// What to play for the next frame period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Nothing has arrived yet: play silence.
    Nothing,
    /// The next frame's payload, to decode.
    Frame(&'a [u8]),
    /// The frame due now is missing: decode the in-band FEC of the next packet if given, else
    /// conceal (PLC). The next pop still returns that packet as a [`Playout::Frame`]. Also
    /// returned while refilling after the buffer ran dry.
    Missing {
        /// The packet after the missing one, if it has arrived.
        fec_from_next: Option<&'a [u8]>,
    },
    /// The buffer is below its target: play one frame of concealment (or a time-stretched
    /// repeat of the last one) without consuming the next frame.
    Stretch,
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored for playout.
    Stored,
    /// Already held: dropped.
    Duplicate,
    /// Behind the playout point: discarded.
    Late,
    /// Too large: discarded.
    Rejected,
    /// Out of the window or timeline: held until a following packet confirms a restart.
    Held,
    /// Confirmed a restart: the buffer started over from the held packet and this one.
    Resynced,
}

/// Counters and the current state, for display and for RTCP XR-style reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Audio held now, from the next frame to the newest arrived, holes included.
    pub depth: Duration,
    /// The depth the buffer aims for.
    pub target: Duration,
    /// Interarrival jitter measured.
    pub jitter: Duration,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Frames that never arrived in time: due and absent while later ones were here, or skipped
    /// while absent to bring the depth down.
    pub lost: u64,
    /// Frames of concealment asked for (missing, stretch and refilling).
    pub concealed: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Packets that arrived after a later one.
    pub reordered: u64,
    /// Frames that had arrived but were dropped to bring the depth down.
    pub dropped: u64,
    /// Frames stretched to bring the depth up.
    pub stretched: u64,
    /// Times the buffer ran dry while playing.
    pub underruns: u64,
    /// Restarts of the far end followed.
    pub resyncs: u64,
    /// Packets refused (too large) or held and never confirmed.
    pub rejected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Filling to the target. `initial` before anything has been played; `since` is when the
    /// first packet of this fill arrived.
    Buffering {
        initial: bool,
        since: Option<Instant>,
    },
    Playing,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    ext: u32,
    filled: bool,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    seq: u16,
    timestamp: u32,
    arrival: Instant,
}

/// An adaptive jitter buffer; see the module docs.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    frame_ms: f64,
    slots: Vec<Slot>,
    mask: u32,
    state: State,
    seqs: SeqCounter,
    next: u32,
    /// When the packet with the highest sequence number arrived.
    newest_arrival: Option<Instant>,
    epoch: Option<Instant>,
    last_transit: Option<u32>,
    jitter_ms: f64,
    depth_avg_ms: f64,
    above: u32,
    below: u32,
    held: Option<Held>,
    held_payload: Vec<u8>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        let capacity = config.capacity.clamp(4, 1 << 16).next_power_of_two();
        let frame_ms = (config.frame.as_secs_f64() * 1000.0).max(1.0);
        let config = JitterConfig {
            clock_rate: config.clock_rate.max(1),
            max_delay: config.max_delay.max(config.min_delay),
            jitter_factor: if config.jitter_factor.is_finite() { config.jitter_factor.max(0.0) } else { 3.0 },
            capacity,
            ..config
        };
        let initial_ms = config.initial_delay.as_secs_f64() * 1000.0;
        let jitter_ms =
            if config.jitter_factor > 0.0 { ((initial_ms - frame_ms) / config.jitter_factor).max(0.0) } else { 0.0 };
        JitterBuffer {
            config,
            frame_ms,
            slots: vec![Slot::default(); capacity],
            mask: capacity as u32 - 1,
            state: State::Idle,
            seqs: SeqCounter::new(),
            next: 0,
            newest_arrival: None,
            epoch: None,
            last_transit: None,
            jitter_ms,
            depth_avg_ms: 0.0,
            above: 0,
            below: 0,
            held: None,
            held_payload: Vec::new(),
            stats: JitterStats::default(),
        }
    }

    /// Forgets the stream (the far end changed SSRC); counters and the jitter estimate stay.
    pub fn reset(&mut self) {
        self.flush();
        self.state = State::Idle;
        self.held = None;
    }

    /// Takes one packet that arrived at `arrival`.
    pub fn push(&mut self, seq: u16, timestamp: u32, payload: &[u8], arrival: Instant) -> Pushed {
        if payload.len() > self.config.max_payload {
            self.stats.rejected += 1;
            return Pushed::Rejected;
        }
        if self.state == State::Idle {
            self.start(seq, arrival, State::Buffering { initial: true, since: Some(arrival) });
            self.last_transit = Some(self.transit(timestamp, arrival));
            self.store(self.next, payload);
            return Pushed::Stored;
        }
        let ext = self.seqs.peek(seq);
        let delta = ext_delta(ext, self.next);
        let transit = self.transit(timestamp, arrival);
        let d_ms = self.last_transit.map_or(0.0, |last| {
            f64::from(transit.wrapping_sub(last) as i32) * 1000.0 / f64::from(self.config.clock_rate)
        });
        let reorder_first = matches!(self.state, State::Buffering { initial: true, .. })
            && delta < 0
            && self.depth_frames() - delta < self.slots.len() as i32;
        let in_window = (-LATE_LIMIT..self.slots.len() as i32).contains(&delta);
        if !in_window || d_ms.abs() > RESYNC_MS {
            return self.hold_or_resync(seq, timestamp, payload, arrival);
        }
        if self.held.take().is_some() {
            self.stats.rejected += 1;
        }
        self.last_transit = Some(transit);
        let duplicate = self.slot(ext).is_some_and(|s| s.filled && s.ext == ext);
        if !duplicate {
            self.jitter_ms += (d_ms.abs() - self.jitter_ms) / 16.0;
        }
        if delta < 0 && !reorder_first {
            self.stats.late += 1;
            return Pushed::Late;
        }
        if duplicate {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        if self.seqs.highest().is_some_and(|h| ext_delta(ext, h) < 0) {
            self.stats.reordered += 1;
        }
        if reorder_first {
            self.next = ext;
        }
        if self.seqs.highest().is_none_or(|h| ext_delta(ext, h) > 0) {
            self.newest_arrival = Some(arrival);
        }
        self.seqs.extend(seq);
        if let State::Buffering { initial, since: None } = self.state {
            self.state = State::Buffering { initial, since: Some(arrival) };
        }
        self.store(ext, payload);
        Pushed::Stored
    }

    /// What to play for the frame period starting at `now`. Call once per frame period.
    pub fn pop(&mut self, now: Instant) -> Playout<'_> {
        let target_ms = self.target_ms();
        match self.state {
            State::Idle => return Playout::Nothing,
            State::Buffering { initial, since } => {
                let waited = since.is_some_and(|s| {
                    now.saturating_duration_since(s).as_secs_f64() * 1000.0 >= target_ms - self.frame_ms
                });
                if self.depth_ms() < target_ms && !waited {
                    if initial {
                        return Playout::Nothing;
                    }
                    self.stats.concealed += 1;
                    return Playout::Missing { fec_from_next: None };
                }
                self.state = State::Playing;
                self.depth_avg_ms = target_ms;
                self.above = 0;
                self.below = 0;
            }
            State::Playing => {}
        }
        if self.depth_frames() == 0 {
            self.stats.underruns += 1;
            self.stats.concealed += 1;
            self.state = State::Buffering { initial: false, since: None };
            return Playout::Missing { fec_from_next: None };
        }
        if self.adapt(target_ms, now) {
            self.stats.stretched += 1;
            self.stats.concealed += 1;
            return Playout::Stretch;
        }
        let ext = self.next;
        self.next = ext.wrapping_add(1);
        let index = self.index(ext);
        if self.slots[index].filled && self.slots[index].ext == ext {
            self.slots[index].filled = false;
            return Playout::Frame(&self.slots[index].payload);
        }
        self.stats.lost += 1;
        self.stats.concealed += 1;
        let fec_from_next = self.slot(self.next).filter(|s| s.filled && s.ext == self.next).map(|s| &s.payload[..]);
        Playout::Missing { fec_from_next }
    }

    /// The counters and current depth, target and jitter.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            depth: Duration::from_secs_f64(self.depth_ms() / 1000.0),
            target: Duration::from_secs_f64(self.target_ms() / 1000.0),
            jitter: Duration::from_secs_f64(self.jitter_ms.max(0.0) / 1000.0),
            ..self.stats
        }
    }

    /// Depth control, before consuming a frame: drops frames when too deep (returning false), or
    /// returns true when a stretch frame should be played instead. The depth it averages is
    /// the audio held less the time since the newest packet arrived, so that the phase of
    /// arrivals against pops counts, not just whole frames.
    fn adapt(&mut self, target_ms: f64, now: Instant) -> bool {
        let max_ms = self.config.max_delay.as_secs_f64() * 1000.0;
        if self.depth_ms() > max_ms + self.frame_ms {
            while self.depth_ms() > target_ms && self.depth_frames() > 1 {
                self.drop_next();
            }
            self.depth_avg_ms = self.depth_ms();
            return false;
        }
        let since_newest = self.newest_arrival.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64() * 1000.0);
        let depth = (self.depth_ms() - since_newest.min(self.frame_ms)).max(0.0);
        self.depth_avg_ms += (depth - self.depth_avg_ms) * DEPTH_GAIN;
        if self.depth_avg_ms > target_ms + self.frame_ms {
            self.below = 0;
            self.above += 1;
            if self.above >= HOLD_POPS && self.depth_frames() > 1 {
                self.above = 0;
                self.drop_next();
                self.depth_avg_ms -= self.frame_ms;
            }
        } else if self.depth_avg_ms < target_ms - self.frame_ms / 2.0 {
            self.above = 0;
            self.below += 1;
            if self.below >= HOLD_POPS {
                self.below = 0;
                self.depth_avg_ms += self.frame_ms;
                return true;
            }
        } else {
            self.above = 0;
            self.below = 0;
        }
        false
    }

    /// Skips the next frame: a dropped frame if it is here, else a loss that needs no concealment.
    fn drop_next(&mut self) {
        let index = self.index(self.next);
        let slot = &mut self.slots[index];
        if slot.filled && slot.ext == self.next {
            self.stats.dropped += 1;
        } else {
            self.stats.lost += 1;
        }
        slot.filled = false;
        self.next = self.next.wrapping_add(1);
    }

    fn hold_or_resync(&mut self, seq: u16, timestamp: u32, payload: &[u8], arrival: Instant) -> Pushed {
        let one_second = i64::from(self.config.clock_rate);
        if let Some(held) = self.held.take() {
            let follows = seq == held.seq.wrapping_add(1)
                && i64::from(timestamp.wrapping_sub(held.timestamp) as i32).abs() <= one_second;
            if follows {
                self.stats.resyncs += 1;
                self.start(held.seq, held.arrival, State::Buffering { initial: false, since: Some(held.arrival) });
                let held_payload = std::mem::take(&mut self.held_payload);
                self.store(self.next, &held_payload);
                self.held_payload = held_payload;
                self.seqs.extend(seq);
                self.newest_arrival = Some(arrival);
                self.store(self.next.wrapping_add(1), payload);
                self.last_transit = Some(self.transit(timestamp, arrival));
                return Pushed::Resynced;
            }
            self.stats.rejected += 1;
        }
        self.held = Some(Held { seq, timestamp, arrival });
        self.held_payload.clear();
        self.held_payload.extend_from_slice(payload);
        Pushed::Held
    }

    fn start(&mut self, seq: u16, arrival: Instant, state: State) {
        self.flush();
        self.seqs = SeqCounter::new();
        self.next = self.seqs.extend(seq);
        self.newest_arrival = Some(arrival);
        self.state = state;
        self.epoch.get_or_insert(arrival);
    }

    fn flush(&mut self) {
        for slot in &mut self.slots {
            slot.filled = false;
        }
    }

    fn store(&mut self, ext: u32, payload: &[u8]) {
        let index = self.index(ext);
        let slot = &mut self.slots[index];
        slot.ext = ext;
        slot.filled = true;
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
    }

    fn index(&self, ext: u32) -> usize {
        (ext & self.mask) as usize
    }

    fn slot(&self, ext: u32) -> Option<&Slot> {
        self.slots.get(self.index(ext))
    }

    /// Transit time in timestamp units: arrival on the RTP clock minus the timestamp.
    fn transit(&mut self, timestamp: u32, arrival: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(arrival);
        let elapsed_us = u64::try_from(arrival.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX);
        let units = (elapsed_us.saturating_mul(u64::from(self.config.clock_rate)) / 1_000_000) as u32;
        units.wrapping_sub(timestamp)
    }

    fn depth_frames(&self) -> i32 {
        match self.seqs.highest() {
            Some(highest) if self.state != State::Idle => (ext_delta(highest, self.next) + 1).max(0),
            _ => 0,
        }
    }

    fn depth_ms(&self) -> f64 {
        f64::from(self.depth_frames()) * self.frame_ms
    }

    fn target_ms(&self) -> f64 {
        let min = self.config.min_delay.as_secs_f64() * 1000.0;
        let max = self.config.max_delay.as_secs_f64() * 1000.0;
        (self.config.jitter_factor * self.jitter_ms + self.frame_ms).clamp(min, max)
    }
}

#[cfg(test)]
mod tests;
