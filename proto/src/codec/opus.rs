//! Opus (RFC 6716) through libopus, as RFC 7587 carries it over RTP: 48 kHz clock whatever the
//! audio bandwidth, mono PCM in and out here (a stereo packet decodes downmixed).

use super::{CodecError, Decoder, Encoder};
use ::opus::{Application, Bitrate, Channels};

/// The Opus sample rate used throughout, which is also its RTP clock rate (RFC 7587 §4.1).
pub const OPUS_RATE: u32 = 48_000;

/// Frame lengths libopus encodes, in samples at 48 kHz: 2.5, 5, 10, 20, 40 and 60 ms.
const FRAME_SIZES: [usize; 6] = [120, 240, 480, 960, 1920, 2880];
/// Frame length assumed for concealment before any packet has been decoded (20 ms).
const DEFAULT_FRAME: usize = 960;
/// Longest audio one Opus packet can carry (120 ms, RFC 6716 §3.2.5).
const MAX_PACKET_SAMPLES: usize = 5760;

/// How to run the Opus encoder; [`Default`] is the softphone's starting point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bitrate in bit/s (libopus accepts 500 to 512 000; values are clamped to that).
    pub bitrate: u32,
    /// Encoder complexity, 0 (cheapest) to 10 (best).
    pub complexity: u8,
    /// In-band forward error correction (LBRR): each packet carries a coarse copy of the
    /// previous frame. Turn on when the far end's fmtp says `useinbandfec=1`.
    pub fec: bool,
    /// Expected packet loss in percent; libopus spends bits on FEC only when this is above 0.
    pub packet_loss_percent: u8,
    /// Discontinuous transmission: near-empty packets during silence.
    pub dtx: bool,
}

impl Default for OpusConfig {
    /// 32 kbit/s, complexity 9, no FEC, no DTX.
    fn default() -> Self {
        Self { bitrate: 32_000, complexity: 9, fec: false, packet_loss_percent: 0, dtx: false }
    }
}

impl OpusConfig {
    /// Applies the receive preferences the far end put in its `a=fmtp` line for Opus
    /// (RFC 7587 §6.1): `useinbandfec` turns FEC on or off, `usedtx` turns DTX on or off, and
    /// `maxaveragebitrate` caps the bitrate. Other and malformed parameters are ignored.
    pub fn apply_fmtp(&mut self, fmtp: &str) {
        for param in fmtp.split(';') {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            match (name.to_ascii_lowercase().as_str(), value) {
                ("useinbandfec", "1") => self.fec = true,
                ("useinbandfec", "0") => self.fec = false,
                ("usedtx", "1") => self.dtx = true,
                ("usedtx", "0") => self.dtx = false,
                ("maxaveragebitrate", v) => {
                    if let Ok(cap) = v.parse::<u32>() {
                        self.bitrate = self.bitrate.min(cap.clamp(6_000, 510_000));
                    }
                }
                _ => {}
            }
        }
    }
}

fn opus_error(err: ::opus::Error) -> CodecError {
    CodecError::Opus { call: err.function(), reason: err.description() }
}

/// An Opus encoder for mono 48 kHz PCM, tuned for voice (`OPUS_APPLICATION_VOIP`).
pub struct OpusEncoder {
    inner: ::opus::Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// An encoder set up as `config` says.
    pub fn new(config: &OpusConfig) -> Result<Self, CodecError> {
        let inner = ::opus::Encoder::new(OPUS_RATE, Channels::Mono, Application::Voip).map_err(opus_error)?;
        let mut enc = Self { inner };
        enc.set_bitrate(config.bitrate)?;
        enc.set_complexity(config.complexity)?;
        enc.set_fec(config.fec)?;
        enc.set_packet_loss_percent(config.packet_loss_percent)?;
        enc.set_dtx(config.dtx)?;
        Ok(enc)
    }

