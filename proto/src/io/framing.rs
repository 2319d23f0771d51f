//! Cutting SIP messages out of a byte stream (RFC 3261 §18.3), with the CRLF keep-alives of
//! RFC 5626 §3.5.1.
//!
//! On TCP, messages follow each other with nothing in between: the end of the header section is
//! the first empty line, and the body is exactly Content-Length bytes. [`StreamFramer`] is
//! sans-IO: push the bytes read from a connection, then pull [`Frame`]s until it returns `None`.

use bytes::{Buf, Bytes, BytesMut};

/// One unit cut from a SIP byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message: the header section and exactly Content-Length body bytes. A message
    /// without Content-Length is passed up with no body; the core answers it 400.
    Message(Bytes),
    /// A CRLFCRLF keep-alive ping between messages (RFC 5626 §3.5.1): answer with one CRLF.
    Ping,
    /// A message longer than the maximum size. `head` is its header section, so the core can
    /// answer 513 (RFC 3261 §21.5.14); the framer discards the declared body and carries on.
    /// When no end of the header section came within the maximum size, `head` is the first
    /// maximum-size bytes and the stream cannot be resynchronised ([`StreamFramer::is_broken`]).
    TooLarge {
        /// The header section, or its first maximum-size bytes.
        head: Bytes,
    },
    /// The Content-Length header is not a number (or two of them disagree), so the end of the
    /// message cannot be known: close the connection (RFC 3261 §18.3). `head` is the header
    /// section, for the log.
    Invalid {
        /// The header section of the unframeable message.
        head: Bytes,
    },
}

/// Splits a SIP byte stream into [`Frame`]s.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_message_size: usize,
    state: State,
    /// Body bytes of an oversized message still to be thrown away.
    skip: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages: CRLFs here are keep-alives.
    Idle,
    /// Inside a header section; its end was searched for up to this offset.
    Head { scanned: usize },
    /// The header section is known; the message is complete at this many bytes.
    Body { total: usize },
    /// The stream cannot be framed any more.
    Broken,
}

impl StreamFramer {
    /// A framer for messages of at most `max_message_size` bytes (header section and body).
    pub fn new(max_message_size: usize) -> Self {
        StreamFramer { buf: BytesMut::new(), max_message_size, state: State::Idle, skip: 0 }
    }

    /// Appends bytes read from the stream. Call [`next_frame`](Self::next_frame) until it
    /// returns `None` after each push, so at most one maximum-size message stays buffered.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.state == State::Broken {
            return;
        }
        if self.skip > 0 {
            let n = usize::try_from(self.skip).map_or(data.len(), |s| s.min(data.len()));
            data = &data[n..];
            self.skip -= n as u64;
        }
        self.buf.extend_from_slice(data);
    }

    /// True once the stream can no longer be framed (after [`Frame::Invalid`], or a
    /// [`Frame::TooLarge`] whose header section never ended): the connection should be closed.
    pub fn is_broken(&self) -> bool {
        self.state == State::Broken
    }

    /// The next complete frame, or `None` until more bytes are pushed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Broken => return None,
                State::Idle => {
                    if self.buf.starts_with(b"\r\n\r\n") {
                        self.buf.advance(4);
                        return Some(Frame::Ping);
                    }
                    match &self.buf[..] {
                        // Could still grow into a ping.
                        b"" | b"\r" | b"\r\n" | b"\r\n\r" => return None,
                        // A lone CRLF (a pong, or padding before a start line: RFC 3261 §7.5).
                        [b'\r' | b'\n', ..] => self.buf.advance(1),
                        _ => self.state = State::Head { scanned: 0 },
                    }
                }
                State::Head { scanned } => return self.finish_head(scanned),
                State::Body { total } => {
                    if self.buf.len() < total {
                        return None;
                    }
                    self.state = State::Idle;
                    return Some(Frame::Message(self.buf.split_to(total).freeze()));
                }
            }
        }
    }

    /// Looks for the end of the header section and decides how the message is framed.
    fn finish_head(&mut self, scanned: usize) -> Option<Frame> {
        let Some(head_len) = find_head_end(&self.buf, scanned) else {
            if self.buf.len() > self.max_message_size {
                let head = self.buf.split_to(self.max_message_size).freeze();
                self.break_stream();
                return Some(Frame::TooLarge { head });
            }
            self.state = State::Head { scanned: self.buf.len().saturating_sub(2) };
            return None;
        };
        let body_len = match content_length(&self.buf[..head_len]) {
            Ok(len) => len.unwrap_or(0),
            Err(()) => {
                let head = self.buf.split_to(head_len).freeze();
                self.break_stream();
                return Some(Frame::Invalid { head });
            }
        };
        match usize::try_from(body_len).ok().and_then(|b| b.checked_add(head_len)) {
            Some(total) if total <= self.max_message_size => {
                self.state = State::Body { total };
                self.next_frame()
            }
            _ => {
                let head = self.buf.split_to(head_len).freeze();
                let buffered = self.buf.len().min(usize::try_from(body_len).unwrap_or(usize::MAX));
                self.buf.advance(buffered);
                self.skip = body_len - buffered as u64;
                self.state = State::Idle;
                Some(Frame::TooLarge { head })
            }
        }
    }

    fn break_stream(&mut self) {
        self.state = State::Broken;
        self.buf = BytesMut::new();
    }
}

