//! The SDES `a=crypto` attribute (RFC 4568 §4, §9.1) for the suites [`SrtpProfile`] supports:
//! `<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [<session-params>]`.
//!
//! A line is read strictly: one master key (several keys with MKIs are not supported), a key of
//! exactly 30 bytes, an MKI of at most 4 bytes, and no session parameter that would change how
//! SRTP runs (`UNENCRYPTED_SRTP`, `FEC_ORDER`, a non-zero `KDR`, …; §6.3 has an answerer refuse
//! a line with a parameter it does not support). `WSH` and parameters starting with `-` are
//! hints and are ignored. A line we cannot use is an error for that line only: the offer/answer
//! code skips it and tries the next one (§7.1.2).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use rand::{CryptoRng, RngCore};

use crate::rtp::srtp::{MasterKey, Mki, SrtpProfile};

/// Longest tag RFC 4568 §9.1 allows: 1 to 9 digits.
const MAX_TAG: u32 = 999_999_999;

/// One `a=crypto` attribute with a suite we support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag that names this line in the offer and its answer (RFC 4568 §4.1).
    pub tag: u32,
    /// The crypto suite.
    pub suite: SrtpProfile,
    /// The master key and salt of the side that wrote the line, for the stream it sends.
    pub key: MasterKey,
    /// The key's lifetime in packets, if given.
    pub lifetime: Option<u64>,
    /// The master key identifier carried in each packet, if any.
    pub mki: Option<Mki>,
}

/// Why an `a=crypto` value is not one we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The value does not follow RFC 4568 §9.1.
    #[error("a=crypto: {0}")]
    Syntax(&'static str),
    /// A crypto suite we do not support.
    #[error("a=crypto suite {0:?} is not supported; use AES_CM_128_HMAC_SHA1_80 or AES_CM_128_HMAC_SHA1_32")]
    UnknownSuite(String),
    /// The key is not 30 bytes (16 key + 14 salt) of valid base64.
    #[error("a=crypto key must be 30 bytes (16 key + 14 salt) in base64")]
    BadKey,
    /// More than one master key in the line.
    #[error("a=crypto with several master keys is not supported; offer one key per line")]
    SeveralKeys,
    /// An MKI longer than 4 bytes.
    #[error("a=crypto MKI of {0} bytes is not supported (at most 4)")]
    MkiTooLong(u32),
    /// A session parameter we do not support (RFC 4568 §6.3).
    #[error("a=crypto session parameter {0:?} is not supported")]
    UnsupportedParameter(String),
}

impl CryptoAttribute {
    /// A line with no lifetime and no MKI.
    pub fn new(tag: u32, suite: SrtpProfile, key: MasterKey) -> CryptoAttribute {
        CryptoAttribute { tag, suite, key, lifetime: None, mki: None }
    }

    /// One line per supported suite, most preferred first, tags 1, 2, …, each with a fresh key
    /// from `rng` (which must be a CSPRNG seeded by the system outside tests).
    pub fn offer_set<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Vec<CryptoAttribute> {
        (1..)
            .zip(SrtpProfile::ALL)
            .map(|(tag, suite)| CryptoAttribute::new(tag, suite, MasterKey::random(rng)))
            .collect()
    }

    /// Reads the value of an `a=crypto` attribute (what follows `a=crypto:`).
    pub fn parse(value: &str) -> Result<CryptoAttribute, CryptoError> {
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next().ok_or(CryptoError::Syntax("empty attribute"))?;
        let tag = (tag.len() <= 9 && tag.bytes().all(|b| b.is_ascii_digit()))
            .then(|| tag.parse::<u32>().ok())
            .flatten()
            .filter(|t| *t <= MAX_TAG)
            .ok_or(CryptoError::Syntax("the tag must be 1 to 9 digits"))?;
        let suite = fields.next().ok_or(CryptoError::Syntax("no crypto suite after the tag"))?;
        let suite = SrtpProfile::from_name(suite).ok_or_else(|| CryptoError::UnknownSuite(suite.to_owned()))?;
        let key_params = fields.next().ok_or(CryptoError::Syntax("no key parameters after the suite"))?;
        for param in fields {
            session_parameter(param)?;
        }
        if key_params.contains(';') {
            return Err(CryptoError::SeveralKeys);
        }
        let (method, info) = key_params.split_once(':').ok_or(CryptoError::Syntax("key parameters need inline:"))?;
        if !method.eq_ignore_ascii_case("inline") {
            return Err(CryptoError::Syntax("the only key method is inline:"));
        }
        let mut parts = info.split('|');
        let key = parts.next().unwrap_or_default();
        let key = STANDARD.decode(key).or_else(|_| STANDARD_NO_PAD.decode(key)).map_err(|_| CryptoError::BadKey)?;
        let key = MasterKey::from_bytes(&key).map_err(|_| CryptoError::BadKey)?;
        let mut attribute = CryptoAttribute::new(tag, suite, key);
        for part in parts {
            if let Some((value, length)) = part.split_once(':') {
                if attribute.mki.is_some() {
                    return Err(CryptoError::Syntax("more than one MKI"));
                }
                let value: u32 = value.parse().map_err(|_| CryptoError::Syntax("the MKI value must be decimal"))?;
                let len: u32 = length.parse().map_err(|_| CryptoError::Syntax("the MKI length must be decimal"))?;
                if len == 0 || len > 128 {
                    return Err(CryptoError::Syntax("the MKI length must be 1 to 128"));
                }
                let len = u8::try_from(len).ok().filter(|l| *l <= 4).ok_or(CryptoError::MkiTooLong(len))?;
                if len < 4 && value >> (8 * u32::from(len)) != 0 {
                    return Err(CryptoError::Syntax("the MKI value does not fit its length"));
                }
                attribute.mki = Some(Mki { value, len });
            } else {
                if attribute.lifetime.is_some() || attribute.mki.is_some() {
                    return Err(CryptoError::Syntax("the lifetime comes once, before the MKI"));
                }
                attribute.lifetime = Some(lifetime(part)?);
            }
        }
        Ok(attribute)
    }
}

