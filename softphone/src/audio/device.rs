//! Sound cards through cpal: listing them, opening one for capture or playback, and moving
//! audio between its real-time callback and the phone's 20 ms media clock.
//!
//! Each open device runs a cpal stream whose callback converts between the card's format (any
//! sample type, channel count and rate) and mono 16-bit PCM at the card's rate, and passes it
//! through a bounded lock-free [`sample_ring`] to or from the media clock, which converts the
//! rate to the codec's. The card's buffer is asked for 10 ms periods (two per buffer); the
//! rings hold at most [`MAX_DELAY`] beyond one read, dropping the oldest audio past that and
//! zero-filling when they run dry, counting both ([`RingCounts`]).
//!
//! ALSA prints its own errors on stderr when a device does not open (on a machine without a
//! sound card, a dozen lines for the "default" device). Those are collected instead, on the
//! thread that opens devices, and the first one goes into our error.

use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{BufferSize, FromSample, SampleFormat, SizedSample, StreamConfig, SupportedStreamConfigRange};
use tracing::{debug, warn};

use super::convert::{RateConverter, mix_to_mono, spread_from_mono};
use super::ring::{RingCounts, SampleReader, SampleWriter, sample_ring};

/// The name that picks the system's default device.
pub const DEFAULT_DEVICE: &str = "default";

/// The period we ask the card for: short, for low latency.
const PERIOD: Duration = Duration::from_millis(10);
/// Audio a ring may hold beyond one read before the oldest is dropped.
pub const MAX_DELAY: Duration = Duration::from_millis(60);
/// Ring capacity.
const RING: Duration = Duration::from_millis(250);
/// Silence queued for playback before the first frame, so the clock's jitter does not starve
/// the card at once.
const PLAYBACK_PRIMING: Duration = Duration::from_millis(20);

/// Capture or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Capture (a microphone).
    Input,
    /// Playback (a speaker).
    Output,
}

impl Way {
    fn as_str(self) -> &'static str {
        match self {
            Way::Input => "input",
            Way::Output => "output",
        }
    }
}

/// Why a sound device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No device of that name.
    #[error("no sound {way} device {name:?}: see --list-devices")]
    NotFound {
        /// The name asked for.
        name: String,
        /// `input` or `output`.
        way: &'static str,
    },
    /// The device exists but would not open or start.
    #[error("the sound {way} device {name:?} cannot be used: {detail}")]
    Unusable {
        /// The name asked for.
        name: String,
        /// `input` or `output`.
        way: &'static str,
        /// What the sound system said.
        detail: String,
    },
}

/// A device as `--list-devices` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The sound system (ALSA, …).
    pub host: String,
    /// The name `--input-device`/`--output-device` take.
    pub name: String,
    /// A human description, when the system has one.
    pub description: Option<String>,
    /// Whether it is the system's default.
    pub is_default: bool,
    /// Capture formats, as `rates/channels` text; empty when it does not capture.
    pub input: Vec<String>,
    /// Playback formats; empty when it does not play.
    pub output: Vec<String>,
}

impl DeviceInfo {
    /// One line per device: host, name, default marker, description, then formats per way.
    pub fn to_line(&self) -> String {
        let mut line = format!("{} {}", self.host, self.name);
        if self.is_default {
            line.push_str(" (default)");
        }
        if let Some(d) = self.description.as_deref().filter(|d| *d != self.name) {
            line.push_str(&format!(" \"{d}\""));
        }
        for (way, formats) in [("input", &self.input), ("output", &self.output)] {
            if !formats.is_empty() {
                line.push_str(&format!("; {way}: {}", formats.join(", ")));
            }
        }
        line
    }
}

/// Every device that opens in at least one direction, the default first. ALSA's `null`
/// device (which discards what it plays, captures silence and keeps no time) is not a sound
/// card and is left out.
pub fn list_devices() -> Vec<DeviceInfo> {
    let _quiet = QuietAlsa::install();
    let mut list = Vec::new();
    for id in cpal::available_hosts() {
        let Ok(host) = cpal::host_from_id(id) else { continue };
        let mut devices: Vec<cpal::Device> = host.default_output_device().into_iter().collect();
        devices.extend(host.devices().into_iter().flatten());
        let mut seen = std::collections::HashSet::new();
        for device in devices {
            let name = device_name(&device);
            if name == "null" || !seen.insert(name.clone()) {
                continue;
            }
            let info = DeviceInfo {
                host: id.name().to_owned(),
                description: device.description().ok().map(|d| d.name().to_owned()),
                is_default: name == DEFAULT_DEVICE,
                input: device.supported_input_configs().map(|c| formats(c.collect())).unwrap_or_default(),
                output: device.supported_output_configs().map(|c| formats(c.collect())).unwrap_or_default(),
                name,
            };
            if !info.input.is_empty() || !info.output.is_empty() {
                list.push(info);
            }
        }
    }
    list
}

