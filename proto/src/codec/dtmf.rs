//! RFC 4733 telephone events: the 4-byte payload (§2.3), a sender that paces the packets of
//! one DTMF digit (§2.5.1), and a receiver that reports each digit once (§2.5.2).

use super::CodecError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The 16 DTMF digits in event-code order (RFC 4733 §3.2).
const DIGITS: [char; 16] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/// The RFC 4733 event code of a DTMF digit: `0`-`9` are 0-9, `*` 10, `#` 11, `A`-`D` 12-15
/// (either case).
pub fn event_for_digit(digit: char) -> Option<u8> {
    let digit = digit.to_ascii_uppercase();
    DIGITS.iter().position(|&d| d == digit).map(|i| i as u8)
}

/// The DTMF digit of an RFC 4733 event code, for codes 0 to 15.
pub fn digit_for_event(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).copied()
}

/// One telephone-event block (RFC 4733 §2.3):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 for DTMF).
    pub event: u8,
    /// Set on the packets that end the event.
    pub end: bool,
    /// Tone power as dBm0 below zero, 0 to 63 (so 10 means −10 dBm0).
    pub volume: u8,
    /// Length of the event so far, in RTP clock ticks from the packet's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Bytes of one event block.
    pub const LEN: usize = 4;

    /// Reads the first event block of `payload`. The reserved bit is ignored (§2.3).
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        match *payload {
            [event, flags, d0, d1, ..] => {
                Ok(Self { event, end: flags & 0x80 != 0, volume: flags & 0x3F, duration: u16::from_be_bytes([d0, d1]) })
            }
            _ => Err(CodecError::ShortEvent(payload.len())),
        }
    }

    /// The block's bytes, with the reserved bit zero and `volume` cut to its 6 bits.
    pub fn to_bytes(&self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3F);
        [self.event, flags, d0, d1]
    }
}

/// One packet a [`DtmfSender`] wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// The RTP marker bit: set on the first packet of the event only (§2.5.1.2).
    pub marker: bool,
    /// The payload; send it as `event.to_bytes()`.
    pub event: TelephoneEvent,
}

/// Sends one DTMF digit as RFC 4733 events, sans-IO: poll it for packets as time passes.
///
/// Every packet of the digit goes out on the audio stream's SSRC and sequence numbers with the
/// same RTP timestamp, the one of the audio sample at which the digit starts (§2.5.1.2), in
/// the payload type negotiated for `telephone-event` at the sender's clock rate. A packet is
/// sent every 50 ms carrying the duration up to the end of the interval it starts; the final
/// packet, with the end bit, is sent three times 50 ms apart (§2.5.1.4). The caller normally
/// holds back the audio packets of the same interval.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    start: Instant,
    /// Ticks of one update interval and of the whole digit.
    interval_ticks: u32,
    total_ticks: u16,
    /// Updates before the end packets, and packets sent so far.
    updates: u32,
    sent: u32,
}

impl DtmfSender {
    /// Time between packets of one digit (RFC 4733 §2.5.1.2's suggestion for DTMF).
    pub const INTERVAL: Duration = Duration::from_millis(50);
    /// Tone power sent, −10 dBm0.
    pub const VOLUME: u8 = 10;
    /// Number of times the final packet is sent.
    const END_COPIES: u32 = 3;

    /// Starts sending `digit` for `duration` at `now`, timed in `clock_rate` ticks. The
    /// duration is cut to what the 16-bit field holds (about 1.3 s at 48 kHz, 8 s at 8 kHz).
    pub fn new(digit: char, clock_rate: u32, duration: Duration, now: Instant) -> Result<Self, CodecError> {
        let event = event_for_digit(digit).ok_or(CodecError::NotADigit(digit))?;
        let ticks = |d: Duration| d.as_micros() * u128::from(clock_rate) / 1_000_000;
        let total_ticks = u16::try_from(ticks(duration)).unwrap_or(u16::MAX);
        let interval_ticks = u32::try_from(ticks(Self::INTERVAL)).unwrap_or(u32::MAX).max(1);
        // Updates go out while the interval each one starts ends before the digit does.
        let updates = u32::from(total_ticks).saturating_sub(1) / interval_ticks;
        Ok(Self { event, start: now, interval_ticks, total_ticks, updates, sent: 0 })
    }

