//! Audio sources and sinks: what the phone sends and where the far end's audio goes.
//!
//! Everything here works in frames of mono 16-bit PCM at the codec's sample rate. A
//! [`Source`] fills one frame per 20 ms tick of the shell's clock; a [`Sink`] takes one decoded
//! frame per tick. Tones, files and silence have no clock of their own, so the shell paces them;
//! a sound card ([`device`]) has its own, and its queues absorb the difference between the two.
//! [`Ringer`] makes the ring and ringback sounds played while a call is being set up; `pulse:FREQ`
//! bursts ([`pulse`]) are for timing the audio path.

mod convert;
pub mod device;
pub mod pulse;
mod ring;
mod ringer;
mod tone;
pub mod wav;

use std::path::Path;

use proto::codec::Resampler;

pub use device::{DeviceError, DeviceSink, DeviceSource};
pub use pulse::{OnsetDetector, PulseGenerator};
pub use ring::RingCounts;
pub use ringer::Ringer;
pub use tone::ToneGenerator;
pub use wav::{WavError, WavWriter};

use crate::config::{AudioIn, AudioOut, Config};

/// Why audio could not start.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// A WAV file could not be used.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// A sound device could not be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Peak amplitude of generated tones: about −12 dBFS, clear of clipping after any codec.
pub const TONE_AMPLITUDE: f32 = 8_000.0;

/// Where outgoing audio comes from.
#[derive(Debug)]
pub enum Source {
    /// Silence.
    Silence,
    /// A sine.
    Tone(ToneGenerator),
    /// Bursts of a sine, one a second.
    Pulse(PulseGenerator),
    /// A WAV file's samples, already at the codec's rate, played in a loop.
    Looped {
        /// The samples.
        samples: Vec<i16>,
        /// The next one to play.
        position: usize,
    },
    /// A sound card's capture.
    Device(Box<DeviceSource>),
}

impl Source {
    /// Opens what `--audio-in` names, producing audio at `rate` Hz.
    pub fn open(audio_in: &AudioIn, rate: u32) -> Result<Source, AudioError> {
        Ok(match audio_in {
            AudioIn::Device(choice) => Source::Device(Box::new(DeviceSource::open(&choice.name, rate)?)),
            AudioIn::Silence => Source::Silence,
            AudioIn::Tone(freq) => Source::Tone(ToneGenerator::new(*freq, rate, TONE_AMPLITUDE)),
            AudioIn::Pulse(freq) => Source::Pulse(PulseGenerator::new(*freq, rate, TONE_AMPLITUDE)),
            AudioIn::File(path) => Source::Looped { samples: load_at_rate(path, rate)?, position: 0 },
        })
    }

    /// Fills `frame` with the next samples.
    pub fn fill(&mut self, frame: &mut [i16]) {
        match self {
            Source::Silence => frame.fill(0),
            Source::Tone(tone) => tone.fill(frame),
            Source::Pulse(pulse) => pulse.fill(frame),
            Source::Looped { samples, position } => {
                if samples.is_empty() {
                    frame.fill(0);
                    return;
                }
                for out in frame.iter_mut() {
                    *out = samples.get(*position).copied().unwrap_or(0);
                    *position = (*position + 1) % samples.len();
                }
            }
            Source::Device(device) => device.fill(frame),
        }
    }

    /// Stops a device's capture, logging what its queue lost and invented.
    pub fn close(self) {
        if let Source::Device(device) = self {
            let RingCounts { dropped, zero_filled } = device.counts();
            tracing::info!(dropped, zero_filled, "sound input closed");
            device.close();
        }
    }
}

impl Source {
    /// Where a `pulse:` burst began in the frame last filled, as a sample index into it.
    pub fn onset(&self) -> Option<usize> {
        match self {
            Source::Pulse(pulse) => pulse.onset(),
            _ => None,
        }
    }
}

/// Reads a WAV file, mixes it to mono and resamples it to `rate`: directly when the ratio is
/// simple enough, else by way of 48 kHz (44.1 kHz → 8 kHz, for one).
fn load_at_rate(path: &Path, rate: u32) -> Result<Vec<i16>, WavError> {
    let wav = wav::read(path)?;
    let mono = wav.mono();
    let from = wav.sample_rate;
    match resample(&mono, from, rate) {
        Ok(out) => Ok(out),
        Err(direct) => resample(&mono, from, 48_000)
            .and_then(|wide| resample(&wide, 48_000, rate))
            .map_err(|_| WavError::Rate(from, direct)),
    }
}

