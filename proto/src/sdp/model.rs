//! The session description model and its writer (RFC 4566 §5).
//!
//! Only what an audio call negotiates is typed; every other attribute is kept verbatim so a
//! description reads back the way it was written. `b=`, `i=`, `u=`, `e=`, `p=`, `z=`, `k=` and
//! `r=` lines are informational for a telephone and are not kept; `t=` is always written `0 0`.

use std::fmt;
use std::net::IpAddr;

use super::codec::{Codec, FormatParams};
use super::crypto::{CryptoAttribute, CryptoError};

/// A session description: the session-level lines and the media sections in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` (RFC 4566 §5.2).
    pub origin: Origin,
    /// `s=`; written as `-` when empty (RFC 3264 §5).
    pub session_name: String,
    /// Session-level `c=`, used by media sections that have none (RFC 4566 §5.7).
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute, used by media sections that have none (RFC 4566 §6).
    pub direction: Option<Direction>,
    /// Other session-level attributes, verbatim.
    pub attributes: Vec<Attribute>,
    /// The `m=` sections, in the order written (RFC 3264 §6 answers them in this order).
    pub media: Vec<MediaSection>,
}

/// The `o=` line: who made the description and which version of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name, `-` when there is none.
    pub username: String,
    /// Session id: stays the same for the whole session (RFC 3264 §5).
    pub session_id: u64,
    /// Version: one higher in each new description of the session that changes it (RFC 3264 §8).
    pub session_version: u64,
    /// The unicast address or host name as written; `IP6` is written for an address with a `:`.
    pub address: String,
}

/// What a media section carries (the first field of `m=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`
    Audio,
    /// `video`
    Video,
    /// `image`, as T.38 fax uses (RFC 6466 §5).
    Image,
    /// `message`, as MSRP uses (RFC 4975 §8).
    Message,
    /// `application`
    Application,
    /// `text`, as real-time text uses (RFC 4103).
    Text,
    /// Any other media, as written.
    Other(String),
}

/// The direction attribute of a stream (RFC 4566 §6, RFC 3264 §5.1), from the point of view of
/// the side that wrote it. The default is `sendrecv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`
    #[default]
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// The media type.
    pub kind: MediaKind,
    /// Transport port; 0 means the stream is rejected or disabled (RFC 3264 §5.1, §6).
    pub port: u16,
    /// The transport protocol as written: `RTP/AVP`, `RTP/SAVP`, `udptl`, `TCP/MSRP`, …
    pub protocol: String,
    /// The format list: payload type numbers for RTP, `t38`, `*`, … for others.
    pub formats: Vec<String>,
    /// Media-level `c=`, which overrides the session-level one.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmap: Vec<RtpMap>,
    /// `a=fmtp` lines with a numeric format.
    pub fmtp: Vec<Fmtp>,
    /// Direction attribute; `None` falls back to the session's, then to `sendrecv`.
    pub direction: Option<Direction>,
    /// `a=ptime` in milliseconds: the packet time the writer wants to receive.
    pub ptime: Option<u32>,
    /// `a=maxptime` in milliseconds.
    pub maxptime: Option<u32>,
    /// `a=rtcp` (RFC 3605): where RTCP goes when not to the RTP port + 1.
    pub rtcp: Option<Rtcp>,
    /// `a=rtcp-mux` (RFC 5761 §5.1.1).
    pub rtcp_mux: bool,
    /// `a=crypto` values verbatim (RFC 4568 §9.1), such as
    /// `1 AES_CM_128_HMAC_SHA1_80 inline:…`.
    pub crypto: Vec<String>,
    /// Every other attribute, verbatim.
    pub attributes: Vec<Attribute>,
}

/// `a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name as written.
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels; 1 when not written.
    pub channels: u8,
}

/// `a=fmtp:<payload type> <parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// RTP payload type.
    pub payload_type: u8,
    /// The parameters in order.
    pub params: FormatParams,
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the stream's `c=`.
    pub address: Option<IpAddr>,
}

/// An attribute kept as written: `a=<name>` or `a=<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute name.
    pub name: String,
    /// Everything after the first `:`, if there is one.
    pub value: Option<String>,
}

impl SessionDescription {
    /// The address a media section's stream uses: its own `c=`, else the session's.
    pub fn connection_of(&self, media: &MediaSection) -> Option<IpAddr> {
        media.connection.or(self.connection)
    }

    /// The direction a media section's stream has: its own attribute, else the session's, else
    /// `sendrecv` (RFC 4566 §6).
    pub fn direction_of(&self, media: &MediaSection) -> Direction {
        media.direction.or(self.direction).unwrap_or_default()
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = super::SdpError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        super::parse(text)
    }
}

