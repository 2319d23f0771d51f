//! The media session of one call, sans-IO: our audio out as RTP, the far end's RTP in through
//! the jitter buffer to decoded audio, RTCP both ways (RFC 3550; RFC 7587 for Opus, RFC 3551
//! for G.711).
//!
//! [`MediaSession`] is made from the SDP outcome ([`Negotiated`]) and driven by the shell's
//! paced 20 ms clock: each tick it takes one frame from the audio source
//! ([`MediaSession::send_frame`]) and gives one frame for the sink ([`MediaSession::play_frame`]).
//! Datagrams from the media socket go to [`MediaSession::handle_datagram`]; RTCP is polled with
//! [`MediaSession::poll_rtcp`]. It never touches a socket or reads a clock.
//!
//! Playout follows the jitter buffer: a frame is decoded; a missing frame is rebuilt from the
//! next packet's Opus in-band FEC when that packet is already here, else concealed (PLC).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto::codec::{AudioDecoder, AudioEncoder, CodecError, CodecKind, Decoder, Encoder, OpusConfig};
use proto::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use proto::rtp::ntp::NtpTime;
use proto::rtp::schedule::RtcpConfig;
use proto::rtp::session::{Received, RtpSession, SessionConfig};
use proto::sdp::Negotiated;
use rand::RngCore;
use tracing::debug;

/// The packet loss the Opus encoder plans its FEC for until RTCP says otherwise.
const EXPECTED_LOSS_PERCENT: u8 = 5;

/// Largest encoded frame we write.
const MAX_PAYLOAD: usize = 1500;

/// Why a media session could not start.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The negotiated codec is not one we encode.
    #[error("the negotiated codec {0} is not one this phone speaks: offer opus, pcmu or pcma")]
    UnsupportedCodec(String),
    /// The codec could not be set up.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Counters for the UI, since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP packets received from the far end (valid media).
    pub packets_received: u64,
    /// Packets the far end sent that never arrived (RFC 3550 A.3 cumulative loss).
    pub lost: i64,
    /// Interarrival jitter, in milliseconds (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Audio held in the jitter buffer now (the delay it adds), in milliseconds.
    pub jitter_buffer_ms: f64,
    /// Frames concealed (PLC, FEC or stretch).
    pub concealed: u64,
    /// Frames rebuilt from in-band FEC.
    pub fec_recovered: u64,
}

/// One call's media; see the module docs.
#[derive(Debug)]
pub struct MediaSession {
    kind: CodecKind,
    payload_type: u8,
    sends: bool,
    encoder: AudioEncoder,
    decoder: AudioDecoder,
    rtp: RtpSession,
    jitter: JitterBuffer,
    frame_samples: usize,
    payload: Vec<u8>,
    played: Vec<i16>,
    stats: MediaStats,
}

impl MediaSession {
    /// A session for what offer/answer agreed, starting at `now`.
    pub fn new<R: RngCore + ?Sized>(negotiated: &Negotiated, now: Instant, rng: &mut R) -> Result<Self, MediaError> {
        let codec = &negotiated.codec;
        let kind = CodecKind::from_rtpmap(&codec.name, codec.clock_rate, codec.channels)
            .ok_or_else(|| MediaError::UnsupportedCodec(codec.name.clone()))?;
        // With FEC asked for, tell libopus to expect some loss from the start, or it spends no
        // bits on FEC at all.
        let opus = OpusConfig {
            fec: negotiated.remote_fec,
            packet_loss_percent: if negotiated.remote_fec { EXPECTED_LOSS_PERCENT } else { 0 },
            ..OpusConfig::default()
        };
        let ptime = if negotiated.ptime == 0 { 20 } else { negotiated.ptime.clamp(10, 60) };
        let frame = Duration::from_millis(u64::from(ptime));
        let clock_rate = kind.clock_rate();
        let frame_samples = (clock_rate as usize * ptime as usize) / 1000;
        let mut accept = vec![negotiated.payload_type];
        accept.extend(negotiated.telephone_event.map(|t| t.payload_type));
        let config = SessionConfig {
            payload_type: negotiated.payload_type,
            clock_rate,
            accept_payload_types: accept,
            remote_rtp: negotiated.remote_rtp,
            remote_rtcp: (!negotiated.rtcp_mux).then_some(negotiated.remote_rtcp),
            cname: format!("{:016x}@softphone", rng.next_u64()),
            rtcp: RtcpConfig::default(),
        };
        Ok(MediaSession {
            kind,
            payload_type: negotiated.payload_type,
            sends: negotiated.direction.sends() && !negotiated.remote_rtp.ip().is_unspecified(),
            encoder: kind.encoder(&opus)?,
            decoder: kind.decoder()?,
            rtp: RtpSession::new(config, now, rng),
            jitter: JitterBuffer::new(JitterConfig { frame, clock_rate, ..JitterConfig::default() }),
            frame_samples,
            payload: vec![0; MAX_PAYLOAD],
            played: vec![0; frame_samples.max(5760)],
            stats: MediaStats::default(),
        })
    }

