//! Sample-rate conversion between audio devices and codecs (44.1 kHz ↔ 48 kHz,
//! 48 kHz ↔ 8 kHz, …) by a rational polyphase windowed-sinc filter.
//!
//! The rate ratio is reduced to `up / down`; the input is (conceptually) upsampled by `up`,
//! low-pass filtered below the lower of the two Nyquist frequencies, and decimated by `down`.
//! Only the filter taps that meet real input samples are computed: each output sample is one
//! dot product of `taps` input samples with one of `up` coefficient phases. The prototype
//! filter is a Kaiser-windowed sinc (β 8.6, about 85 dB stopband) whose transition band is the
//! top 10 % below the lower Nyquist frequency, so nothing above it aliases audibly.
//! The filter delays the signal by `taps / 2` input samples.

use super::CodecError;
use std::f64::consts::PI;

/// Kaiser window shape: about 85 dB of stopband attenuation.
const KAISER_BETA: f64 = 8.6;
/// Width of the transition band as a share of the lower Nyquist frequency.
const TRANSITION: f64 = 0.1;
/// Coefficients beyond this would make a ratio like 44099/48000 a memory hog: refused.
const MAX_COEFFS: usize = 1 << 18;

/// Converts a stream of mono PCM from one sample rate to another, any chunk size at a time.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    up: usize,
    down: usize,
    taps: usize,
    /// `up` phases of `taps` coefficients each, phase-major.
    coeffs: Vec<f32>,
    /// The last `taps - 1` input samples, then the chunk being processed.
    buf: Vec<f32>,
    /// Position of the next output sample, in `1/up` input samples from `buf[0]`.
    pos: usize,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz. Equal rates pass samples through unchanged.
    pub fn new(from: u32, to: u32) -> Result<Self, CodecError> {
        let refuse = CodecError::Rates { from, to };
        if from == 0 || to == 0 {
            return Err(refuse);
        }
        let g = gcd(from, to);
        let (up, down) = ((to / g) as usize, (from / g) as usize);
        if up == 1 && down == 1 {
            return Ok(Self { from, to, up, down, taps: 1, coeffs: vec![1.0], buf: Vec::new(), pos: 0 });
        }
        // Cutoff and transition in cycles per input sample.
        let nyquist = 0.5 * (up as f64 / down as f64).min(1.0);
        let transition = TRANSITION * nyquist;
        let cutoff = nyquist - transition / 2.0;
        // Kaiser's length estimate, in input samples: (A − 8) / (2.285 · 2π · Δf).
        let attenuation = KAISER_BETA / 0.1102 + 8.7;
        let taps = ((attenuation - 8.0) / (2.285 * 2.0 * PI * transition)).ceil() as usize;
        let taps = taps.max(4).next_multiple_of(2);
        if taps.saturating_mul(up) > MAX_COEFFS {
            return Err(refuse);
        }
        let coeffs = polyphase_kaiser_sinc(up, taps, cutoff);
        Ok(Self { from, to, up, down, taps, coeffs, buf: history_buffer(taps), pos: (taps - 1) * up })
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// The most samples [`Resampler::process`] can produce from `input_len` samples.
    pub fn max_output(&self, input_len: usize) -> usize {
        input_len.saturating_mul(self.up).div_ceil(self.down) + 1
    }

    /// Resamples `input`, a continuation of the stream so far, into `output`; returns the
    /// samples written. Over time the output count tracks `input · to / from` exactly; a single
    /// call may give one more or less. `output` must hold [`Resampler::max_output`] samples.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, CodecError> {
        let need = self.max_output(input.len());
        if output.len() < need {
            return Err(CodecError::BufferTooSmall { need, have: output.len() });
        }
        if self.up == self.down {
            output[..input.len()].copy_from_slice(input);
            return Ok(input.len());
        }
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        let mut written = 0;
        // Output n uses buf[i .. i + taps] where i + taps - 1 = pos / up.
        while self.pos / self.up < self.buf.len() {
            let first = self.pos / self.up + 1 - self.taps;
            let phase = self.pos % self.up;
            let window = &self.buf[first..first + self.taps];
            let coeffs = &self.coeffs[phase * self.taps..(phase + 1) * self.taps];
            let y: f32 = window.iter().zip(coeffs).map(|(x, c)| x * c).sum();
            output[written] = y.round() as i16; // `as` saturates at the i16 range
            written += 1;
            self.pos += self.down;
        }
        let consumed = self.buf.len() - (self.taps - 1);
        self.buf.drain(..consumed);
        self.pos -= consumed * self.up;
        Ok(written)
    }
}

