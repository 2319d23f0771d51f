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
//! Hold (RFC 3264 §8.4) changes the direction ([`MediaSession::update`]): a stream that does not
//! send sends nothing and moves its timestamp on, so the next packet after it starts a talk
//! spurt; one that does not receive plays silence; a muted one (we hold the far end) sends
//! silence instead of our audio.
//!
//! Mute ([`MediaSession::set_muted`]) is the user's, apart from hold: the stream goes on, every
//! frame encoded from silence (never skipped), so NAT bindings and the far end's statistics stay
//! alive and its jitter buffer stays primed.
//!
//! DTMF (RFC 4733): [`MediaSession::send_dtmf`] queues digits sent as telephone-events on the
//! negotiated payload type, same SSRC and sequence numbers, every packet of a digit stamped with
//! the timestamp of the audio it replaces, whose frames are held back meanwhile. Received events
//! come out once per digit from [`MediaSession::poll_dtmf`].
//!
//! Playout follows the jitter buffer: a frame is decoded; a missing frame is rebuilt from the
//! next packet's Opus in-band FEC when that packet is already here, else concealed (PLC). The
//! packets that arrived while the far end's source was on probation (RFC 3550 §A.1) go into the
//! jitter buffer once it is valid, so the call's first frames play.
//!
//! The loss the far end reports on our stream in RTCP (its fraction lost) sets how much loss the
//! Opus encoder plans its in-band FEC for ([`ReportedLoss`]). [`MediaSession::stats`] gives what
//! a UI shows, with the call's MOS from the E-model ([`proto::rtp::quality`]).
//!
//! When offer/answer agreed SRTP ([`Negotiated::srtp`]), the session stays in plain RTP inside
//! and [`srtp`] sits at its edge: every datagram written for the wire goes through
//! [`MediaSession::seal`], and [`MediaSession::handle_datagram`] opens what arrives, dropping
//! and counting ([`MediaStats::srtp_auth_failures`]) what does not authenticate. Both hand the
//! plain packet back, so a capture (`--pcap`) records RTP and RTCP as if unencrypted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proto::codec::{
    AudioDecoder, AudioEncoder, CodecError, CodecKind, Decoder, DtmfReceiver, DtmfSender, Encoder, OpusConfig,
    SILENCE_DBFS, level_dbfs,
};
use proto::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use proto::rtp::ntp::NtpTime;
use proto::rtp::packet::RtpHeader;
use proto::rtp::quality::{self, CodecImpairment, ReportedLoss};
use proto::rtp::schedule::RtcpConfig;
use proto::rtp::session::{Received, RtpSession, SessionConfig};
use proto::rtp::srtp::SrtpError;
use proto::sdp::{Negotiated, TelephoneEvent};
use rand::RngCore;
use tracing::debug;

mod srtp;

use srtp::MediaCrypto;

/// The packet loss the Opus encoder plans its FEC for until RTCP says otherwise.
const EXPECTED_LOSS_PERCENT: u8 = 5;

/// Largest encoded frame we write.
const MAX_PAYLOAD: usize = 1500;

/// How long each DTMF digit we send lasts, and the pause after it.
const DIGIT_DURATION: Duration = Duration::from_millis(100);
const DIGIT_GAP: Duration = Duration::from_millis(100);

/// Digits received but not yet polled beyond this are dropped (bounds memory on hostile input).
const MAX_DTMF_PENDING: usize = 64;

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

/// What a UI shows about the call's media: counters since the session started, and levels of
/// the latest frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP packets received from the far end, counted as RFC 3550 §A.1 counts them: from the
    /// source's validation on (the packets held on probation before it play but are not counted,
    /// so this, `lost` and the expected count agree with the far end's RTCP).
    pub packets_received: u64,
    /// Packets the far end sent that never arrived (RFC 3550 A.3 cumulative loss).
    pub lost: i64,
    /// `lost` as a percentage of the packets expected (0 before any arrived).
    pub loss_percent: f64,
    /// The loss on our stream in the far end's latest RTCP report (its fraction lost), percent.
    pub remote_loss_percent: Option<f64>,
    /// Interarrival jitter, in milliseconds (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Audio held in the jitter buffer now (the delay it adds), in milliseconds.
    pub jitter_buffer_ms: f64,
    /// Frames concealed (PLC, FEC or stretch).
    pub concealed: u64,
    /// Frames rebuilt from in-band FEC.
    pub fec_recovered: u64,
    /// Round-trip time from the far end's RTCP reports (RFC 3550 §6.4.1), once measured.
    pub rtt_ms: Option<f64>,
    /// Estimated mean opinion score (E-model, ITU-T G.107), once the far end's media arrived.
    pub mos: Option<f64>,
    /// RMS level of the last frame of our audio given to send, in dBFS (measured while muted
    /// too, so a UI can show the user talking into a muted call).
    pub input_level_dbfs: f32,
    /// RMS level of the last frame played, in dBFS.
    pub output_level_dbfs: f32,
    /// Whether the user muted our audio ([`MediaSession::set_muted`]).
    pub muted: bool,
    /// Under SRTP, the received packets dropped because they did not authenticate (forged,
    /// corrupted, or under another key; replays are not counted). `None` on plain RTP.
    pub srtp_auth_failures: Option<u64>,
}

impl Default for MediaStats {
    fn default() -> Self {
        MediaStats {
            packets_sent: 0,
            packets_received: 0,
            lost: 0,
            loss_percent: 0.0,
            remote_loss_percent: None,
            jitter_ms: 0.0,
            jitter_buffer_ms: 0.0,
            concealed: 0,
            fec_recovered: 0,
            rtt_ms: None,
            mos: None,
            input_level_dbfs: SILENCE_DBFS,
            output_level_dbfs: SILENCE_DBFS,
            muted: false,
            srtp_auth_failures: None,
        }
    }
}