/// The length of the header section including its empty line, searching for the end from
/// `from`. Bare LF line endings are accepted as well as CRLF.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let lf = i + p;
        match buf.get(lf + 1..lf + 3) {
            Some([b'\n', _]) => return Some(lf + 2),
            Some([b'\r', b'\n']) => return Some(lf + 3),
            None if buf.get(lf + 1) == Some(&b'\n') => return Some(lf + 2),
            _ => i = lf + 1,
        }
    }
    None
}

/// The Content-Length of a header section (`l` is its compact form, RFC 3261 §7.3.3):
/// `Ok(None)` when absent, `Err` when it is not a number or two values disagree.
fn content_length(head: &[u8]) -> Result<Option<u64>, ()> {
    let mut found: Option<u64> = None;
    let mut current: Option<Digits> = None;
    // The first line is the start line.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let [b' ' | b'\t', ..] = line {
            // A folded continuation of the previous header (RFC 3261 §7.3.1).
            if let Some(digits) = current.as_mut() {
                digits.feed(line);
            }
            continue;
        }
        if let Some(digits) = current.take() {
            let value = digits.finish()?;
            if found.is_some_and(|f| f != value) {
                return Err(());
            }
            found = Some(value);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let mut digits = Digits::default();
            digits.feed(&line[colon + 1..]);
            current = Some(digits);
        }
    }
    Ok(found)
}

/// A decimal number that may be spread over folded lines, with whitespace around it.
#[derive(Debug, Default)]
struct Digits {
    value: u64,
    count: usize,
    ended: bool,
    bad: bool,
}

impl Digits {
    fn feed(&mut self, piece: &[u8]) {
        for &b in piece {
            match b {
                b'0'..=b'9' if !self.ended => {
                    self.count += 1;
                    match self.value.checked_mul(10).and_then(|v| v.checked_add(u64::from(b - b'0'))) {
                        Some(v) => self.value = v,
                        None => self.bad = true,
                    }
                }
                b' ' | b'\t' => self.ended |= self.count > 0,
                _ => self.bad = true,
            }
        }
    }

