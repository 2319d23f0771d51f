//! RTP data packets (RFC 3550 §5.1, §5.3.1), read and written through `rtp-rs`.
//!
//! [`RtpPacket`] borrows its payload and header extension from the datagram, so reading costs no
//! allocation; writing appends to a buffer the caller reuses. `rtp-rs` checks and lays out the
//! fixed header, CSRCs and extension. Two of its gaps are closed here: its builder panics on more
//! than 15 CSRCs (we return an error), and it can only pad to a multiple and leaves the padding
//! octets unwritten (we write exactly the padding asked for, zeroed, count last).

use rtp_rs::{RtpPacketBuildError, RtpPacketBuilder, RtpReader, RtpReaderError, Seq};

/// At most 15 contributing sources fit in the 4-bit CC field.
pub const MAX_CSRCS: usize = 15;

/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;

/// What was wrong with an RTP packet being read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Fewer bytes than the 12-byte fixed header.
    #[error("RTP packet of {0} bytes is shorter than the 12-byte fixed header")]
    TooShort(usize),
    /// The version field is not 2.
    #[error("RTP version {0} is not supported: only version 2 is (RFC 3550 §5.1)")]
    Version(u8),
    /// The CSRC list or header extension runs past the end of the packet.
    #[error("RTP header needs {needed} bytes but the packet has {actual}: CSRC count or extension length is wrong")]
    Truncated {
        /// Bytes the header claims.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The padding count is zero or longer than the packet.
    #[error("RTP padding count {0} is zero or longer than the payload (RFC 3550 §5.1)")]
    Padding(u8),
    /// A payload type above 127 was asked for.
    #[error("payload type {0} does not fit in 7 bits: use 0 to 127")]
    PayloadType(u8),
    /// More than 15 CSRCs were asked for.
    #[error("{0} CSRCs asked for but at most 15 fit in an RTP header")]
    TooManyCsrcs(usize),
    /// The header extension is not a whole number of 32-bit words, or is too long.
    #[error("header extension of {0} bytes must be a multiple of 4 and at most 65535 bytes (RFC 3550 §5.3.1)")]
    Extension(usize),
}

impl From<RtpReaderError> for RtpError {
    fn from(error: RtpReaderError) -> Self {
        match error {
            RtpReaderError::BufferTooShort(len) => RtpError::TooShort(len),
            RtpReaderError::UnsupportedVersion(v) => RtpError::Version(v),
            RtpReaderError::HeadersTruncated { header_len, buffer_len } => {
                RtpError::Truncated { needed: header_len, actual: buffer_len }
            }
            RtpReaderError::PaddingLengthInvalid(n) => RtpError::Padding(n),
        }
    }
}

/// The fixed header fields that every RTP packet carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit; for audio, the first packet of a talk spurt (RFC 3551 §4.1).
    pub marker: bool,
    /// Payload type, 0–127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp in the payload format's clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Up to 15 contributing sources, stored inline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Csrcs {
    ids: [u32; MAX_CSRCS],
    len: u8,
}

impl Csrcs {
    /// A list of the given sources, or an error if there are more than 15.
    pub fn new(ids: &[u32]) -> Result<Self, RtpError> {
        let mut list = Csrcs::default();
        let slot = list.ids.get_mut(..ids.len()).ok_or(RtpError::TooManyCsrcs(ids.len()))?;
        slot.copy_from_slice(ids);
        list.len = ids.len() as u8;
        Ok(list)
    }

    /// The sources, in header order.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..usize::from(self.len).min(MAX_CSRCS)]
    }
}

/// An RTP header extension (RFC 3550 §5.3.1): a profile-defined 16-bit value and whole words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    /// The "defined by profile" field (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension body, a multiple of 4 bytes.
    pub data: &'a [u8],
}

