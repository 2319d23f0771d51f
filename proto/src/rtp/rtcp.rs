//! RTCP compound packets (RFC 3550 §6.4–§6.6, validity checks of §A.2).
//!
//! [`parse_compound`] reads a whole datagram into [`RtcpPacket`]s and rejects it, never panicking,
//! if any packet has the wrong version, a length that does not tile the datagram, a count its
//! length cannot hold, or padding anywhere but on the last packet. §A.2 also asks that the first
//! packet be SR or RR; that check is left out because baresip sends its BYE first and a bare APP
//! as keepalive. Packet types this module does not model (APP, feedback, XR) come back as
//! [`RtcpPacket::Other`] with their body. [`write_compound`]
//! writes packets back, computing every length and count field.

use super::ntp::NtpTime;

/// Sender report packet type.
pub const PT_SR: u8 = 200;
/// Receiver report packet type.
pub const PT_RR: u8 = 201;
/// Source description packet type.
pub const PT_SDES: u8 = 202;
/// Goodbye packet type.
pub const PT_BYE: u8 = 203;

/// What was wrong with an RTCP datagram being read, or packets being written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// The datagram is shorter than a header, or a packet runs past its end.
    #[error("RTCP packet truncated: needs {needed} bytes at offset {offset}, datagram has {len}")]
    Truncated {
        /// Where the packet starts.
        offset: usize,
        /// Bytes it claims.
        needed: usize,
        /// Datagram length.
        len: usize,
    },
    /// A packet's version field is not 2.
    #[error("RTCP version {0} is not supported: only version 2 is (RFC 3550 §6.4.1)")]
    Version(u8),
    /// Only the last packet of a compound may be padded, by a count that fits in it.
    #[error("RTCP padding is invalid: only the last packet may be padded, by 1 to its own length (RFC 3550 §A.2)")]
    Padding,
    /// A packet's count field and length disagree, or its body is malformed.
    #[error("RTCP packet type {packet_type} is malformed: {what}")]
    Malformed {
        /// The packet type.
        packet_type: u8,
        /// What does not fit.
        what: &'static str,
    },
    /// More than 31 report blocks, chunks or sources were given to write in one packet.
    #[error("{0} items do not fit in an RTCP packet's 5-bit count: split them over several packets")]
    TooMany(usize),
    /// An SDES item or BYE reason longer than 255 bytes was given to write.
    #[error("RTCP text of {0} bytes is longer than the 255 its length octet allows")]
    TextTooLong(usize),
    /// A packet would exceed the 16-bit length field.
    #[error("RTCP packet of {0} bytes is longer than its length field can say")]
    TooLong(usize),
}

/// The sender information block of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderInfo {
    /// Wall-clock time when this report was sent.
    pub ntp: NtpTime,
    /// The same instant in the RTP timestamp clock.
    pub rtp_timestamp: u32,
    /// Packets sent since starting transmission.
    pub packet_count: u32,
    /// Payload octets sent since starting transmission.
    pub octet_count: u32,
}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost; 24-bit signed on the wire (duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp from this source, or 0.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s, or 0.
    pub delay_since_last_sr: u32,
}

/// A sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderReport {
    /// The sender.
    pub ssrc: u32,
    /// What it has sent.
    pub info: SenderInfo,
    /// What it has received.
    pub reports: Vec<ReportBlock>,
}

/// A receiver report (RFC 3550 §6.4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverReport {
    /// The reporter.
    pub ssrc: u32,
    /// What it has received.
    pub reports: Vec<ReportBlock>,
}

/// The type of an SDES item (RFC 3550 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdesKind {
    /// Canonical end-point identifier, the one mandatory item.
    Cname,
    /// User name.
    Name,
    /// E-mail address.
    Email,
    /// Phone number.
    Phone,
    /// Geographic location.
    Loc,
    /// Application or tool name.
    Tool,
    /// Notice or status.
    Note,
    /// Private extension.
    Priv,
    /// Any other type code.
    Other(u8),
}

impl SdesKind {
    fn from_code(code: u8) -> Self {
        match code {
            1 => SdesKind::Cname,
            2 => SdesKind::Name,
            3 => SdesKind::Email,
            4 => SdesKind::Phone,
            5 => SdesKind::Loc,
            6 => SdesKind::Tool,
            7 => SdesKind::Note,
            8 => SdesKind::Priv,
            other => SdesKind::Other(other),
        }
    }

    fn code(self) -> u8 {
        match self {
            SdesKind::Cname => 1,
            SdesKind::Name => 2,
            SdesKind::Email => 3,
            SdesKind::Phone => 4,
            SdesKind::Loc => 5,
            SdesKind::Tool => 6,
            SdesKind::Note => 7,
            SdesKind::Priv => 8,
            SdesKind::Other(code) => code,
        }
    }
}

/// One SDES item. Text is UTF-8 on the wire; invalid bytes read as U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    /// The item type.
    pub kind: SdesKind,
    /// The item text.
    pub text: String,
}

