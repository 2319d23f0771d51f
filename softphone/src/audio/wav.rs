//! A small WAV (RIFF, PCM) reader and writer: 16-bit integer PCM in and out, any rate and
//! channel count in, mono out.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use proto::codec::CodecError;

/// What went wrong with a WAV file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The file is not a WAV file we read.
    #[error("{path}: {reason}: give a 16-bit PCM WAV file")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
    /// Its sample rate cannot be converted to the codec's.
    #[error("cannot convert the WAV file's {0} Hz to the codec's rate: {1}")]
    Rate(u32, CodecError),
}

/// A WAV file's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// The samples, interleaved.
    pub samples: Vec<i16>,
}

impl Wav {
    /// The channels averaged into one.
    pub fn mono(&self) -> Vec<i16> {
        let channels = usize::from(self.channels.max(1));
        self.samples
            .chunks(channels)
            .map(|frame| (frame.iter().map(|&s| i32::from(s)).sum::<i32>() / frame.len().max(1) as i32) as i16)
            .collect()
    }
}

/// Reads a 16-bit PCM WAV file.
pub fn read(path: &Path) -> Result<Wav, WavError> {
    let bytes = std::fs::read(path).map_err(|source| WavError::Io { path: path.to_owned(), source })?;
    parse(&bytes).map_err(|reason| WavError::Format { path: path.to_owned(), reason })
}

/// Parses the bytes of a 16-bit PCM WAV file.
pub fn parse(bytes: &[u8]) -> Result<Wav, &'static str> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE file");
    }
    let mut format: Option<(u16, u16, u32, u16)> = None;
    let mut at = 12;
    while let Some(header) = bytes.get(at..at + 8) {
        let id = &header[0..4];
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body = bytes.get(at + 8..).ok_or("truncated chunk")?;
        let body = body.get(..len.min(body.len())).ok_or("truncated chunk")?;
        match id {
            b"fmt " => {
                let f = body.get(..16).ok_or("short fmt chunk")?;
                let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
                let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                format = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            }
            b"data" => {
                let (tag, channels, sample_rate, bits) = format.ok_or("data before fmt chunk")?;
                // 1 = PCM; 0xFFFE = WAVE_FORMAT_EXTENSIBLE, accepted when 16-bit.
                if !(tag == 1 || tag == 0xFFFE) || bits != 16 {
                    return Err("not 16-bit integer PCM");
                }
                if channels == 0 || sample_rate == 0 {
                    return Err("zero channels or sample rate");
                }
                let samples = body.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                return Ok(Wav { sample_rate, channels, samples });
            }
            _ => {}
        }
        at = at.saturating_add(8).saturating_add(len).saturating_add(len & 1);
    }
    Err("no data chunk")
}

/// Writes mono 16-bit PCM to a WAV file, fixing the header's sizes on [`finish`](Self::finish).
#[derive(Debug)]
pub struct WavWriter {
    path: PathBuf,
    file: BufWriter<File>,
    data_len: u32,
}

impl WavWriter {
    /// Creates (or truncates) `path` for mono audio at `rate` Hz.
    pub fn create(path: &Path, rate: u32) -> Result<WavWriter, WavError> {
        let io_err = |source| WavError::Io { path: path.to_owned(), source };
        let file = File::create(path).map_err(io_err)?;
        let mut writer = WavWriter { path: path.to_owned(), file: BufWriter::new(file), data_len: 0 };
        writer.file.write_all(&header(rate, 0)).map_err(io_err)?;
        Ok(writer)
    }

    /// Appends samples.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), WavError> {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.file.write_all(&bytes).map_err(|source| WavError::Io { path: self.path.clone(), source })?;
        self.data_len = self.data_len.saturating_add(bytes.len() as u32);
        Ok(())
    }

    /// Writes the final sizes into the header and closes the file.
    pub fn finish(mut self) -> Result<(), WavError> {
        let path = self.path.clone();
        let io_err = |source| WavError::Io { path: path.clone(), source };
        self.file.flush().map_err(io_err)?;
        let file = self.file.get_mut();
        file.seek(SeekFrom::Start(4)).map_err(io_err)?;
        file.write_all(&(36u32.saturating_add(self.data_len)).to_le_bytes()).map_err(io_err)?;
        file.seek(SeekFrom::Start(40)).map_err(io_err)?;
        file.write_all(&self.data_len.to_le_bytes()).map_err(io_err)?;
        file.flush().map_err(io_err)
    }
}

/// The 44-byte header of a mono 16-bit PCM WAV file with `data_len` bytes of samples.
fn header(rate: u32, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&36u32.saturating_add(data_len).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_reads_back() {
        let dir = std::env::temp_dir().join(format!("softphone-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let mut w = WavWriter::create(&path, 8000).unwrap();
        w.write(&[1, -2, 3]).unwrap();
        w.write(&[i16::MAX]).unwrap();
        w.finish().unwrap();
        let wav = read(&path).unwrap();
        assert_eq!(wav, Wav { sample_rate: 8000, channels: 1, samples: vec![1, -2, 3, i16::MAX] });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let wav = Wav { sample_rate: 48_000, channels: 2, samples: vec![100, 300, -50, -150] };
        assert_eq!(wav.mono(), [200, -100]);
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert!(parse(b"").is_err());
        assert!(parse(b"RIFF\0\0\0\0WAVEfmt \xff\xff\xff\xff").is_err());
        let mut h = header(8000, 100).to_vec();
        h.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse(&h).unwrap().samples.len(), 1);
    }
}
