//! Offer/answer for one audio stream (RFC 3264), sans-IO and deterministic.
//!
//! - [`create_offer`]: a first offer (RFC 3264 §5): our codecs in our order, dynamic payload
//!   types from 96, one telephone-event per clock rate in use (RFC 4733 §2.1).
//! - [`create_reoffer`]: a re-offer in the same session (RFC 3264 §8): every `m=` line kept,
//!   version up by one, the direction changed for hold and resume (§8.4).
//! - [`create_answer`]: answers every offered `m=` line in order (§6); the first plain-RTP audio
//!   stream we can use is accepted with the first codec in the offer's order that we support
//!   (§6.1), everything else is rejected with port 0.
//! - [`apply_answer`]: what an answer to our offer means for the UAC side (§7).

use std::net::{IpAddr, SocketAddr};

use super::SdpError;
use super::codec::Codec;
use super::model::{Direction, MediaKind, MediaSection, Origin, SessionDescription};

/// The packet time to use when neither side names one (RFC 3551 §4.5: 20 ms for most codecs).
const DEFAULT_PTIME: u32 = 20;

/// What this end can do for audio, and what it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address we receive RTP on, written into `c=` and `o=`.
    pub address: IpAddr,
    /// The port we receive RTP on; RTCP is on the next one unless muxed.
    pub rtp_port: u16,
    /// Voice codecs we can encode and decode, most preferred first. Their `fmtp` is what we ask of
    /// the peer's stream (for Opus: `useinbandfec`, `maxplaybackrate`, …). At least one is needed.
    pub codecs: Vec<Codec>,
    /// Packet time we send and ask for, in milliseconds; 0 leaves `a=ptime` out.
    pub ptime: u32,
    /// Whether we send and receive RFC 4733 telephone-events (DTMF).
    pub telephone_event: bool,
    /// What we want the stream to do: `SendOnly` to put the peer on hold, `SendRecv` to resume.
    pub direction: Direction,
    /// Whether our RTP layer can carry RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
}

/// An RFC 4733 telephone-event format agreed for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Its payload type.
    pub payload_type: u8,
    /// Its RTP clock rate, which times the events' durations.
    pub clock_rate: u32,
}

/// The outcome of an offer/answer exchange: where to send what, and what the peer asked of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the `m=` line carrying the call's audio.
    pub media_index: usize,
    /// Where to send RTP. Its address is unspecified (`0.0.0.0`) when the peer holds the call the
    /// RFC 2543 way; [`Negotiated::direction`] then does not send.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: the `a=rtcp` port (RFC 3605), the RTP address when muxed, else the
    /// RTP port + 1.
    pub remote_rtcp: SocketAddr,
    /// The payload type to send the codec with, as the peer's description numbers it. RFC 3264
    /// §6.1 has an answer keep the offer's numbers, so both directions normally share it.
    pub payload_type: u8,
    /// The codec, with the `fmtp` parameters the peer gave for it.
    pub codec: Codec,
    /// Packet time to send with, in milliseconds: the peer's `a=ptime`, else ours, else 20.
    pub ptime: u32,
    /// The telephone-event format, if both sides have one.
    pub telephone_event: Option<TelephoneEvent>,
    /// The stream's direction from our side: whether we send and whether we receive.
    pub direction: Direction,
    /// Whether RTCP travels on the RTP port (both sides said `a=rtcp-mux`).
    pub rtcp_mux: bool,
    /// Whether the peer decodes Opus in-band FEC, so we should send it (`useinbandfec=1`, RFC 7587 §6.1).
    pub remote_fec: bool,
    /// The highest sample rate the peer will play Opus at (`maxplaybackrate`, RFC 7587 §6.1).
    pub remote_maxplaybackrate: Option<u32>,
}

impl LocalMedia {
    /// Opus, then PCMU, then PCMA, 20 ms packets, telephone-events, `sendrecv`, no RTCP mux.
    pub fn new(address: IpAddr, rtp_port: u16) -> LocalMedia {
        LocalMedia {
            address,
            rtp_port,
            codecs: vec![Codec::opus(), Codec::pcmu(), Codec::pcma()],
            ptime: DEFAULT_PTIME,
            telephone_event: true,
            direction: Direction::SendRecv,
            rtcp_mux: false,
        }
    }
}

