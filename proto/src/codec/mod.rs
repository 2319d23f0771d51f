//! Audio codecs and the small DSP the media pipeline needs, sans-IO.
//!
//! - [`Encoder`] and [`Decoder`]: one frame of mono 16-bit PCM at the codec's sample rate in,
//!   one RTP payload out, and back; with concealment of a lost frame and, for Opus, its
//!   recovery from the next packet's in-band FEC. Nothing allocates per frame.
//! - Opus (RFC 6716; RTP payload RFC 7587: 48 kHz clock even for mono) through libopus, and
//!   G.711 µ-law/A-law (ITU-T G.711; PCMU and PCMA, RFC 3551 §4.5.14) at 8 kHz.
//! - [`CodecKind`]: picks the codec from an SDP `a=rtpmap` (name, clock rate, channels) and
//!   builds an [`AudioEncoder`]/[`AudioDecoder`], enums that dispatch without boxing.
//! - RFC 4733 telephone events ([`TelephoneEvent`], [`DtmfSender`], [`DtmfReceiver`]).
//! - [`Resampler`]: between device rates and codec rates (44.1 kHz ↔ 48 kHz, 48 kHz ↔ 8 kHz).
//! - [`tone_power`]/[`is_dominated_by`]: Goertzel measurement of a tone in a block of PCM;
//!   [`level_dbfs`]: a block's RMS level, for meters.
//!
//! ```
//! use proto::codec::{CodecKind, Decoder, Encoder, OpusConfig};
//!
//! let kind = CodecKind::from_rtpmap("opus", 48_000, 2).expect("Opus is supported");
//! let mut encoder = kind.encoder(&OpusConfig::default())?;
//! let mut decoder = kind.decoder()?;
//! let pcm = [0i16; 960]; // 20 ms at 48 kHz
//! let (mut payload, mut out) = ([0u8; 1500], [0i16; 5760]);
//! let len = encoder.encode(&pcm, &mut payload)?;
//! assert_eq!(decoder.decode(&payload[..len], &mut out)?, 960);
//! assert_eq!(decoder.conceal(&mut out)?, 960); // a lost 20 ms frame
//! # Ok::<(), proto::codec::CodecError>(())
//! ```

mod dtmf;
mod g711;
mod opus;
mod resample;
mod tone;

pub use dtmf::{DtmfPacket, DtmfReceiver, DtmfSender, ReceivedEvent, TelephoneEvent, digit_for_event, event_for_digit};
pub use g711::{G711_RATE, G711Decoder, G711Encoder, G711Law};
pub use opus::{OPUS_RATE, OpusConfig, OpusDecoder, OpusEncoder};
pub use resample::Resampler;
pub use tone::{SILENCE_DBFS, is_dominated_by, level_dbfs, mean_power, tone_power};

/// What went wrong encoding, decoding or setting up a codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The output buffer cannot hold the result.
    #[error("output buffer holds {have} items but {need} are needed: pass a larger buffer")]
    BufferTooSmall {
        /// Items the result needs.
        need: usize,
        /// Items the buffer holds.
        have: usize,
    },
    /// The codec cannot encode a frame of this length.
    #[error("cannot encode a frame of {samples} samples at {rate} Hz: use 2.5, 5, 10, 20, 40 or 60 ms")]
    FrameLength {
        /// Samples given.
        samples: usize,
        /// The codec's sample rate.
        rate: u32,
    },
    /// libopus refused: a corrupt packet, or a setting out of range.
    #[error("libopus {call} failed: {reason}")]
    Opus {
        /// The libopus function that failed.
        call: &'static str,
        /// libopus's description of the failure.
        reason: &'static str,
    },
    /// A telephone-event payload shorter than one 4-byte event (RFC 4733 §2.3).
    #[error("telephone-event payload of {0} bytes is too short: an event takes 4 bytes")]
    ShortEvent(usize),
    /// A character that is not one of the 16 DTMF digits.
    #[error("{0:?} is not a DTMF digit: use 0-9, *, #, or A-D")]
    NotADigit(char),
    /// A sample rate of zero, or a pair of rates whose ratio needs too large a filter.
    #[error("cannot resample {from} Hz to {to} Hz: rates must be non-zero with a simple ratio, like 44100/48000")]
    Rates {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
}

/// Turns frames of mono PCM into RTP payloads.
pub trait Encoder {
    /// Sample rate of the PCM taken, in Hz (also the RTP clock rate for these codecs).
    fn sample_rate(&self) -> u32;
    /// Encodes one frame of `pcm` into `out`, returning the payload length. Opus takes
    /// 2.5 to 60 ms frames; G.711 any length, one byte per sample.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;
    /// Sets the target bitrate in bit/s (fixed-rate codecs ignore it).
    fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError>;
    /// Sets the expected packet loss, 0 to 100 %, as the far end's RTCP reports it.
    fn set_packet_loss_percent(&mut self, pct: u8) -> Result<(), CodecError>;
    /// The expected packet loss the encoder plans for now, as it reports it (0 for codecs that
    /// plan for none).
    fn packet_loss_percent(&mut self) -> Result<u8, CodecError>;
    /// Turns in-band FEC on or off (codecs without it ignore this).
    fn set_fec(&mut self, on: bool) -> Result<(), CodecError>;
}