/// The SDES items of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: u32,
    /// Its items.
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// A chunk holding only a CNAME.
    pub fn cname(ssrc: u32, cname: &str) -> Self {
        SdesChunk { ssrc, items: vec![SdesItem { kind: SdesKind::Cname, text: cname.to_owned() }] }
    }

    /// The CNAME item's text, if present.
    pub fn cname_text(&self) -> Option<&str> {
        self.items.iter().find(|i| i.kind == SdesKind::Cname).map(|i| i.text.as_str())
    }
}

/// A goodbye (RFC 3550 §6.6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bye {
    /// The sources leaving.
    pub sources: Vec<u32>,
    /// Why, if said.
    pub reason: Option<String>,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR, type 200.
    SenderReport(SenderReport),
    /// RR, type 201.
    ReceiverReport(ReceiverReport),
    /// SDES, type 202.
    SourceDescription(Vec<SdesChunk>),
    /// BYE, type 203.
    Bye(Bye),
    /// Any other type (APP, feedback, XR), kept as its body after the 4-byte header.
    Other {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count / subtype field.
        count: u8,
        /// The body, without padding.
        body: Vec<u8>,
    },
}

/// Reads a compound RTCP datagram, checking version, lengths and padding (RFC 3550 §A.2).
pub fn parse_compound(datagram: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut packets = Vec::with_capacity(3);
    let mut offset = 0;
    while offset < datagram.len() {
        let header =
            datagram.get(offset..offset + 4).ok_or(RtcpError::Truncated { offset, needed: 4, len: datagram.len() })?;
        let version = header[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let padded = header[0] & 0x20 != 0;
        let count = header[0] & 0x1f;
        let packet_type = header[1];
        let len = 4 * (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1);
        let packet = datagram.get(offset..offset + len).ok_or(RtcpError::Truncated {
            offset,
            needed: len,
            len: datagram.len(),
        })?;
        offset += len;
        let mut body = &packet[4..];
        if padded {
            let pad = usize::from(*body.last().ok_or(RtcpError::Padding)?);
            if offset != datagram.len() || pad == 0 || pad > body.len() {
                return Err(RtcpError::Padding);
            }
            body = &body[..body.len() - pad];
        }
        packets.push(parse_one(packet_type, count, body)?);
    }
    if packets.is_empty() {
        return Err(RtcpError::Truncated { offset: 0, needed: 4, len: 0 });
    }
    Ok(packets)
}

fn parse_one(packet_type: u8, count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let malformed = |what| RtcpError::Malformed { packet_type, what };
    let mut r = Reader(body);
    Ok(match packet_type {
        PT_SR => {
            let ssrc = r.u32().ok_or_else(|| malformed("no sender SSRC"))?;
            let info = SenderInfo {
                ntp: NtpTime(r.u64().ok_or_else(|| malformed("sender info truncated"))?),
                rtp_timestamp: r.u32().ok_or_else(|| malformed("sender info truncated"))?,
                packet_count: r.u32().ok_or_else(|| malformed("sender info truncated"))?,
                octet_count: r.u32().ok_or_else(|| malformed("sender info truncated"))?,
            };
            let reports = read_blocks(&mut r, count).ok_or_else(|| malformed("fewer report blocks than its count"))?;
            // Anything after the blocks is a profile-specific extension (§6.4.1), ignored.
            RtcpPacket::SenderReport(SenderReport { ssrc, info, reports })
        }
        PT_RR => {
            let ssrc = r.u32().ok_or_else(|| malformed("no reporter SSRC"))?;
            let reports = read_blocks(&mut r, count).ok_or_else(|| malformed("fewer report blocks than its count"))?;
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports })
        }
        PT_SDES => RtcpPacket::SourceDescription(
            read_sdes(&mut r, count)
                .ok_or_else(|| malformed("SDES chunk runs past the packet or lacks its null item"))?,
        ),
        PT_BYE => {
            let mut sources = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                sources.push(r.u32().ok_or_else(|| malformed("fewer sources than its count"))?);
            }
            let reason = match r.u8() {
                None | Some(0) => None,
                Some(n) => {
                    let text = r.take(usize::from(n)).ok_or_else(|| malformed("reason runs past the packet"))?;
                    Some(String::from_utf8_lossy(text).into_owned())
                }
            };
            RtcpPacket::Bye(Bye { sources, reason })
        }
        _ => RtcpPacket::Other { packet_type, count, body: body.to_vec() },
    })
}

fn read_blocks(r: &mut Reader<'_>, count: u8) -> Option<Vec<ReportBlock>> {
    let mut blocks = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let ssrc = r.u32()?;
        let lost = r.u32()?;
        blocks.push(ReportBlock {
            ssrc,
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost: ((lost << 8) as i32) >> 8,
            extended_highest_seq: r.u32()?,
            jitter: r.u32()?,
            last_sr: r.u32()?,
            delay_since_last_sr: r.u32()?,
        });
    }
    Some(blocks)
}