/// A first offer (RFC 3264 §5) with one `RTP/AVP` audio stream.
///
/// Codecs with a static payload type (RFC 3551 §6) keep it; the others get 96, 97, … in
/// `local.codecs` order. With `local.telephone_event`, one telephone-event follows per clock rate
/// among the codecs (48000 beside Opus, 8000 beside G.711), since events are timed at the voice
/// codec's rate (RFC 4733 §2.1) and some peers time them so whatever they offered.
/// `version` is the `o=` session version; for a later offer in the same session use
/// [`create_reoffer`].
pub fn create_offer(local: &LocalMedia, session_id: u64, version: u64) -> SessionDescription {
    let mut audio = MediaSection::new(MediaKind::Audio, local.rtp_port, "RTP/AVP", Vec::new());
    let mut dynamic = 96..=127u8;
    let voice = || local.codecs.iter().filter(|c| !c.is_telephone_event());
    for codec in voice() {
        if let Some(payload_type) = codec.static_payload_type().or_else(|| dynamic.next()) {
            audio.add_codec(payload_type, codec);
        }
    }
    if local.telephone_event {
        let mut rates: Vec<u32> = Vec::new();
        for codec in voice() {
            if !rates.contains(&codec.clock_rate) {
                rates.push(codec.clock_rate);
            }
        }
        for rate in rates {
            if let Some(payload_type) = dynamic.next() {
                audio.add_codec(payload_type, &Codec::telephone_event(rate));
            }
        }
    }
    audio.ptime = (local.ptime > 0).then_some(local.ptime);
    audio.direction = Some(local.direction);
    audio.rtcp_mux = local.rtcp_mux;
    our_session(local, session_id, version, vec![audio])
}

/// A re-offer in the same session (RFC 3264 §8): `previous` is the description we last sent
/// (offer or answer). Every `m=` line stays, in order, with its formats; the session version goes
/// up by one; our active audio stream takes `local`'s address, port and direction. With
/// `local.direction` set to [`Direction::SendOnly`] this puts the peer on hold (§8.4), with
/// [`Direction::SendRecv`] it resumes.
pub fn create_reoffer(previous: &SessionDescription, local: &LocalMedia) -> SessionDescription {
    let mut sdp = previous.clone();
    sdp.origin.session_version = sdp.origin.session_version.wrapping_add(1);
    sdp.origin.address = local.address.to_string();
    sdp.connection = Some(local.address);
    sdp.direction = None;
    for media in &mut sdp.media {
        media.connection = None;
        if is_active_audio(media) {
            media.port = local.rtp_port;
            media.direction = Some(local.direction);
        }
    }
    sdp
}

/// Answers an offer (RFC 3264 §6).
///
/// Every offered `m=` line is answered in order. The first active `RTP/AVP` or `RTP/AVPF` audio
/// stream with a codec we support is accepted: the first such codec in the offer's order, under
/// the offer's payload type number, plus the offered telephone-event (the one at the codec's
/// clock rate if there are several), the offer's `a=ptime` and the direction §6.1 gives (our wish
/// limited by the offer's reverse; `c=0.0.0.0` counts as the offerer not receiving). Every other
/// stream (video, T.38, MSRP, SRTP, a second audio) is rejected with port 0, its protocol and
/// formats kept. `session_id` and `version` are our `o=` values for this session.
///
/// Errors: [`SdpError::NoCommonCodec`] or [`SdpError::NoUsableAudio`] (answer 488), or
/// [`SdpError::MissingConnection`].
pub fn create_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    session_id: u64,
    version: u64,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    let mut negotiated = None;
    let mut audio_without_codec = false;
    let mut media = Vec::with_capacity(offer.media.len());
    for (index, offered) in offer.media.iter().enumerate() {
        if negotiated.is_none() && is_active_audio(offered) {
            if let Some((section, outcome)) = accept(offer, index, local)? {
                media.push(section);
                negotiated = Some(outcome);
                continue;
            }
            audio_without_codec = true;
        }
        media.push(MediaSection::new(offered.kind.clone(), 0, offered.protocol.clone(), offered.formats.clone()));
    }
    let negotiated =
        negotiated.ok_or(if audio_without_codec { SdpError::NoCommonCodec } else { SdpError::NoUsableAudio })?;
    Ok((our_session(local, session_id, version, media), negotiated))
}

