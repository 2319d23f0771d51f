//! A sine generator for `--audio-in tone:FREQ`.

use std::f64::consts::TAU;

/// A continuous sine at one frequency, phase kept across frames.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl ToneGenerator {
    /// A sine of `freq` Hz sampled at `rate` Hz with peak `amplitude`.
    pub fn new(freq: f32, rate: u32, amplitude: f32) -> ToneGenerator {
        ToneGenerator {
            step: TAU * f64::from(freq) / f64::from(rate.max(1)),
            phase: 0.0,
            amplitude: f64::from(amplitude),
        }
    }

    /// Fills `frame` with the next samples.
    pub fn fill(&mut self, frame: &mut [i16]) {
        for out in frame.iter_mut() {
            *out = (self.amplitude * self.phase.sin()).round().clamp(-32768.0, 32767.0) as i16;
            self.phase = (self.phase + self.step) % TAU;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::codec::is_dominated_by;

    #[test]
    fn tone_is_its_frequency_across_frames() {
        let mut tone = ToneGenerator::new(1000.0, 8000, 8000.0);
        let mut a = [0i16; 160];
        let mut b = [0i16; 160];
        tone.fill(&mut a);
        tone.fill(&mut b);
        assert!(is_dominated_by(&a, 8000, 1000.0));
        assert!(is_dominated_by(&b, 8000, 1000.0));
        assert!(!is_dominated_by(&b, 8000, 1500.0));
    }
}
