//! Call-progress sounds played on our own output: the ring of an incoming call and the
//! ringback a caller hears after a 180 Ringing (RFC 3261 §20.1 leaves the sound to the phone).
//!
//! Which sounds: the ring is the North American ringing pair, 440 Hz + 480 Hz; the ringback
//! is the common European ringing tone, 425 Hz (ETSI ES 201 970, ITU-T E.180 Suppl. 2). Both
//! follow the common cadence of 1 s on, 4 s off, starting with the tone.

use std::time::Duration;

use super::ToneGenerator;

/// The ringing cadence: how long the tone sounds, then how long it pauses.
pub const CADENCE_ON: Duration = Duration::from_secs(1);
/// The pause after each tone.
pub const CADENCE_OFF: Duration = Duration::from_secs(4);

/// Peak amplitude of each tone of the sound: about −18 dBFS, so a pair stays well clear of
/// clipping and below the call's own audio.
const AMPLITUDE: f32 = 4_000.0;

/// A ring or ringback generator: frames of mono 16-bit PCM at one rate, cadence kept across
/// frames.
#[derive(Debug, Clone)]
pub struct Ringer {
    tones: Vec<ToneGenerator>,
    on: u64,
    period: u64,
    /// Samples produced so far, modulo the cadence's period.
    position: u64,
    mix: Vec<i16>,
}

impl Ringer {
    /// The ring of an incoming call (440 Hz + 480 Hz, 1 s on, 4 s off) at `rate` Hz.
    pub fn ring(rate: u32) -> Ringer {
        Ringer::new(&[440.0, 480.0], rate)
    }

    /// The ringback a caller hears while the far end rings (425 Hz, 1 s on, 4 s off) at `rate` Hz.
    pub fn ringback(rate: u32) -> Ringer {
        Ringer::new(&[425.0], rate)
    }

    fn new(freqs: &[f32], rate: u32) -> Ringer {
        let samples = |d: Duration| d.as_millis() as u64 * u64::from(rate) / 1000;
        Ringer {
            tones: freqs.iter().map(|&f| ToneGenerator::new(f, rate, AMPLITUDE)).collect(),
            on: samples(CADENCE_ON),
            period: samples(CADENCE_ON + CADENCE_OFF).max(1),
            position: 0,
            mix: Vec::new(),
        }
    }

    /// Fills `frame` with the next samples of the sound.
    pub fn fill(&mut self, frame: &mut [i16]) {
        frame.fill(0);
        self.mix.resize(frame.len(), 0);
        for tone in &mut self.tones {
            // Every tone runs on through the pauses, so each burst starts where the sine left off.
            tone.fill(&mut self.mix);
            for ((out, &s), n) in frame.iter_mut().zip(&self.mix).zip(0u64..) {
                if (self.position + n) % self.period < self.on {
                    *out = out.saturating_add(s);
                }
            }
        }
        self.position = (self.position + frame.len() as u64) % self.period;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::codec::{mean_power, tone_power};

    /// Which 20 ms frames of `seconds` of the sound carry `freqs` (each more than a quarter of
    /// the frame's power), by Goertzel.
    fn sounding_frames(ringer: &mut Ringer, rate: u32, freqs: &[f32], seconds: u32) -> Vec<bool> {
        let mut frame = vec![0i16; rate as usize / 50];
        (0..seconds * 50)
            .map(|_| {
                ringer.fill(&mut frame);
                let total = mean_power(&frame);
                total > 0.0 && freqs.iter().all(|&f| tone_power(&frame, rate, f) > 0.25 * total)
            })
            .collect()
    }

    #[test]
    fn ring_sounds_both_tones_for_one_second_then_pauses_four() {
        let frames = sounding_frames(&mut Ringer::ring(8000), 8000, &[440.0, 480.0], 10);
        for (i, &sounding) in frames.iter().enumerate() {
            // 50 frames on, 200 frames off, twice.
            assert_eq!(sounding, i % 250 < 50, "frame {i} at {} ms", i * 20);
        }
    }

    #[test]
    fn ringback_is_425_hz_on_the_same_cadence_at_the_opus_rate() {
        let mut ringer = Ringer::ringback(48_000);
        let frames = sounding_frames(&mut ringer, 48_000, &[425.0], 6);
        let on: Vec<usize> = frames.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i).collect();
        assert_eq!(on, (0..50).chain(250..300).collect::<Vec<_>>());
        // And nothing but 425 Hz: the ring's pair is absent.
        let mut frame = vec![0i16; 960];
        Ringer::ringback(48_000).fill(&mut frame);
        assert!(tone_power(&frame, 48_000, 480.0) < 0.05 * mean_power(&frame));
    }

    #[test]
    fn the_pauses_are_silent() {
        let mut ringer = Ringer::ring(16_000);
        let mut frame = vec![0i16; 16_000];
        ringer.fill(&mut frame);
        assert!(frame.iter().any(|&s| s != 0));
        for _ in 0..4 {
            ringer.fill(&mut frame);
            assert!(frame.iter().all(|&s| s == 0));
        }
        ringer.fill(&mut frame);
        assert!(frame.iter().any(|&s| s != 0), "the cadence starts over after 5 s");
    }
}