impl Origin {
    /// An origin with user name `-`, as RFC 3264 §5 suggests for a description with no user.
    pub fn new(session_id: u64, session_version: u64, address: IpAddr) -> Origin {
        Origin { username: "-".to_owned(), session_id, session_version, address: address.to_string() }
    }
}

impl MediaKind {
    /// Reads the media field of an `m=` line, without regard to case.
    pub fn parse(text: &str) -> MediaKind {
        match text.to_ascii_lowercase().as_str() {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "image" => MediaKind::Image,
            "message" => MediaKind::Message,
            "application" => MediaKind::Application,
            "text" => MediaKind::Text,
            _ => MediaKind::Other(text.to_owned()),
        }
    }

    /// The media field as written in `m=`.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Image => "image",
            MediaKind::Message => "message",
            MediaKind::Application => "application",
            MediaKind::Text => "text",
            MediaKind::Other(name) => name,
        }
    }
}

impl Direction {
    /// The direction that sends when `sends` and receives when `receives`.
    pub fn new(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the side with this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side with this direction receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: `sendonly` there is `recvonly` here.
    pub fn reversed(self) -> Direction {
        Direction::new(self.receives(), self.sends())
    }

    /// What both directions allow: the answer to an offer is our wish limited by the offer's
    /// reverse (RFC 3264 §6.1).
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::new(self.sends() && other.sends(), self.receives() && other.receives())
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

impl MediaSection {
    /// A section with no attributes.
    pub fn new(kind: MediaKind, port: u16, protocol: impl Into<String>, formats: Vec<String>) -> MediaSection {
        MediaSection {
            kind,
            port,
            protocol: protocol.into(),
            formats,
            connection: None,
            rtpmap: Vec::new(),
            fmtp: Vec::new(),
            direction: None,
            ptime: None,
            maxptime: None,
            rtcp: None,
            rtcp_mux: false,
            crypto: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// Whether the protocol carries RTP (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP`, …).
    pub fn is_rtp(&self) -> bool {
        self.protocol.to_ascii_uppercase().split('/').any(|part| part == "RTP")
    }

    /// Whether the protocol is plain, unencrypted RTP: `RTP/AVP` or `RTP/AVPF` (RFC 4585).
    pub fn is_plain_rtp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/AVP") || self.protocol.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// Whether the protocol is SRTP keyed in the SDP: `RTP/SAVP` or `RTP/SAVPF` (RFC 3711 §12,
    /// RFC 5124), the profiles `a=crypto` lines go with (RFC 4568 §3).
    pub fn is_sdes_srtp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/SAVP") || self.protocol.eq_ignore_ascii_case("RTP/SAVPF")
    }

    /// The `a=crypto` lines read as [`CryptoAttribute`]s, each an error if it is one we cannot
    /// use, in the order written (the writer's preference).
    pub fn crypto_attributes(&self) -> impl Iterator<Item = Result<CryptoAttribute, CryptoError>> + '_ {
        self.crypto.iter().map(|value| CryptoAttribute::parse(value))
    }

    /// The payload types of the format list, in order (formats that are not numbers are skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// The codec a payload type stands for: its rtpmap, else its static meaning (RFC 3551 §6),
    /// with its fmtp parameters. `None` for a dynamic type with no rtpmap.
    pub fn codec(&self, payload_type: u8) -> Option<Codec> {
        let mut codec = match self.rtpmap.iter().find(|m| m.payload_type == payload_type) {
            Some(map) => Codec::new(map.name.clone(), map.clock_rate, map.channels),
            None => Codec::from_static(payload_type)?,
        };
        if let Some(fmtp) = self.fmtp.iter().find(|f| f.payload_type == payload_type) {
            codec.fmtp = fmtp.params.clone();
        }
        Some(codec)
    }

    /// The codecs of the format list in order, with their payload types.
    pub fn codecs(&self) -> impl Iterator<Item = (u8, Codec)> + '_ {
        self.payload_types().filter_map(|pt| self.codec(pt).map(|codec| (pt, codec)))
    }

    /// Adds a payload type to the format list with its rtpmap and, if it has any, its fmtp.
    pub fn add_codec(&mut self, payload_type: u8, codec: &Codec) {
        self.formats.push(payload_type.to_string());
        self.rtpmap.push(RtpMap {
            payload_type,
            name: codec.name.clone(),
            clock_rate: codec.clock_rate,
            channels: codec.channels,
        });
        if !codec.fmtp.is_empty() {
            self.fmtp.push(Fmtp { payload_type, params: codec.fmtp.clone() });
        }
    }
}

impl fmt::Display for SessionDescription {
    /// Writes RFC 4566 §5 text: `v o s c t a` then each `m c a`, every line ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        let username = if o.username.is_empty() { "-" } else { &o.username };
        let addrtype = if o.address.contains(':') { "IP6" } else { "IP4" };
        write!(f, "v=0\r\no={username} {} {} IN {addrtype} {}\r\n", o.session_id, o.session_version, o.address)?;
        let name = if self.session_name.is_empty() { "-" } else { &self.session_name };
        write!(f, "s={name}\r\n")?;
        if let Some(address) = self.connection {
            write_connection(f, address)?;
        }
        f.write_str("t=0 0\r\n")?;
        if let Some(direction) = self.direction {
            write!(f, "a={}\r\n", direction.as_str())?;
        }
        for attribute in &self.attributes {
            write!(f, "a={attribute}\r\n")?;
        }
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MediaSection {
    /// Writes the `m=` line and the section's `c=` and `a=` lines, each ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {} {}", self.kind.as_str(), self.port, self.protocol)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        if let Some(address) = self.connection {
            write_connection(f, address)?;
        }
        for map in &self.rtpmap {
            write!(f, "a=rtpmap:{} {}/{}", map.payload_type, map.name, map.clock_rate)?;
            if map.channels > 1 {
                write!(f, "/{}", map.channels)?;
            }
            f.write_str("\r\n")?;
        }
        for fmtp in &self.fmtp {
            write!(f, "a=fmtp:{} {}\r\n", fmtp.payload_type, fmtp.params)?;
        }
        if let Some(ptime) = self.ptime {
            write!(f, "a=ptime:{ptime}\r\n")?;
        }
        if let Some(maxptime) = self.maxptime {
            write!(f, "a=maxptime:{maxptime}\r\n")?;
        }
        if let Some(direction) = self.direction {
            write!(f, "a={}\r\n", direction.as_str())?;
        }
        if let Some(rtcp) = self.rtcp {
            write!(f, "a=rtcp:{}", rtcp.port)?;
            if let Some(address) = rtcp.address {
                write!(f, " IN {} {address}", addrtype(address))?;
            }
            f.write_str("\r\n")?;
        }
        if self.rtcp_mux {
            f.write_str("a=rtcp-mux\r\n")?;
        }
        for crypto in &self.crypto {
            write!(f, "a=crypto:{crypto}\r\n")?;
        }
        for attribute in &self.attributes {
            write!(f, "a={attribute}\r\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(value) = &self.value {
            write!(f, ":{value}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn addrtype(address: IpAddr) -> &'static str {
    if address.is_ipv6() { "IP6" } else { "IP4" }
}

fn write_connection(f: &mut fmt::Formatter<'_>, address: IpAddr) -> fmt::Result {
    write!(f, "c=IN {} {address}\r\n", addrtype(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_direction_is_our_wish_limited_by_the_offers_reverse() {
        let answer = |ours: Direction, offered: Direction| ours.intersect(offered.reversed());
        assert_eq!(answer(Direction::SendRecv, Direction::SendOnly), Direction::RecvOnly);
        assert_eq!(answer(Direction::SendRecv, Direction::RecvOnly), Direction::SendOnly);
        assert_eq!(answer(Direction::SendRecv, Direction::Inactive), Direction::Inactive);
        assert_eq!(answer(Direction::SendRecv, Direction::SendRecv), Direction::SendRecv);
        assert_eq!(answer(Direction::SendOnly, Direction::SendOnly), Direction::Inactive);
        assert_eq!(answer(Direction::RecvOnly, Direction::SendRecv), Direction::RecvOnly);
    }

    #[test]
    fn ipv6_connection_and_origin_are_written_as_ip6() {
        let address: IpAddr = "2001:db8::1".parse().unwrap();
        let mut media = MediaSection::new(MediaKind::Audio, 4000, "RTP/AVP", vec!["0".into()]);
        media.rtcp = Some(Rtcp { port: 4001, address: Some(address) });
        let sdp = SessionDescription {
            origin: Origin::new(1, 2, address),
            session_name: String::new(),
            connection: Some(address),
            direction: None,
            attributes: Vec::new(),
            media: vec![media],
        };
        assert_eq!(
            sdp.to_string(),
            "v=0\r\no=- 1 2 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP6 2001:db8::1\r\n"
        );
    }
}