/// `taps - 1` zeros of history, with room for a 20 ms chunk at 48 kHz before reallocating.
fn history_buffer(taps: usize) -> Vec<f32> {
    let mut buf = Vec::with_capacity(taps - 1 + 960);
    buf.resize(taps - 1, 0.0);
    buf
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Zeroth-order modified Bessel function of the first kind, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-12 * sum {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

/// The prototype low-pass of `up · taps` points at the upsampled rate, cut off at `cutoff`
/// cycles per input sample, with gain `up` (to make up for the zeros the upsampling inserts),
/// split into `up` phases ordered to multiply `taps` consecutive input samples oldest first.
fn polyphase_kaiser_sinc(up: usize, taps: usize, cutoff: f64) -> Vec<f32> {
    let len = up * taps;
    let centre = (len - 1) as f64 / 2.0;
    let fc = cutoff / up as f64; // cycles per upsampled sample
    let norm = bessel_i0(KAISER_BETA);
    let prototype = |j: usize| {
        let t = j as f64 - centre;
        let sinc = if t == 0.0 { 2.0 * fc } else { (2.0 * PI * fc * t).sin() / (PI * t) };
        let r = t / (centre + 0.5);
        let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / norm;
        sinc * window * up as f64
    };
    // Output at upsampled position q = pos uses input k with tap index q − k·up; for the
    // window's m-th (oldest-first) sample that is phase + (taps − 1 − m)·up.
    let mut coeffs = Vec::with_capacity(len);
    for phase in 0..up {
        let row: Vec<f64> = (0..taps).map(|m| prototype(phase + (taps - 1 - m) * up)).collect();
        coeffs.extend(row.iter().map(|&c| c as f32));
    }
    coeffs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tone::tone_power;

    fn sine(rate: u32, freq: f64, amp: f64, len: usize) -> Vec<i16> {
        (0..len).map(|n| (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16).collect()
    }

    /// Resamples `input` in uneven chunks, as a device callback would deliver it.
    fn run(r: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let mut out = Vec::new();
        let mut buf = vec![0i16; r.max_output(1000)];
        let (mut rest, mut sizes) = (input, [1000, 441, 1, 882, 960].iter().cycle());
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(*sizes.next().unwrap()));
            let n = r.process(chunk, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            rest = tail;
        }
        out
    }

    /// Signal-to-(noise+distortion) of `x` against the best-fitting sine at `freq`, in dB.
    fn sinad(x: &[i16], rate: u32, freq: f64) -> f64 {
        let w = 2.0 * PI * freq / f64::from(rate);
        let (mut ss, mut sc, mut cc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (n, &v) in x.iter().enumerate() {
            let (s, c) = (w * n as f64).sin_cos();
            let v = f64::from(v);
            (ss, sc, cc, xs, xc) = (ss + s * s, sc + s * c, cc + c * c, xs + v * s, xc + v * c);
        }
        let det = ss * cc - sc * sc;
        let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
        let (mut signal, mut noise) = (0.0, 0.0);
        for (n, &v) in x.iter().enumerate() {
            let (s, c) = (w * n as f64).sin_cos();
            let fit = a * s + b * c;
            signal += fit * fit;
            noise += (f64::from(v) - fit).powi(2);
        }
        10.0 * (signal / noise).log10()
    }

    #[test]
    fn a_1khz_sine_survives_44100_to_48000_with_low_distortion() {
        let mut r = Resampler::new(44_100, 48_000).unwrap();
        let out = run(&mut r, &sine(44_100, 1000.0, 16_000.0, 44_100));
        assert!(out.len().abs_diff(48_000) <= r.taps, "{} samples", out.len());
        let settled = &out[r.taps * 2..];
        let quality = sinad(settled, 48_000, 1000.0);
        assert!(quality > 70.0, "SINAD {quality:.1} dB");
    }

    #[test]
    fn a_1khz_sine_survives_every_pipeline_conversion() {
        for (from, to) in [(48_000, 44_100), (48_000, 8_000), (8_000, 48_000), (16_000, 48_000)] {
            let mut r = Resampler::new(from, to).unwrap();
            let out = run(&mut r, &sine(from, 1000.0, 16_000.0, from as usize / 2));
            let settled = &out[out.len() / 4..];
            let quality = sinad(settled, to, 1000.0);
            assert!(quality > 65.0, "{from} -> {to}: SINAD {quality:.1} dB");
            let level = tone_power(settled, to, 1000.0);
            assert!((level / 1.28e8 - 1.0).abs() < 0.02, "{from} -> {to}: gain off, {level}");
        }
    }

    #[test]
    fn tones_above_the_new_nyquist_do_not_alias_when_downsampling() {
        // 6 kHz at 48 kHz would fold to 2 kHz at 8 kHz.
        let mut r = Resampler::new(48_000, 8_000).unwrap();
        let out = run(&mut r, &sine(48_000, 6000.0, 16_000.0, 24_000));
        let settled = &out[out.len() / 4..];
        let alias = tone_power(settled, 8_000, 2000.0);
        assert!(alias < 1.28e8 * 1e-6, "alias power {alias} (> -60 dB)");
    }

    #[test]
    fn output_count_tracks_the_ratio_exactly_over_time() {
        let mut r = Resampler::new(44_100, 48_000).unwrap();
        let mut out = [0i16; 2000];
        // 20 ms chunks of 882 samples: exactly 960 out each once primed.
        let counts: Vec<usize> = (0..10).map(|_| r.process(&[0; 882], &mut out).unwrap()).collect();
        assert!(counts.iter().all(|&n| n == 960), "{counts:?}");
        let mut r = Resampler::new(48_000, 8_000).unwrap();
        let total: usize = (0..100).map(|i| r.process(&vec![0; 100 + i % 7], &mut out).unwrap()).sum();
        let input: usize = (0..100).map(|i| 100 + i % 7).sum();
        assert_eq!(total, input.div_ceil(6));
    }

    #[test]
    fn equal_rates_pass_through_and_bad_rates_are_refused() {
        let mut r = Resampler::new(8000, 8000).unwrap();
        let mut out = [0i16; 4];
        assert_eq!(r.process(&[1, -2, 3], &mut out), Ok(3));
        assert_eq!(&out[..3], &[1, -2, 3]);
        assert_eq!(Resampler::new(0, 8000).unwrap_err(), CodecError::Rates { from: 0, to: 8000 });
        assert!(Resampler::new(44_099, 48_000).is_err());
    }

    #[test]
    fn a_short_output_buffer_is_refused_without_consuming_input() {
        let mut r = Resampler::new(8000, 48_000).unwrap();
        let mut small = [0i16; 10];
        assert!(matches!(r.process(&[0; 160], &mut small), Err(CodecError::BufferTooSmall { .. })));
        let mut out = vec![0i16; r.max_output(160)];
        assert_eq!(r.process(&[0; 160], &mut out), Ok(960));
    }
}