/// Checks that a device of that name opens and starts for `way`, at the codec rate `rate`.
pub fn probe(name: &str, way: Way, rate: u32) -> Result<(), DeviceError> {
    match way {
        Way::Input => DeviceSource::open(name, rate).map(drop),
        Way::Output => DeviceSink::open(name, rate).map(drop),
    }
}

/// A capturing sound card, giving frames at the codec's rate.
pub struct DeviceSource {
    stream: cpal::Stream,
    ring: SampleReader,
    convert: RateConverter,
    device_rate: u32,
    codec_rate: u32,
    /// Device samples owed from rounding, in 1/codec_rate units.
    carry: u64,
    raw: Vec<i16>,
    pending: std::collections::VecDeque<i16>,
    converted: Vec<i16>,
}

impl std::fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceSource({} Hz → {} Hz)", self.device_rate, self.codec_rate)
    }
}

impl DeviceSource {
    /// Opens and starts capture on the device `name` for audio at `rate` Hz.
    pub fn open(name: &str, rate: u32) -> Result<DeviceSource, DeviceError> {
        let quiet = QuietAlsa::install();
        let unusable = |detail: String| DeviceError::Unusable { name: name.to_owned(), way: "input", detail };
        let device = find(name, Way::Input)?;
        let (config, format) = choose_config(&device, Way::Input, rate).map_err(|e| unusable(quiet.explain(e)))?;
        let device_rate = config.sample_rate;
        let convert = RateConverter::new(device_rate, rate).map_err(|e| unusable(e.to_string()))?;
        let (stream, reader) = build_input(&device, &config, format).map_err(|e| unusable(quiet.explain(e)))?;
        stream.play().map_err(|e| unusable(quiet.explain(e)))?;
        debug!(device = name, rate = device_rate, channels = config.channels, ?format, "capture started");
        Ok(DeviceSource {
            stream,
            ring: reader,
            convert,
            device_rate,
            codec_rate: rate,
            carry: 0,
            raw: Vec::new(),
            pending: Default::default(),
            converted: Vec::new(),
        })
    }

    /// Fills `frame` with the next captured audio at the codec's rate.
    pub fn fill(&mut self, frame: &mut [i16]) {
        let owed = frame.len() as u64 * u64::from(self.device_rate) + self.carry;
        let take = owed / u64::from(self.codec_rate.max(1));
        self.carry = owed % u64::from(self.codec_rate.max(1));
        self.raw.resize(take as usize, 0);
        self.ring.read(&mut self.raw);
        self.converted.clear();
        self.convert.process(&self.raw, &mut self.converted);
        self.pending.extend(self.converted.iter().copied());
        for out in frame.iter_mut() {
            *out = self.pending.pop_front().unwrap_or(0);
        }
        // The converter's count may run one ahead; never let that pile up into delay.
        let limit = frame.len();
        if self.pending.len() > limit {
            self.pending.drain(..self.pending.len() - limit);
        }
    }

    /// What capture has dropped and zero-filled so far.
    pub fn counts(&self) -> RingCounts {
        self.ring.counts()
    }

    /// Stops capture.
    pub fn close(self) {
        let _ = self.stream.pause();
    }
}

/// A playing sound card, taking frames at the codec's rate.
pub struct DeviceSink {
    stream: cpal::Stream,
    ring: SampleWriter,
    convert: RateConverter,
    converted: Vec<i16>,
}

impl std::fmt::Debug for DeviceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSink")
    }
}

impl DeviceSink {
    /// Opens and starts playback on the device `name` for audio at `rate` Hz.
    pub fn open(name: &str, rate: u32) -> Result<DeviceSink, DeviceError> {
        let quiet = QuietAlsa::install();
        let unusable = |detail: String| DeviceError::Unusable { name: name.to_owned(), way: "output", detail };
        let device = find(name, Way::Output)?;
        let (config, format) = choose_config(&device, Way::Output, rate).map_err(|e| unusable(quiet.explain(e)))?;
        let device_rate = config.sample_rate;
        let convert = RateConverter::new(rate, device_rate).map_err(|e| unusable(e.to_string()))?;
        let (stream, writer) = build_output(&device, &config, format).map_err(|e| unusable(quiet.explain(e)))?;
        stream.play().map_err(|e| unusable(quiet.explain(e)))?;
        debug!(device = name, rate = device_rate, channels = config.channels, ?format, "playback started");
        Ok(DeviceSink { stream, ring: writer, convert, converted: Vec::new() })
    }

