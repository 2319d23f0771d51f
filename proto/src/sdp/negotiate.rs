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
//!
//! SDES-SRTP (RFC 4568 §7): with [`LocalMedia::crypto`] set, offers are `RTP/SAVP` with one
//! `a=crypto` line per suite; an `RTP/SAVP` offer is answered with the first of its lines whose
//! suite we have, under its tag, with our own key; the answer's line must name a tag and suite
//! we offered. [`Negotiated::srtp`] then holds both keys. Whether plain `RTP/AVP` may be
//! answered as well is [`LocalMedia::require_srtp`].

use std::net::{IpAddr, SocketAddr};

use super::SdpError;
use super::codec::Codec;
use super::crypto::CryptoAttribute;
use super::model::{Direction, MediaKind, MediaSection, Origin, SessionDescription};
use crate::rtp::srtp::{MasterKey, Mki, SrtpProfile};

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
    /// Our SDES-SRTP keys, one line per suite, most preferred first (RFC 4568). Empty: plain
    /// RTP only, and `RTP/SAVP` offers are refused. Otherwise our offers are `RTP/SAVP` with
    /// these lines, and our answers use the key of the suite chosen. Keys go in the SDP in the
    /// clear: set them only when the signalling is encrypted (RFC 4568 §8.3).
    pub crypto: Vec<CryptoAttribute>,
    /// With [`LocalMedia::crypto`] set, refuse plain `RTP/AVP` offers ([`SdpError::SrtpRequired`]).
    /// Without, answer them in the clear.
    pub require_srtp: bool,
}

/// The SRTP keys both sides agreed for the stream (RFC 4568 §6.1): each side sends under its
/// own master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The crypto suite.
    pub profile: SrtpProfile,
    /// Our master key, for what we send.
    pub send: MasterKey,
    /// The MKI we put in what we send, if our line gave one.
    pub send_mki: Option<Mki>,
    /// The peer's master key, for what we receive.
    pub receive: MasterKey,
    /// The MKI the peer's packets carry, if its line gave one.
    pub receive_mki: Option<Mki>,
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
    /// The SRTP keys when the stream is `RTP/SAVP`; `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
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
            crypto: Vec::new(),
            require_srtp: false,
        }
    }
}

/// A first offer (RFC 3264 §5) with one audio stream: `RTP/AVP`, or `RTP/SAVP` with an
/// `a=crypto` line for each of `local.crypto`.
///
/// Codecs with a static payload type (RFC 3551 §6) keep it; the others get 96, 97, … in
/// `local.codecs` order. With `local.telephone_event`, one telephone-event follows per clock rate
/// among the codecs (48000 beside Opus, 8000 beside G.711), since events are timed at the voice
/// codec's rate (RFC 4733 §2.1) and some peers time them so whatever they offered.
/// `version` is the `o=` session version; for a later offer in the same session use
/// [`create_reoffer`].
pub fn create_offer(local: &LocalMedia, session_id: u64, version: u64) -> SessionDescription {
    let protocol = if local.crypto.is_empty() { "RTP/AVP" } else { "RTP/SAVP" };
    let mut audio = MediaSection::new(MediaKind::Audio, local.rtp_port, protocol, Vec::new());
    audio.crypto = local.crypto.iter().map(ToString::to_string).collect();
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
/// Every offered `m=` line is answered in order. One active audio stream with a codec we
/// support is accepted: with `local.crypto`, the first `RTP/SAVP` one with an `a=crypto` line we
/// can use, else (unless `local.require_srtp`) the first plain `RTP/AVP` or `RTP/AVPF` one;
/// without, the first plain one. It gets the first such codec in the offer's order, under the
/// offer's payload type number, plus the offered telephone-event (the one at the codec's clock
/// rate if there are several), the offer's `a=ptime` and the direction §6.1 gives (our wish
/// limited by the offer's reverse; `c=0.0.0.0` counts as the offerer not receiving). An SRTP
/// stream's answer carries one `a=crypto`: the offer's first usable line's tag and suite with
/// our key for that suite (RFC 4568 §7.1.2). Every other stream (video, T.38, MSRP, a second
/// audio) is rejected with port 0, its protocol and formats kept. `session_id` and `version`
/// are our `o=` values for this session.
///
/// Errors, each an answer of 488: [`SdpError::NoCommonCodec`], [`SdpError::NoUsableAudio`],
/// [`SdpError::SrtpRequired`], [`SdpError::NoCryptoSuite`]; or [`SdpError::MissingConnection`].
pub fn create_answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    session_id: u64,
    version: u64,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    let secure = !local.crypto.is_empty();
    let candidates = offer.media.iter().enumerate().filter(|(_, m)| is_active_audio(m));
    let (srtp, plain): (Vec<_>, Vec<_>) = candidates.partition(|(_, m)| m.is_sdes_srtp());
    let mut error = None;
    let mut chosen = None;
    let order = if secure { srtp.into_iter().chain(plain).collect() } else { plain };
    for (index, offered) in order {
        let keys = if offered.is_sdes_srtp() {
            match choose_crypto(offered, local) {
                Some(keys) => Some(keys),
                None => {
                    error.get_or_insert(SdpError::NoCryptoSuite);
                    continue;
                }
            }
        } else if local.require_srtp && secure {
            error.get_or_insert(SdpError::SrtpRequired);
            continue;
        } else {
            None
        };
        match accept(offer, index, local, keys)? {
            Some(accepted) => {
                chosen = Some((index, accepted));
                break;
            }
            None => {
                error.get_or_insert(SdpError::NoCommonCodec);
            }
        }
    }
    let Some((chosen_index, (section, negotiated))) = chosen else {
        return Err(error.unwrap_or(SdpError::NoUsableAudio));
    };
    let mut section = Some(section);
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(index, offered)| match section.take_if(|_| index == chosen_index) {
            Some(section) => section,
            None => MediaSection::new(offered.kind.clone(), 0, offered.protocol.clone(), offered.formats.clone()),
        })
        .collect();
    Ok((our_session(local, session_id, version, media), negotiated))
}

