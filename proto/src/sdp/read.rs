//! Reading SDP text into the model (RFC 4566 §5): the one place that uses `webrtc-sdp` and works
//! around its gaps.
//!
//! `webrtc-sdp` reads single lines well: `o=`, `c=` (IPv4 and IPv6), `m=` with the RTP
//! protocols, `a=rtpmap`, `a=ptime`, `a=maxptime`, `a=rtcp`, `a=rtcp-mux` and the direction
//! attributes all go through [`webrtc_sdp::parse_sdp_line`]. Its whole-document parser does not
//! suit a telephone, so this file groups the lines into sections itself:
//!
//! - it drops `m=` lines whose protocol it does not know (`udptl` for T.38, `TCP/MSRP`) and hangs
//!   their attributes on the section before, so an answer could not keep every `m=` line in order
//!   (RFC 3264 §6). Here every `m=` line starts a section, and such lines are read by
//!   [`unknown_protocol_media`].
//! - it drops `a=crypto` (RFC 4568) and every attribute it does not know. Here `a=crypto` is kept
//!   in [`MediaSection::crypto`] and the rest verbatim.
//! - its typed fmtp misreads a parameter after `"; "` and writes unknown ones joined by `,`. Here
//!   fmtp is read by [`FormatParams::parse`] and written joined by `;`.
//! - it rejects a whole description for a `u=`, `e=`, `p=`, `z=` or `r=` line, all valid
//!   (RFC 4566 §5), or for being shorter than 51 bytes. Here those lines are skipped.
//!
//! Each gap has a test below named for it, which fails once `webrtc-sdp` closes the gap.

use std::net::IpAddr;

use webrtc_sdp::address::ExplicitlyTypedAddress;
use webrtc_sdp::attribute_type::SdpAttribute;
use webrtc_sdp::error::SdpParserError;
use webrtc_sdp::media_type::{SdpFormatList, SdpMediaValue};
use webrtc_sdp::{SdpType, parse_sdp_line};

use super::SdpError;
use super::codec::FormatParams;
use super::model::{Attribute, Direction, Fmtp, MediaKind, MediaSection, Origin, Rtcp, RtpMap, SessionDescription};

/// Reads a session description. Accepts CRLF or bare LF line ends and trailing spaces; every
/// `m=` line becomes a [`MediaSection`] in order, whatever its protocol.
///
/// Errors name the line and what was wrong with it; hostile input never panics.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut reader = Reader::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if !line.is_empty() {
            reader.line(index + 1, line)?;
        }
    }
    reader.finish()
}

/// The description read so far.
#[derive(Default)]
struct Reader {
    seen_version: bool,
    origin: Option<Origin>,
    session_name: String,
    connection: Option<IpAddr>,
    direction: Option<Direction>,
    attributes: Vec<Attribute>,
    media: Vec<MediaSection>,
}