    /// Sets the complexity, 0 to 10 (larger values are taken as 10).
    pub fn set_complexity(&mut self, complexity: u8) -> Result<(), CodecError> {
        self.inner.set_complexity(i32::from(complexity.min(10))).map_err(opus_error)
    }

    /// Turns discontinuous transmission on or off. With DTX on, [`Encoder::encode`] returns
    /// 2 bytes or fewer during silence: such a packet need not be sent.
    pub fn set_dtx(&mut self, on: bool) -> Result<(), CodecError> {
        self.inner.set_dtx(on).map_err(opus_error)
    }
}

impl Encoder for OpusEncoder {
    fn sample_rate(&self) -> u32 {
        OPUS_RATE
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if !FRAME_SIZES.contains(&pcm.len()) {
            return Err(CodecError::FrameLength { samples: pcm.len(), rate: OPUS_RATE });
        }
        self.inner.encode(pcm, out).map_err(opus_error)
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        let bps = bps.clamp(500, 512_000) as i32;
        self.inner.set_bitrate(Bitrate::Bits(bps)).map_err(opus_error)
    }

    fn set_packet_loss_percent(&mut self, pct: u8) -> Result<(), CodecError> {
        self.inner.set_packet_loss_perc(i32::from(pct.min(100))).map_err(opus_error)
    }

    /// Read back from libopus (`OPUS_GET_PACKET_LOSS_PERC`).
    fn packet_loss_percent(&mut self) -> Result<u8, CodecError> {
        let pct = self.inner.get_packet_loss_perc().map_err(opus_error)?;
        Ok(pct.clamp(0, 100) as u8)
    }

    fn set_fec(&mut self, on: bool) -> Result<(), CodecError> {
        self.inner.set_inband_fec(on).map_err(opus_error)
    }
}

/// An Opus decoder to mono 48 kHz PCM, with libopus's concealment and in-band FEC recovery.
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    /// Samples in the last decoded frame: the length of a concealed frame.
    frame_len: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").field("frame_len", &self.frame_len).finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A fresh decoder.
    pub fn new() -> Result<Self, CodecError> {
        let inner = ::opus::Decoder::new(OPUS_RATE, Channels::Mono).map_err(opus_error)?;
        Ok(Self { inner, frame_len: DEFAULT_FRAME })
    }

    /// Samples per channel in `payload` at 48 kHz, checked against `have` output samples.
    fn packet_len(payload: &[u8], have: usize) -> Result<usize, CodecError> {
        let need = ::opus::packet::get_nb_samples(payload, OPUS_RATE).map_err(opus_error)?;
        if need > have {
            return Err(CodecError::BufferTooSmall { need, have });
        }
        Ok(need)
    }
}