/// Turns RTP payloads back into mono PCM, and covers for the ones that never came.
pub trait Decoder {
    /// Sample rate of the PCM produced, in Hz.
    fn sample_rate(&self) -> u32;
    /// Decodes one payload into `out`, returning the samples written. An empty payload
    /// decodes to nothing.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;
    /// Conceals one lost frame, as long as the last decoded one (20 ms before any), into
    /// `out`; returns its length.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError>;
    /// Rebuilds the frame lost just before `next_payload` from that packet's in-band FEC
    /// data, concealing when there is none; returns its length. Call [`Decoder::decode`]
    /// with `next_payload` afterwards as usual.
    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;
}

/// The audio codecs this library speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// Opus, `opus/48000/2` in SDP (RFC 7587 §7).
    Opus,
    /// G.711 µ-law, static payload type 0, `PCMU/8000`.
    Pcmu,
    /// G.711 A-law, static payload type 8, `PCMA/8000`.
    Pcma,
}

impl CodecKind {
    /// The codec an `a=rtpmap:<pt> <name>/<clock rate>[/<channels>]` names, if supported.
    /// Names compare case-insensitively; `channels` is 1 when the rtpmap leaves it out.
    /// Opus must be announced at 48000 Hz with 2 channels (RFC 7587 §7); 1 is tolerated.
    pub fn from_rtpmap(name: &str, clock_rate: u32, channels: u8) -> Option<Self> {
        let kind = if name.eq_ignore_ascii_case("opus") {
            Self::Opus
        } else if name.eq_ignore_ascii_case("PCMU") {
            Self::Pcmu
        } else if name.eq_ignore_ascii_case("PCMA") {
            Self::Pcma
        } else {
            return None;
        };
        let channels_ok = match kind {
            Self::Opus => matches!(channels, 1 | 2),
            Self::Pcmu | Self::Pcma => channels == 1,
        };
        (clock_rate == kind.clock_rate() && channels_ok).then_some(kind)
    }

    /// The encoding name as written in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// RTP clock rate, which is also the PCM sample rate of encoder and decoder.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Opus => OPUS_RATE,
            Self::Pcmu | Self::Pcma => G711_RATE,
        }
    }

    /// Channel count written in `a=rtpmap` (2 for Opus per RFC 7587 §7, though we send mono).
    pub fn rtpmap_channels(self) -> u8 {
        match self {
            Self::Opus => 2,
            Self::Pcmu | Self::Pcma => 1,
        }
    }

    /// The static RTP payload type (RFC 3551 §6), if the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Opus => None,
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
        }
    }

    /// A new encoder; `opus` applies only to Opus.
    pub fn encoder(self, opus: &OpusConfig) -> Result<AudioEncoder, CodecError> {
        Ok(match self {
            Self::Opus => AudioEncoder::Opus(OpusEncoder::new(opus)?),
            Self::Pcmu => AudioEncoder::G711(G711Encoder::new(G711Law::MuLaw)),
            Self::Pcma => AudioEncoder::G711(G711Encoder::new(G711Law::ALaw)),
        })
    }

    /// A new decoder.
    pub fn decoder(self) -> Result<AudioDecoder, CodecError> {
        Ok(match self {
            Self::Opus => AudioDecoder::Opus(OpusDecoder::new()?),
            Self::Pcmu => AudioDecoder::G711(Box::new(G711Decoder::new(G711Law::MuLaw))),
            Self::Pcma => AudioDecoder::G711(Box::new(G711Decoder::new(G711Law::ALaw))),
        })
    }
}

/// Any supported encoder, dispatched by `match` rather than through a vtable.
#[derive(Debug)]
pub enum AudioEncoder {
    /// Opus.
    Opus(OpusEncoder),
    /// G.711, either law.
    G711(G711Encoder),
}

/// Any supported decoder, dispatched by `match` rather than through a vtable.
#[derive(Debug)]
pub enum AudioDecoder {
    /// Opus.
    Opus(OpusDecoder),
    /// G.711, either law (boxed once at creation: its concealment history is 480 bytes).
    G711(Box<G711Decoder>),
}

macro_rules! dispatch {
    ($self:ident, $inner:ident => $call:expr) => {
        match $self {
            Self::Opus($inner) => $call,
            Self::G711($inner) => $call,
        }
    };
}

