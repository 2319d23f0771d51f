//! Codecs as SDP names them: `a=rtpmap` encoding, clock rate and channels (RFC 4566 §6), their
//! `a=fmtp` parameters, and the static payload types of RFC 3551 §6 that need no rtpmap.

use std::fmt;

/// A media format as SDP describes it: `a=rtpmap:<pt> <name>/<clock_rate>[/<channels>]` plus its
/// `a=fmtp` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name as written (`opus`, `PCMU`); compared without regard to case.
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels; 1 when the rtpmap gives none.
    pub channels: u8,
    /// Format parameters (`a=fmtp`), empty when there are none.
    pub fmtp: FormatParams,
}

/// RFC 3551 §6 Tables 4 and 5: payload types whose meaning is fixed, so an `m=` line may list them
/// without an `a=rtpmap`.
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32, u8)] = &[
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (5, "DVI4", 8000, 1),
    (6, "DVI4", 16000, 1),
    (7, "LPC", 8000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (10, "L16", 44100, 2),
    (11, "L16", 44100, 1),
    (12, "QCELP", 8000, 1),
    (13, "CN", 8000, 1),
    (14, "MPA", 90000, 1),
    (15, "G728", 8000, 1),
    (16, "DVI4", 11025, 1),
    (17, "DVI4", 22050, 1),
    (18, "G729", 8000, 1),
    (25, "CelB", 90000, 1),
    (26, "JPEG", 90000, 1),
    (28, "nv", 90000, 1),
    (31, "H261", 90000, 1),
    (32, "MPV", 90000, 1),
    (33, "MP2T", 90000, 1),
    (34, "H263", 90000, 1),
];

impl Codec {
    /// A codec with no format parameters.
    pub fn new(name: impl Into<String>, clock_rate: u32, channels: u8) -> Codec {
        Codec { name: name.into(), clock_rate, channels, fmtp: FormatParams::default() }
    }

    /// Opus as RFC 7587 §7 has it written, `opus/48000/2`, asking for in-band FEC
    /// (`useinbandfec=1`). Add `maxplaybackrate`, `stereo`, `sprop-maxcapturerate`,
    /// `maxaveragebitrate`, `cbr` or `usedtx` with [`Codec::with_fmtp`].
    pub fn opus() -> Codec {
        Codec::new("opus", 48000, 2).with_fmtp("useinbandfec", Some("1"))
    }

    /// G.711 µ-law, static payload type 0.
    pub fn pcmu() -> Codec {
        Codec::new("PCMU", 8000, 1)
    }

    /// G.711 A-law, static payload type 8.
    pub fn pcma() -> Codec {
        Codec::new("PCMA", 8000, 1)
    }

    /// RFC 4733 telephone-event at `clock_rate`, with the DTMF events 0–15 and flash (16).
    pub fn telephone_event(clock_rate: u32) -> Codec {
        Codec::new("telephone-event", clock_rate, 1).with_fmtp("0-16", None)
    }

    /// The codec a static payload type stands for (RFC 3551 §6), or `None` for a dynamic or
    /// unassigned one.
    pub fn from_static(payload_type: u8) -> Option<Codec> {
        STATIC_PAYLOAD_TYPES
            .iter()
            .find(|(pt, ..)| *pt == payload_type)
            .map(|&(_, name, clock_rate, channels)| Codec::new(name, clock_rate, channels))
    }

    /// The static payload type of this codec, if RFC 3551 §6 assigns one.
    pub fn static_payload_type(&self) -> Option<u8> {
        STATIC_PAYLOAD_TYPES
            .iter()
            .find(|&&(_, name, clock_rate, channels)| self.same_format(&Codec::new(name, clock_rate, channels)))
            .map(|(pt, ..)| *pt)
    }

    /// Adds or replaces one format parameter (`None` for a bare token such as `0-16`).
    #[must_use]
    pub fn with_fmtp(mut self, name: &str, value: Option<&str>) -> Codec {
        self.fmtp.set(name, value);
        self
    }

    /// Whether `other` is the same format: same encoding name (ignoring case), clock rate and
    /// channels. Opus matches on name and clock alone, since RFC 7587 §7 fixes its rtpmap at
    /// `opus/48000/2` whatever the stream carries and some peers leave the `/2` out.
    pub fn same_format(&self, other: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.clock_rate == other.clock_rate
            && (self.channels == other.channels || self.is_opus())
    }

    /// Whether this is Opus (RFC 7587).
    pub fn is_opus(&self) -> bool {
        self.name.eq_ignore_ascii_case("opus")
    }

    /// Whether this is RFC 4733 telephone-event rather than a voice codec.
    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case("telephone-event")
    }

    /// Whether this carries no voice of its own: telephone-event, comfort noise (RFC 3389) or
    /// redundancy (RFC 2198). Such formats ride along with a voice codec and are never chosen as it.
    pub fn is_auxiliary(&self) -> bool {
        self.is_telephone_event() || self.name.eq_ignore_ascii_case("CN") || self.name.eq_ignore_ascii_case("red")
    }
}