/// The answer's section for the offer's audio stream `index`, or `None` if no codec fits.
fn accept(
    offer: &SessionDescription,
    index: usize,
    local: &LocalMedia,
) -> Result<Option<(MediaSection, Negotiated)>, SdpError> {
    let Some(offered) = offer.media.get(index) else { return Ok(None) };
    let choice = offered.codecs().filter(|(_, codec)| !codec.is_auxiliary()).find_map(|(pt, theirs)| {
        local.codecs.iter().find(|ours| ours.same_format(&theirs)).map(|ours| (pt, theirs, ours))
    });
    let Some((payload_type, theirs, ours)) = choice else { return Ok(None) };

    let direction = local.direction.intersect(remote_direction(offer, offered).reversed());
    let mut ptime = offered.ptime.or((local.ptime > 0).then_some(local.ptime));
    if let (Some(p), Some(max)) = (ptime, offered.maxptime) {
        ptime = Some(p.min(max));
    }
    let telephone_event =
        if local.telephone_event { pick_telephone_event(offered, theirs.clock_rate, |_| true) } else { None };

    let mut section = MediaSection::new(MediaKind::Audio, local.rtp_port, offered.protocol.clone(), Vec::new());
    // The offer's spelling of the codec, with what we ask of the peer's stream.
    section.add_codec(payload_type, &Codec { fmtp: ours.fmtp.clone(), ..theirs.clone() });
    if let Some(event) = telephone_event {
        let mut codec = offered.codec(event.payload_type).unwrap_or_else(|| Codec::telephone_event(event.clock_rate));
        if codec.fmtp.is_empty() {
            codec.fmtp = Codec::telephone_event(event.clock_rate).fmtp;
        }
        section.add_codec(event.payload_type, &codec);
    }
    section.ptime = ptime;
    section.direction = Some(direction);
    section.rtcp_mux = offered.rtcp_mux && local.rtcp_mux;

    let outcome = Agreement {
        payload_type,
        codec: theirs,
        ptime: ptime.unwrap_or(DEFAULT_PTIME),
        telephone_event,
        direction,
        rtcp_mux: section.rtcp_mux,
    }
    .toward(offer, index)?;
    Ok(Some((section, outcome)))
}

/// What an answer to our offer agrees (RFC 3264 §7). `offer` is the description we sent.
///
/// The codec is the first in the answer's format list that we offered; we send it with the
/// answer's payload type number. Errors: [`SdpError::AnswerMismatch`] when the answer does not
/// answer each offered `m=` line, [`SdpError::AudioRejected`] when it set our audio's port to 0,
/// [`SdpError::NoCommonCodec`] when it kept none of our codecs.
pub fn apply_answer(offer: &SessionDescription, answer: &SessionDescription) -> Result<Negotiated, SdpError> {
    if offer.media.len() != answer.media.len() {
        return Err(SdpError::AnswerMismatch { offered: offer.media.len(), answered: answer.media.len() });
    }
    let index = offer.media.iter().position(is_active_audio).ok_or(SdpError::NoUsableAudio)?;
    let (ours, theirs) = match (offer.media.get(index), answer.media.get(index)) {
        (Some(ours), Some(theirs)) => (ours, theirs),
        _ => return Err(SdpError::NoUsableAudio),
    };
    if theirs.kind != ours.kind || !theirs.protocol.eq_ignore_ascii_case(&ours.protocol) {
        return Err(SdpError::Structure("the answer's m= lines do not match the offer's in kind and protocol"));
    }
    if theirs.port == 0 {
        return Err(SdpError::AudioRejected);
    }
    let offered = |codec: &Codec| ours.codecs().any(|(_, o)| o.same_format(codec));
    let (payload_type, codec) =
        theirs.codecs().find(|(_, codec)| !codec.is_auxiliary() && offered(codec)).ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = pick_telephone_event(theirs, codec.clock_rate, offered);
    Agreement {
        payload_type,
        ptime: theirs.ptime.or(ours.ptime).unwrap_or(DEFAULT_PTIME),
        telephone_event,
        direction: offer.direction_of(ours).intersect(remote_direction(answer, theirs).reversed()),
        rtcp_mux: ours.rtcp_mux && theirs.rtcp_mux,
        codec,
    }
    .toward(answer, index)
}