/// The offer's first `a=crypto` line we can use, answered with our key for its suite: our line
/// and the keys both ways.
fn choose_crypto(offered: &MediaSection, local: &LocalMedia) -> Option<(CryptoAttribute, SrtpKeys)> {
    offered.crypto_attributes().flatten().find_map(|theirs| {
        let ours = local.crypto.iter().find(|ours| ours.suite == theirs.suite)?;
        let line = CryptoAttribute::new(theirs.tag, ours.suite, ours.key.clone());
        let keys = SrtpKeys {
            profile: theirs.suite,
            send: ours.key.clone(),
            send_mki: None,
            receive: theirs.key,
            receive_mki: theirs.mki,
        };
        Some((line, keys))
    })
}

/// The answer's section for the offer's audio stream `index`, or `None` if no codec fits.
fn accept(
    offer: &SessionDescription,
    index: usize,
    local: &LocalMedia,
    crypto: Option<(CryptoAttribute, SrtpKeys)>,
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
    let (line, srtp) = crypto.unzip();
    section.crypto = line.iter().map(ToString::to_string).collect();

    let outcome = Agreement {
        payload_type,
        codec: theirs,
        ptime: ptime.unwrap_or(DEFAULT_PTIME),
        telephone_event,
        direction,
        rtcp_mux: section.rtcp_mux,
        srtp,
    }
    .toward(offer, index)?;
    Ok(Some((section, outcome)))
}

/// What an answer to our offer agrees (RFC 3264 §7). `offer` is the description we sent.
///
/// The codec is the first in the answer's format list that we offered; we send it with the
/// answer's payload type number. Errors: [`SdpError::AnswerMismatch`] when the answer does not
/// answer each offered `m=` line, [`SdpError::AudioRejected`] when it set our audio's port to 0,
/// [`SdpError::NoCommonCodec`] when it kept none of our codecs, [`SdpError::CryptoAnswer`] when
/// our `RTP/SAVP` offer is answered without an `a=crypto` line naming a tag and suite we offered.
pub fn apply_answer(offer: &SessionDescription, answer: &SessionDescription) -> Result<Negotiated, SdpError> {
    if offer.media.len() != answer.media.len() {
        return Err(SdpError::AnswerMismatch { offered: offer.media.len(), answered: answer.media.len() });
    }
    // The audio stream the answer accepted, of those offered (best-effort SRTP offers two).
    let mut offered = offer.media.iter().enumerate().filter(|(_, m)| is_active_audio(m)).map(|(i, _)| i);
    let first = offered.clone().next().ok_or(SdpError::NoUsableAudio)?;
    let index = offered.find(|&i| answer.media.get(i).is_some_and(|m| m.port != 0)).unwrap_or(first);
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
    let srtp = if ours.is_sdes_srtp() { Some(answered_crypto(ours, theirs)?) } else { None };
    Agreement {
        payload_type,
        ptime: theirs.ptime.or(ours.ptime).unwrap_or(DEFAULT_PTIME),
        telephone_event,
        direction: offer.direction_of(ours).intersect(remote_direction(answer, theirs).reversed()),
        rtcp_mux: ours.rtcp_mux && theirs.rtcp_mux,
        codec,
        srtp,
    }
    .toward(answer, index)
}

/// The keys of an `RTP/SAVP` exchange from the answer's `a=crypto` (RFC 4568 §7.1.3): the
/// first usable line whose tag we offered with the same suite.
fn answered_crypto(ours: &MediaSection, theirs: &MediaSection) -> Result<SrtpKeys, SdpError> {
    if theirs.crypto.is_empty() {
        return Err(SdpError::CryptoAnswer("the answer to our RTP/SAVP offer has no a=crypto line"));
    }
    let offered: Vec<CryptoAttribute> = ours.crypto_attributes().flatten().collect();
    theirs
        .crypto_attributes()
        .flatten()
        .find_map(|answer| {
            let mine = offered.iter().find(|o| o.tag == answer.tag && o.suite == answer.suite)?;
            Some(SrtpKeys {
                profile: answer.suite,
                send: mine.key.clone(),
                send_mki: mine.mki,
                receive: answer.key,
                receive_mki: answer.mki,
            })
        })
        .ok_or(SdpError::CryptoAnswer("no a=crypto line in the answer names a tag and suite we offered"))
}

/// What both sides agreed on, before the peer's addresses are looked up.
struct Agreement {
    payload_type: u8,
    codec: Codec,
    ptime: u32,
    telephone_event: Option<TelephoneEvent>,
    direction: Direction,
    rtcp_mux: bool,
    srtp: Option<SrtpKeys>,
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
            srtp: self.srtp,
        })
    }
}

/// A stream we may take for the call: audio over plain RTP or SDES-SRTP with a non-zero port.
fn is_active_audio(media: &MediaSection) -> bool {
    media.port != 0 && media.kind == MediaKind::Audio && (media.is_plain_rtp() || media.is_sdes_srtp())
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