/// One RTP packet, borrowing its payload and extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Fixed header fields.
    pub header: RtpHeader,
    /// Contributing sources.
    pub csrcs: Csrcs,
    /// The header extension, if the X bit is set.
    pub extension: Option<HeaderExtension<'a>>,
    /// The payload, without padding.
    pub payload: &'a [u8],
    /// Number of padding octets after the payload, counting the final count octet; 0 for none.
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// A packet with no CSRCs, extension or padding.
    pub fn new(header: RtpHeader, payload: &'a [u8]) -> Self {
        RtpPacket { header, csrcs: Csrcs::default(), extension: None, payload, padding: 0 }
    }

    /// Reads a packet, checking the version, CSRC count, extension length and padding against
    /// the datagram's length. The extension is skipped to find the payload.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, RtpError> {
        let reader = RtpReader::new(datagram)?;
        let mut csrcs = Csrcs::default();
        for (slot, id) in csrcs.ids.iter_mut().zip(reader.csrc()) {
            *slot = id;
            csrcs.len += 1;
        }
        Ok(RtpPacket {
            header: RtpHeader {
                marker: reader.mark(),
                payload_type: reader.payload_type(),
                sequence: reader.sequence_number().into(),
                timestamp: reader.timestamp(),
                ssrc: reader.ssrc(),
            },
            csrcs,
            extension: reader.extension().map(|(profile, data)| HeaderExtension { profile, data }),
            payload: reader.payload(),
            padding: reader.padding().unwrap_or(0),
        })
    }

    /// The number of bytes [`write_to`](Self::write_to) appends.
    pub fn encoded_len(&self) -> usize {
        FIXED_HEADER_LEN
            + 4 * self.csrcs.as_slice().len()
            + self.extension.map_or(0, |e| 4 + e.data.len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Appends the packet to `out`; on error `out` is left as it was.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), RtpError> {
        let h = &self.header;
        if h.payload_type > 0x7f {
            return Err(RtpError::PayloadType(h.payload_type));
        }
        let mut builder = RtpPacketBuilder::new()
            .payload_type(h.payload_type)
            .marked(h.marker)
            .sequence(Seq::from(h.sequence))
            .timestamp(h.timestamp)
            .ssrc(h.ssrc)
            .set_csrc(self.csrcs.as_slice())
            .payload(self.payload);
        if let Some(ext) = self.extension {
            builder = builder.extension(ext.profile, ext.data);
        }
        let start = out.len();
        let unpadded = builder.target_length();
        out.resize(start + unpadded, 0);
        let written = match builder.build_into(&mut out[start..]) {
            Ok(n) => n,
            Err(e) => {
                out.truncate(start);
                return Err(match e {
                    RtpPacketBuildError::PayloadTypeInvalid => RtpError::PayloadType(h.payload_type),
                    _ => RtpError::Extension(self.extension.map_or(0, |e| e.data.len())),
                });
            }
        };
        out.truncate(start + written);
        if self.padding > 0 {
            out[start] |= 0x20;
            out.resize(out.len() + usize::from(self.padding) - 1, 0);
            out.push(self.padding);
        }
        Ok(())
    }

    /// The packet as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, RtpError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out)?;
        Ok(out)
    }
}