/// A lifetime: decimal, or `2^n` (RFC 4568 §6.1).
fn lifetime(text: &str) -> Result<u64, CryptoError> {
    let bad = CryptoError::Syntax("the lifetime must be decimal or 2^n");
    match text.strip_prefix("2^") {
        Some(power) => power.parse::<u32>().ok().and_then(|n| 1u64.checked_shl(n)),
        None => text.parse().ok(),
    }
    .ok_or(bad)
}

/// Accepts a session parameter that leaves SRTP as we run it, refuses the others (§6.3).
fn session_parameter(param: &str) -> Result<(), CryptoError> {
    let (name, value) = param.split_once('=').unwrap_or((param, ""));
    let fine = match name {
        "KDR" => value == "0",
        "WSH" => value.parse::<u32>().is_ok(),
        _ => name.starts_with('-'),
    };
    if fine { Ok(()) } else { Err(CryptoError::UnsupportedParameter(param.to_owned())) }
}

impl fmt::Display for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} inline:{}", self.tag, self.suite, STANDARD.encode(self.key.to_bytes()))?;
        if let Some(lifetime) = self.lifetime {
            if lifetime.is_power_of_two() {
                write!(f, "|2^{}", lifetime.trailing_zeros())?;
            } else {
                write!(f, "|{lifetime}")?;
            }
        }
        if let Some(mki) = self.mki {
            write!(f, "|{}:{}", mki.value, mki.len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn rfc4568_example_line_reads_and_writes_back() {
        let text = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4";
        let line = CryptoAttribute::parse(text).unwrap();
        assert_eq!(line.tag, 1);
        assert_eq!(line.suite, SrtpProfile::AesCm128HmacSha1_80);
        assert_eq!(line.lifetime, Some(1 << 20));
        assert_eq!(line.mki, Some(Mki { value: 1, len: 4 }));
        assert_eq!(&line.key.to_bytes()[..6], b"YS___s");
        assert_eq!(line.to_string(), text);
    }

    #[test]
    fn a_decimal_lifetime_and_hint_parameters_are_accepted() {
        let line = CryptoAttribute::parse(
            "7 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|1000 WSH=128 KDR=0 -x",
        )
        .unwrap();
        assert_eq!(
            (line.tag, line.suite, line.lifetime, line.mki),
            (7, SrtpProfile::AesCm128HmacSha1_32, Some(1000), None)
        );
    }

    #[test]
    fn lines_we_cannot_use_are_typed_errors() {
        let key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let cases = [
            (String::new(), CryptoError::Syntax("empty attribute")),
            (format!("1 AEAD_AES_128_GCM {key}"), CryptoError::UnknownSuite("AEAD_AES_128_GCM".into())),
            (format!("1 F8_128_HMAC_SHA1_80 {key}"), CryptoError::UnknownSuite("F8_128_HMAC_SHA1_80".into())),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA".into(), CryptoError::BadKey),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!".into(), CryptoError::BadKey),
            (format!("1 AES_CM_128_HMAC_SHA1_80 {key};{key}"), CryptoError::SeveralKeys),
            (format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:5"), CryptoError::MkiTooLong(5)),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} UNENCRYPTED_SRTP"),
                CryptoError::UnsupportedParameter("UNENCRYPTED_SRTP".into()),
            ),
            (format!("1 AES_CM_128_HMAC_SHA1_80 {key} KDR=24"), CryptoError::UnsupportedParameter("KDR=24".into())),
            (format!("x AES_CM_128_HMAC_SHA1_80 {key}"), CryptoError::Syntax("the tag must be 1 to 9 digits")),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|2^99"),
                CryptoError::Syntax("the lifetime must be decimal or 2^n"),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|300:1"),
                CryptoError::Syntax("the MKI value does not fit its length"),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(CryptoAttribute::parse(&text), Err(error), "{text}");
        }
    }

    #[test]
    fn offered_keys_are_fresh_per_line_and_round_trip() {
        let lines = CryptoAttribute::offer_set(&mut StdRng::seed_from_u64(1));
        assert_eq!(
            lines.iter().map(|l| (l.tag, l.suite)).collect::<Vec<_>>(),
            [(1, SrtpProfile::AesCm128HmacSha1_80), (2, SrtpProfile::AesCm128HmacSha1_32)]
        );
        assert_ne!(lines[0].key, lines[1].key);
        for line in &lines {
            assert_eq!(&CryptoAttribute::parse(&line.to_string()).unwrap(), line);
        }
        assert_ne!(CryptoAttribute::offer_set(&mut StdRng::seed_from_u64(2))[0].key, lines[0].key);
    }

    #[test]
    fn garbage_never_panics() {
        let base = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 WSH=64";
        for end in 0..=base.len() {
            let _ = CryptoAttribute::parse(&base[..end]);
        }
        for junk in [
            "1 AES_CM_128_HMAC_SHA1_80 inline:|||",
            "1 AES_CM_128_HMAC_SHA1_80 :",
            "99999999999 x y",
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^|:",
        ] {
            assert!(CryptoAttribute::parse(junk).is_err(), "{junk}");
        }
    }
}