/// One call's media; see the module docs.
#[derive(Debug)]
pub struct MediaSession {
    kind: CodecKind,
    payload_type: u8,
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
    sends: bool,
    receives: bool,
    /// Silence instead of our audio while we hold the far end.
    held_silent: bool,
    /// The user's mute.
    muted: bool,
    /// [`stop`](Self::stop) has sent the RTCP BYE.
    stopped: bool,
    silence: Vec<i16>,
    telephone_event: Option<TelephoneEvent>,
    /// The payload type of telephone-events we take, at whatever rate.
    events_in: Option<u8>,
    dtmf_queue: VecDeque<char>,
    /// The digit being sent and the RTP timestamp it started at.
    dtmf: Option<(DtmfSender, Option<u32>)>,
    dtmf_gap_until: Option<Instant>,
    dtmf_in: DtmfReceiver,
    dtmf_received: VecDeque<char>,
    encoder: AudioEncoder,
    decoder: AudioDecoder,
    rtp: RtpSession,
    jitter: JitterBuffer,
    frame_samples: usize,
    payload: Vec<u8>,
    played: Vec<i16>,
    /// The far end's reports on our stream, smoothed for the Opus encoder.
    reported_loss: ReportedLoss,
    impairment: CodecImpairment,
    frame: Duration,
    settings: OpusSettings,
    stats: MediaStats,
    /// SRTP at the socket edge, when agreed.
    crypto: Option<MediaCrypto>,
}

/// How we encode Opus, as the user chose it; the far end's `maxaveragebitrate` caps the bitrate
/// (RFC 7587 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// Target bitrate in bit/s, 6000 to 510000.
    pub bitrate: u32,
    /// Encoder complexity, 0 (cheapest) to 10 (best).
    pub complexity: u8,
}

impl Default for OpusSettings {
    fn default() -> Self {
        let defaults = OpusConfig::default();
        OpusSettings { bitrate: defaults.bitrate, complexity: defaults.complexity }
    }
}

impl MediaSession {
    /// A session for what offer/answer agreed, encoding Opus with `settings`, starting at `now`.
    pub fn new<R: RngCore + ?Sized>(
        negotiated: &Negotiated,
        settings: OpusSettings,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, MediaError> {
        let codec = &negotiated.codec;
        let kind = CodecKind::from_rtpmap(&codec.name, codec.clock_rate, codec.channels)
            .ok_or_else(|| MediaError::UnsupportedCodec(codec.name.clone()))?;
        let far_end_cap = codec.fmtp.get("maxaveragebitrate").and_then(|v| v.parse::<u32>().ok());
        // With FEC asked for, tell libopus to expect some loss from the start, or it spends no
        // bits on FEC at all.
        let opus = OpusConfig {
            bitrate: far_end_cap.map_or(settings.bitrate, |cap| settings.bitrate.min(cap)).clamp(6_000, 510_000),
            complexity: settings.complexity.min(10),
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
            remote_rtp: negotiated.remote_rtp,
            remote_rtcp: negotiated.remote_rtcp,
            sends: negotiated.direction.sends() && !negotiated.remote_rtp.ip().is_unspecified(),
            receives: negotiated.direction.receives(),
            held_silent: false,
            muted: false,
            stopped: false,
            silence: Vec::new(),
            telephone_event: usable_events(negotiated, clock_rate),
            events_in: negotiated.telephone_event.map(|t| t.payload_type),
            dtmf_queue: VecDeque::new(),
            dtmf: None,
            dtmf_gap_until: None,
            dtmf_in: DtmfReceiver::new(),
            dtmf_received: VecDeque::new(),
            encoder: kind.encoder(&opus)?,
            decoder: kind.decoder()?,
            rtp: RtpSession::new(config, now, rng),
            jitter: JitterBuffer::new(JitterConfig { frame, clock_rate, ..JitterConfig::default() }),
            frame_samples,
            payload: vec![0; MAX_PAYLOAD],
            played: vec![0; frame_samples.max(5760)],
            reported_loss: ReportedLoss::new(),
            impairment: CodecImpairment::for_codec(kind),
            frame,
            settings,
            stats: MediaStats { srtp_auth_failures: negotiated.srtp.as_ref().map(|_| 0), ..MediaStats::default() },
            crypto: negotiated.srtp.as_ref().map(MediaCrypto::new),
        })
    }

    /// How Opus is encoded, as the user asked (before the far end's cap).
    pub fn opus_settings(&self) -> OpusSettings {
        self.settings
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

    /// The SRTP suite protecting the media, `None` on plain RTP.
    pub fn srtp_profile(&self) -> Option<proto::rtp::srtp::SrtpProfile> {
        self.crypto.as_ref().map(|c| c.keys().profile)
    }

    /// Whether a new offer/answer outcome keeps this stream: same codec, payload type, frame
    /// length, far-end addresses and SRTP suite (keys may change), so [`update`](Self::update)
    /// can apply it in place.
    pub fn same_stream(&self, negotiated: &Negotiated) -> bool {
        let kind =
            CodecKind::from_rtpmap(&negotiated.codec.name, negotiated.codec.clock_rate, negotiated.codec.channels);
        let ptime = if negotiated.ptime == 0 { 20 } else { negotiated.ptime.clamp(10, 60) };
        let frame_samples = (self.kind.clock_rate() as usize * ptime as usize) / 1000;
        kind == Some(self.kind)
            && negotiated.payload_type == self.payload_type
            && frame_samples == self.frame_samples
            && negotiated.remote_rtp == self.remote_rtp
            && (negotiated.rtcp_mux || negotiated.remote_rtcp == self.remote_rtcp)
            && negotiated.srtp.as_ref().map(|k| k.profile) == self.srtp_profile()
    }

    /// Applies a new offer/answer outcome of the same stream ([`same_stream`](Self::same_stream))
    /// on the same call (a re-INVITE): its direction, and `muted` while we hold the far end.
    pub fn update(&mut self, negotiated: &Negotiated, muted: bool) {
        if self.stopped {
            return;
        }
        let receives = negotiated.direction.receives();
        if receives && !self.receives {
            self.jitter.reset();
        }
        self.receives = receives;
        self.sends = negotiated.direction.sends() && !negotiated.remote_rtp.ip().is_unspecified();
        self.held_silent = muted;
        self.telephone_event = usable_events(negotiated, self.kind.clock_rate());
        self.events_in = negotiated.telephone_event.map(|t| t.payload_type);
        if let (Some(crypto), Some(keys)) = (self.crypto.as_mut(), negotiated.srtp.as_ref()) {
            crypto.rekey(keys);
        }
    }

    /// The datagram to put on the wire for `plain`, a packet this session wrote
    /// ([`send_frame`](Self::send_frame), [`poll_rtcp`](Self::poll_rtcp), [`stop`](Self::stop)):
    /// `plain` itself on plain RTP, its SRTP or SRTCP form under SRTP. `None` when it cannot be
    /// protected (the master key is worn out): drop it.
    pub fn seal<'a>(&'a mut self, plain: &'a [u8]) -> Option<&'a [u8]> {
        let Some(crypto) = self.crypto.as_mut() else { return Some(plain) };
        match crypto.seal(plain) {
            Ok(()) => Some(&crypto.wire),
            Err(e) => {
                debug!(error = %e, "packet not protected; dropped");
                None
            }
        }
    }

    /// Mutes or unmutes our audio (the user's mute, apart from hold): while muted every frame
    /// still goes out, encoded from silence.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
        self.stats.muted = muted;
    }

