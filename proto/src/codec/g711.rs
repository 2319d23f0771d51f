//! G.711 µ-law and A-law (ITU-T G.711; RTP payload types 0 PCMU and 8 PCMA, RFC 3551 §4.5.14),
//! with packet loss concealment in a simplified form of G.711 Appendix I: the last pitch period
//! (found by autocorrelation) is repeated, held for 10 ms, faded out by 60 ms, and cross-faded
//! into the first good frame after the loss.

use super::{CodecError, Decoder, Encoder};

/// The G.711 sample rate, which is also its RTP clock rate.
pub const G711_RATE: u32 = 8_000;

/// Which of the two G.711 companding laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// µ-law (PCMU), used in North America and Japan.
    MuLaw,
    /// A-law (PCMA), used elsewhere.
    ALaw,
}

impl G711Law {
    /// Compresses one linear 16-bit sample to its 8-bit code.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Self::MuLaw => ulaw_encode(sample),
            Self::ALaw => alaw_encode(sample),
        }
    }

    /// Expands one 8-bit code to a linear 16-bit sample.
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Self::MuLaw => ULAW_TO_LINEAR[usize::from(code)],
            Self::ALaw => ALAW_TO_LINEAR[usize::from(code)],
        }
    }
}

/// µ-law bias added to the 14-bit magnitude before the segment search.
const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude µ-law represents before clipping.
const ULAW_CLIP: i32 = 8159;

fn ulaw_encode(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample) >> 2;
    let mask = if magnitude < 0 {
        magnitude = -magnitude;
        0x7F
    } else {
        0xFF
    };
    magnitude = magnitude.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    // Segment = position of the highest set bit above bit 5 (magnitude is 33..=8192 here).
    let segment = 31 - magnitude.leading_zeros() as i32 - 5;
    if segment > 7 {
        return (0x7F ^ mask) as u8;
    }
    let code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F);
    (code ^ mask) as u8
}

fn alaw_encode(sample: i16) -> u8 {
    let mut magnitude = i32::from(sample) >> 3;
    let mask = if magnitude >= 0 {
        0xD5
    } else {
        magnitude = -magnitude - 1;
        0x55
    };
    // Segment = position of the highest set bit above bit 4; magnitude is 0..=4095 here.
    let segment = if magnitude < 0x20 { 0 } else { 31 - magnitude.leading_zeros() as i32 - 4 };
    let mantissa = if segment < 2 { (magnitude >> 1) & 0x0F } else { (magnitude >> segment) & 0x0F };
    (((segment << 4) | mantissa) ^ mask) as u8
}

const fn ulaw_decode(code: u8) -> i16 {
    let code = !code as i32;
    let magnitude = (((code & 0x0F) << 3) + ULAW_BIAS) << ((code & 0x70) >> 4);
    (if code & 0x80 != 0 { ULAW_BIAS - magnitude } else { magnitude - ULAW_BIAS }) as i16
}