fn resample(input: &[i16], from: u32, to: u32) -> Result<Vec<i16>, proto::codec::CodecError> {
    let mut resampler = Resampler::new(from, to)?;
    let mut out = vec![0i16; resampler.max_output(input.len())];
    let n = resampler.process(input, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Where the far end's audio goes.
#[derive(Debug)]
pub enum Sink {
    /// Dropped.
    Null,
    /// Written to a WAV file.
    Wav(WavWriter),
    /// Played on a sound card.
    Device(DeviceSink),
}

impl Sink {
    /// Opens what `--audio-out` names, for audio at `rate` Hz.
    pub fn open(audio_out: &AudioOut, rate: u32) -> Result<Sink, AudioError> {
        Ok(match audio_out {
            AudioOut::Device(choice) => Sink::Device(DeviceSink::open(&choice.name, rate)?),
            AudioOut::Null => Sink::Null,
            AudioOut::File(path) => Sink::Wav(WavWriter::create(path, rate)?),
        })
    }

    /// Takes one frame.
    pub fn write(&mut self, frame: &[i16]) -> Result<(), WavError> {
        match self {
            Sink::Null => Ok(()),
            Sink::Wav(w) => w.write(frame),
            Sink::Device(d) => {
                d.write(frame);
                Ok(())
            }
        }
    }

    /// Finishes the output (a WAV file's header gets its final sizes).
    pub fn finish(self) -> Result<(), WavError> {
        match self {
            Sink::Null => Ok(()),
            Sink::Wav(w) => w.finish(),
            Sink::Device(d) => {
                let RingCounts { dropped, zero_filled } = d.counts();
                tracing::info!(dropped, zero_filled, "sound output closed");
                d.close();
                Ok(())
            }
        }
    }
}

/// Options that work without a sound card, for the messages that send users to them.
pub const FILE_OPTIONS: &str = "--audio-in tone:HZ|FILE.wav and --audio-out FILE.wav|null";

/// Checks the sound devices `config` names before the phone starts, at the rate of its first
/// codec. A device the user named that does not work is an error (one line for the user). A
/// default device that does not work is replaced by silence (input) or nothing (output), and
/// the returned notice says so.
pub fn settle_devices(config: &mut Config) -> Result<Option<String>, String> {
    let rate = config.codecs.first().map_or(48_000, |c| c.clock_rate());
    let (mut first, mut lost) = (None, Vec::new());
    if let AudioOut::Device(choice) = &config.audio_out
        && let Err(e) = device::probe(&choice.name, device::Way::Output, rate)
    {
        if choice.asked {
            return Err(format!("{e}; play to a file instead with --audio-out FILE.wav|null"));
        }
        first.get_or_insert(e.to_string());
        lost.push("dropping the far end's audio");
        config.audio_out = AudioOut::Null;
    }
    if let AudioIn::Device(choice) = &config.audio_in
        && let Err(e) = device::probe(&choice.name, device::Way::Input, rate)
    {
        if choice.asked {
            return Err(format!("{e}; send a tone or a file instead with --audio-in tone:HZ|FILE.wav"));
        }
        first.get_or_insert(e.to_string());
        lost.insert(0, "sending silence");
        config.audio_in = AudioIn::Silence;
    }
    Ok(first.map(|first| {
        format!("no sound device: {first}; {} instead; use {FILE_OPTIONS}, or see --list-devices", lost.join(" and "))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::codec::is_dominated_by;

    #[test]
    fn wav_source_is_resampled_to_the_codec_rate_and_looped() {
        let dir = std::env::temp_dir().join(format!("softphone-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.wav");
        let mut tone = ToneGenerator::new(1000.0, 16_000, 8000.0);
        let mut samples = vec![0i16; 16_000];
        tone.fill(&mut samples);
        let mut writer = WavWriter::create(&path, 16_000).unwrap();
        writer.write(&samples).unwrap();
        writer.finish().unwrap();

        let mut source = Source::open(&AudioIn::File(path), 8000).unwrap();
        let mut frame = [0i16; 160];
        // 1 s of audio at 8 kHz is 50 frames; play 60 to cross the loop point.
        let toned = (0..60)
            .filter(|_| {
                source.fill(&mut frame);
                is_dominated_by(&frame, 8000, 1000.0)
            })
            .count();
        assert!(toned >= 58, "{toned} of 60 frames carried the tone");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cd_rate_stereo_reaches_g711_rate_mono() {
        let dir = std::env::temp_dir().join(format!("softphone-cd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cd.wav");
        let mut tone = ToneGenerator::new(1000.0, 44_100, 8000.0);
        let mut mono = vec![0i16; 44_100];
        tone.fill(&mut mono);
        // Stereo: the same tone on both channels, interleaved, written as raw WAV bytes.
        let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
        let mut bytes = Vec::new();
        let data_len = (stereo.len() * 2) as u32;
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&44_100u32.to_le_bytes());
        bytes.extend_from_slice(&(44_100u32 * 4).to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&data_len.to_le_bytes());
        for s in &stereo {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let samples = load_at_rate(&path, 8000).unwrap();
        assert!((7_990..=8_010).contains(&samples.len()), "{} samples for 1 s", samples.len());
        assert!(is_dominated_by(&samples[800..2400], 8000, 1000.0));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_wav_file_is_an_error_naming_it() {
        let err = Source::open(&AudioIn::File("/nonexistent/x.wav".into()), 8000).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.wav"), "{err}");
    }
}