    /// The codec in use.
    pub fn codec(&self) -> CodecKind {
        self.kind
    }

    /// The PCM sample rate of frames in and out.
    pub fn sample_rate(&self) -> u32 {
        self.kind.clock_rate()
    }

    /// Samples per frame (20 ms unless the far end asked for another ptime).
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes one frame of our audio into an RTP datagram in `out` and says where it goes;
    /// `None` when the stream does not send (on hold).
    pub fn send_frame(
        &mut self,
        pcm: &[i16],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Option<SocketAddr>, CodecError> {
        if !self.sends {
            out.clear();
            return Ok(None);
        }
        let len = self.encoder.encode(pcm, &mut self.payload)?;
        let samples = u32::try_from(pcm.len()).unwrap_or(u32::MAX);
        let payload = self.payload.get(..len).unwrap_or_default();
        match self.rtp.send(payload, samples, now, out) {
            Ok(dest) => {
                self.stats.packets_sent += 1;
                Ok(Some(dest))
            }
            Err(e) => {
                debug!(error = %e, "RTP packet not written");
                Ok(None)
            }
        }
    }

    /// Takes one datagram from the media socket (RTP or RTCP).
    pub fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        match self.rtp.handle_datagram(datagram, from, now) {
            Ok(Received::Media { packet, new_stream }) => {
                if new_stream {
                    self.jitter.reset();
                }
                if packet.header.payload_type == self.payload_type {
                    self.stats.packets_received += 1;
                    self.jitter.push(packet.header.sequence, packet.header.timestamp, packet.payload, now);
                }
            }
            Ok(Received::Bye) => debug!(%from, "RTCP BYE from the far end"),
            Ok(Received::Control | Received::Ignored) => {}
            Err(e) => debug!(%from, error = %e, "media datagram dropped"),
        }
    }

    /// The far end's audio for the frame period starting at `now`: decoded, rebuilt from FEC,
    /// concealed, or silence before anything arrived.
    pub fn play_frame(&mut self, now: Instant) -> &[i16] {
        let n = self.frame_samples;
        let result = match self.jitter.pop(now) {
            Playout::Nothing => Ok(0),
            Playout::Frame(payload) => self.decoder.decode(payload, &mut self.played),
            Playout::Missing { fec_from_next: Some(next) } => {
                self.stats.fec_recovered += 1;
                self.decoder.decode_fec(next, &mut self.played)
            }
            Playout::Missing { fec_from_next: None } | Playout::Stretch => self.decoder.conceal(&mut self.played),
        };
        let written = result.unwrap_or_else(|e| {
            debug!(error = %e, "frame not decoded; playing silence");
            0
        });
        // Frames shorter than ours (or silence) are padded; longer ones are cut to the tick.
        if let Some(rest) = self.played.get_mut(written.min(n)..n) {
            rest.fill(0);
        }
        self.played.get(..n).unwrap_or_default()
    }