/// `a=fmtp` parameters in the order written: `name=value` pairs and bare tokens such as the
/// telephone-event list `0-16`. Read with `;` (and any spaces around it) as the separator, written
/// joined by `;` (RFC 7587 §7, RFC 4733 §7.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatParams(Vec<(String, Option<String>)>);

impl FormatParams {
    /// Reads a parameter list such as `useinbandfec=1; maxplaybackrate=16000` or `0-11,16`.
    /// Never fails: empty items are skipped.
    pub fn parse(text: &str) -> FormatParams {
        FormatParams(
            text.split(';')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| match item.split_once('=') {
                    Some((name, value)) => (name.trim().to_owned(), Some(value.trim().to_owned())),
                    None => (item.to_owned(), None),
                })
                .collect(),
        )
    }

    /// The value of `name` (compared without regard to case), if it is present with a value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_deref())
    }

    /// Whether the boolean parameter `name` is present and `1` (RFC 7587 §6.1 flags).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("1")
    }

    /// Whether `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Sets `name` to `value`, replacing it where it already is, else appending it.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self.0.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parameters in order, as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }
}

impl fmt::Display for FormatParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            f.write_str(name)?;
            if let Some(value) = value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmtp_reads_semicolons_with_or_without_spaces_and_writes_bare_semicolons() {
        let params = FormatParams::parse("useinbandfec=1; maxplaybackrate=16000 ;stereo=0;;");
        assert_eq!(params.get("maxplaybackrate"), Some("16000"));
        assert!(params.flag("useinbandfec"));
        assert!(!params.flag("stereo"));
        assert_eq!(params.to_string(), "useinbandfec=1;maxplaybackrate=16000;stereo=0");
    }

    #[test]
    fn fmtp_keeps_telephone_event_lists_as_bare_tokens() {
        let params = FormatParams::parse("0-11,16");
        assert!(params.contains("0-11,16"));
        assert_eq!(params.get("0-11,16"), None);
        assert_eq!(params.to_string(), "0-11,16");
    }

    #[test]
    fn fmtp_set_replaces_in_place_and_appends_new_names() {
        let mut params = FormatParams::parse("a=1;b=2");
        params.set("A", Some("3"));
        params.set("c", None);
        assert_eq!(params.to_string(), "a=3;b=2;c");
    }

    #[test]
    fn static_payload_types_resolve_both_ways() {
        assert_eq!(Codec::from_static(0), Some(Codec::pcmu()));
        assert_eq!(Codec::from_static(8), Some(Codec::pcma()));
        assert_eq!(Codec::from_static(96), None);
        assert_eq!(Codec::pcmu().static_payload_type(), Some(0));
        assert_eq!(Codec::new("pcma", 8000, 1).static_payload_type(), Some(8));
        assert_eq!(Codec::opus().static_payload_type(), None);
        assert_eq!(Codec::new("DVI4", 16000, 1).static_payload_type(), Some(6));
    }

    #[test]
    fn opus_matches_without_channel_count_but_g711_needs_it() {
        assert!(Codec::opus().same_format(&Codec::new("OPUS", 48000, 1)));
        assert!(!Codec::opus().same_format(&Codec::new("opus", 16000, 2)));
        assert!(!Codec::pcmu().same_format(&Codec::new("PCMU", 8000, 2)));
    }
}