    /// When the next packet is due, or `None` once all have been sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_finished()).then(|| self.start + Self::INTERVAL * self.sent)
    }

    /// The next packet if it is due at `now`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<DtmfPacket> {
        if now < self.poll_timeout()? {
            return None;
        }
        let end = self.sent >= self.updates;
        let duration = if end {
            self.total_ticks
        } else {
            let ticks = u64::from(self.interval_ticks) * u64::from(self.sent + 1);
            u16::try_from(ticks).unwrap_or(self.total_ticks)
        };
        let packet = DtmfPacket {
            marker: self.sent == 0,
            event: TelephoneEvent { event: self.event, end, volume: Self::VOLUME, duration },
        };
        self.sent += 1;
        Some(packet)
    }

    /// Whether every packet, including the three end packets, has been sent.
    pub fn is_finished(&self) -> bool {
        self.sent >= self.updates + Self::END_COPIES
    }
}

/// An event start reported by a [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedEvent {
    /// Event code (0-15 for DTMF).
    pub event: u8,
    /// RTP timestamp at which the event began.
    pub timestamp: u32,
}

impl ReceivedEvent {
    /// The DTMF digit, if the event is one.
    pub fn digit(&self) -> Option<char> {
        digit_for_event(self.event)
    }
}

/// Reports each telephone event once, from the first of its packets that arrives, whatever
/// later updates and end retransmissions follow (RFC 4733 §2.5.2). Sans-IO: feed it payloads,
/// poll it for events.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    /// Start timestamp and code of the newest event seen.
    last: Option<(u32, u8)>,
    pending: VecDeque<ReceivedEvent>,
}

impl DtmfReceiver {
    /// Packets older than the newest event by less than this many ticks are late duplicates;
    /// further back is taken as timestamp wrap-around, a new event.
    const REORDER_WINDOW: u32 = 1 << 24;
    /// Events waiting to be polled beyond this are dropped (bounds memory on hostile input).
    const MAX_PENDING: usize = 16;

    /// A receiver that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the payload of one telephone-event packet and its RTP timestamp. A payload may
    /// carry several consecutive events (§2.5.1.5): each starts where the previous one's
    /// duration ends.
    pub fn handle_payload(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), CodecError> {
        TelephoneEvent::parse(payload)?;
        let mut start = timestamp;
        for block in payload.chunks_exact(TelephoneEvent::LEN) {
            let event = TelephoneEvent::parse(block)?;
            self.note(start, event.event);
            start = start.wrapping_add(u32::from(event.duration));
        }
        Ok(())
    }

    fn note(&mut self, start: u32, event: u8) {
        if let Some((last_start, last_event)) = self.last {
            if (last_start, last_event) == (start, event) {
                return;
            }
            let behind = last_start.wrapping_sub(start);
            if behind != 0 && behind < Self::REORDER_WINDOW {
                return;
            }
        }
        self.last = Some((start, event));
        if self.pending.len() < Self::MAX_PENDING {
            self.pending.push_back(ReceivedEvent { event, timestamp: start });
        }
    }