    fn finish(self) -> Result<u64, ()> {
        if self.bad || self.count == 0 { Err(()) } else { Ok(self.value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const MSG1: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a.example.com;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";
    const MSG2: &[u8] = b"OPTIONS sip:example.com SIP/2.0\r\nCall-ID: 2@a\r\nContent-Length: 0\r\n\r\n";
    const MSG3: &[u8] = b"SIP/2.0 200 OK\r\nl: 3\r\nCall-ID: 3@a\r\n\r\nabc";

    fn drain(framer: &mut StreamFramer) -> Vec<Frame> {
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    fn frames_of(chunks: &[&[u8]], max: usize) -> Vec<Frame> {
        let mut framer = StreamFramer::new(max);
        let mut frames = Vec::new();
        for chunk in chunks {
            framer.push(chunk);
            frames.extend(drain(&mut framer));
        }
        frames
    }

    fn message(bytes: &[u8]) -> Frame {
        Frame::Message(Bytes::copy_from_slice(bytes))
    }

    fn stream() -> (Vec<u8>, Vec<Frame>) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MSG1);
        bytes.extend_from_slice(b"\r\n\r\n");
        bytes.extend_from_slice(MSG2);
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(MSG3);
        bytes.extend_from_slice(b"\r\n\r\n");
        let expected = vec![message(MSG1), Frame::Ping, message(MSG2), message(MSG3), Frame::Ping];
        (bytes, expected)
    }

    #[test]
    fn messages_pings_and_lone_crlf_in_one_read() {
        let (bytes, expected) = stream();
        assert_eq!(frames_of(&[&bytes], 65535), expected);
    }

    #[test]
    fn same_frames_whatever_the_split_point() {
        let (bytes, expected) = stream();
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(frames_of(&[a, b], 65535), expected, "split at {cut}");
        }
        for cut1 in (0..bytes.len()).step_by(7) {
            for cut2 in cut1..bytes.len() {
                let chunks = [&bytes[..cut1], &bytes[cut1..cut2], &bytes[cut2..]];
                assert_eq!(frames_of(&chunks, 65535), expected, "split at {cut1}, {cut2}");
            }
        }
    }

    #[test]
    fn same_frames_fed_one_byte_at_a_time() {
        let (bytes, expected) = stream();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(frames_of(&chunks, 65535), expected);
    }

    #[test]
    fn ping_split_across_reads_is_still_a_ping() {
        assert_eq!(frames_of(&[b"\r\n", b"\r\n"], 100), vec![Frame::Ping]);
        assert_eq!(frames_of(&[b"\r", b"\n\r", b"\n"], 100), vec![Frame::Ping]);
    }

    #[test]
    fn lone_crlf_waits_for_more_and_is_then_skipped() {
        let mut framer = StreamFramer::new(1000);
        framer.push(b"\r\n");
        assert_eq!(framer.next_frame(), None);
        framer.push(MSG2);
        assert_eq!(drain(&mut framer), vec![message(MSG2)]);
    }

    #[test]
    fn bare_lf_line_endings_are_framed() {
        let msg = b"MESSAGE sip:a@b SIP/2.0\nContent-Length: 2\n\nhi";
        let mixed = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\nhi";
        assert_eq!(frames_of(&[msg, MSG2], 1000), vec![message(msg), message(MSG2)]);
        assert_eq!(frames_of(&[mixed], 1000), vec![message(mixed)]);
    }

    #[test]
    fn content_length_name_is_case_insensitive_and_compact() {
        for name in ["content-length", "CONTENT-LENGTH", "Content-Length ", "l", "L"] {
            let msg = format!("MESSAGE sip:a@b SIP/2.0\r\n{name}:  4 \r\n\r\nbodyNEXT");
            let frames = frames_of(&[msg.as_bytes()], 1000);
            assert_eq!(frames, vec![message(&msg.as_bytes()[..msg.len() - 4])], "{name}");
        }
    }

    #[test]
    fn folded_content_length_is_read_across_lines() {
        let msg = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:\r\n  3\r\nSubject: a\r\n b\r\n\r\nxyz";
        assert_eq!(frames_of(&[msg, MSG2], 1000), vec![message(msg), message(MSG2)]);
    }

    #[test]
    fn header_named_like_content_length_prefix_is_not_content_length() {
        let msg = b"MESSAGE sip:a@b SIP/2.0\r\nLength: 9\r\nContent-Lengthy: 9\r\n\r\n";
        assert_eq!(frames_of(&[msg], 1000), vec![message(msg)]);
    }

    #[test]
    fn missing_content_length_means_empty_body() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(frames_of(&[msg, MSG2], 1000), vec![message(msg), message(MSG2)]);
    }