impl Reader {
    fn line(&mut self, number: usize, line: &str) -> Result<(), SdpError> {
        let error = |reason: &str| syntax(number, line, reason);
        // RFC 4566 §5 text never holds CR, LF or NUL; refusing every control character also keeps
        // a peer's bytes from breaking the lines of what we write back.
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(error("control character inside a line"));
        }
        let Some((letter, value)) = line.split_once('=') else {
            return Err(error("expected <type>=<value>"));
        };
        let mut chars = letter.chars();
        let (Some(letter), None) = (chars.next(), chars.next()) else {
            return Err(error("the type before `=` must be a single letter"));
        };
        if !self.seen_version {
            if letter != 'v' {
                return Err(SdpError::Structure("an SDP body must begin with v=0 (RFC 4566 §5.1)"));
            }
            if value.trim() != "0" {
                return Err(error("only SDP version 0 exists (RFC 4566 §5.1)"));
            }
            self.seen_version = true;
            return Ok(());
        }
        let in_media = !self.media.is_empty();
        match letter {
            'v' => Err(error("v= may appear only once, as the first line")),
            'o' | 's' | 't' if in_media => Err(error("this line belongs before the first m= line")),
            'o' if self.origin.is_some() => Err(error("a description has one o= line")),
            'o' => {
                self.origin = Some(origin(number, line)?);
                Ok(())
            }
            's' => {
                value.trim().clone_into(&mut self.session_name);
                Ok(())
            }
            't' => Ok(()),
            'c' => {
                let address = connection(number, line)?;
                let slot = match self.media.last_mut() {
                    Some(media) => &mut media.connection,
                    None => &mut self.connection,
                };
                if slot.replace(address).is_some() {
                    return Err(error("a second c= line at the same level"));
                }
                Ok(())
            }
            'm' if self.origin.is_none() => {
                Err(SdpError::Structure("the o= line must come before the first m= line (RFC 4566 §5)"))
            }
            'm' => {
                self.media.push(media(number, line, value)?);
                Ok(())
            }
            'a' => self.attribute(number, line, value),
            // Informational for a telephone, and valid: not kept.
            'b' | 'i' | 'u' | 'e' | 'p' | 'z' | 'k' | 'r' => Ok(()),
            _ => Err(error("unknown type letter: RFC 4566 §5 says to ignore such a description whole")),
        }
    }

    fn attribute(&mut self, number: usize, line: &str, text: &str) -> Result<(), SdpError> {
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        if name.is_empty() {
            return Ok(()); // a bare `a=` says nothing
        }
        let verbatim = || Attribute { name: name.to_owned(), value: value.map(str::to_owned) };
        let lower = name.to_ascii_lowercase();
        let Some(media) = self.media.last_mut() else {
            match lower.as_str() {
                "sendrecv" | "sendonly" | "recvonly" | "inactive" => {
                    self.direction = Some(direction(number, line)?);
                }
                _ => self.attributes.push(verbatim()),
            }
            return Ok(());
        };
        match lower.as_str() {
            "rtpmap" => media.rtpmap.push(rtpmap(number, line)?),
            "ptime" => media.ptime = Some(milliseconds(number, line)?),
            "maxptime" => media.maxptime = Some(milliseconds(number, line)?),
            "rtcp" => media.rtcp = Some(rtcp(number, line)?),
            "rtcp-mux" => {
                typed_attribute(number, line)?;
                media.rtcp_mux = true;
            }
            "sendrecv" | "sendonly" | "recvonly" | "inactive" => media.direction = Some(direction(number, line)?),
            "fmtp" => match value.and_then(fmtp) {
                Some(fmtp) => media.fmtp.push(fmtp),
                None => media.attributes.push(verbatim()),
            },
            "crypto" => media.crypto.push(value.unwrap_or_default().trim().to_owned()),
            _ => media.attributes.push(verbatim()),
        }
        Ok(())
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        if !self.seen_version {
            return Err(SdpError::Structure("empty SDP body: it must begin with v=0 (RFC 4566 §5.1)"));
        }
        let origin = self.origin.ok_or(SdpError::Structure("no o= line: every SDP needs one (RFC 4566 §5.2)"))?;
        Ok(SessionDescription {
            origin,
            session_name: self.session_name,
            connection: self.connection,
            direction: self.direction,
            attributes: self.attributes,
            media: self.media,
        })
    }
}

/// A line `webrtc-sdp` knows, read by it.
fn typed(number: usize, line: &str) -> Result<SdpType, SdpError> {
    parse_sdp_line(line, number).map(|parsed| parsed.sdp_type).map_err(|e| syntax(number, line, &reason(&e)))
}

fn typed_attribute(number: usize, line: &str) -> Result<SdpAttribute, SdpError> {
    match typed(number, line)? {
        SdpType::Attribute(attribute) => Ok(attribute),
        _ => Err(syntax(number, line, "expected an attribute")),
    }
}

fn origin(number: usize, line: &str) -> Result<Origin, SdpError> {
    let SdpType::Origin(origin) = typed(number, line)? else {
        return Err(syntax(number, line, "expected o=<username> <sess-id> <sess-version> IN IP4|IP6 <address>"));
    };
    let address = match origin.unicast_addr {
        ExplicitlyTypedAddress::Ip(ip) => ip.to_string(),
        ExplicitlyTypedAddress::Fqdn { domain, .. } => domain,
    };
    Ok(Origin {
        username: origin.username,
        session_id: origin.session_id,
        session_version: origin.session_version,
        address,
    })
}

fn connection(number: usize, line: &str) -> Result<IpAddr, SdpError> {
    let SdpType::Connection(connection) = typed(number, line)? else {
        return Err(syntax(number, line, "expected c=IN IP4|IP6 <address>"));
    };
    ip_address(number, line, connection.address)
}