    /// When RTCP is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rtp.poll_timeout()
    }

    /// Writes a due RTCP report into `out` and says where it goes.
    pub fn poll_rtcp<R: RngCore + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Option<SocketAddr> {
        let wall = NtpTime::from_system_time(std::time::SystemTime::now());
        self.rtp.poll_rtcp(now, wall, rng, out).unwrap_or_else(|e| {
            debug!(error = %e, "RTCP report not written");
            None
        })
    }

    /// Ends the session: the final report with an RTCP BYE in `out`, and where it goes.
    pub fn stop(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        let wall = NtpTime::from_system_time(std::time::SystemTime::now());
        self.rtp.stop(Some("call ended"), now, wall, out).ok()
    }

    /// The counters so far.
    pub fn stats(&self) -> MediaStats {
        let jitter = self.jitter.stats();
        let far = self.rtp.far_stats();
        MediaStats {
            lost: far.map_or(0, |f| f.lost()),
            jitter_ms: far.map_or(0.0, |f| f.jitter_duration().as_secs_f64() * 1000.0),
            jitter_buffer_ms: jitter.depth.as_secs_f64() * 1000.0,
            concealed: jitter.concealed,
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::codec::is_dominated_by;
    use proto::sdp::{Codec, Direction};
    use rand::{SeedableRng, rngs::StdRng};

    fn negotiated(codec: Codec, payload_type: u8, remote: SocketAddr) -> Negotiated {
        Negotiated {
            media_index: 0,
            remote_rtp: remote,
            remote_rtcp: SocketAddr::new(remote.ip(), remote.port() + 1),
            payload_type,
            codec,
            ptime: 20,
            telephone_event: None,
            direction: Direction::SendRecv,
            rtcp_mux: false,
            remote_fec: true,
            remote_maxplaybackrate: None,
        }
    }

    /// Two sessions wired back to back in simulated time carry a tone from one to the other.
    fn tone_crosses(codec: Codec, payload_type: u8) {
        let mut rng = StdRng::seed_from_u64(7);
        let (a_addr, b_addr): (SocketAddr, SocketAddr) =
            ("127.0.0.1:4000".parse().unwrap(), "127.0.0.1:5000".parse().unwrap());
        let start = Instant::now();
        let mut a = MediaSession::new(&negotiated(codec.clone(), payload_type, b_addr), start, &mut rng).unwrap();
        let mut b = MediaSession::new(&negotiated(codec, payload_type, a_addr), start, &mut rng).unwrap();
        let rate = a.sample_rate();
        let mut tone = crate::audio::ToneGenerator::new(1000.0, rate, 8000.0);
        let mut frame = vec![0i16; a.frame_samples()];
        let mut datagram = Vec::new();
        let mut toned = 0;
        for i in 0..50u64 {
            let now = start + Duration::from_millis(20 * i);
            tone.fill(&mut frame);
            let dest = a.send_frame(&frame, now, &mut datagram).unwrap();
            assert_eq!(dest, Some(b_addr));
            b.handle_datagram(&datagram, a_addr, now);
            if is_dominated_by(b.play_frame(now), rate, 1000.0) {
                toned += 1;
            }
        }
        assert!(toned >= 40, "only {toned} of 50 frames carried the tone");
        // The first packet of a new source is held on probation (RFC 3550 A.1).
        assert_eq!(b.stats().packets_received, 49);
        assert_eq!(a.stats().packets_sent, 50);
    }

    #[test]
    fn a_lost_opus_packet_is_rebuilt_from_the_next_ones_fec() {
        let mut rng = StdRng::seed_from_u64(8);
        let (a_addr, b_addr): (SocketAddr, SocketAddr) =
            ("127.0.0.1:4000".parse().unwrap(), "127.0.0.1:5000".parse().unwrap());
        let start = Instant::now();
        let mut a = MediaSession::new(&negotiated(Codec::opus(), 96, b_addr), start, &mut rng).unwrap();
        let mut b = MediaSession::new(&negotiated(Codec::opus(), 96, a_addr), start, &mut rng).unwrap();
        let mut tone = crate::audio::ToneGenerator::new(1000.0, 48_000, 8000.0);
        let mut frame = vec![0i16; a.frame_samples()];
        let mut datagram = Vec::new();
        let mut toned = 0;
        for i in 0..50u64 {
            let now = start + Duration::from_millis(20 * i);
            tone.fill(&mut frame);
            a.send_frame(&frame, now, &mut datagram).unwrap();
            if i != 20 {
                b.handle_datagram(&datagram, a_addr, now);
            }
            if is_dominated_by(b.play_frame(now), 48_000, 1000.0) {
                toned += 1;
            }
        }
        let stats = b.stats();
        assert_eq!(stats.fec_recovered, 1, "{stats:?}");
        assert!(toned >= 45, "only {toned} of 50 frames carried the tone");
    }

    #[test]
    fn pcmu_tone_crosses_between_sessions() {
        tone_crosses(Codec::pcmu(), 0);
    }

    #[test]
    fn opus_tone_crosses_between_sessions() {
        tone_crosses(Codec::opus(), 96);
    }
}