    /// Queues one frame at the codec's rate for playback.
    pub fn write(&mut self, frame: &[i16]) {
        self.converted.clear();
        self.convert.process(frame, &mut self.converted);
        self.ring.write(&self.converted);
    }

    /// What playback has dropped and zero-filled so far.
    pub fn counts(&self) -> RingCounts {
        self.ring.counts()
    }

    /// Lets what is queued play out (at most [`MAX_DELAY`] and a period), then stops.
    pub fn close(self) {
        std::thread::sleep(MAX_DELAY + PERIOD * 2);
        let _ = self.stream.pause();
    }
}

/// Supported formats in short: the rate ranges, the channel counts and the sample types.
fn formats(ranges: Vec<SupportedStreamConfigRange>) -> Vec<String> {
    if ranges.is_empty() {
        return Vec::new();
    }
    let mut rates: Vec<(u32, u32)> = ranges.iter().map(|r| (r.min_sample_rate(), r.max_sample_rate())).collect();
    rates.sort_unstable();
    rates.dedup();
    let min_ch = ranges.iter().map(|r| r.channels()).min().unwrap_or(0);
    let max_ch = ranges.iter().map(|r| r.channels()).max().unwrap_or(0);
    let mut types: Vec<String> = Vec::new();
    for r in &ranges {
        let t = r.sample_format().to_string();
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let rates = rates
        .iter()
        .map(|&(lo, hi)| if lo == hi { format!("{lo}") } else { format!("{lo}-{hi}") })
        .collect::<Vec<_>>()
        .join("/");
    let channels = if min_ch == max_ch { format!("{min_ch}") } else { format!("{min_ch}-{max_ch}") };
    vec![format!("{rates} Hz, {channels} ch, {}", types.join("/"))]
}

/// Samples in `d` at `rate` Hz.
fn samples(d: Duration, rate: u32) -> usize {
    (d.as_micros() as u64 * u64::from(rate) / 1_000_000) as usize
}

fn device_name(device: &cpal::Device) -> String {
    match device.id() {
        Ok(id) => id.id().to_owned(),
        Err(_) => device.description().map(|d| d.name().to_owned()).unwrap_or_default(),
    }
}

/// The device called `name` (its id, or its description), or the default one.
fn find(name: &str, way: Way) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    let default = match way {
        Way::Input => host.default_input_device(),
        Way::Output => host.default_output_device(),
    };
    let not_found = || DeviceError::NotFound { name: name.to_owned(), way: way.as_str() };
    if name == DEFAULT_DEVICE {
        return default.ok_or_else(not_found);
    }
    let devices = host.devices().map_err(|_| not_found())?;
    let mut by_description = None;
    for device in devices {
        if device_name(&device) == name {
            return Ok(device);
        }
        if by_description.is_none() && device.description().is_ok_and(|d| d.name() == name) {
            by_description = Some(device);
        }
    }
    by_description.ok_or_else(not_found)
}

/// How we like a format: 16-bit integers need no conversion, then float, then the rest.
fn format_rank(format: SampleFormat) -> Option<u8> {
    match format {
        SampleFormat::I16 => Some(0),
        SampleFormat::F32 => Some(1),
        SampleFormat::I32 => Some(2),
        SampleFormat::U16 => Some(3),
        SampleFormat::I8 => Some(4),
        SampleFormat::U8 => Some(5),
        SampleFormat::F64 => Some(6),
        _ => None,
    }
}

/// Picks a configuration from what the device supports: the codec's rate when it has it (no
/// conversion), else 48 kHz, else its highest; fewest channels; the best-liked format; 10 ms
/// periods when the device allows them.
fn choose_config(device: &cpal::Device, way: Way, rate: u32) -> Result<(StreamConfig, SampleFormat), cpal::Error> {
    let ranges: Vec<SupportedStreamConfigRange> = match way {
        Way::Input => device.supported_input_configs()?.collect(),
        Way::Output => device.supported_output_configs()?.collect(),
    };
    pick_config(&ranges, rate).ok_or_else(|| cpal::Error::from(cpal::ErrorKind::UnsupportedConfig))
}