fn ip_address(number: usize, line: &str, address: ExplicitlyTypedAddress) -> Result<IpAddr, SdpError> {
    match address {
        ExplicitlyTypedAddress::Ip(ip) => Ok(ip),
        ExplicitlyTypedAddress::Fqdn { .. } => {
            Err(syntax(number, line, "media addresses must be IP addresses, not host names"))
        }
    }
}

fn media(number: usize, line: &str, value: &str) -> Result<MediaSection, SdpError> {
    let media = match parse_sdp_line(line, number) {
        Ok(parsed) => {
            let SdpType::Media(m) = parsed.sdp_type else {
                return Err(syntax(number, line, "expected m=<media> <port> <proto> <fmt> ..."));
            };
            let kind = match m.media {
                SdpMediaValue::Audio => MediaKind::Audio,
                SdpMediaValue::Video => MediaKind::Video,
                SdpMediaValue::Application => MediaKind::Application,
                SdpMediaValue::Unknown(name) => MediaKind::parse(&name),
            };
            let formats = match m.formats {
                SdpFormatList::Integers(list) => list.iter().map(u32::to_string).collect(),
                SdpFormatList::Strings(list) => list,
                SdpFormatList::Unknown(list) => list.split_whitespace().map(str::to_owned).collect(),
            };
            let port = u16::try_from(m.port).map_err(|_| syntax(number, line, "port above 65535"))?;
            MediaSection::new(kind, port, m.proto.to_string(), formats)
        }
        // The only thing webrtc-sdp reports as unsupported in an m= line is its protocol.
        Err(SdpParserError::Unsupported { .. }) => unknown_protocol_media(value)
            .ok_or_else(|| syntax(number, line, "expected m=<media> <port> <proto> <fmt> ..."))?,
        Err(e) => return Err(syntax(number, line, &reason(&e))),
    };
    if media.is_rtp() && !media.formats.iter().all(|f| f.parse::<u8>().is_ok_and(|pt| pt <= 127)) {
        return Err(syntax(number, line, "RTP payload types are 0 to 127 (RFC 3550 §5.1)"));
    }
    Ok(media)
}

/// An `m=` line whose protocol `webrtc-sdp` does not know (T.38's `udptl`, `TCP/MSRP`, …):
/// `<media> <port>[/<count>] <proto> <fmt> ...`, the formats kept as written.
fn unknown_protocol_media(value: &str) -> Option<MediaSection> {
    let mut fields = value.split_whitespace();
    let kind = MediaKind::parse(fields.next()?);
    let port = fields.next()?.split('/').next()?.parse().ok()?;
    let protocol = fields.next()?;
    let formats: Vec<String> = fields.map(str::to_owned).collect();
    // RFC 4566 §5.14: at least one format, whatever the protocol.
    (!formats.is_empty()).then(|| MediaSection::new(kind, port, protocol, formats))
}

fn rtpmap(number: usize, line: &str) -> Result<RtpMap, SdpError> {
    let SdpAttribute::Rtpmap(map) = typed_attribute(number, line)? else {
        return Err(syntax(number, line, "expected a=rtpmap:<pt> <name>/<clock>[/<channels>]"));
    };
    let channels = u8::try_from(map.channels.unwrap_or(1)).map_err(|_| syntax(number, line, "too many channels"))?;
    Ok(RtpMap { payload_type: map.payload_type, name: map.codec_name, clock_rate: map.frequency, channels })
}

fn milliseconds(number: usize, line: &str) -> Result<u32, SdpError> {
    match typed_attribute(number, line)? {
        SdpAttribute::Ptime(ms) | SdpAttribute::MaxPtime(ms) => {
            u32::try_from(ms).map_err(|_| syntax(number, line, "packet time out of range"))
        }
        _ => Err(syntax(number, line, "expected a packet time in milliseconds")),
    }
}

fn rtcp(number: usize, line: &str) -> Result<Rtcp, SdpError> {
    let SdpAttribute::Rtcp(rtcp) = typed_attribute(number, line)? else {
        return Err(syntax(number, line, "expected a=rtcp:<port> [IN IP4|IP6 <address>]"));
    };
    let address = rtcp.unicast_addr.map(|a| ip_address(number, line, a)).transpose()?;
    Ok(Rtcp { port: rtcp.port, address })
}