impl Decoder for OpusDecoder {
    fn sample_rate(&self) -> u32 {
        OPUS_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Ok(0);
        }
        let need = Self::packet_len(payload, out.len())?;
        let n = self.inner.decode(payload, &mut out[..need], false).map_err(opus_error)?;
        self.frame_len = n.clamp(FRAME_SIZES[0], MAX_PACKET_SAMPLES);
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let need = self.frame_len;
        let have = out.len();
        let out = out.get_mut(..need).ok_or(CodecError::BufferTooSmall { need, have })?;
        self.inner.decode(&[], out, false).map_err(opus_error)
    }

    /// The lost frame is taken to be as long as `next_payload`'s (the usual case of a constant
    /// packet time). libopus falls back to concealment when the packet carries no FEC data;
    /// an unreadable `next_payload` is concealed too.
    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let need = match Self::packet_len(next_payload, out.len()) {
            Err(CodecError::Opus { .. }) => return self.conceal(out),
            other => other?,
        };
        self.inner.decode(next_payload, &mut out[..need], true).map_err(opus_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tone::{is_dominated_by, mean_power, tone_power};
    use rand::{RngCore, SeedableRng, rngs::StdRng};
    use std::f64::consts::PI;

    const FRAME: usize = 960;

    fn sine(start: usize, len: usize, freq: f64, amp: f64) -> Vec<i16> {
        (start..start + len).map(|n| (amp * (2.0 * PI * freq * n as f64 / 48_000.0).sin()) as i16).collect()
    }

    #[test]
    fn a_1khz_sine_decodes_as_1khz_after_the_codec_delay() {
        let mut enc = OpusEncoder::new(&OpusConfig::default()).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let (mut packet, mut out) = ([0u8; 1500], [0i16; MAX_PACKET_SAMPLES]);
        let mut decoded = Vec::new();
        for f in 0..25 {
            let n = enc.encode(&sine(f * FRAME, FRAME, 1000.0, 12_000.0), &mut packet).unwrap();
            // 32 kbit/s at 20 ms is 80 bytes a packet on average.
            assert!(n > 10 && n < 200, "packet of {n} bytes");
            assert_eq!(dec.decode(&packet[..n], &mut out), Ok(FRAME));
            decoded.extend_from_slice(&out[..FRAME]);
        }
        // Skip the first 100 ms (encoder lookahead and start-up), then check every frame.
        for frame in decoded[5 * FRAME..].chunks(FRAME) {
            assert!(is_dominated_by(frame, OPUS_RATE, 1000.0));
            let level = tone_power(frame, OPUS_RATE, 1000.0);
            assert!(level > 0.5 * 7.2e7, "1 kHz at {level}, sent at 7.2e7");
        }
    }

    #[test]
    fn voice_mode_looks_ahead_6_5_ms_as_the_e_model_counts_it() {
        let mut enc = ::opus::Encoder::new(OPUS_RATE, Channels::Mono, Application::Voip).unwrap();
        let lookahead = crate::rtp::quality::CodecImpairment::OPUS.lookahead;
        assert_eq!(enc.get_lookahead().unwrap() as u128, lookahead.as_micros() * 48 / 1000);
    }

    #[test]
    fn encode_refuses_frames_libopus_cannot_take() {
        let mut enc = OpusEncoder::new(&OpusConfig::default()).unwrap();
        let mut packet = [0u8; 1500];
        assert_eq!(
            enc.encode(&[0; 1000], &mut packet),
            Err(CodecError::FrameLength { samples: 1000, rate: OPUS_RATE })
        );
        for len in FRAME_SIZES {
            assert!(enc.encode(&vec![0; len], &mut packet).is_ok(), "{len}");
        }
        // A packet buffer too small for even the table-of-contents byte.
        assert!(matches!(enc.encode(&[0; FRAME], &mut []), Err(CodecError::Opus { .. })));
    }

    #[test]
    fn concealment_produces_a_frame_as_long_as_the_last_one() {
        let mut enc = OpusEncoder::new(&OpusConfig::default()).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let (mut packet, mut out) = ([0u8; 1500], [0i16; MAX_PACKET_SAMPLES]);
        // Before any packet: a 20 ms frame.
        assert_eq!(dec.conceal(&mut out), Ok(FRAME));
        let n = enc.encode(&sine(0, 480, 440.0, 8000.0), &mut packet).unwrap();
        assert_eq!(dec.decode(&packet[..n], &mut out), Ok(480));
        assert_eq!(dec.conceal(&mut out), Ok(480));
        assert_eq!(dec.conceal(&mut out[..100]), Err(CodecError::BufferTooSmall { need: 480, have: 100 }));
    }

    #[test]
    fn decode_of_a_stereo_packet_gives_mono_samples() {
        let mut stereo = ::opus::Encoder::new(OPUS_RATE, Channels::Stereo, Application::Voip).unwrap();
        let mono = sine(0, FRAME, 1000.0, 10_000.0);
        let interleaved: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
        let mut dec = OpusDecoder::new().unwrap();
        let (mut packet, mut out) = ([0u8; 1500], [0i16; MAX_PACKET_SAMPLES]);
        let mut last = Vec::new();
        for _ in 0..5 {
            let n = stereo.encode(&interleaved, &mut packet).unwrap();
            assert_eq!(dec.decode(&packet[..n], &mut out), Ok(FRAME));
            last = out[..FRAME].to_vec();
        }
        assert!(is_dominated_by(&last, OPUS_RATE, 1000.0));
    }

    /// A voice-like signal that changes pitch and level each frame, so concealment (which
    /// extrapolates the previous frame) cannot guess the lost one.
    fn changing_voice(frame: usize) -> Vec<i16> {
        let freq = [220.0, 330.0, 262.0, 392.0, 196.0, 294.0][frame % 6];
        let amp = [6000.0, 9000.0, 4000.0, 11000.0, 7000.0][frame % 5];
        (0..FRAME)
            .map(|i| {
                let t = (frame * FRAME + i) as f64 / 48_000.0;
                let v = (2.0 * PI * freq * t).sin()
                    + 0.5 * (4.0 * PI * freq * t).sin()
                    + 0.25 * (6.0 * PI * freq * t).sin();
                (amp * v / 1.75) as i16
            })
            .collect()
    }

    /// [`changing_voice`] in syllables: its level rises and falls four times a second, to
    /// nothing between, as speech does (the encoder's voice detector tunes out a steady sound).
    fn syllables(frame: usize) -> Vec<i16> {
        changing_voice(frame)
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let t = (frame * FRAME + i) as f64 / 48_000.0;
                (f64::from(s) * (0.5 - 0.5 * (2.0 * PI * 4.0 * t).cos())) as i16
            })
            .collect()
    }

    fn error_power(a: &[i16], b: &[i16]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>() / a.len() as f64
    }

    #[test]
    fn fec_recovers_a_lost_frame_better_than_concealment() {
        let config = OpusConfig { fec: true, packet_loss_percent: 10, ..OpusConfig::default() };
        let mut enc = OpusEncoder::new(&config).unwrap();
        let packets: Vec<Vec<u8>> = (0..40)
            .map(|f| {
                let mut packet = [0u8; 1500];
                let n = enc.encode(&changing_voice(f), &mut packet).unwrap();
                packet[..n].to_vec()
            })
            .collect();
        let mut out = [0i16; MAX_PACKET_SAMPLES];
        let (mut fec_wins, mut lost_frames) = (0, 0);
        for lost in (10..38).step_by(3) {
            lost_frames += 1;
            // Reference: the frame as decoded with no loss.
            let mut reference = OpusDecoder::new().unwrap();
            let mut with_fec = OpusDecoder::new().unwrap();
            let mut with_plc = OpusDecoder::new().unwrap();
            for p in &packets[..lost] {
                for dec in [&mut reference, &mut with_fec, &mut with_plc] {
                    dec.decode(p, &mut out).unwrap();
                }
            }
            reference.decode(&packets[lost], &mut out).unwrap();
            let truth = out[..FRAME].to_vec();
            assert_eq!(with_fec.decode_fec(&packets[lost + 1], &mut out), Ok(FRAME));
            let recovered = out[..FRAME].to_vec();
            assert_eq!(with_plc.conceal(&mut out), Ok(FRAME));
            let concealed = out[..FRAME].to_vec();
            assert!(mean_power(&recovered) > 0.01 * mean_power(&truth));
            if error_power(&recovered, &truth) < error_power(&concealed, &truth) {
                fec_wins += 1;
            }
        }
        assert!(fec_wins * 10 >= lost_frames * 8, "FEC beat concealment on {fec_wins} of {lost_frames} lost frames");
    }

    /// Whether `packet` carries in-band FEC for the frame before it: a fresh decoder has no
    /// history to conceal from, so it hears that frame only from the packet's FEC data.
    pub(crate) fn carries_fec(packet: &[u8]) -> bool {
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = [0i16; MAX_PACKET_SAMPLES];
        let n = dec.decode_fec(packet, &mut out).unwrap();
        mean_power(&out[..n]) > 1e4
    }

    #[test]
    fn fec_is_spent_only_once_loss_is_expected_and_the_setting_reads_back() {
        let mut enc = OpusEncoder::new(&OpusConfig { fec: true, ..OpusConfig::default() }).unwrap();
        assert_eq!(enc.packet_loss_percent(), Ok(0));
        let mut packet = [0u8; 1500];
        let mut with_fec = |enc: &mut OpusEncoder, frames: std::ops::Range<usize>| {
            frames
                .filter(|&f| {
                    let n = enc.encode(&syllables(f), &mut packet).unwrap();
                    carries_fec(&packet[..n])
                })
                .count()
        };
        assert_eq!(with_fec(&mut enc, 0..25), 0, "no loss expected, no FEC");
        enc.set_packet_loss_percent(5).unwrap();
        assert_eq!(enc.packet_loss_percent(), Ok(5));
        let carried = with_fec(&mut enc, 25..75);
        // All but the first after the change and those in the pauses between syllables.
        assert!(carried >= 35, "only {carried} of 50 packets carried FEC at 5 % expected loss");
        enc.set_packet_loss_percent(250).unwrap();
        assert_eq!(enc.packet_loss_percent(), Ok(100));
    }

    #[test]
    fn without_fec_data_decode_fec_falls_back_to_concealment() {
        let mut enc = OpusEncoder::new(&OpusConfig::default()).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let (mut packet, mut out) = ([0u8; 1500], [0i16; MAX_PACKET_SAMPLES]);
        let n = enc.encode(&sine(0, FRAME, 500.0, 8000.0), &mut packet).unwrap();
        dec.decode(&packet[..n], &mut out).unwrap();
        assert_eq!(dec.decode_fec(&packet[..n], &mut out), Ok(FRAME));
        assert_eq!(dec.decode_fec(&[0xFF], &mut out), Ok(FRAME));
        assert_eq!(dec.decode_fec(&[], &mut out), Ok(FRAME));
    }

    #[test]
    fn fmtp_turns_on_fec_and_dtx_and_caps_the_bitrate() {
        let mut config = OpusConfig::default();
        config.apply_fmtp("minptime=10; useinbandfec=1;usedtx=1;maxaveragebitrate=20000");
        assert!(config.fec && config.dtx);
        assert_eq!(config.bitrate, 20_000);
        config.apply_fmtp("useinbandfec=0;maxaveragebitrate=64000;junk;=;stereo=1");
        assert!(!config.fec);
        assert_eq!(config.bitrate, 20_000, "a cap never raises the bitrate");
        config.apply_fmtp("maxaveragebitrate=1");
        assert_eq!(config.bitrate, 6_000, "RFC 7587 floor");
    }

    #[test]
    fn dtx_sends_tiny_packets_during_silence() {
        let config = OpusConfig { dtx: true, ..OpusConfig::default() };
        let mut enc = OpusEncoder::new(&config).unwrap();
        let mut packet = [0u8; 1500];
        let sizes: Vec<usize> = (0..50).map(|_| enc.encode(&[0; FRAME], &mut packet).unwrap()).collect();
        assert!(sizes[20..].iter().filter(|&&n| n <= 2).count() > 20, "{sizes:?}");
    }

    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = [0i16; MAX_PACKET_SAMPLES];
        let mut small = [0i16; 100];
        let mut payload = [0u8; 1600];
        for i in 0..3000 {
            let len = (rng.next_u32() as usize) % payload.len();
            rng.fill_bytes(&mut payload[..len]);
            let _ = dec.decode(&payload[..len], &mut out);
            let _ = dec.decode(&payload[..len], &mut small);
            let _ = dec.decode_fec(&payload[..len], &mut out);
            if i % 7 == 0 {
                let _ = dec.conceal(&mut out);
            }
        }
    }
}