/// Whether a datagram on a multiplexed port is RTCP rather than RTP (RFC 5761 §4): its second
/// byte, read as an RTCP packet type, is 192–223 (RTP payload types 64–95 with the marker set,
/// which RFC 5761 tells RTP not to use).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::Pad;

    /// Opus, PT 111, written out field by field.
    const HAND_WRITTEN: [u8; 16] = [
        0x80, 0xef, 0x12, 0x34, // V=2, M=1, PT=111, seq 0x1234
        0x00, 0x01, 0xe2, 0x40, // timestamp 123456
        0xde, 0xad, 0xbe, 0xef, // SSRC
        0xfc, 0xff, 0xfe, 0x01, // payload
    ];

    #[test]
    fn reads_hand_written_bytes() {
        let p = RtpPacket::parse(&HAND_WRITTEN).unwrap();
        assert_eq!(
            p.header,
            RtpHeader { marker: true, payload_type: 111, sequence: 0x1234, timestamp: 123_456, ssrc: 0xdead_beef }
        );
        assert_eq!(p.payload, &[0xfc, 0xff, 0xfe, 0x01]);
        assert!(p.csrcs.as_slice().is_empty());
        assert_eq!((p.extension, p.padding), (None, 0));
        assert_eq!(p.to_vec().unwrap(), HAND_WRITTEN);
    }

    #[test]
    fn reads_what_rtp_rs_builds_with_csrcs_extension_and_padding() {
        let payload = [1u8, 2, 3, 4, 5];
        let ext = [9u8; 8];
        let bytes = RtpPacketBuilder::new()
            .payload_type(0)
            .sequence(Seq::from(65535))
            .timestamp(u32::MAX)
            .ssrc(42)
            .add_csrc(7)
            .add_csrc(8)
            .extension(0xbede, &ext)
            .padded(Pad::round_to(4))
            .payload(&payload)
            .build()
            .unwrap();
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(p.header.sequence, 65535);
        assert_eq!(p.header.timestamp, u32::MAX);
        assert_eq!(p.csrcs.as_slice(), &[7, 8]);
        assert_eq!(p.extension, Some(HeaderExtension { profile: 0xbede, data: &ext }));
        assert_eq!(p.payload, &payload, "extension skipped, padding removed");
        assert_eq!(usize::from(p.padding), bytes.len() - (12 + 8 + 12 + 5));
        assert_eq!(p.to_vec().unwrap().len(), bytes.len());
    }

    #[test]
    fn written_packets_read_back_in_rtp_rs() {
        let ext = [1u8, 2, 3, 4];
        let mut p = RtpPacket::new(
            RtpHeader { marker: false, payload_type: 8, sequence: 9, timestamp: 160, ssrc: 77 },
            b"pcma",
        );
        p.csrcs = Csrcs::new(&[1, 2, 3]).unwrap();
        p.extension = Some(HeaderExtension { profile: 0x1000, data: &ext });
        p.padding = 3;
        let bytes = p.to_vec().unwrap();
        assert_eq!(bytes.len(), p.encoded_len());
        let r = RtpReader::new(&bytes).unwrap();
        assert_eq!((r.payload_type(), u16::from(r.sequence_number()), r.timestamp()), (8, 9, 160));
        assert_eq!(r.csrc().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(r.extension(), Some((0x1000, &ext[..])));
        assert_eq!(r.payload(), b"pcma");
        assert_eq!(r.padding(), Some(3));
        assert_eq!(&bytes[bytes.len() - 3..], &[0, 0, 3], "padding zeroed, count last");
        assert_eq!(RtpPacket::parse(&bytes).unwrap(), p);
    }

    #[test]
    fn extension_is_skipped_by_its_length_field() {
        // X=1, extension of 2 words, then payload "hi".
        let bytes = [
            0x90, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // header
            0xbe, 0xde, 0x00, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, // extension
            b'h', b'i',
        ];
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(p.payload, b"hi");
        assert_eq!(p.extension.unwrap().data, &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn rejects_bad_version_truncation_and_padding() {
        let mut v1 = HAND_WRITTEN;
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::Version(1)));
        assert_eq!(RtpPacket::parse(&HAND_WRITTEN[..11]), Err(RtpError::TooShort(11)));
        let mut csrc = HAND_WRITTEN;
        csrc[0] = 0x82; // two CSRCs claimed, four bytes present
        assert!(matches!(RtpPacket::parse(&csrc), Err(RtpError::Truncated { .. })));
        let mut ext = HAND_WRITTEN;
        ext[0] = 0x90; // extension header of 0xfffe words
        assert!(matches!(RtpPacket::parse(&ext), Err(RtpError::Truncated { .. })));
        let mut pad = HAND_WRITTEN;
        pad[0] = 0xa0;
        pad[15] = 9; // more padding than payload
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding(9)));
        pad[15] = 0;
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding(0)));
    }

    /// rtp-rs's `set_csrc` panics (slice length mismatch) when given more than 15 CSRCs.
    #[test]
    fn sixteen_csrcs_is_an_error_not_a_panic() {
        assert_eq!(Csrcs::new(&[0; 16]), Err(RtpError::TooManyCsrcs(16)));
        assert_eq!(Csrcs::new(&[5; 15]).unwrap().as_slice().len(), 15);
    }

    #[test]
    fn writing_rejects_bad_payload_type_and_unaligned_extension() {
        let mut out = vec![0xaa];
        let mut p = RtpPacket::new(RtpHeader { payload_type: 128, ..RtpHeader::default() }, b"x");
        assert_eq!(p.write_to(&mut out), Err(RtpError::PayloadType(128)));
        p.header.payload_type = 0;
        p.extension = Some(HeaderExtension { profile: 1, data: b"abc" });
        assert_eq!(p.write_to(&mut out), Err(RtpError::Extension(3)));
        assert_eq!(out, [0xaa], "buffer untouched on error");
    }

    /// rtp-rs's `Pad` only rounds up to a multiple, and `build_into` leaves the padding octets as
    /// it found them in the buffer; we write the exact count asked for, zeroed.
    #[test]
    fn padding_is_written_exactly_and_zeroed() {
        let builder = RtpPacketBuilder::new().payload_type(0).payload(b"abc").padded(Pad::round_to(4));
        let mut dirty = [0xaau8; 16];
        let len = builder.build_into(&mut dirty).unwrap();
        assert_eq!(&dirty[len - 1..len], &[1], "rtp-rs: one octet of padding, the count");
        let mut dirty = [0xaau8; 20];
        let len = RtpPacketBuilder::new()
            .payload_type(0)
            .payload(b"ab")
            .padded(Pad::round_to(8))
            .build_into(&mut dirty)
            .unwrap();
        assert_eq!(&dirty[len - 2..len], &[0xaa, 2], "rtp-rs: stale bytes left in the padding");

        let mut out = vec![0xaa; 3];
        let mut p = RtpPacket::new(RtpHeader::default(), b"ab");
        p.padding = 6;
        p.write_to(&mut out).unwrap();
        assert_eq!(&out[3 + 14..], &[0, 0, 0, 0, 0, 6]);
        assert_eq!(RtpPacket::parse(&out[3..]).unwrap().padding, 6);
    }

    #[test]
    fn demultiplexes_rtcp_from_rtp() {
        // rtp-rs reads an RTCP receiver report as an RTP packet with PT 73 and marker set.
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 7];
        let mut rr_padded = rr.to_vec();
        rr_padded.extend_from_slice(&[0; 4]);
        assert!(RtpReader::new(&rr_padded).is_ok());
        assert!(is_rtcp(&rr));
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201, 0, 7]));
        assert!(!is_rtcp(&HAND_WRITTEN), "PT 111 with marker is 0xef");
        assert!(!is_rtcp(&[0x80, 0x00]));
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(3);
        let mut buf = Vec::new();
        for _ in 0..20_000 {
            let len = rng.random_range(0..80);
            buf.clear();
            buf.extend((0..len).map(|_| rng.random::<u8>()));
            if let Some(b) = buf.first_mut() {
                *b = (*b & 0x3f) | 0x80; // mostly version 2, so the deeper checks run
            }
            if let Ok(p) = RtpPacket::parse(&buf) {
                assert!(p.payload.len() + usize::from(p.padding) <= buf.len());
                let again = p.to_vec().unwrap();
                assert_eq!(RtpPacket::parse(&again).unwrap(), p);
            }
        }
    }
}