fn direction(number: usize, line: &str) -> Result<Direction, SdpError> {
    match typed_attribute(number, line)? {
        SdpAttribute::Sendrecv => Ok(Direction::SendRecv),
        SdpAttribute::Sendonly => Ok(Direction::SendOnly),
        SdpAttribute::Recvonly => Ok(Direction::RecvOnly),
        SdpAttribute::Inactive => Ok(Direction::Inactive),
        _ => Err(syntax(number, line, "expected a direction attribute")),
    }
}

/// `<pt> <parameters>`; `None` for a format that is not a payload type, or no parameters.
fn fmtp(value: &str) -> Option<Fmtp> {
    let (payload_type, params) = value.trim().split_once(char::is_whitespace)?;
    let params = FormatParams::parse(params);
    (!params.is_empty()).then_some(Fmtp { payload_type: payload_type.parse().ok()?, params })
}

fn reason(error: &SdpParserError) -> String {
    match error {
        SdpParserError::Line { error, .. } | SdpParserError::Unsupported { error, .. } => error.to_string(),
        SdpParserError::Sequence { message, .. } => message.clone(),
    }
}

fn syntax(number: usize, line: &str, reason: &str) -> SdpError {
    let mut text: String = line.chars().filter(|c| !c.is_control()).take(80).collect();
    if line.chars().count() > 80 {
        text.push('…');
    }
    SdpError::Syntax { line: number, text, reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{FREESWITCH, LINPHONE, RFC4566_EXAMPLE, SAVP_ONLY, WITH_MSRP, WITH_T38};
    use super::*;
    use crate::rtp::srtp::SrtpProfile;
    use webrtc_sdp::attribute_type::SdpAttributeType;

    fn theirs(text: &str) -> webrtc_sdp::SdpSession {
        webrtc_sdp::parse_sdp(text, false).expect("webrtc-sdp reads this description")
    }

    #[test]
    fn webrtc_sdp_drops_crypto_lines_we_keep_them() {
        assert!(!theirs(SAVP_ONLY).to_string().contains("a=crypto"));

        let ours = parse(SAVP_ONLY).unwrap();
        assert_eq!(ours.media[0].protocol, "RTP/SAVP");
        assert_eq!(
            ours.media[0].crypto,
            [
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
                "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4",
            ]
        );
        let written = ours.to_string();
        assert!(written.contains(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n"
        ));
        assert_eq!(parse(&written).unwrap(), ours);
        let typed: Vec<_> = ours.media[0].crypto_attributes().map(|line| line.map(|l| (l.tag, l.suite))).collect();
        assert_eq!(typed, [Ok((1, SrtpProfile::AesCm128HmacSha1_80)), Ok((2, SrtpProfile::AesCm128HmacSha1_32))]);
    }

    #[test]
    fn webrtc_sdp_drops_m_lines_with_unknown_protocols_we_keep_every_one_in_order() {
        assert_eq!(theirs(WITH_T38).media.len(), 1);
        assert_eq!(theirs(WITH_MSRP).media.len(), 1);

        let t38 = parse(WITH_T38).unwrap();
        assert_eq!(t38.media.len(), 2);
        let image = &t38.media[1];
        assert_eq!((&image.kind, image.port, image.protocol.as_str()), (&MediaKind::Image, 0, "udptl"));
        assert_eq!(image.formats, ["t38"]);
        assert_eq!(image.attributes.len(), 5);
        assert_eq!(image.attributes[0], Attribute { name: "T38FaxVersion".into(), value: Some("0".into()) });

        let msrp = parse(WITH_MSRP).unwrap();
        let message = &msrp.media[1];
        assert_eq!((&message.kind, message.port, message.protocol.as_str()), (&MediaKind::Message, 2855, "TCP/MSRP"));
        assert_eq!(message.formats, ["*"]);
    }

    #[test]
    fn webrtc_sdp_hangs_an_unknown_sections_attributes_on_the_audio_before_it_we_keep_them_apart() {
        // The MSRP section's a=sendonly lands on the audio, which would then be answered recvonly.
        let audio = &theirs(WITH_MSRP).media[0];
        assert!(audio.get_attribute(SdpAttributeType::Sendonly).is_some());

        let ours = parse(WITH_MSRP).unwrap();
        assert_eq!(ours.media[0].direction, None);
        assert_eq!(ours.direction_of(&ours.media[0]), Direction::SendRecv);
        assert_eq!(ours.media[1].direction, Some(Direction::SendOnly));
        let names: Vec<&str> = ours.media[1].attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["accept-types", "path", "file-selector"]);
    }

    #[test]
    fn webrtc_sdp_drops_unknown_attributes_we_keep_them_verbatim() {
        let session = theirs(LINPHONE);
        assert_eq!(session.warnings.len(), 2, "a=rtcp-xr and a=record are dropped as unsupported");
        assert!(!session.to_string().contains("a=record"));

        let ours = parse(LINPHONE).unwrap();
        assert_eq!(
            ours.attributes,
            [
                Attribute {
                    name: "rtcp-xr".into(),
                    value: Some("rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics".into())
                },
                Attribute { name: "record".into(), value: Some("off".into()) },
            ]
        );
        let written = ours.to_string();
        assert!(written.contains("a=record:off\r\n"));
        // Known to webrtc-sdp but not modelled here: kept as written too.
        assert!(written.contains("a=rtcp-fb:* ccm tmmbr\r\n"));
    }

    #[test]
    fn webrtc_sdp_misreads_fmtp_params_after_a_semicolon_and_space_we_trim_them() {
        // FreeSWITCH writes `useinbandfec=1; maxplaybackrate=16000; …`.
        let session = theirs(FREESWITCH);
        let Some(SdpAttribute::Fmtp(fmtp)) = session.media[0].get_attribute(SdpAttributeType::Fmtp) else {
            panic!("webrtc-sdp keeps the opus fmtp");
        };
        assert_eq!(fmtp.payload_type, 102);
        assert_eq!(fmtp.parameters.maxplaybackrate, 48000, "16000 was lost to the leading space");

        let ours = parse(FREESWITCH).unwrap();
        let opus = ours.media[0].codec(102).unwrap();
        assert_eq!(opus.fmtp.get("maxplaybackrate"), Some("16000"));
        assert_eq!(opus.fmtp.get("sprop-maxcapturerate"), Some("16000"));
    }

    #[test]
    fn webrtc_sdp_joins_unknown_fmtp_params_with_commas_we_write_semicolons() {
        let line = "a=fmtp:102 useinbandfec=1;sprop-maxcapturerate=16000;x-custom=3";
        let text = format!("{}m=audio 1000 RTP/AVP 102\r\na=rtpmap:102 opus/48000/2\r\n{line}\r\n", header());
        assert!(theirs(&text).to_string().contains("sprop-maxcapturerate=16000,x-custom=3"));

        let ours = parse(&text).unwrap().to_string();
        assert!(ours.contains(&format!("{line}\r\n")), "{ours}");
    }

    #[test]
    fn webrtc_sdp_rejects_an_out_of_range_fmtp_flag_we_keep_the_value() {
        let text = format!("{}m=audio 1000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=2\r\n", header());
        assert!(webrtc_sdp::parse_sdp(&text, false).is_err());

        assert_eq!(parse(&text).unwrap().media[0].codec(96).unwrap().fmtp.get("stereo"), Some("2"));
    }

    #[test]
    fn webrtc_sdp_rejects_uri_and_email_lines_we_skip_them() {
        // The example of RFC 4566 §5, with its i=, u= and e= lines.
        assert!(webrtc_sdp::parse_sdp(RFC4566_EXAMPLE, false).is_err());

        let ours = parse(RFC4566_EXAMPLE).unwrap();
        assert_eq!(ours.session_name, "SDP Seminar");
        assert_eq!(ours.connection, Some("224.2.17.12".parse().unwrap()));
        assert_eq!(ours.direction, Some(Direction::RecvOnly));
        assert_eq!(ours.media.len(), 2);
    }

    #[test]
    fn webrtc_sdp_rejects_descriptions_under_51_bytes_we_read_them() {
        let text = "v=0\r\no=- 0 0 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
        assert!(text.len() < 51);
        assert!(webrtc_sdp::parse_sdp(text, false).is_err());

        let ours = parse(text).unwrap();
        assert_eq!(ours.origin.address, "192.0.2.1");
        assert!(ours.media.is_empty());
    }

    fn header() -> &'static str {
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    }
}