    /// The next newly started event, oldest first.
    pub fn poll_event(&mut self) -> Option<ReceivedEvent> {
        self.pending.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_follow_the_rfc_4733_layout() {
        // Digit 9, not ended, -10 dBm0, 400 ticks (50 ms at 8 kHz).
        let update = TelephoneEvent { event: 9, end: false, volume: 10, duration: 400 };
        assert_eq!(update.to_bytes(), [0x09, 0x0A, 0x01, 0x90]);
        // '#' ended, -10 dBm0, 1600 ticks: the E bit is the top bit of the second byte.
        let end = TelephoneEvent { event: 11, end: true, volume: 10, duration: 1600 };
        assert_eq!(end.to_bytes(), [0x0B, 0x8A, 0x06, 0x40]);
        assert_eq!(TelephoneEvent::parse(&end.to_bytes()), Ok(end));
        assert_eq!(TelephoneEvent::parse(&[0x09, 0x0A, 0x01, 0x90]), Ok(update));
    }

    #[test]
    fn reserved_bit_is_ignored_on_read_and_cleared_on_write() {
        let parsed = TelephoneEvent::parse(&[0x05, 0xFF, 0xFF, 0xFF]).unwrap();
        assert_eq!(parsed, TelephoneEvent { event: 5, end: true, volume: 63, duration: 0xFFFF });
        assert_eq!(parsed.to_bytes(), [0x05, 0xBF, 0xFF, 0xFF]);
        let loud = TelephoneEvent { volume: 0xFF, ..parsed };
        assert_eq!(loud.to_bytes()[1], 0xBF, "volume keeps to its 6 bits");
    }

    #[test]
    fn short_payloads_are_refused() {
        for len in 0..4 {
            assert_eq!(TelephoneEvent::parse(&[0; 3][..len.min(3)]), Err(CodecError::ShortEvent(len.min(3))));
        }
        let mut rx = DtmfReceiver::new();
        assert!(rx.handle_payload(0, &[1, 2]).is_err());
        assert_eq!(rx.poll_event(), None);
    }

    #[test]
    fn digits_map_to_event_codes_and_back() {
        let digits = "0123456789*#ABCD";
        for (code, digit) in digits.chars().enumerate() {
            assert_eq!(event_for_digit(digit), Some(code as u8));
            assert_eq!(digit_for_event(code as u8), Some(digit));
        }
        assert_eq!(event_for_digit('a'), Some(12));
        assert_eq!(event_for_digit('E'), None);
        assert_eq!(digit_for_event(16), None);
        assert_eq!(
            DtmfSender::new('x', 8000, Duration::from_millis(100), Instant::now()).unwrap_err(),
            CodecError::NotADigit('x')
        );
    }

    /// Runs a sender to completion, returning each packet with its send offset.
    fn drain(mut tx: DtmfSender, start: Instant) -> Vec<(Duration, DtmfPacket)> {
        let mut sent = Vec::new();
        while let Some(due) = tx.poll_timeout() {
            assert_eq!(tx.poll_transmit(due - Duration::from_millis(1)), None, "not early");
            let packet = tx.poll_transmit(due).expect("due packet");
            sent.push((due - start, packet));
        }
        assert!(tx.is_finished());
        sent
    }

    #[test]
    fn sender_marks_the_first_packet_updates_every_50ms_and_ends_three_times() {
        let start = Instant::now();
        let tx = DtmfSender::new('5', 8000, Duration::from_millis(200), start).unwrap();
        let sent = drain(tx, start);
        let ms = |n| Duration::from_millis(n);
        let expect = [
            (ms(0), true, false, 400),
            (ms(50), false, false, 800),
            (ms(100), false, false, 1200),
            (ms(150), false, true, 1600),
            (ms(200), false, true, 1600),
            (ms(250), false, true, 1600),
        ];
        assert_eq!(sent.len(), expect.len());
        for ((at, packet), (want_at, marker, end, duration)) in sent.iter().zip(expect) {
            assert_eq!(*at, want_at);
            assert_eq!(packet.marker, marker);
            assert_eq!(packet.event.end, end);
            assert_eq!(packet.event.duration, duration);
            assert_eq!(packet.event.event, 5);
            assert_eq!(packet.event.volume, DtmfSender::VOLUME);
        }
    }

    #[test]
    fn sender_times_durations_in_the_negotiated_clock() {
        let start = Instant::now();
        let tx = DtmfSender::new('#', 48_000, Duration::from_millis(120), start).unwrap();
        let sent = drain(tx, start);
        let durations: Vec<u16> = sent.iter().map(|(_, p)| p.event.duration).collect();
        assert_eq!(durations, [2400, 4800, 5760, 5760, 5760]);
        // A digit shorter than one interval is a marked end packet and two copies.
        let tx = DtmfSender::new('1', 8000, Duration::from_millis(40), start).unwrap();
        let sent = drain(tx, start);
        assert_eq!(sent.len(), 3);
        assert!(sent[0].1.marker && sent.iter().all(|(_, p)| p.event.end));
        assert!(sent.iter().all(|(_, p)| p.event.duration == 320));
        // Too long for the 16-bit field: capped.
        let tx = DtmfSender::new('1', 48_000, Duration::from_secs(5), start).unwrap();
        assert_eq!(drain(tx, start).last().unwrap().1.event.duration, u16::MAX);
    }

    #[test]
    fn every_digit_survives_sender_to_receiver_once_despite_repeated_end_packets() {
        let start = Instant::now();
        let mut rx = DtmfReceiver::new();
        let mut timestamp = 1_000u32;
        for digit in "0123456789*#ABCD".chars() {
            let tx = DtmfSender::new(digit, 8000, Duration::from_millis(150), start).unwrap();
            for (_, packet) in drain(tx, start) {
                rx.handle_payload(timestamp, &packet.event.to_bytes()).unwrap();
                // The network duplicates every packet too.
                rx.handle_payload(timestamp, &packet.event.to_bytes()).unwrap();
            }
            let got = rx.poll_event().expect("digit reported");
            assert_eq!((got.digit(), got.timestamp), (Some(digit), timestamp));
            assert_eq!(rx.poll_event(), None, "{digit} reported once");
            timestamp = timestamp.wrapping_add(8000);
        }
    }

    #[test]
    fn the_same_digit_pressed_twice_is_reported_twice() {
        let mut rx = DtmfReceiver::new();
        let press = TelephoneEvent { event: 1, end: true, volume: 10, duration: 800 };
        rx.handle_payload(100, &press.to_bytes()).unwrap();
        rx.handle_payload(100, &press.to_bytes()).unwrap();
        rx.handle_payload(2000, &press.to_bytes()).unwrap();
        assert_eq!(rx.poll_event().map(|e| e.timestamp), Some(100));
        assert_eq!(rx.poll_event().map(|e| e.timestamp), Some(2000));
        assert_eq!(rx.poll_event(), None);
    }

    #[test]
    fn a_late_packet_of_an_earlier_digit_is_not_reported_again() {
        let mut rx = DtmfReceiver::new();
        let block = |event| TelephoneEvent { event, end: true, volume: 10, duration: 800 };
        rx.handle_payload(u32::MAX - 100, &block(3).to_bytes()).unwrap();
        // Next digit after the timestamp wrapped; then a reordered end packet of the first.
        rx.handle_payload(700, &block(4).to_bytes()).unwrap();
        rx.handle_payload(u32::MAX - 100, &block(3).to_bytes()).unwrap();
        let digits: Vec<char> = std::iter::from_fn(|| rx.poll_event()).filter_map(|e| e.digit()).collect();
        assert_eq!(digits, ['3', '4']);
    }

    #[test]
    fn packed_events_each_start_where_the_previous_ended() {
        let mut rx = DtmfReceiver::new();
        let first = TelephoneEvent { event: 7, end: true, volume: 10, duration: 800 };
        let second = TelephoneEvent { event: 8, end: false, volume: 10, duration: 400 };
        let mut payload = first.to_bytes().to_vec();
        payload.extend_from_slice(&second.to_bytes());
        payload.push(0xAA); // a stray trailing byte is ignored
        rx.handle_payload(5000, &payload).unwrap();
        assert_eq!(rx.poll_event(), Some(ReceivedEvent { event: 7, timestamp: 5000 }));
        assert_eq!(rx.poll_event(), Some(ReceivedEvent { event: 8, timestamp: 5800 }));
    }

    #[test]
    fn a_flood_of_new_events_is_bounded() {
        let mut rx = DtmfReceiver::new();
        let payload: Vec<u8> = (0..400u32).flat_map(|i| [(i % 16) as u8, 0x0A, 0x00, 0x10]).collect();
        rx.handle_payload(0, &payload).unwrap();
        assert_eq!(std::iter::from_fn(|| rx.poll_event()).count(), 16);
    }
}