const fn alaw_decode(code: u8) -> i16 {
    let code = (code ^ 0x55) as i32;
    let mut magnitude = (code & 0x0F) << 4;
    let segment = (code & 0x70) >> 4;
    magnitude += if segment == 0 { 8 } else { 0x108 };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    (if code & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

const fn table(law: G711Law) -> [i16; 256] {
    let mut out = [0; 256];
    let mut code = 0;
    while code < 256 {
        out[code] = match law {
            G711Law::MuLaw => ulaw_decode(code as u8),
            G711Law::ALaw => alaw_decode(code as u8),
        };
        code += 1;
    }
    out
}

static ULAW_TO_LINEAR: [i16; 256] = table(G711Law::MuLaw);
static ALAW_TO_LINEAR: [i16; 256] = table(G711Law::ALaw);

/// A G.711 encoder: one byte per sample, any frame length.
#[derive(Debug, Clone)]
pub struct G711Encoder {
    law: G711Law,
}

impl G711Encoder {
    /// An encoder for `law`.
    pub fn new(law: G711Law) -> Self {
        Self { law }
    }
}

impl Encoder for G711Encoder {
    fn sample_rate(&self) -> u32 {
        G711_RATE
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let have = out.len();
        let out = out.get_mut(..pcm.len()).ok_or(CodecError::BufferTooSmall { need: pcm.len(), have })?;
        for (code, &sample) in out.iter_mut().zip(pcm) {
            *code = self.law.encode(sample);
        }
        Ok(pcm.len())
    }

    /// G.711 has a fixed rate of 64 kbit/s: this does nothing.
    fn set_bitrate(&mut self, _bps: u32) -> Result<(), CodecError> {
        Ok(())
    }

    /// G.711 carries no redundancy: this does nothing.
    fn set_packet_loss_percent(&mut self, _pct: u8) -> Result<(), CodecError> {
        Ok(())
    }

    /// G.711 plans for no loss.
    fn packet_loss_percent(&mut self) -> Result<u8, CodecError> {
        Ok(0)
    }

    /// G.711 has no in-band FEC: this does nothing.
    fn set_fec(&mut self, _on: bool) -> Result<(), CodecError> {
        Ok(())
    }
}

/// Samples of decoded history kept for concealment (30 ms).
const HISTORY: usize = 240;
/// Shortest and longest pitch period searched (200 Hz down to 66 Hz, as in G.711 Appendix I).
const MIN_PERIOD: usize = 40;
const MAX_PERIOD: usize = 120;
/// Length of the window matched against the lagged history when estimating the period.
const MATCH_WINDOW: usize = 80;
/// Concealment plays at full level for 10 ms, then fades to silence at 60 ms.
const FULL_LEVEL: u32 = 80;
const SILENT_AFTER: u32 = 480;
/// Samples of the first good frame after a loss cross-faded with the concealment (4 ms).
const CROSSFADE: usize = 32;
/// Frame length assumed before any packet has been decoded (20 ms).
const DEFAULT_FRAME: usize = 160;

/// A G.711 decoder with concealment of lost frames.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: G711Law,
    /// The last `HISTORY` decoded samples, oldest first; zeros before the first packet.
    history: [i16; HISTORY],
    /// Length of the last decoded frame, the length of a concealed frame.
    frame_len: usize,
    /// Samples concealed since the last good frame; 0 when not in a loss.
    concealed: u32,
    /// Pitch period repeated during the current loss.
    period: usize,
}

impl G711Decoder {
    /// A decoder for `law`.
    pub fn new(law: G711Law) -> Self {
        Self { law, history: [0; HISTORY], frame_len: DEFAULT_FRAME, concealed: 0, period: MIN_PERIOD }
    }

    /// The pitch period of the end of the history, by normalised cross-correlation.
    fn estimate_period(&self) -> usize {
        let window = &self.history[HISTORY - MATCH_WINDOW..];
        let mut best = (MIN_PERIOD, f32::MIN);
        for lag in MIN_PERIOD..=MAX_PERIOD {
            let lagged = &self.history[HISTORY - MATCH_WINDOW - lag..HISTORY - lag];
            let (mut cross, mut energy) = (0f32, 0f32);
            for (&a, &b) in window.iter().zip(lagged) {
                cross += f32::from(a) * f32::from(b);
                energy += f32::from(b) * f32::from(b);
            }
            let score = if energy > 0.0 { cross / energy.sqrt() } else { 0.0 };
            if score > best.1 {
                best = (lag, score);
            }
        }
        best.0
    }

    /// The next concealment sample: the last pitch period repeated, faded with the loss length.
    fn next_concealed(&mut self) -> i16 {
        let n = self.concealed;
        self.concealed = self.concealed.saturating_add(1);
        if n >= SILENT_AFTER {
            return 0;
        }
        let phase = n as usize % self.period;
        let sample = f32::from(self.history[HISTORY - self.period + phase]);
        let gain = if n < FULL_LEVEL { 1.0 } else { (SILENT_AFTER - n) as f32 / (SILENT_AFTER - FULL_LEVEL) as f32 };
        (sample * gain) as i16
    }

    fn remember(&mut self, frame: &[i16]) {
        if frame.len() >= HISTORY {
            self.history.copy_from_slice(&frame[frame.len() - HISTORY..]);
        } else {
            self.history.copy_within(frame.len().., 0);
            self.history[HISTORY - frame.len()..].copy_from_slice(frame);
        }
    }
}

impl Decoder for G711Decoder {
    fn sample_rate(&self) -> u32 {
        G711_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let have = out.len();
        let out = out.get_mut(..payload.len()).ok_or(CodecError::BufferTooSmall { need: payload.len(), have })?;
        if payload.is_empty() {
            return Ok(0);
        }
        for (sample, &code) in out.iter_mut().zip(payload) {
            *sample = self.law.decode(code);
        }
        if self.concealed > 0 {
            // Fade from the concealment into the real signal so the seam does not click.
            let fade = CROSSFADE.min(out.len());
            for (i, sample) in out.iter_mut().take(fade).enumerate() {
                let w = (i + 1) as f32 / (fade + 1) as f32;
                let hidden = f32::from(self.next_concealed());
                *sample = (f32::from(*sample) * w + hidden * (1.0 - w)) as i16;
            }
            self.concealed = 0;
        }
        self.frame_len = out.len();
        self.remember(out);
        Ok(out.len())
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        let need = self.frame_len;
        let have = out.len();
        let out = out.get_mut(..need).ok_or(CodecError::BufferTooSmall { need, have })?;
        if self.concealed == 0 {
            self.period = self.estimate_period();
        }
        for sample in out.iter_mut() {
            *sample = self.next_concealed();
        }
        Ok(need)
    }

    /// G.711 carries no redundancy: this conceals the lost frame.
    fn decode_fec(&mut self, _next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.conceal(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tone::tone_power;

    #[test]
    fn silence_encodes_to_the_itu_idle_codes() {
        assert_eq!(G711Law::MuLaw.encode(0), 0xFF);
        assert_eq!(G711Law::ALaw.encode(0), 0xD5);
    }

    #[test]
    fn decode_tables_match_g711_reference_values() {
        let mu = G711Law::MuLaw;
        assert_eq!(mu.decode(0xFF), 0);
        assert_eq!(mu.decode(0x7F), 0);
        assert_eq!(mu.decode(0x00), -32124);
        assert_eq!(mu.decode(0x80), 32124);
        assert_eq!(mu.decode(0xFE), 8);
        assert_eq!(mu.decode(0x7E), -8);
        let a = G711Law::ALaw;
        assert_eq!(a.decode(0xD5), 8);
        assert_eq!(a.decode(0x55), -8);
        assert_eq!(a.decode(0xAA), 32256);
        assert_eq!(a.decode(0x2A), -32256);
    }

    #[test]
    fn full_scale_saturates_to_the_extreme_codes() {
        assert_eq!(G711Law::MuLaw.encode(i16::MAX), 0x80);
        assert_eq!(G711Law::MuLaw.encode(i16::MIN), 0x00);
        assert_eq!(G711Law::ALaw.encode(i16::MAX), 0xAA);
        assert_eq!(G711Law::ALaw.encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for law in [G711Law::MuLaw, G711Law::ALaw] {
            for code in 0..=255u8 {
                let back = law.encode(law.decode(code));
                // µ-law has two zeros (0x7F is "negative zero"); both decode to 0.
                let expected = if law == G711Law::MuLaw && code == 0x7F { 0xFF } else { code };
                assert_eq!(back, expected, "{law:?} code {code:#04x}");
            }
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_quantisation_step() {
        for law in [G711Law::MuLaw, G711Law::ALaw] {
            for x in i16::MIN..=i16::MAX {
                let y = law.decode(law.encode(x));
                let err = (i32::from(x) - i32::from(y)).abs();
                // The step of each segment is 1/16 of its start, so the error stays under
                // 1/32 of the magnitude plus the finest step, up to where the law saturates.
                let magnitude = i32::from(x).abs().min(32124);
                let clip = i32::from(x).abs() - magnitude;
                let bound = magnitude / 32 + 16 + clip;
                assert!(err <= bound, "{law:?}: {x} -> {y}, error {err} > {bound}");
            }
        }
    }

    #[test]
    fn sine_through_g711_keeps_about_38_db_snr() {
        for law in [G711Law::MuLaw, G711Law::ALaw] {
            let (mut signal, mut noise) = (0f64, 0f64);
            for n in 0..8000 {
                let x = (10_000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin()) as i16;
                let y = law.decode(law.encode(x));
                signal += f64::from(x).powi(2);
                noise += (f64::from(x) - f64::from(y)).powi(2);
            }
            let snr = 10.0 * (signal / noise).log10();
            assert!(snr > 35.0, "{law:?} SNR {snr:.1} dB");
        }
    }

    #[test]
    fn encoder_and_decoder_frames_round_trip_and_check_buffer_sizes() {
        let mut enc = G711Encoder::new(G711Law::ALaw);
        let mut dec = G711Decoder::new(G711Law::ALaw);
        let pcm: Vec<i16> = (0..160).map(|i| (i * 97 - 8000) as i16).collect();
        let mut payload = [0u8; 160];
        assert_eq!(enc.encode(&pcm, &mut payload), Ok(160));
        assert_eq!(enc.encode(&pcm, &mut payload[..100]), Err(CodecError::BufferTooSmall { need: 160, have: 100 }));
        let mut out = [0i16; 160];
        assert_eq!(dec.decode(&payload, &mut out), Ok(160));
        for (&x, &y) in pcm.iter().zip(&out) {
            assert_eq!(y, G711Law::ALaw.decode(G711Law::ALaw.encode(x)));
        }
        assert!(dec.decode(&payload, &mut out[..10]).is_err());
        assert_eq!(dec.decode(&[], &mut out), Ok(0));
    }

    fn sine_frame(start: usize, len: usize, freq: f64, amp: f64) -> Vec<i16> {
        (start..start + len)
            .map(|n| (amp * (2.0 * std::f64::consts::PI * freq * n as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn concealment_continues_the_pitch_then_fades_to_silence() {
        let mut dec = G711Decoder::new(G711Law::MuLaw);
        let mut out = [0i16; 320];
        for f in 0..5 {
            let pcm = sine_frame(f * 160, 160, 200.0, 8000.0);
            let payload: Vec<u8> = pcm.iter().map(|&s| G711Law::MuLaw.encode(s)).collect();
            dec.decode(&payload, &mut out).unwrap();
        }
        // First lost frame: same length as the last one, and still the 200 Hz voice.
        assert_eq!(dec.conceal(&mut out), Ok(160));
        let lost = &out[..160];
        let tone = tone_power(lost, 8000, 200.0);
        let total = lost.iter().map(|&s| f32::from(s).powi(2)).sum::<f32>() / 160.0;
        assert!(tone > 0.8 * total, "tone {tone} of {total}");
        assert!(total > 1e6, "first concealed frame is near full level");
        // The join with the last good sample is smooth (no jump larger than the sine's slope).
        let expected_next = sine_frame(800, 1, 200.0, 8000.0)[0];
        assert!((i32::from(lost[0]) - i32::from(expected_next)).abs() < 1500);
        // After 60 ms of loss the output is silent.
        for _ in 0..2 {
            dec.conceal(&mut out).unwrap();
        }
        assert_eq!(dec.conceal(&mut out), Ok(160));
        assert!(out[..160].iter().all(|&s| s == 0));
    }

    #[test]
    fn concealment_before_any_packet_is_silent_20ms() {
        let mut dec = G711Decoder::new(G711Law::ALaw);
        let mut out = [1i16; 200];
        assert_eq!(dec.conceal(&mut out), Ok(160));
        assert!(out[..160].iter().all(|&s| s == 0));
        assert!(dec.conceal(&mut out[..100]).is_err());
    }

    #[test]
    fn first_frame_after_a_loss_fades_in_from_the_concealment() {
        let mut dec = G711Decoder::new(G711Law::MuLaw);
        let mut out = [0i16; 160];
        for f in 0..4 {
            let pcm = sine_frame(f * 160, 160, 250.0, 8000.0);
            let payload: Vec<u8> = pcm.iter().map(|&s| G711Law::MuLaw.encode(s)).collect();
            dec.decode(&payload, &mut out).unwrap();
        }
        dec.conceal(&mut out).unwrap();
        // The far end resumes with silence: the first samples still carry the concealed tone,
        // fading out over the cross-fade, and the rest is the silence that was sent.
        let silence = [0xFFu8; 160];
        dec.decode(&silence, &mut out).unwrap();
        assert!(out[..8].iter().any(|&s| s.abs() > 1000));
        assert!(out[CROSSFADE..].iter().all(|&s| s == 0));
    }
}