/// The choice [`choose_config`] makes among `ranges`.
fn pick_config(ranges: &[SupportedStreamConfigRange], rate: u32) -> Option<(StreamConfig, SampleFormat)> {
    let best =
        ranges.iter().filter(|r| format_rank(r.sample_format()).is_some() && r.channels() > 0).min_by_key(|r| {
            let rate_rank = if r.contains_rate(rate) {
                0
            } else if r.contains_rate(48_000) {
                1
            } else {
                2
            };
            (rate_rank, r.channels(), format_rank(r.sample_format()))
        })?;
    let chosen = best.try_with_sample_rate(rate).or_else(|| best.try_with_sample_rate(48_000));
    let chosen = chosen.unwrap_or_else(|| best.with_max_sample_rate());
    let period = samples(PERIOD, chosen.sample_rate()) as u32;
    let buffer_size = match *chosen.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } => BufferSize::Fixed(period.clamp(min, max.max(min))),
        cpal::SupportedBufferSize::Unknown => BufferSize::Fixed(period),
    };
    let format = chosen.sample_format();
    Some((StreamConfig { channels: chosen.channels(), sample_rate: chosen.sample_rate(), buffer_size }, format))
}

fn build_input(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
) -> Result<(cpal::Stream, SampleReader), cpal::Error> {
    match format {
        SampleFormat::I16 => input_stream::<i16>(device, config),
        SampleFormat::F32 => input_stream::<f32>(device, config),
        SampleFormat::I32 => input_stream::<i32>(device, config),
        SampleFormat::U16 => input_stream::<u16>(device, config),
        SampleFormat::I8 => input_stream::<i8>(device, config),
        SampleFormat::U8 => input_stream::<u8>(device, config),
        SampleFormat::F64 => input_stream::<f64>(device, config),
        _ => Err(cpal::ErrorKind::UnsupportedConfig.into()),
    }
}

fn build_output(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
) -> Result<(cpal::Stream, SampleWriter), cpal::Error> {
    match format {
        SampleFormat::I16 => output_stream::<i16>(device, config),
        SampleFormat::F32 => output_stream::<f32>(device, config),
        SampleFormat::I32 => output_stream::<i32>(device, config),
        SampleFormat::U16 => output_stream::<u16>(device, config),
        SampleFormat::I8 => output_stream::<i8>(device, config),
        SampleFormat::U8 => output_stream::<u8>(device, config),
        SampleFormat::F64 => output_stream::<f64>(device, config),
        _ => Err(cpal::ErrorKind::UnsupportedConfig.into()),
    }
}

/// Builds with 10 ms periods, or with the device's own buffer size when it refuses those.
fn with_buffer_fallback<S>(
    config: &StreamConfig,
    build: impl Fn(&StreamConfig) -> Result<S, cpal::Error>,
) -> Result<S, cpal::Error> {
    build(config).or_else(|e| match config.buffer_size {
        BufferSize::Fixed(_) => {
            debug!(error = %e, "the device refused 10 ms periods; using its own");
            build(&StreamConfig { buffer_size: BufferSize::Default, ..*config })
        }
        BufferSize::Default => Err(e),
    })
}

/// A capture stream whose callback mixes to mono into a new ring; the ring's reading end.
fn input_stream<T>(device: &cpal::Device, config: &StreamConfig) -> Result<(cpal::Stream, SampleReader), cpal::Error>
where
    T: SizedSample + Send + 'static,
    i16: FromSample<T>,
{
    let channels = usize::from(config.channels);
    let rate = config.sample_rate;
    with_buffer_fallback(config, |config| {
        let (mut writer, reader) = sample_ring(samples(RING, rate), samples(MAX_DELAY, rate));
        let stream = device.build_input_stream(
            *config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                mix_to_mono(data, channels, |mono| {
                    writer.write(mono);
                })
            },
            |e| warn!(error = %e, "sound input failed"),
            None,
        )?;
        Ok((stream, reader))
    })
}