/// What both sides agreed on, before the peer's addresses are looked up.
struct Agreement {
    payload_type: u8,
    codec: Codec,
    ptime: u32,
    telephone_event: Option<TelephoneEvent>,
    direction: Direction,
    rtcp_mux: bool,
}

impl Agreement {
    /// The outcome, sending toward media section `index` of the peer's description.
    fn toward(self, remote: &SessionDescription, index: usize) -> Result<Negotiated, SdpError> {
        let missing = SdpError::MissingConnection { media: index };
        let section = remote.media.get(index).ok_or(missing.clone())?;
        let ip = remote.connection_of(section).ok_or(missing)?;
        let remote_rtp = SocketAddr::new(ip, section.port);
        let remote_rtcp = match section.rtcp {
            _ if self.rtcp_mux => remote_rtp,
            Some(rtcp) => SocketAddr::new(rtcp.address.unwrap_or(ip), rtcp.port),
            None => SocketAddr::new(ip, section.port.saturating_add(1)),
        };
        let opus = self.codec.is_opus();
        Ok(Negotiated {
            media_index: index,
            remote_rtp,
            remote_rtcp,
            payload_type: self.payload_type,
            remote_fec: opus && self.codec.fmtp.flag("useinbandfec"),
            remote_maxplaybackrate: self
                .codec
                .fmtp
                .get("maxplaybackrate")
                .filter(|_| opus)
                .and_then(|v| v.parse().ok()),
            codec: self.codec,
            ptime: self.ptime,
            telephone_event: self.telephone_event,
            direction: self.direction,
            rtcp_mux: self.rtcp_mux,
        })
    }
}

/// A stream we may take for the call: audio over plain RTP with a non-zero port.
fn is_active_audio(media: &MediaSection) -> bool {
    media.port != 0 && media.kind == MediaKind::Audio && media.is_plain_rtp()
}

/// The direction the peer's description gives a stream, where `c=0.0.0.0` (RFC 2543 hold,
/// RFC 3264 §8.4) means the peer does not receive.
fn remote_direction(sdp: &SessionDescription, media: &MediaSection) -> Direction {
    let direction = sdp.direction_of(media);
    let unspecified = sdp.connection_of(media).is_some_and(|ip| ip.is_unspecified());
    Direction::new(direction.sends(), direction.receives() && !unspecified)
}

/// The section's telephone-event that `acceptable` allows, preferring the one at `clock_rate`.
fn pick_telephone_event(
    media: &MediaSection,
    clock_rate: u32,
    acceptable: impl Fn(&Codec) -> bool,
) -> Option<TelephoneEvent> {
    let events: Vec<(u8, Codec)> =
        media.codecs().filter(|(_, codec)| codec.is_telephone_event() && acceptable(codec)).collect();
    let (payload_type, codec) =
        events.iter().find(|(_, codec)| codec.clock_rate == clock_rate).or_else(|| events.first())?;
    Some(TelephoneEvent { payload_type: *payload_type, clock_rate: codec.clock_rate })
}

fn our_session(local: &LocalMedia, session_id: u64, version: u64, media: Vec<MediaSection>) -> SessionDescription {
    SessionDescription {
        origin: Origin::new(session_id, version, local.address),
        session_name: "-".to_owned(),
        connection: Some(local.address),
        direction: None,
        attributes: Vec::new(),
        media,
    }
}
