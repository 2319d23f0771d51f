//! Conversions between a sound card's format and the codec's: any sample type and channel
//! count to mono 16-bit and back (in the real-time callbacks, without allocating), and one
//! sample rate to another through [`proto::codec::Resampler`] (on the media clock's side).

use cpal::{FromSample, Sample};
use proto::codec::{CodecError, Resampler};

/// Frames converted per step in the callbacks: a stack buffer, so nothing is allocated there.
pub const CHUNK_FRAMES: usize = 256;

/// Averages each frame of `channels` interleaved samples into one 16-bit sample and hands
/// them to `emit`, at most [`CHUNK_FRAMES`] at a time.
pub fn mix_to_mono<T>(interleaved: &[T], channels: usize, mut emit: impl FnMut(&[i16]))
where
    T: Sample,
    i16: FromSample<T>,
{
    let channels = channels.max(1);
    let mut chunk = [0i16; CHUNK_FRAMES];
    for frames in interleaved.chunks(channels * CHUNK_FRAMES) {
        let mut n = 0;
        for (out, frame) in chunk.iter_mut().zip(frames.chunks_exact(channels)) {
            let sum: i32 = frame.iter().map(|&s| i32::from(s.to_sample::<i16>())).sum();
            *out = (sum / channels as i32) as i16;
            n += 1;
        }
        emit(chunk.get(..n).unwrap_or_default());
    }
}

/// Fills `interleaved` (frames of `channels` samples) by copying each mono sample that `pull`
/// gives to every channel; `pull` fills at most [`CHUNK_FRAMES`] samples per call.
pub fn spread_from_mono<T>(interleaved: &mut [T], channels: usize, mut pull: impl FnMut(&mut [i16]))
where
    T: Sample + FromSample<i16>,
{
    let channels = channels.max(1);
    let mut chunk = [0i16; CHUNK_FRAMES];
    for frames in interleaved.chunks_mut(channels * CHUNK_FRAMES) {
        let n = frames.len() / channels;
        let mono = chunk.get_mut(..n).unwrap_or_default();
        pull(mono);
        for (frame, &s) in frames.chunks_exact_mut(channels).zip(mono.iter()) {
            frame.fill(T::from_sample(s));
        }
        // A trailing partial frame (a malformed buffer) is silence.
        if let Some(rest) = frames.get_mut(n * channels..) {
            rest.fill(T::EQUILIBRIUM);
        }
    }
}

/// Mono sample-rate conversion for a stream, directly when the ratio is simple enough and
/// else by way of 48 kHz (44.1 kHz ↔ 8 kHz, for one).
#[derive(Debug)]
pub struct RateConverter {
    stages: Vec<Resampler>,
    /// Each stage's output, reused from call to call.
    buffers: Vec<Vec<i16>>,
}

impl RateConverter {
    /// A converter from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<RateConverter, CodecError> {
        let stages = match Resampler::new(from, to) {
            Ok(direct) => vec![direct],
            Err(e) => {
                vec![Resampler::new(from, 48_000).map_err(|_| e.clone())?, Resampler::new(48_000, to).map_err(|_| e)?]
            }
        };
        Ok(RateConverter { buffers: vec![Vec::new(); stages.len()], stages })
    }

    /// Converts `input`, the continuation of the stream so far, appending to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let mut data = input;
        for (stage, buffer) in self.stages.iter_mut().zip(self.buffers.iter_mut()) {
            buffer.resize(stage.max_output(data.len()), 0);
            // The buffer has the size the resampler asks for, so it cannot refuse.
            let n = stage.process(data, buffer).unwrap_or(0);
            buffer.truncate(n);
            data = buffer;
        }
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ToneGenerator;
    use proto::codec::is_dominated_by;

    #[test]
    fn stereo_f32_is_averaged_into_mono_i16() {
        let stereo: Vec<f32> = [0.5f32, 0.5, -0.5, -0.5, 1.0, 0.0].to_vec();
        let mut mono = Vec::new();
        mix_to_mono(&stereo, 2, |chunk| mono.extend_from_slice(chunk));
        assert_eq!(mono.len(), 3);
        assert!((i32::from(mono[0]) - 16_384).abs() <= 1, "{mono:?}");
        assert!((i32::from(mono[1]) + 16_384).abs() <= 1, "{mono:?}");
        assert!((i32::from(mono[2]) - 16_384).abs() <= 1, "{mono:?}");
    }

    #[test]
    fn long_buffers_are_mixed_in_bounded_chunks_without_losing_frames() {
        let six_channels = vec![1000i16; 6 * (CHUNK_FRAMES * 3 + 17)];
        let (mut total, mut largest) = (0, 0);
        mix_to_mono(&six_channels, 6, |chunk| {
            assert!(chunk.iter().all(|&s| s == 1000));
            total += chunk.len();
            largest = largest.max(chunk.len());
        });
        assert_eq!(total, CHUNK_FRAMES * 3 + 17);
        assert_eq!(largest, CHUNK_FRAMES);
    }

    #[test]
    fn mono_is_copied_to_every_channel_in_the_device_format() {
        let mut out = vec![0f32; 4 * 3];
        let mut next = 0i16;
        spread_from_mono(&mut out, 4, |mono| {
            for s in mono.iter_mut() {
                next += 8192;
                *s = next;
            }
        });
        assert_eq!(out[..4], [0.25; 4]);
        assert_eq!(out[4..8], [0.5; 4]);
        assert_eq!(out[8..], [0.75; 4]);
        let mut u16s = vec![0u16; 2];
        spread_from_mono(&mut u16s, 2, |mono| mono.fill(0));
        assert_eq!(u16s, [32768, 32768], "silence is the unsigned midpoint");
    }

    #[test]
    fn cd_rate_device_audio_reaches_g711_rate_through_48k() {
        let mut convert = RateConverter::new(44_100, 8_000).unwrap();
        let mut tone = ToneGenerator::new(1000.0, 44_100, 8000.0);
        let mut out = Vec::new();
        let mut block = vec![0i16; 882];
        for _ in 0..50 {
            tone.fill(&mut block);
            convert.process(&block, &mut out);
        }
        assert!((7_990..=8_010).contains(&out.len()), "{} samples for 1 s", out.len());
        assert!(is_dominated_by(&out[4000..4160], 8000, 1000.0));
    }

    #[test]
    fn opus_rate_audio_reaches_a_44k1_device() {
        let mut convert = RateConverter::new(48_000, 44_100).unwrap();
        let mut tone = ToneGenerator::new(440.0, 48_000, 8000.0);
        let mut out = Vec::new();
        let mut frame = vec![0i16; 960];
        for _ in 0..50 {
            tone.fill(&mut frame);
            convert.process(&frame, &mut out);
        }
        assert!((44_090..=44_110).contains(&out.len()), "{} samples for 1 s", out.len());
        assert!(is_dominated_by(&out[22_050..23_000], 44_100, 440.0));
    }
}