/// A playback stream whose callback spreads mono from a new ring (primed with a little
/// silence) to every channel; the ring's writing end.
fn output_stream<T>(device: &cpal::Device, config: &StreamConfig) -> Result<(cpal::Stream, SampleWriter), cpal::Error>
where
    T: SizedSample + FromSample<i16> + Send + 'static,
{
    let channels = usize::from(config.channels);
    let rate = config.sample_rate;
    with_buffer_fallback(config, |config| {
        let (mut writer, mut reader) = sample_ring(samples(RING, rate), samples(MAX_DELAY, rate));
        writer.write(&vec![0; samples(PLAYBACK_PRIMING, rate)]);
        let stream = device.build_output_stream(
            *config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
                spread_from_mono(data, channels, |mono| reader.read(mono))
            },
            |e| warn!(error = %e, "sound output failed"),
            None,
        )?;
        Ok((stream, writer))
    })
}

/// Keeps ALSA's error messages off stderr on this thread while devices are opened, and
/// keeps them for our own error.
struct QuietAlsa {
    #[cfg(target_os = "linux")]
    output: Option<std::rc::Rc<std::cell::RefCell<alsa::Output>>>,
}

impl QuietAlsa {
    fn install() -> QuietAlsa {
        QuietAlsa {
            #[cfg(target_os = "linux")]
            output: alsa::Output::local_error_handler().ok(),
        }
    }

    /// What went wrong: the first thing ALSA complained about since
    /// [`install`](Self::install) (it names the cause: no card, unknown PCM), else `error`.
    fn explain(&self, error: impl std::fmt::Display) -> String {
        #[cfg(target_os = "linux")]
        if let Some(output) = &self.output
            && let Ok(output) = output.try_borrow()
            && let Some(first) = output.to_string().lines().find(|l| !l.trim().is_empty())
        {
            // ALSA writes `function: message`.
            let message = first.split_once(": ").map_or(first, |(_, m)| m);
            return format!("ALSA: {}", message.trim());
        }
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::SupportedBufferSize;

    fn range(channels: u16, rates: (u32, u32), format: SampleFormat) -> SupportedStreamConfigRange {
        let buffer = SupportedBufferSize::Range { min: 64, max: 8192 };
        SupportedStreamConfigRange::new(channels, rates.0, rates.1, buffer, format)
    }

    #[test]
    fn the_codec_rate_mono_and_16_bit_are_chosen_when_the_device_has_them() {
        let ranges = [
            range(2, (8000, 192_000), SampleFormat::F32),
            range(1, (8000, 192_000), SampleFormat::F32),
            range(1, (8000, 192_000), SampleFormat::I16),
        ];
        let (config, format) = pick_config(&ranges, 8000).unwrap();
        assert_eq!((config.channels, config.sample_rate, format), (1, 8000, SampleFormat::I16));
        assert_eq!(config.buffer_size, BufferSize::Fixed(80), "10 ms periods");
    }

    #[test]
    fn a_cd_rate_stereo_float_device_is_taken_as_it_is() {
        let ranges = [range(2, (44_100, 44_100), SampleFormat::F32), range(2, (44_100, 44_100), SampleFormat::DsdU8)];
        let (config, format) = pick_config(&ranges, 48_000).unwrap();
        assert_eq!((config.channels, config.sample_rate, format), (2, 44_100, SampleFormat::F32));
        assert_eq!(config.buffer_size, BufferSize::Fixed(441));
    }

    #[test]
    fn forty_eight_khz_is_preferred_when_the_codec_rate_is_missing_and_periods_respect_the_minimum() {
        let tight = SupportedStreamConfigRange::new(
            2,
            44_100,
            96_000,
            SupportedBufferSize::Range { min: 1024, max: 4096 },
            SampleFormat::I32,
        );
        let (config, format) = pick_config(&[tight], 8000).unwrap();
        assert_eq!((config.sample_rate, format), (48_000, SampleFormat::I32));
        assert_eq!(config.buffer_size, BufferSize::Fixed(1024));
    }

    #[test]
    fn a_device_with_only_formats_we_cannot_convert_is_refused() {
        assert!(pick_config(&[range(2, (48_000, 48_000), SampleFormat::DsdU32)], 48_000).is_none());
        assert!(pick_config(&[], 48_000).is_none());
    }

    #[test]
    fn a_device_line_names_host_name_default_and_formats() {
        let info = DeviceInfo {
            host: "ALSA".into(),
            name: "default".into(),
            description: Some("Default Audio Device".into()),
            is_default: true,
            input: vec![],
            output: formats(vec![
                range(1, (8000, 48_000), SampleFormat::I16),
                range(2, (8000, 48_000), SampleFormat::F32),
            ]),
        };
        assert_eq!(
            info.to_line(),
            "ALSA default (default) \"Default Audio Device\"; output: 8000-48000 Hz, 1-2 ch, i16/f32"
        );
    }
}