fn read_sdes(r: &mut Reader<'_>, count: u8) -> Option<Vec<SdesChunk>> {
    let mut chunks = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let start = r.0.len();
        let ssrc = r.u32()?;
        let mut items = Vec::new();
        loop {
            match r.u8()? {
                0 => break,
                code => {
                    let len = r.u8()?;
                    let text = String::from_utf8_lossy(r.take(usize::from(len))?).into_owned();
                    items.push(SdesItem { kind: SdesKind::from_code(code), text });
                }
            }
        }
        // The null item is followed by nulls up to the next 32-bit boundary.
        let used = start - r.0.len();
        r.take((4 - used % 4) % 4)?;
        chunks.push(SdesChunk { ssrc, items });
    }
    Some(chunks)
}

/// Appends packets as one compound datagram. RFC 3550 §6.1 asks for SR or RR first and an SDES
/// with a CNAME in every compound; that is the caller's order to choose.
pub fn write_compound(packets: &[RtcpPacket], out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let start = out.len();
    for packet in packets {
        if let Err(e) = packet.write_to(out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

impl RtcpPacket {
    /// Appends this packet, with its header's count and length; on error `out` is unchanged.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let start = out.len();
        let result = self.write_unchecked(out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_unchecked(&self, out: &mut Vec<u8>, start: usize) -> Result<(), RtcpError> {
        let (packet_type, count) = match self {
            RtcpPacket::SenderReport(sr) => (PT_SR, sr.reports.len()),
            RtcpPacket::ReceiverReport(rr) => (PT_RR, rr.reports.len()),
            RtcpPacket::SourceDescription(chunks) => (PT_SDES, chunks.len()),
            RtcpPacket::Bye(bye) => (PT_BYE, bye.sources.len()),
            RtcpPacket::Other { packet_type, count, .. } => (*packet_type, usize::from(*count)),
        };
        if count > 31 {
            return Err(RtcpError::TooMany(count));
        }
        out.extend_from_slice(&[0x80 | count as u8, packet_type, 0, 0]);
        match self {
            RtcpPacket::SenderReport(sr) => {
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                out.extend_from_slice(&sr.info.ntp.0.to_be_bytes());
                for word in [sr.info.rtp_timestamp, sr.info.packet_count, sr.info.octet_count] {
                    out.extend_from_slice(&word.to_be_bytes());
                }
                write_blocks(&sr.reports, out);
            }
            RtcpPacket::ReceiverReport(rr) => {
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                write_blocks(&rr.reports, out);
            }
            RtcpPacket::SourceDescription(chunks) => {
                for chunk in chunks {
                    let chunk_start = out.len();
                    out.extend_from_slice(&chunk.ssrc.to_be_bytes());
                    for item in &chunk.items {
                        let text = item.text.as_bytes();
                        let len = u8::try_from(text.len()).map_err(|_| RtcpError::TextTooLong(text.len()))?;
                        out.extend_from_slice(&[item.kind.code(), len]);
                        out.extend_from_slice(text);
                    }
                    // At least one null octet ends the list, more pad to a word boundary.
                    out.push(0);
                    pad_to_word(out, chunk_start);
                }
            }
            RtcpPacket::Bye(bye) => {
                for source in &bye.sources {
                    out.extend_from_slice(&source.to_be_bytes());
                }
                if let Some(reason) = bye.reason.as_deref().filter(|r| !r.is_empty()) {
                    let text = reason.as_bytes();
                    let len = u8::try_from(text.len()).map_err(|_| RtcpError::TextTooLong(text.len()))?;
                    let reason_start = out.len();
                    out.push(len);
                    out.extend_from_slice(text);
                    pad_to_word(out, reason_start);
                }
            }
            RtcpPacket::Other { packet_type, body, .. } => {
                if !body.len().is_multiple_of(4) {
                    let (packet_type, what) = (*packet_type, "body is not a whole number of 32-bit words");
                    return Err(RtcpError::Malformed { packet_type, what });
                }
                out.extend_from_slice(body);
            }
        }
        let total = out.len() - start;
        let words = u16::try_from(total / 4 - 1).map_err(|_| RtcpError::TooLong(total))?;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
        Ok(())
    }
}

fn write_blocks(blocks: &[ReportBlock], out: &mut Vec<u8>) {
    for b in blocks {
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0xff_ffff;
        for word in [
            b.ssrc,
            (u32::from(b.fraction_lost) << 24) | lost,
            b.extended_highest_seq,
            b.jitter,
            b.last_sr,
            b.delay_since_last_sr,
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }
}

fn pad_to_word(out: &mut Vec<u8>, from: usize) {
    while !(out.len() - from).is_multiple_of(4) {
        out.push(0);
    }
}

/// A bounds-checked big-endian cursor.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests;
