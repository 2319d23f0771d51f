//! `--audio-in pulse:FREQ`: bursts of a sine with sharp onsets, one a second, and the detector
//! that finds those onsets again in the audio the far end plays. Together they time the audio
//! path from where a frame enters the encoder to where the decoded frame leaves the jitter
//! buffer (`scripts/bench-media`).

use super::ToneGenerator;

/// Length of each burst, in thousandths of the period (one second): 100 ms.
const BURST_PER_MILLE: u64 = 100;
/// Played audio must stay below the threshold this long (in ms) before a loud sample counts as
/// an onset: longer than any gap inside a burst or its codec smear, shorter than the 900 ms
/// between bursts.
const QUIET_MS: u64 = 300;

/// Bursts of a sine: each second starts with 100 ms of tone beginning at phase 0, then silence.
#[derive(Debug, Clone)]
pub struct PulseGenerator {
    tone: ToneGenerator,
    freq: f32,
    rate: u32,
    amplitude: f32,
    /// Samples produced so far.
    position: u64,
    onset: Option<usize>,
}

impl PulseGenerator {
    /// Bursts of a `freq` Hz sine of peak `amplitude`, sampled at `rate` Hz.
    pub fn new(freq: f32, rate: u32, amplitude: f32) -> PulseGenerator {
        PulseGenerator {
            tone: ToneGenerator::new(freq, rate, amplitude),
            freq,
            rate: rate.max(1),
            amplitude,
            position: 0,
            onset: None,
        }
    }

    /// Fills `frame` with the next samples.
    pub fn fill(&mut self, frame: &mut [i16]) {
        let period = u64::from(self.rate);
        let burst = period * BURST_PER_MILLE / 1000;
        self.onset = None;
        for (i, out) in frame.iter_mut().enumerate() {
            let phase = self.position % period;
            if phase == 0 {
                self.tone = ToneGenerator::new(self.freq, self.rate, self.amplitude);
                self.onset.get_or_insert(i);
            }
            *out = if phase < burst {
                let mut sample = [0i16];
                self.tone.fill(&mut sample);
                sample[0]
            } else {
                0
            };
            self.position += 1;
        }
    }

    /// Where a burst began in the frame last filled, as a sample index into it.
    pub fn onset(&self) -> Option<usize> {
        self.onset
    }
}

/// Finds the onsets of bursts in played audio: the first sample louder than a threshold after
/// at least 300 ms below it.
#[derive(Debug, Clone)]
pub struct OnsetDetector {
    threshold: u16,
    quiet_needed: u64,
    /// Samples in a row below the threshold (counted up to `quiet_needed`).
    quiet: u64,
}

impl OnsetDetector {
    /// A detector for audio at `rate` Hz whose bursts peak at `amplitude`; a sample counts as
    /// loud above half of that. It must hear 300 ms of quiet before its first onset.
    pub fn new(rate: u32, amplitude: f32) -> OnsetDetector {
        OnsetDetector {
            threshold: (amplitude / 2.0).clamp(1.0, 32_767.0) as u16,
            quiet_needed: u64::from(rate) * QUIET_MS / 1000,
            quiet: 0,
        }
    }

    /// The index of the first sample in `frame` where a burst begins, if one does.
    pub fn process(&mut self, frame: &[i16]) -> Option<usize> {
        let mut onset = None;
        for (i, sample) in frame.iter().enumerate() {
            if sample.unsigned_abs() > self.threshold {
                if self.quiet >= self.quiet_needed {
                    onset.get_or_insert(i);
                }
                self.quiet = 0;
            } else {
                self.quiet = (self.quiet + 1).min(self.quiet_needed);
            }
        }
        onset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::codec::is_dominated_by;

    #[test]
    fn a_burst_starts_each_second_and_says_where() {
        let mut pulse = PulseGenerator::new(1000.0, 8000, 8000.0);
        let mut frame = [0i16; 160];
        let mut onsets = Vec::new();
        for n in 0..150 {
            pulse.fill(&mut frame);
            if let Some(at) = pulse.onset() {
                onsets.push((n, at));
            }
            let in_burst = n % 50 < 5;
            assert_eq!(is_dominated_by(&frame, 8000, 1000.0), in_burst, "frame {n}");
            if !in_burst {
                assert!(frame.iter().all(|s| *s == 0), "silence between bursts, frame {n}");
            }
        }
        assert_eq!(onsets, [(0, 0), (50, 0), (100, 0)]);
    }

    #[test]
    fn an_onset_inside_a_frame_is_found_at_its_sample() {
        // Frames of 7 ms at 8 kHz do not divide a second: the onsets fall inside frames.
        let mut pulse = PulseGenerator::new(1000.0, 8000, 8000.0);
        let mut detector = OnsetDetector::new(8000, 8000.0);
        let mut frame = [0i16; 56];
        let (mut sent, mut heard) = (Vec::new(), Vec::new());
        for n in 0..600u64 {
            pulse.fill(&mut frame);
            sent.extend(pulse.onset().map(|at| n * 56 + at as u64));
            heard.extend(detector.process(&frame).map(|at| n * 56 + at as u64));
        }
        assert_eq!(sent, [0, 8000, 16_000, 24_000, 32_000]);
        // The first burst came before 300 ms of quiet; the others are found within the time
        // the sine takes to reach half its peak (a twelfth of a period: 1 sample here).
        assert_eq!(heard.len(), 4, "{heard:?}");
        for (s, h) in sent.iter().skip(1).zip(&heard) {
            assert!((*s..=s + 1).contains(h), "sent at {s}, heard at {h}");
        }
    }

    #[test]
    fn a_steady_tone_or_its_zero_crossings_are_not_onsets() {
        let mut tone = ToneGenerator::new(300.0, 8000, 8000.0);
        let mut detector = OnsetDetector::new(8000, 8000.0);
        let mut frame = [0i16; 160];
        let mut quiet = [0i16; 160];
        for _ in 0..20 {
            assert_eq!(detector.process(&quiet), None);
        }
        tone.fill(&mut frame);
        assert_eq!(detector.process(&frame), Some(3), "the tone's start after quiet is one");
        for _ in 0..100 {
            tone.fill(&mut frame);
            assert_eq!(detector.process(&frame), None);
        }
        quiet[0] = 3000;
        assert_eq!(detector.process(&quiet), None, "a sample under half the peak is quiet");
    }
}
