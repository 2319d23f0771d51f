//! Goertzel tone measurement: how much of a block of PCM is one frequency. Used to check what
//! a call carried (a test tone, a DTMF pair) without a full spectrum.

use std::f64::consts::PI;

/// Mean power of the `freq` Hz component of `samples` taken at `rate` Hz, in squared sample
/// units: a sine of amplitude `a` at exactly `freq` gives about `a² / 2`, the same scale as the
/// block's mean square. Returns 0 for an empty block or a frequency at or above Nyquist.
///
/// The estimate is sharpest when the block spans many periods of `freq` (say 20 ms or more).
pub fn tone_power(samples: &[i16], rate: u32, freq: f32) -> f32 {
    if samples.is_empty() || rate == 0 || !(0.0..f64::from(rate) / 2.0).contains(&f64::from(freq)) {
        return 0.0;
    }
    let omega = 2.0 * PI * f64::from(freq) / f64::from(rate);
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    // |X(ω)|² of the block; a sine of amplitude a gives |X| ≈ a·N/2.
    let magnitude_sq = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    (2.0 * magnitude_sq / (n * n)) as f32
}

/// Mean square of `samples` (their total power in squared sample units).
pub fn mean_power(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (sum / samples.len() as f64) as f32
}

/// The floor of [`level_dbfs`]: digital silence, just below one 16-bit step (−90.3 dBFS).
pub const SILENCE_DBFS: f32 = -96.0;

/// The RMS level of `samples` in dB relative to full scale (a full-scale square wave is 0, a
/// full-scale sine −3), for level meters; [`SILENCE_DBFS`] for silence or an empty block.
pub fn level_dbfs(samples: &[i16]) -> f32 {
    let power = f64::from(mean_power(samples));
    let full_scale = 32768.0 * 32768.0;
    if power <= 0.0 {
        return SILENCE_DBFS;
    }
    ((10.0 * (power / full_scale).log10()) as f32).max(SILENCE_DBFS)
}

/// Whether `freq` carries more than half of the block's power (and the block is not silent).
pub fn is_dominated_by(samples: &[i16], rate: u32, freq: f32) -> bool {
    let total = mean_power(samples);
    total > 0.0 && tone_power(samples, rate, freq) > 0.5 * total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, amp: f64, len: usize) -> Vec<i16> {
        (0..len).map(|n| (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16).collect()
    }

    #[test]
    fn level_is_rms_relative_to_full_scale_with_a_floor_for_silence() {
        let full = level_dbfs(&sine(48_000, 1000.0, 32767.0, 960));
        assert!((full + 3.01).abs() < 0.02, "full-scale sine at {full} dBFS");
        let tenth = level_dbfs(&sine(48_000, 1000.0, 3276.7, 960));
        assert!((tenth + 23.01).abs() < 0.02, "a tenth of full scale at {tenth} dBFS");
        assert_eq!(level_dbfs(&[i16::MIN; 160]), 0.0);
        assert_eq!(level_dbfs(&[0; 160]), SILENCE_DBFS);
        assert_eq!(level_dbfs(&[]), SILENCE_DBFS);
        assert!((level_dbfs(&[1; 160]) + 90.31).abs() < 0.01);
    }

    #[test]
    fn power_of_a_pure_sine_is_half_its_amplitude_squared() {
        let x = sine(8000, 1000.0, 10_000.0, 800);
        let p = tone_power(&x, 8000, 1000.0);
        assert!((p / 5e7 - 1.0).abs() < 0.01, "{p}");
        assert!((mean_power(&x) / 5e7 - 1.0).abs() < 0.01);
    }

    #[test]
    fn an_off_frequency_tone_measures_near_zero() {
        let x = sine(48_000, 1000.0, 10_000.0, 960);
        assert!(tone_power(&x, 48_000, 1400.0) < 1e-3 * 5e7);
        assert!(!is_dominated_by(&x, 48_000, 1400.0));
        assert!(is_dominated_by(&x, 48_000, 1000.0));
    }

    #[test]
    fn a_tone_under_equal_noise_power_is_not_dominant_but_measures_right() {
        // A 697 Hz tone plus a louder 1209 Hz tone: neither half-dominant alone if equal.
        let a = sine(8000, 697.0, 6000.0, 800);
        let b = sine(8000, 1209.0, 9000.0, 800);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let p697 = tone_power(&mix, 8000, 697.0);
        assert!((p697 / 1.8e7 - 1.0).abs() < 0.05, "{p697}");
        assert!(!is_dominated_by(&mix, 8000, 697.0));
        assert!(is_dominated_by(&mix, 8000, 1209.0));
    }

    #[test]
    fn silence_empty_blocks_and_bad_frequencies_are_not_tones() {
        assert_eq!(tone_power(&[], 8000, 1000.0), 0.0);
        assert_eq!(tone_power(&[100; 80], 8000, 4000.0), 0.0);
        assert_eq!(tone_power(&[100; 80], 0, 1000.0), 0.0);
        assert_eq!(tone_power(&[100; 80], 8000, f32::NAN), 0.0);
        assert!(!is_dominated_by(&[0; 160], 8000, 1000.0));
    }
}