impl Encoder for AudioEncoder {
    fn sample_rate(&self) -> u32 {
        dispatch!(self, e => e.sample_rate())
    }
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        dispatch!(self, e => e.encode(pcm, out))
    }
    fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        dispatch!(self, e => e.set_bitrate(bps))
    }
    fn set_packet_loss_percent(&mut self, pct: u8) -> Result<(), CodecError> {
        dispatch!(self, e => e.set_packet_loss_percent(pct))
    }
    fn packet_loss_percent(&mut self) -> Result<u8, CodecError> {
        dispatch!(self, e => e.packet_loss_percent())
    }
    fn set_fec(&mut self, on: bool) -> Result<(), CodecError> {
        dispatch!(self, e => e.set_fec(on))
    }
}

impl Decoder for AudioDecoder {
    fn sample_rate(&self) -> u32 {
        dispatch!(self, d => d.sample_rate())
    }
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        dispatch!(self, d => d.decode(payload, out))
    }
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        dispatch!(self, d => d.conceal(out))
    }
    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        dispatch!(self, d => d.decode_fec(next_payload, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng, rngs::StdRng};

    #[test]
    fn rtpmap_names_pick_the_codec_case_insensitively() {
        assert_eq!(CodecKind::from_rtpmap("opus", 48_000, 2), Some(CodecKind::Opus));
        assert_eq!(CodecKind::from_rtpmap("OPUS", 48_000, 1), Some(CodecKind::Opus));
        assert_eq!(CodecKind::from_rtpmap("pcmu", 8_000, 1), Some(CodecKind::Pcmu));
        assert_eq!(CodecKind::from_rtpmap("PCMA", 8_000, 1), Some(CodecKind::Pcma));
    }

    #[test]
    fn rtpmap_with_a_wrong_rate_or_channel_count_or_unknown_name_is_refused() {
        assert_eq!(CodecKind::from_rtpmap("opus", 16_000, 2), None);
        assert_eq!(CodecKind::from_rtpmap("opus", 48_000, 6), None);
        assert_eq!(CodecKind::from_rtpmap("PCMU", 16_000, 1), None);
        assert_eq!(CodecKind::from_rtpmap("PCMA", 8_000, 2), None);
        assert_eq!(CodecKind::from_rtpmap("G722", 8_000, 1), None);
        assert_eq!(CodecKind::from_rtpmap("telephone-event", 8_000, 1), None);
    }

    #[test]
    fn rtpmap_fields_round_trip_through_from_rtpmap() {
        for kind in [CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma] {
            let back = CodecKind::from_rtpmap(kind.name(), kind.clock_rate(), kind.rtpmap_channels());
            assert_eq!(back, Some(kind));
        }
        assert_eq!(CodecKind::Pcmu.static_payload_type(), Some(0));
        assert_eq!(CodecKind::Pcma.static_payload_type(), Some(8));
        assert_eq!(CodecKind::Opus.static_payload_type(), None);
    }

    #[test]
    fn factory_codecs_run_at_the_clock_rate_and_round_trip_a_tone() {
        for kind in [CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma] {
            let mut enc = kind.encoder(&OpusConfig::default()).unwrap();
            let mut dec = kind.decoder().unwrap();
            let rate = kind.clock_rate();
            assert_eq!((enc.sample_rate(), dec.sample_rate()), (rate, rate));
            let frame = rate as usize / 50;
            let (mut payload, mut out) = ([0u8; 1500], vec![0i16; 5760]);
            let mut last = Vec::new();
            for f in 0..10 {
                let pcm: Vec<i16> = (f * frame..(f + 1) * frame)
                    .map(|n| {
                        let t = n as f64 / f64::from(rate);
                        (9000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
                    })
                    .collect();
                let len = enc.encode(&pcm, &mut payload).unwrap();
                assert_eq!(dec.decode(&payload[..len], &mut out), Ok(frame));
                last = out[..frame].to_vec();
            }
            assert!(is_dominated_by(&last, rate, 1000.0), "{kind:?}");
            enc.set_bitrate(24_000).unwrap();
            enc.set_packet_loss_percent(5).unwrap();
            enc.set_fec(true).unwrap();
            assert_eq!(dec.conceal(&mut out), Ok(frame));
        }
    }

    #[test]
    fn random_payloads_never_panic_any_decoder() {
        let mut rng = StdRng::seed_from_u64(42);
        let mut payload = [0u8; 1500];
        let mut out = vec![0i16; 5760];
        for kind in [CodecKind::Opus, CodecKind::Pcmu, CodecKind::Pcma] {
            let mut dec = kind.decoder().unwrap();
            for _ in 0..1000 {
                let len = rng.next_u32() as usize % payload.len();
                let cap = rng.next_u32() as usize % out.len();
                rng.fill_bytes(&mut payload[..len]);
                let _ = dec.decode(&payload[..len], &mut out[..cap]);
                let _ = dec.decode_fec(&payload[..len], &mut out[..cap]);
                let _ = dec.conceal(&mut out[..cap]);
            }
        }
    }
}