    #[test]
    fn repeated_equal_content_length_is_accepted() {
        let msg = b"MESSAGE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(frames_of(&[msg], 1000), vec![message(msg)]);
    }

    #[test]
    fn invalid_content_length_breaks_the_stream() {
        for value in ["abc", "-1", "1 2", "", "12x", "99999999999999999999999", "0x10"] {
            let head = format!("MESSAGE sip:a@b SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            let mut framer = StreamFramer::new(1000);
            framer.push(head.as_bytes());
            framer.push(MSG2);
            assert_eq!(framer.next_frame(), Some(Frame::Invalid { head: Bytes::from(head.clone()) }), "{value:?}");
            assert!(framer.is_broken());
            assert_eq!(framer.next_frame(), None);
            framer.push(MSG2);
            assert_eq!(framer.next_frame(), None);
        }
    }

    #[test]
    fn conflicting_content_lengths_are_invalid() {
        let head = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n";
        assert!(matches!(frames_of(&[head], 1000)[..], [Frame::Invalid { .. }]));
    }

    #[test]
    fn oversized_body_yields_head_then_skips_exactly_the_body() {
        let head = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: big\r\nContent-Length: 300\r\n\r\n";
        let mut bytes = head.to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 300));
        bytes.extend_from_slice(MSG2);
        let expected = vec![Frame::TooLarge { head: Bytes::from_static(head) }, message(MSG2)];
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let mut framer = StreamFramer::new(200);
            framer.push(a);
            let mut frames = drain(&mut framer);
            framer.push(b);
            frames.extend(drain(&mut framer));
            assert_eq!(frames, expected, "split at {cut}");
            assert!(!framer.is_broken());
        }
    }

    #[test]
    fn message_exactly_at_the_limit_is_accepted() {
        assert_eq!(frames_of(&[MSG1], MSG1.len()), vec![message(MSG1)]);
        assert!(matches!(frames_of(&[MSG1], MSG1.len() - 1)[..], [Frame::TooLarge { .. }]));
    }

    #[test]
    fn endless_header_section_is_too_large_and_unrecoverable() {
        let mut framer = StreamFramer::new(64);
        framer.push(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK");
        assert_eq!(framer.next_frame(), None);
        framer.push(&[b'a'; 40]);
        let Some(Frame::TooLarge { head }) = framer.next_frame() else {
            panic!("expected TooLarge");
        };
        assert_eq!(head.len(), 64);
        assert!(head.starts_with(b"INVITE sip:a@b SIP/2.0\r\nVia:"));
        assert!(framer.is_broken());
        framer.push(b"\r\n\r\n");
        assert_eq!(framer.next_frame(), None);
    }

    #[test]
    fn garbage_never_panics_and_never_buffers_past_the_limit() {
        let mut rng = StdRng::seed_from_u64(5626);
        let alphabet = b"\r\n: 0123456789lL-ContentLength\tINVITE";
        for _ in 0..300 {
            let mut framer = StreamFramer::new(256);
            for _ in 0..40 {
                let len = rng.random_range(0..64);
                let chunk: Vec<u8> = (0..len)
                    .map(|_| {
                        if rng.random_bool(0.8) { alphabet[rng.random_range(0..alphabet.len())] } else { rng.random() }
                    })
                    .collect();
                framer.push(&chunk);
                for frame in drain(&mut framer) {
                    if let Frame::Message(m) = frame {
                        assert!(m.len() <= 256);
                    }
                }
                assert!(framer.buf.len() <= 256);
            }
        }
    }
}