    /// Whether the far end takes RFC 4733 telephone-events from us at our audio clock rate.
    pub fn can_send_dtmf(&self) -> bool {
        self.telephone_event.is_some()
    }

    /// Queues DTMF digits to send as telephone-events; digits that are not DTMF are skipped.
    /// Nothing is sent when [`can_send_dtmf`](Self::can_send_dtmf) is false.
    pub fn send_dtmf(&mut self, digits: &str) {
        if self.telephone_event.is_some() {
            self.dtmf_queue.extend(digits.chars().filter(|c| proto::codec::event_for_digit(*c).is_some()));
        }
    }

    /// The next DTMF digit the far end sent as telephone-events, once per digit.
    pub fn poll_dtmf(&mut self) -> Option<char> {
        self.dtmf_received.pop_front()
    }

    /// Encodes one frame of our audio into an RTP datagram in `out` and says where it goes;
    /// `None` when the stream does not send (on hold) or nothing is due. While a DTMF digit is
    /// being sent, its event packets go instead of the audio.
    pub fn send_frame(
        &mut self,
        pcm: &[i16],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Option<SocketAddr>, CodecError> {
        let samples = u32::try_from(pcm.len()).unwrap_or(u32::MAX);
        self.stats.input_level_dbfs = level_dbfs(pcm);
        out.clear();
        if !self.sends {
            self.rtp.silence(samples);
            return Ok(None);
        }
        if let Some(sent) = self.dtmf_tick(samples, now, out) {
            return Ok(sent);
        }
        let len = if self.muted || self.held_silent {
            self.silence.resize(pcm.len(), 0);
            self.encoder.encode(&self.silence, &mut self.payload)?
        } else {
            self.encoder.encode(pcm, &mut self.payload)?
        };
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

    /// Sends the DTMF packet due in this frame period, if a digit is in progress or starts now;
    /// `None` when audio goes as usual. The period's audio is held back and its time skipped.
    fn dtmf_tick(&mut self, samples: u32, now: Instant, out: &mut Vec<u8>) -> Option<Option<SocketAddr>> {
        let events = self.telephone_event?;
        if self.dtmf.is_none() {
            if self.dtmf_gap_until.is_some_and(|until| now < until) {
                return None;
            }
            let digit = self.dtmf_queue.pop_front()?;
            let sender = DtmfSender::new(digit, events.clock_rate, DIGIT_DURATION, now).ok()?;
            self.dtmf = Some((sender, None));
        }
        let (sender, start) = self.dtmf.as_mut()?;
        let mut dest = None;
        if let Some(packet) = sender.poll_transmit(now) {
            // Written as an audio packet of no duration, then given the event's payload type,
            // marker and the timestamp of the digit's first packet (RFC 4733 §2.5.1.2).
            match self.rtp.send(&packet.event.to_bytes(), 0, now, out) {
                Ok(to) => {
                    let timestamp = out.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
                    let start = *start.get_or_insert(timestamp.unwrap_or_default());
                    if let Some(byte) = out.get_mut(1) {
                        *byte = (u8::from(packet.marker) << 7) | (events.payload_type & 0x7f);
                    }
                    if let Some(field) = out.get_mut(4..8) {
                        field.copy_from_slice(&start.to_be_bytes());
                    }
                    self.stats.packets_sent += 1;
                    dest = Some(to);
                }
                Err(e) => debug!(error = %e, "DTMF packet not written"),
            }
        }
        self.rtp.silence(samples);
        if sender.is_finished() {
            self.dtmf = None;
            self.dtmf_gap_until = Some(now + DIGIT_GAP);
        }
        Some(dest)
    }

    /// Takes one datagram from the media socket (RTP or RTCP), SRTP or SRTCP when agreed, and
    /// gives back the plain packet it took, for a capture; `None` when it failed
    /// authentication or was replayed, and was dropped.
    pub fn handle_datagram<'a>(&'a mut self, datagram: &'a [u8], from: SocketAddr, now: Instant) -> Option<&'a [u8]> {
        let Some(crypto) = self.crypto.as_mut() else {
            self.take_datagram(datagram, from, now);
            return Some(datagram);
        };
        let mut plain = std::mem::take(&mut crypto.plain);
        let opened = crypto.open(datagram, &mut plain);
        match &opened {
            Ok(()) => self.take_datagram(&plain, from, now),
            Err(SrtpError::Replayed { .. } | SrtpError::TooOld { .. }) => {
                debug!(%from, "replayed SRTP packet dropped");
            }
            Err(e) => {
                debug!(%from, error = %e, "SRTP packet dropped");
                self.stats.srtp_auth_failures = Some(self.stats.srtp_auth_failures.unwrap_or(0) + 1);
            }
        }
        let crypto = self.crypto.as_mut()?;
        crypto.plain = plain;
        opened.ok().map(|()| crypto.plain.as_slice())
    }

    fn take_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        match self.rtp.handle_datagram(datagram, from, now) {
            Ok(Received::Media { packet, new_stream }) => {
                if new_stream {
                    self.jitter.reset();
                    // Once per stream: what arrived on probation, then the packet that validated it.
                    let held: Vec<_> = self.rtp.take_probation().collect();
                    for p in &held {
                        self.take_media(p.header, &p.payload, p.arrival, from, false);
                    }
                }
                self.take_media(packet.header, packet.payload, now, from, true);
            }
            Ok(Received::Bye) => debug!(%from, "RTCP BYE from the far end"),
            Ok(Received::Control) => self.follow_report(),
            Ok(Received::Ignored) => {}
            Err(e) => debug!(%from, error = %e, "media datagram dropped"),
        }
    }

    /// One valid packet of the far end's: audio to the jitter buffer, telephone-events to DTMF.
    /// `counted` is false for packets released from probation.
    fn take_media(&mut self, header: RtpHeader, payload: &[u8], arrival: Instant, from: SocketAddr, counted: bool) {
        let count = u64::from(counted);
        if header.payload_type == self.payload_type {
            self.stats.packets_received += count;
            if self.receives {
                self.jitter.push(header.sequence, header.timestamp, payload, arrival);
            }
        } else if self.events_in == Some(header.payload_type) {
            self.stats.packets_received += count;
            if let Err(e) = self.dtmf_in.handle_payload(header.timestamp, payload) {
                debug!(%from, error = %e, "telephone-event dropped");
            }
            while let Some(event) = self.dtmf_in.poll_event() {
                if let Some(digit) = event.digit()
                    && self.dtmf_received.len() < MAX_DTMF_PENDING
                {
                    self.dtmf_received.push_back(digit);
                }
            }
        }
    }

    /// Follows the far end's latest report on our stream: its fraction lost, smoothed, is the
    /// loss the Opus encoder plans its FEC for.
    fn follow_report(&mut self) {
        let Some(block) = self.rtp.take_report() else { return };
        self.stats.remote_loss_percent = Some(f64::from(block.fraction_lost) * 100.0 / 256.0);
        let percent = self.reported_loss.on_report(block.fraction_lost);
        if let Err(e) = self.encoder.set_packet_loss_percent(percent) {
            debug!(error = %e, "expected loss not set");
        }
    }

    /// The packet loss the encoder plans for now, read back from it (0 for G.711).
    #[cfg(test)]
    pub fn expected_loss_percent(&mut self) -> Result<u8, CodecError> {
        self.encoder.packet_loss_percent()
    }

    /// The far end's audio for the frame period starting at `now`: decoded, rebuilt from FEC,
    /// concealed, or silence before anything arrived.
    pub fn play_frame(&mut self, now: Instant) -> &[i16] {
        let n = self.frame_samples;
        if !self.receives {
            if let Some(frame) = self.played.get_mut(..n) {
                frame.fill(0);
            }
            self.stats.output_level_dbfs = SILENCE_DBFS;
            return self.played.get(..n).unwrap_or_default();
        }
        let result = match self.jitter.pop(now) {
            Playout::Nothing => Ok(0),
            Playout::Frame(payload) => self.decoder.decode(payload, &mut self.played),
            Playout::Missing { fec_from_next: Some(next) } => {
                // G.711 has no FEC: its decoder conceals.
                if self.kind == CodecKind::Opus {
                    self.stats.fec_recovered += 1;
                }
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
        let frame = self.played.get(..n).unwrap_or_default();
        self.stats.output_level_dbfs = level_dbfs(frame);
        frame
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

    /// Ends the session: the final report with an RTCP BYE in `out`, and where it goes; `None`
    /// when it has already ended. From then on it sends nothing and plays silence.
    pub fn stop(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        if self.stopped {
            return None;
        }
        (self.stopped, self.sends, self.receives) = (true, false, false);
        let wall = NtpTime::from_system_time(std::time::SystemTime::now());
        self.rtp.stop(Some("call ended"), now, wall, out).ok()
    }

    /// The counters so far, the latest levels, and the call's MOS.
    ///
    /// The MOS is the E-model's ([`quality::mos`]) for the whole call so far: the loss heard is
    /// what the network lost plus what came too late to play, less what FEC rebuilt, over the
    /// packets expected; the one-way delay is half the RTCP round trip (network), plus the
    /// jitter buffer's depth now, the frame and the codec's look-ahead. Sound-card buffers are not
    /// counted.
    pub fn stats(&self) -> MediaStats {
        let jitter = self.jitter.stats();
        let far = self.rtp.far_stats();
        let rtt = self.rtp.rtt();
        let expected = far.map_or(0, |f| f.expected());
        let lost = far.map_or(0, |f| f.lost());
        let percent_of_expected = |n: i64| {
            if expected == 0 { 0.0 } else { (n.max(0) as f64 * 100.0 / f64::from(expected)).min(100.0) }
        };
        let heard_lost = lost
            .saturating_add(i64::try_from(jitter.late).unwrap_or(i64::MAX))
            .saturating_sub(i64::try_from(self.stats.fec_recovered).unwrap_or(i64::MAX));
        let one_way = rtt.unwrap_or_default() / 2 + jitter.depth + self.frame + self.impairment.lookahead;
        MediaStats {
            lost,
            loss_percent: percent_of_expected(lost),
            jitter_ms: far.map_or(0.0, |f| f.jitter_duration().as_secs_f64() * 1000.0),
            jitter_buffer_ms: jitter.depth.as_secs_f64() * 1000.0,
            concealed: jitter.concealed,
            rtt_ms: rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
            mos: far
                .filter(|f| f.is_valid())
                .map(|_| quality::mos(one_way, percent_of_expected(heard_lost), self.impairment)),
            ..self.stats
        }
    }
}

/// The negotiated telephone-event when it runs at the audio clock, so its timestamps share the
/// audio's (RFC 4733 §2.1); events at another rate are not sent.
fn usable_events(negotiated: &Negotiated, clock_rate: u32) -> Option<TelephoneEvent> {
    negotiated.telephone_event.filter(|t| t.clock_rate == clock_rate)
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
            srtp: None,
        }
    }

    /// Where A and B listen in the tests that wire two sessions back to back.
    fn addrs() -> (SocketAddr, SocketAddr) {
        ("127.0.0.1:4000".parse().unwrap(), "127.0.0.1:5000".parse().unwrap())
    }

    /// Two sessions wired back to back from [`addrs`]: A sends `codec` as `payload_type` to B
    /// and B to A, both built from one RNG seeded with `seed`, starting now.
    fn back_to_back(codec: Codec, payload_type: u8, seed: u64) -> (MediaSession, MediaSession, Instant) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (a_addr, b_addr) = addrs();
        let start = Instant::now();
        let a = MediaSession::new(
            &negotiated(codec.clone(), payload_type, b_addr),
            OpusSettings::default(),
            start,
            &mut rng,
        )
        .unwrap();
        let b = MediaSession::new(&negotiated(codec, payload_type, a_addr), OpusSettings::default(), start, &mut rng)
            .unwrap();
        (a, b, start)
    }

    /// Two sessions wired back to back in simulated time carry a tone from one to the other.
    fn tone_crosses(codec: Codec, payload_type: u8) {
        let (a_addr, b_addr) = addrs();
        let (mut a, mut b, start) = back_to_back(codec, payload_type, 7);
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
        // The first packet, held while the source was on probation (RFC 3550 A.1), plays but is
        // not counted.
        let (sent, received) = (a.stats(), b.stats());
        assert_eq!(received.packets_received, 49);
        assert_eq!(sent.packets_sent, 50);
        // No loss and a short path: about the best the narrowband E-model gives.
        let mos = received.mos.expect("the far end's media arrived");
        assert!(mos > 4.3 && mos <= 4.41, "MOS {mos}");
        assert_eq!((received.loss_percent, received.rtt_ms, received.muted), (0.0, None, false));
        // A sine of amplitude 8000 is 20·log10(8000/32768) − 3 = −15.25 dBFS.
        assert!((sent.input_level_dbfs + 15.25).abs() < 0.1, "{sent:?}");
        assert!((received.output_level_dbfs + 15.25).abs() < 1.5, "{received:?}");
        assert_eq!(sent.output_level_dbfs, SILENCE_DBFS, "nothing came back to A");
    }

    /// The mean RTP payload size of 50 Opus frames of a tone sent with `settings` to a far end
    /// whose fmtp is `fmtp`.
    fn mean_opus_payload(settings: OpusSettings, fmtp: Option<&str>) -> usize {
        let mut rng = StdRng::seed_from_u64(9);
        let mut codec = Codec::opus();
        if let Some(cap) = fmtp {
            codec = codec.with_fmtp("maxaveragebitrate", Some(cap));
        }
        let far: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut negotiated = negotiated(codec, 96, far);
        negotiated.remote_fec = false;
        let start = Instant::now();
        let mut a = MediaSession::new(&negotiated, settings, start, &mut rng).unwrap();
        let mut tone = crate::audio::ToneGenerator::new(1000.0, a.sample_rate(), 8000.0);
        let mut frame = vec![0i16; a.frame_samples()];
        let (mut datagram, mut bytes) = (Vec::new(), 0);
        for i in 0..50u64 {
            tone.fill(&mut frame);
            a.send_frame(&frame, start + Duration::from_millis(20 * i), &mut datagram).unwrap();
            bytes += datagram.len() - 12;
        }
        bytes / 50
    }

    #[test]
    fn opus_bitrate_is_the_users_capped_by_the_far_ends_maxaveragebitrate() {
        let low = mean_opus_payload(OpusSettings { bitrate: 12_000, complexity: 5 }, None);
        let high = mean_opus_payload(OpusSettings { bitrate: 64_000, complexity: 5 }, None);
        let capped = mean_opus_payload(OpusSettings { bitrate: 64_000, complexity: 5 }, Some("12000"));
        // 12 kbit/s is 30 bytes per 20 ms frame, 64 kbit/s 160.
        assert!(low < 45 && high > 100, "12k: {low} bytes, 64k: {high} bytes");
        assert!(capped < 45, "64k capped at 12k by the far end: {capped} bytes");
    }

    #[test]
    fn loss_lowers_the_mos_as_the_e_model_says() {
        let (a_addr, _) = addrs();
        let (mut a, mut b, start) = back_to_back(Codec::pcmu(), 0, 11);
        let frame = vec![1000i16; a.frame_samples()];
        let mut datagram = Vec::new();
        for i in 0..500u64 {
            let now = start + Duration::from_millis(20 * i);
            a.send_frame(&frame, now, &mut datagram).unwrap();
            if i % 20 != 10 {
                b.handle_datagram(&datagram, a_addr, now);
            }
            b.play_frame(now);
        }
        let stats = b.stats();
        assert_eq!(stats.lost, 25);
        assert!((stats.loss_percent - 5.0).abs() < 0.1, "{stats:?}");
        // G.711 with PLC at 5 % random loss: Ie,eff 15.8, R about 77, MOS about 3.9.
        let mos = stats.mos.unwrap();
        assert!(mos > 3.85 && mos < 3.93, "MOS {mos}");
    }

    /// A voice-like test signal: a 200 Hz buzz with harmonics whose level rises and falls four
    /// times a second (the encoder's voice detector tunes out a steady tone).
    fn syllables(frame: usize, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = (frame * len + i) as f64 / 48_000.0;
                let w = 2.0 * std::f64::consts::PI * 200.0 * t;
                let buzz = w.sin() + 0.5 * (2.0 * w).sin() + 0.25 * (3.0 * w).sin();
                let envelope = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * 4.0 * t).cos();
                (6000.0 * buzz * envelope) as i16
            })
            .collect()
    }

    /// Whether an Opus packet carries in-band FEC: a fresh decoder, with no history to conceal
    /// from, hears the frame before it only from that data.
    fn carries_fec(payload: &[u8]) -> bool {
        let mut decoder = CodecKind::Opus.decoder().unwrap();
        let mut out = [0i16; 5760];
        let n = decoder.decode_fec(payload, &mut out).unwrap();
        proto::codec::mean_power(&out[..n]) > 1e4
    }

    #[test]
    fn a_receiver_report_of_5_percent_loss_sets_the_opus_expected_loss_and_brings_fec() {
        use proto::rtp::packet::RtpPacket;
        use proto::rtp::rtcp::{ReceiverReport, ReportBlock, RtcpPacket, write_compound};
        let (a_addr, b_addr) = addrs();
        let (mut a, mut b, start) = back_to_back(Codec::opus(), 96, 12);
        assert_eq!(a.expected_loss_percent(), Ok(EXPECTED_LOSS_PERCENT), "before any report");
        let mut datagram = Vec::new();
        let silence = vec![0i16; 960];
        // Two packets each way, so each side's source is valid at the other.
        let mut exchange = |from: &mut MediaSession, to: &mut MediaSession, from_addr: SocketAddr| {
            let mut ssrc = 0;
            for _ in 0..2 {
                from.send_frame(&silence, start, &mut datagram).unwrap();
                ssrc = RtpPacket::parse(&datagram).unwrap().header.ssrc;
                to.handle_datagram(&datagram, from_addr, start);
            }
            ssrc
        };
        let b_ssrc = exchange(&mut b, &mut a, b_addr);
        let a_ssrc = exchange(&mut a, &mut b, a_addr);
        // B reports on A's stream: `fraction_lost` in 1/256.
        let report = |a: &mut MediaSession, fraction_lost: u8| {
            let block = ReportBlock { ssrc: a_ssrc, fraction_lost, ..ReportBlock::default() };
            let mut rtcp = Vec::new();
            write_compound(
                &[RtcpPacket::ReceiverReport(ReceiverReport { ssrc: b_ssrc, reports: vec![block] })],
                &mut rtcp,
            )
            .unwrap();
            a.handle_datagram(&rtcp, b_addr, start);
        };
        let fec_packets = |a: &mut MediaSession, frames: std::ops::Range<usize>| {
            let mut out = Vec::new();
            frames
                .filter(|&f| {
                    a.send_frame(&syllables(f, 960), start, &mut out).unwrap();
                    carries_fec(RtpPacket::parse(&out).unwrap().payload)
                })
                .count()
        };
        report(&mut a, 0);
        assert_eq!(a.expected_loss_percent(), Ok(0));
        assert_eq!(a.stats().remote_loss_percent, Some(0.0));
        assert_eq!(fec_packets(&mut a, 0..50), 0, "no loss reported, no FEC");
        report(&mut a, 13);
        assert_eq!(a.expected_loss_percent(), Ok(5), "13/256 = 5.1 %");
        assert!((a.stats().remote_loss_percent.unwrap() - 5.08).abs() < 0.01);
        let carried = fec_packets(&mut a, 50..100);
        assert!(carried >= 35, "only {carried} of 50 packets carried FEC after a 5 % report");
    }

    /// A sends a tone to B, muted for the middle third; B hears it as silence.
    fn mute_silences(codec: Codec, payload_type: u8) {
        let (a_addr, _) = addrs();
        let (mut a, mut b, start) = back_to_back(codec, payload_type, 13);
        let rate = a.sample_rate();
        let mut tone = crate::audio::ToneGenerator::new(1000.0, rate, 8000.0);
        let mut frame = vec![0i16; a.frame_samples()];
        let mut datagram = Vec::new();
        let (mut toned, mut silent) = ([0; 3], [0; 3]);
        for i in 0..150u64 {
            let now = start + Duration::from_millis(20 * i);
            let phase = (i / 50) as usize;
            if i == 50 || i == 100 {
                a.set_muted(i == 50);
                assert_eq!(a.stats().muted, i == 50);
            }
            tone.fill(&mut frame);
            assert!(a.send_frame(&frame, now, &mut datagram).unwrap().is_some(), "muted still sends");
            b.handle_datagram(&datagram, a_addr, now);
            let played = b.play_frame(now);
            toned[phase] += usize::from(is_dominated_by(played, rate, 1000.0));
            silent[phase] += usize::from(level_dbfs(played) < -60.0);
        }
        assert_eq!(a.stats().packets_sent, 150);
        assert_eq!(b.stats().packets_received, 149, "all but the one on probation");
        // The jitter buffer's two or three frames and the codec's delay carry over each switch.
        assert!(toned[0] >= 45 && toned[2] >= 45, "{toned:?}");
        assert!(toned[1] <= 4 && silent[1] >= 45, "muted: {toned:?} toned, {silent:?} silent");
        assert!(a.stats().input_level_dbfs > -16.0, "the microphone's level shows while muted");
    }

    #[test]
    fn muted_opus_arrives_as_silence_and_unmuting_brings_the_tone_back() {
        mute_silences(Codec::opus(), 96);
    }

    #[test]
    fn muted_pcmu_arrives_as_silence_and_unmuting_brings_the_tone_back() {
        mute_silences(Codec::pcmu(), 0);
    }

    #[test]
    fn packets_reordered_on_probation_still_play_from_the_first() {
        let (a_addr, _) = addrs();
        let (mut a, mut b, start) = back_to_back(Codec::pcmu(), 0, 14);
        // Frame i is a constant level of 100·(i+1), so what plays says which frame it was.
        let packets: Vec<Vec<u8>> = (0..20u64)
            .map(|i| {
                let mut out = Vec::new();
                let frame = vec![100 * (i as i16 + 1); a.frame_samples()];
                a.send_frame(&frame, start + Duration::from_millis(20 * i), &mut out).unwrap();
                out
            })
            .collect();
        // The first five arrive as 0 2 1 3 4: the source is validated only by the fifth.
        let order = [0, 2, 1, 3, 4].into_iter().chain(5..20);
        let mut levels = Vec::new();
        for (tick, i) in order.enumerate() {
            let now = start + Duration::from_millis(20 * tick as u64);
            b.handle_datagram(&packets[i], a_addr, now);
            let played = b.play_frame(now);
            if played.iter().any(|s| *s != 0) {
                levels.push(played[80]);
            }
        }
        let first: Vec<i16> = levels.iter().take(5).map(|l| (l + 50) / 100 * 100).collect();
        assert_eq!(first, [100, 200, 300, 400, 500], "{levels:?}");
        assert_eq!(b.stats().packets_received, 16, "RFC 3550 counts start at the fifth");
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn a_lost_opus_packet_is_rebuilt_from_the_next_ones_fec() {
        let (a_addr, _) = addrs();
        let (mut a, mut b, start) = back_to_back(Codec::opus(), 96, 8);
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

    #[test]
    fn dtmf_goes_as_telephone_events_on_the_audio_ssrc_and_arrives_once_per_digit() {
        use proto::rtp::packet::RtpPacket;
        let mut rng = StdRng::seed_from_u64(9);
        let (a_addr, b_addr) = addrs();
        let events = Some(TelephoneEvent { payload_type: 101, clock_rate: 8000 });
        let start = Instant::now();
        let mut na = negotiated(Codec::pcmu(), 0, b_addr);
        na.telephone_event = events;
        let mut nb = negotiated(Codec::pcmu(), 0, a_addr);
        nb.telephone_event = events;
        let mut a = MediaSession::new(&na, OpusSettings::default(), start, &mut rng).unwrap();
        let mut b = MediaSession::new(&nb, OpusSettings::default(), start, &mut rng).unwrap();
        assert!(a.can_send_dtmf());
        let frame = vec![0i16; a.frame_samples()];
        let mut datagram = Vec::new();
        let mut headers = Vec::new();
        let mut received = String::new();
        for i in 0..60u64 {
            let now = start + Duration::from_millis(20 * i);
            if i == 10 {
                a.send_dtmf("1#");
            }
            if a.send_frame(&frame, now, &mut datagram).unwrap().is_some() {
                headers.push(RtpPacket::parse(&datagram).unwrap().header);
                b.handle_datagram(&datagram, a_addr, now);
            }
            b.play_frame(now);
            received.extend(std::iter::from_fn(|| b.poll_dtmf()));
        }
        assert_eq!(received, "1#", "each digit reported once");
        let audio = headers.iter().find(|h| h.payload_type == 0).unwrap();
        let dtmf: Vec<_> = headers.iter().filter(|h| h.payload_type == 101).collect();
        assert!(dtmf.iter().all(|h| h.ssrc == audio.ssrc), "events share the audio's SSRC");
        let sequences: Vec<u16> = headers.iter().map(|h| h.sequence).collect();
        assert!(sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "one sequence space");
        // Each digit starts with a marked packet, and all of a digit's packets carry its start
        // timestamp, which lies on the audio timeline.
        let starts: Vec<u32> = dtmf.iter().filter(|h| h.marker).map(|h| h.timestamp).collect();
        assert_eq!(starts.len(), 2, "{dtmf:?}");
        for h in &dtmf {
            assert!(starts.contains(&h.timestamp), "every event packet carries its digit's start: {h:?}");
        }
        let before = headers.iter().take_while(|h| h.payload_type == 0).last().unwrap();
        assert_eq!(starts[0], before.timestamp.wrapping_add(160), "the first digit replaces the next frame");
        assert_eq!(dtmf.len(), 2 * 4, "per 100 ms digit: the start and three end packets 50 ms apart");
    }

    #[test]
    fn a_held_stream_sends_silence_and_a_stream_that_does_not_receive_plays_silence() {
        let (a_addr, b_addr) = addrs();
        let (mut a, mut b, start) = back_to_back(Codec::pcmu(), 0, 10);
        let mut tone = crate::audio::ToneGenerator::new(1000.0, 8000, 8000.0);
        let mut frame = vec![0i16; a.frame_samples()];
        let mut datagram = Vec::new();
        let mut toned = [0; 3];
        for i in 0..150u64 {
            let now = start + Duration::from_millis(20 * i);
            let phase = (i / 50) as usize;
            if i == 50 {
                let held = Negotiated { direction: Direction::SendOnly, ..negotiated(Codec::pcmu(), 0, b_addr) };
                assert!(a.same_stream(&held), "hold changes only the direction");
                let moved = negotiated(Codec::pcmu(), 0, "127.0.0.1:6000".parse().unwrap());
                assert!(!a.same_stream(&moved) && !a.same_stream(&negotiated(Codec::pcma(), 8, b_addr)));
                // A holds B: A sends (silence), B only receives.
                a.update(&Negotiated { direction: Direction::SendOnly, ..negotiated(Codec::pcmu(), 0, b_addr) }, true);
                b.update(&Negotiated { direction: Direction::RecvOnly, ..negotiated(Codec::pcmu(), 0, a_addr) }, false);
            }
            if i == 100 {
                a.update(&negotiated(Codec::pcmu(), 0, b_addr), false);
                b.update(&negotiated(Codec::pcmu(), 0, a_addr), false);
            }
            tone.fill(&mut frame);
            assert!(a.send_frame(&frame, now, &mut datagram).unwrap().is_some(), "sendonly still sends");
            b.handle_datagram(&datagram, a_addr, now);
            if is_dominated_by(b.play_frame(now), 8000, 1000.0) {
                toned[phase] += 1;
            }
            let sent_back = b.send_frame(&frame, now, &mut datagram).unwrap();
            assert_eq!(sent_back.is_some(), phase != 1, "recvonly sends nothing");
            if sent_back.is_some() {
                a.handle_datagram(&datagram, b_addr, now);
            }
            if phase == 1 {
                assert!(a.play_frame(now).iter().all(|s| *s == 0), "sendonly plays silence");
            }
        }
        // What the jitter buffer held when the hold began still plays: one frame at most.
        assert!(toned[0] >= 45 && toned[1] <= 1 && toned[2] >= 45, "{toned:?}");
    }

    #[test]
    fn a_stopped_session_says_bye_once_then_sends_nothing_and_plays_silence() {
        let (_, b_addr) = addrs();
        let (mut a, mut b, start) = back_to_back(Codec::pcmu(), 0, 11);
        let mut tone = crate::audio::ToneGenerator::new(1000.0, 8000, 8000.0);
        let mut frame = vec![0i16; a.frame_samples()];
        let (mut datagram, mut report) = (Vec::new(), Vec::new());
        for i in 0..20u64 {
            let now = start + Duration::from_millis(20 * i);
            tone.fill(&mut frame);
            b.send_frame(&frame, now, &mut datagram).unwrap();
            a.handle_datagram(&datagram, b_addr, now);
            a.play_frame(now);
        }
        let at = start + Duration::from_millis(400);
        assert_eq!(a.stop(at, &mut report), Some(SocketAddr::new(b_addr.ip(), b_addr.port() + 1)), "RTCP BYE");
        assert!(!report.is_empty());
        assert_eq!(a.stop(at, &mut report), None, "one BYE");
        a.update(&negotiated(Codec::pcmu(), 0, b_addr), false);
        for i in 20..40u64 {
            let now = start + Duration::from_millis(20 * i);
            tone.fill(&mut frame);
            assert_eq!(a.send_frame(&frame, now, &mut datagram).unwrap(), None, "nothing sent after the BYE");
            b.send_frame(&frame, now, &mut datagram).unwrap();
            a.handle_datagram(&datagram, b_addr, now);
            assert!(a.play_frame(now).iter().all(|s| *s == 0), "silence after the BYE");
        }
        assert_eq!(a.poll_timeout(), None, "no more RTCP");
    }

    /// SRTP keys for A (`a_sends` its own, takes B's) and the mirror image for B.
    fn srtp_keys(a_key: u8, b_key: u8) -> (proto::sdp::SrtpKeys, proto::sdp::SrtpKeys) {
        use proto::rtp::srtp::{MasterKey, SrtpProfile};
        let (ka, kb) = (MasterKey::new([a_key; 16], [a_key; 14]), MasterKey::new([b_key; 16], [b_key; 14]));
        let keys = |send: &MasterKey, receive: &MasterKey| proto::sdp::SrtpKeys {
            profile: SrtpProfile::AesCm128HmacSha1_80,
            send: send.clone(),
            send_mki: None,
            receive: receive.clone(),
            receive_mki: None,
        };
        (keys(&ka, &kb), keys(&kb, &ka))
    }

    /// What B heard of A's 1 kHz PCMU tone sent over real loopback sockets under SRTP: frames
    /// carrying the tone, packets that differed on the wire from the plain RTP, and B's stats.
    fn srtp_tone_over_udp(b_takes: u8) -> (usize, usize, MediaStats) {
        use std::net::UdpSocket;
        let sock_a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock_b = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock_b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (a_addr, b_addr) = (sock_a.local_addr().unwrap(), sock_b.local_addr().unwrap());
        let (a_keys, mut b_keys) = srtp_keys(1, 2);
        b_keys.receive = proto::rtp::srtp::MasterKey::new([b_takes; 16], [b_takes; 14]);
        let mut rng = StdRng::seed_from_u64(5);
        let start = Instant::now();
        let with = |remote, keys| Negotiated { srtp: Some(keys), ..negotiated(Codec::pcmu(), 0, remote) };
        let mut a = MediaSession::new(&with(b_addr, a_keys), OpusSettings::default(), start, &mut rng).unwrap();
        let mut b = MediaSession::new(&with(a_addr, b_keys), OpusSettings::default(), start, &mut rng).unwrap();

        let mut tone = crate::audio::ToneGenerator::new(1000.0, 8000, 8000.0);
        let (mut frame, mut plain, mut buf) = (vec![0i16; a.frame_samples()], Vec::new(), vec![0u8; 2048]);
        let (mut toned, mut hidden) = (0, 0);
        for i in 0..50u64 {
            let now = start + Duration::from_millis(20 * i);
            tone.fill(&mut frame);
            let dest = a.send_frame(&frame, now, &mut plain).unwrap().unwrap();
            let wire = a.seal(&plain).unwrap().to_vec();
            // Same header, a different payload, and the 10-byte tag after it.
            assert_eq!((wire.len(), &wire[..12]), (plain.len() + 10, &plain[..12]));
            hidden += usize::from(wire[12..plain.len()] != plain[12..]);
            sock_a.send_to(&wire, dest).unwrap();
            let (n, from) = sock_b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &wire[..], "the wire carries the protected packet");
            if let Some(opened) = b.handle_datagram(&buf[..n], from, now) {
                assert_eq!(opened, &plain[..], "B opens exactly what A wrote");
            }
            if is_dominated_by(b.play_frame(now), 8000, 1000.0) {
                toned += 1;
            }
        }
        (toned, hidden, b.stats())
    }

    #[test]
    fn srtp_carries_a_tone_over_udp_encrypted_on_the_wire() {
        let (toned, hidden, stats) = srtp_tone_over_udp(1);
        assert!(toned >= 40, "only {toned} of 50 frames carried the tone");
        assert_eq!(hidden, 50, "every payload differs on the wire from the plain RTP");
        assert_eq!(stats.srtp_auth_failures, Some(0));
        // All but the first, held on probation and played but not counted (RFC 3550 A.1).
        assert_eq!(stats.packets_received, 49);
    }

    #[test]
    fn srtp_under_the_wrong_key_fails_every_packet_and_plays_silence() {
        let (toned, _, stats) = srtp_tone_over_udp(9);
        assert_eq!(toned, 0);
        assert_eq!(stats.srtp_auth_failures, Some(50));
        assert_eq!(stats.packets_received, 0);
        assert!(stats.output_level_dbfs <= SILENCE_DBFS, "{}", stats.output_level_dbfs);
    }

    #[test]
    fn srtcp_is_sealed_and_opened_and_a_replay_dropped_uncounted() {
        let (a_addr, b_addr) = addrs();
        let (a_keys, b_keys) = srtp_keys(3, 4);
        let mut rng = StdRng::seed_from_u64(6);
        let start = Instant::now();
        let with = |remote, keys| Negotiated { srtp: Some(keys), ..negotiated(Codec::pcmu(), 0, remote) };
        let mut a = MediaSession::new(&with(b_addr, a_keys), OpusSettings::default(), start, &mut rng).unwrap();
        let mut b = MediaSession::new(&with(a_addr, b_keys), OpusSettings::default(), start, &mut rng).unwrap();
        let mut plain = Vec::new();
        a.send_frame(&vec![0i16; a.frame_samples()], start, &mut plain).unwrap();
        let wire = a.seal(&plain).unwrap().to_vec();
        assert!(b.handle_datagram(&wire, a_addr, start).is_some());
        // A's RTCP BYE, sealed as SRTCP: E bit and index after the packet, then the tag.
        a.stop(start, &mut plain).unwrap();
        assert!(proto::rtp::packet::is_rtcp(&plain));
        let wire = a.seal(&plain).unwrap().to_vec();
        assert_eq!(wire.len(), plain.len() + 4 + 10);
        assert_eq!(b.handle_datagram(&wire, a_addr, start), Some(&plain[..]));
        assert_eq!(b.handle_datagram(&wire, a_addr, start), None, "a replay is dropped");
        assert_eq!(b.stats().srtp_auth_failures, Some(0), "replays are not counted as forgeries");
    }

    #[test]
    fn a_rekey_by_one_side_renews_that_direction_and_keeps_the_other() {
        let (a_addr, b_addr) = addrs();
        let (a_keys, b_keys) = srtp_keys(3, 4);
        let mut rng = StdRng::seed_from_u64(7);
        let start = Instant::now();
        let with = |remote, keys| Negotiated { srtp: Some(keys), ..negotiated(Codec::pcmu(), 0, remote) };
        let mut a = MediaSession::new(&with(b_addr, a_keys.clone()), OpusSettings::default(), start, &mut rng).unwrap();
        let mut b = MediaSession::new(&with(a_addr, b_keys.clone()), OpusSettings::default(), start, &mut rng).unwrap();
        let frame = vec![0i16; a.frame_samples()];
        let mut plain = Vec::new();
        let mut sealed = |s: &mut MediaSession, at: u64| {
            s.send_frame(&frame, start + Duration::from_millis(20 * at), &mut plain).unwrap();
            s.seal(&plain).unwrap().to_vec()
        };
        let a_old = sealed(&mut a, 0);
        let b_old = sealed(&mut b, 0);
        assert!(b.handle_datagram(&a_old, a_addr, start).is_some());

        // B re-keys its own stream (a re-INVITE): both sides take the new agreement.
        let new_b = proto::rtp::srtp::MasterKey::new([5; 16], [5; 14]);
        assert!(b.same_stream(&with(a_addr, proto::sdp::SrtpKeys { send: new_b.clone(), ..b_keys.clone() })));
        b.update(&with(a_addr, proto::sdp::SrtpKeys { send: new_b.clone(), ..b_keys }), false);
        a.update(&with(b_addr, proto::sdp::SrtpKeys { receive: new_b, ..a_keys }), false);

        let b_new = sealed(&mut b, 1);
        assert!(a.handle_datagram(&b_new, b_addr, start).is_some(), "B's stream under its new key");
        assert_eq!(a.handle_datagram(&b_old, b_addr, start), None, "the old key no longer opens");
        assert_eq!(a.stats().srtp_auth_failures, Some(1));
        // A's direction kept its context: its replay window still knows the first packet.
        assert_eq!(b.handle_datagram(&a_old, a_addr, start), None);
        assert_eq!(b.stats().srtp_auth_failures, Some(0), "refused as a replay, not as a forgery");
        let a_next = sealed(&mut a, 1);
        assert!(b.handle_datagram(&a_next, a_addr, start).is_some());
    }
}
