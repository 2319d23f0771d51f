//! The digest header values: `WWW-Authenticate` / `Proxy-Authenticate` challenges and
//! `Authorization` / `Proxy-Authorization` credentials (RFC 3261 §25.1, RFC 7616 §3.3–§3.4).
//!
//! Reading is lenient about what real peers send (any order, extra whitespace, unknown
//! parameters, quoted tokens, lower-case scheme); writing follows the RFC exactly.

use std::borrow::Cow;
use std::fmt;

use super::{Algorithm, AuthError, Qop};

/// A digest challenge: the value of a `WWW-Authenticate` or `Proxy-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space, usually the domain the server serves.
    pub realm: String,
    /// The server's nonce, returned unchanged in the credentials.
    pub nonce: String,
    /// Server data the client returns unchanged.
    pub opaque: Option<String>,
    /// The hash algorithm; MD5 when the header names none.
    pub algorithm: Algorithm,
    /// The qualities of protection offered; empty means the RFC 2069 form without qop.
    pub qop: Vec<Qop>,
    /// The previous nonce was authentic but expired: retry with this one without asking the user.
    pub stale: bool,
}

/// Digest credentials: the value of an `Authorization` or `Proxy-Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (for SIP, usually the extension or the user part of the AOR).
    pub username: String,
    /// The realm of the challenge being answered.
    pub realm: String,
    /// The nonce of the challenge being answered.
    pub nonce: String,
    /// The digest-uri: the Request-URI as the client sent it.
    pub uri: String,
    /// The response digest in hexadecimal.
    pub response: String,
    /// The hash algorithm; MD5 when the header names none.
    pub algorithm: Algorithm,
    /// The client nonce; present with `qop`.
    pub cnonce: Option<String>,
    /// The challenge's opaque value, returned unchanged.
    pub opaque: Option<String>,
    /// The quality of protection chosen; `None` for the RFC 2069 form.
    pub qop: Option<Qop>,
    /// The nonce count: how many requests this client has sent with this nonce; present with `qop`.
    pub nc: Option<u32>,
}

/// The values of the parameters named in `names` (matched ignoring case), in that order.
/// Other parameters are skipped; a named one given twice is an error (RFC 7616 §3.3).
fn collect<'a, const N: usize>(value: &'a str, names: [&str; N]) -> Result<[Option<Cow<'a, str>>; N], AuthError> {
    let mut slots = [const { None }; N];
    for_each_param(value, |name, v| {
        let Some(slot) = names.iter().position(|n| n.eq_ignore_ascii_case(name)).and_then(|i| slots.get_mut(i)) else {
            return Ok(());
        };
        if slot.is_some() {
            return Err(AuthError::DuplicateParam(name.to_ascii_lowercase()));
        }
        *slot = Some(v);
        Ok(())
    })?;
    Ok(slots)
}

fn required(slot: Option<Cow<'_, str>>, name: &'static str) -> Result<String, AuthError> {
    slot.map(Cow::into_owned).ok_or(AuthError::MissingParam(name))
}

fn algorithm(slot: Option<Cow<'_, str>>) -> Result<Algorithm, AuthError> {
    slot.map_or(Ok(Algorithm::Md5), |a| Algorithm::parse(&a))
}

impl Challenge {
    /// Parses a challenge header value such as `Digest realm="example.com", nonce="…", qop="auth"`.
    ///
    /// `realm` and `nonce` are required. Unknown parameters and unknown qop values are ignored;
    /// a qop list with no known value is an error, since the challenge cannot then be answered.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let [realm, nonce, opaque, alg, qop, stale] =
            collect(value, ["realm", "nonce", "opaque", "algorithm", "qop", "stale"])?;
        let qop = match qop {
            None => Vec::new(),
            Some(list) => {
                let known: Vec<Qop> = list.split(',').filter_map(|t| Qop::parse(t.trim()).ok()).collect();
                if known.is_empty() {
                    return Err(AuthError::UnsupportedQop(list.into_owned()));
                }
                known
            }
        };
        Ok(Challenge {
            realm: required(realm, "realm")?,
            nonce: required(nonce, "nonce")?,
            opaque: opaque.map(Cow::into_owned),
            algorithm: algorithm(alg)?,
            qop,
            stale: stale.is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

impl fmt::Display for Challenge {
    /// Writes `Digest realm="…", nonce="…", opaque="…", algorithm=…, qop="…", stale=true`,
    /// leaving out absent parameters and `stale` when false.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest realm={}, nonce={}", Quoted(&self.realm), Quoted(&self.nonce))?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            f.write_str(", qop=\"")?;
            for (i, qop) in self.qop.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(qop.as_str())?;
            }
            f.write_str("\"")?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

impl Credentials {
    /// Parses a credentials header value such as
    /// `Digest username="1001", realm="…", nonce="…", uri="sip:…", response="…", qop=auth, …`.
    ///
    /// `username`, `realm`, `nonce`, `uri` and `response` are required, and `cnonce` and `nc`
    /// too when `qop` is present. Unknown parameters are ignored.
    pub fn parse(value: &str) -> Result<Credentials, AuthError> {
        let slots = collect(
            value,
            ["username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop", "nc"],
        )?;
        let [username, realm, nonce, uri, response, alg, cnonce, opaque, qop, nc] = slots;
        let qop = qop.map(|q| Qop::parse(&q)).transpose()?;
        let nc = nc.map(|n| parse_nonce_count(&n)).transpose()?;
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(AuthError::MissingParam("cnonce"));
            }
            if nc.is_none() {
                return Err(AuthError::MissingParam("nc"));
            }
        }
        Ok(Credentials {
            username: required(username, "username")?,
            realm: required(realm, "realm")?,
            nonce: required(nonce, "nonce")?,
            uri: required(uri, "uri")?,
            response: required(response, "response")?,
            algorithm: algorithm(alg)?,
            cnonce: cnonce.map(Cow::into_owned),
            opaque: opaque.map(Cow::into_owned),
            qop,
            nc,
        })
    }
}

/// `nc` is exactly 8 hexadecimal digits (RFC 7616 §3.4).
fn parse_nonce_count(value: &str) -> Result<u32, AuthError> {
    let bad = || AuthError::BadNonceCount(value.to_owned());
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u32::from_str_radix(value, 16).map_err(|_| bad())
}

impl fmt::Display for Credentials {
    /// Writes `Digest username="…", realm="…", nonce="…", uri="…", response="…", algorithm=…,
    /// cnonce="…", opaque="…", qop=auth, nc=00000001`, leaving out absent parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response),
            self.algorithm
        )?;
        if let Some(cnonce) = &self.cnonce {
            write!(f, ", cnonce={}", Quoted(cnonce))?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        Ok(())
    }
}

/// Writes a quoted-string (RFC 3261 §25.1): `"` and `\` are escaped; control characters other
/// than tab, which no header value can carry, are left out.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                c if is_forbidden_control(c) => {}
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// RFC 3261 §25.1 `token` characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Linear whitespace; CR and LF are accepted for headers that reach us still folded.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A control character that may not appear inside a value: ASCII controls except tab.
fn is_forbidden_control(c: impl Into<char>) -> bool {
    let c = c.into();
    c.is_ascii_control() && c != '\t'
}

/// Checks the `Digest` scheme and calls `each(name, value)` for every `name=value` parameter,
/// with quoted strings unescaped. Empty list elements (`a=1,,b=2`) are skipped (RFC 7230 §7).
fn for_each_param<'a>(
    input: &'a str,
    mut each: impl FnMut(&'a str, Cow<'a, str>) -> Result<(), AuthError>,
) -> Result<(), AuthError> {
    let bytes = input.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let skip = |mut i: usize, pred: &dyn Fn(u8) -> bool| {
        while at(i).is_some_and(pred) {
            i += 1;
        }
        i
    };

    let start = skip(0, &is_space);
    let mut i = skip(start, &is_token);
    if i == start {
        return Err(match at(i) {
            None => AuthError::Empty,
            Some(_) => AuthError::Syntax { at: i, expected: "the scheme name `Digest`" },
        });
    }
    let scheme = input.get(start..i).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest(scheme.to_owned()));
    }
    if at(i).is_some_and(|b| !is_space(b)) {
        return Err(AuthError::Syntax { at: i, expected: "whitespace after `Digest`" });
    }

    loop {
        i = skip(i, &|b| is_space(b) || b == b',');
        if at(i).is_none() {
            return Ok(());
        }
        let name_start = i;
        i = skip(i, &is_token);
        if i == name_start {
            return Err(AuthError::Syntax { at: i, expected: "a parameter name" });
        }
        let name = input.get(name_start..i).unwrap_or_default();
        i = skip(i, &is_space);
        if at(i) != Some(b'=') {
            return Err(AuthError::Syntax { at: i, expected: "`=` after the parameter name" });
        }
        i = skip(i + 1, &is_space);
        let value = if at(i) == Some(b'"') {
            let (value, end) = quoted_string(input, i)?;
            i = end;
            value
        } else {
            let value_start = i;
            i = skip(i, &|b| !is_space(b) && b != b',' && b != b'"' && !is_forbidden_control(b));
            match at(i) {
                Some(b'"') => {
                    return Err(AuthError::Syntax {
                        at: i,
                        expected: "a value either fully quoted or not quoted at all",
                    });
                }
                Some(b) if is_forbidden_control(b) => {
                    return Err(AuthError::ControlCharacter { at: i });
                }
                _ => {}
            }
            if i == value_start {
                return Err(AuthError::Syntax { at: i, expected: "a parameter value" });
            }
            Cow::Borrowed(input.get(value_start..i).unwrap_or_default())
        };
        each(name, value)?;
        i = skip(i, &is_space);
        if at(i).is_some_and(|b| b != b',') {
            return Err(AuthError::Syntax { at: i, expected: "`,` between parameters" });
        }
    }
}

/// Reads the quoted-string whose opening quote is at byte `open`, resolving `\` escapes
/// (RFC 3261 §25.1 `quoted-pair`). Returns the value and the byte index after the closing quote.
fn quoted_string(input: &str, open: usize) -> Result<(Cow<'_, str>, usize), AuthError> {
    let body_start = open + 1;
    let body = input.get(body_start..).unwrap_or_default();
    let mut unescaped: Option<String> = None;
    let mut chars = body.char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => {
                let value = match unescaped {
                    Some(s) => Cow::Owned(s),
                    None => Cow::Borrowed(body.get(..off).unwrap_or_default()),
                };
                return Ok((value, body_start + off + 1));
            }
            '\\' => {
                let Some((esc_off, escaped)) = chars.next() else {
                    break;
                };
                if is_forbidden_control(escaped) {
                    return Err(AuthError::ControlCharacter { at: body_start + esc_off });
                }
                unescaped.get_or_insert_with(|| body.get(..off).unwrap_or_default().to_owned()).push(escaped);
            }
            c if is_forbidden_control(c) => {
                return Err(AuthError::ControlCharacter { at: body_start + off });
            }
            c => {
                if let Some(s) = unescaped.as_mut() {
                    s.push(c);
                }
            }
        }
    }
    Err(AuthError::UnterminatedQuote { at: open })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The RFC 7616 §3.9.1 SHA-256 Authorization header, as printed (unfolded).
    const RFC7616_SHA256: &str = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    #[test]
    fn rfc7616_authorization_header_parses_into_its_fields() {
        let c = Credentials::parse(RFC7616_SHA256).expect("valid header");
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.nonce, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.cnonce.as_deref(), Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"));
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.response, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
        assert_eq!(c.opaque.as_deref(), Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"));
    }

    #[test]
    fn rfc3261_challenge_parses_with_md5_default() {
        let c = Challenge::parse(
            r#"Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5"#,
        )
        .expect("valid challenge");
        assert_eq!(c.realm, "atlanta.com");
        assert_eq!(c.nonce, "f84f1cec41e6cbe5aea9c8e88d359");
        assert_eq!(c.opaque.as_deref(), Some(""));
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop, vec![Qop::Auth]);
        assert!(!c.stale);
    }

    #[test]
    fn challenge_is_written_with_rfc_quoting() {
        let c = Challenge {
            realm: "example.com".into(),
            nonce: "abc".into(),
            opaque: Some("o\"q".into()),
            algorithm: Algorithm::Sha256,
            qop: vec![Qop::Auth, Qop::AuthInt],
            stale: true,
        };
        let text = c.to_string();
        assert_eq!(
            text,
            r#"Digest realm="example.com", nonce="abc", opaque="o\"q", algorithm=SHA-256, qop="auth,auth-int", stale=true"#
        );
        assert_eq!(Challenge::parse(&text), Ok(c));
    }

    #[test]
    fn credentials_are_written_with_rfc_quoting_and_read_back() {
        let c = Credentials {
            username: r"dom\ain".into(),
            realm: "example.com".into(),
            nonce: "n".into(),
            uri: "sip:example.com".into(),
            response: "00ff".into(),
            algorithm: Algorithm::Md5,
            cnonce: Some("c".into()),
            opaque: None,
            qop: Some(Qop::Auth),
            nc: Some(0x1a),
        };
        let text = c.to_string();
        assert_eq!(
            text,
            r#"Digest username="dom\\ain", realm="example.com", nonce="n", uri="sip:example.com", response="00ff", algorithm=MD5, cnonce="c", qop=auth, nc=0000001a"#
        );
        assert_eq!(Credentials::parse(&text), Ok(c));
    }

    #[test]
    fn control_characters_are_never_written() {
        let c = Challenge {
            realm: "evil\r\nVia: x".into(),
            nonce: "n".into(),
            opaque: None,
            algorithm: Algorithm::Md5,
            qop: vec![],
            stale: false,
        };
        let text = c.to_string();
        assert!(!text.contains(['\r', '\n']), "{text}");
        assert_eq!(text, r#"Digest realm="evilVia: x", nonce="n", algorithm=MD5"#);
    }

    #[test]
    fn real_world_forms_are_tolerated() {
        // Any order, odd spacing, lower-case scheme and names, quoted tokens, unknown and empty
        // list elements, escaped quotes, no algorithm.
        let c = Credentials::parse(
            "  digest   NC=\"00000002\" ,qop=\"auth\",,  Response = \"abc\" ,\tcnonce=\"x\\\"y\", \
             uri=\"sip:1001@10.0.0.1;transport=udp\", x-unknown=42, nonce=\"n\", REALM=\"r\", \
             username=\"1001\" ,",
        )
        .expect("tolerated");
        assert_eq!(c.nc, Some(2));
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.response, "abc");
        assert_eq!(c.cnonce.as_deref(), Some("x\"y"));
        assert_eq!(c.uri, "sip:1001@10.0.0.1;transport=udp");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.username, "1001");

        let ch = Challenge::parse(r#"Digest nonce="n",realm="r",qop="auth-int, auth",algorithm="sha256",stale=TRUE"#)
            .expect("tolerated");
        assert_eq!(ch.qop, vec![Qop::AuthInt, Qop::Auth]);
        assert_eq!(ch.algorithm, Algorithm::Sha256);
        assert!(ch.stale);
    }

    #[test]
    fn missing_optional_params_are_absent_not_errors() {
        let c = Credentials::parse(r#"Digest username="u", realm="r", nonce="n", uri="sip:r", response="ab""#)
            .expect("RFC 2069 form");
        assert_eq!((c.qop, c.nc, c.cnonce, c.opaque), (None, None, None, None));
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n""#).expect("minimal");
        assert!(ch.qop.is_empty() && ch.opaque.is_none() && !ch.stale);
    }

    #[test]
    fn malformed_values_get_precise_errors() {
        use AuthError::*;
        const BASE: &str = r#"Digest username="u", realm="r", nonce="n", response="ab""#;
        // Offsets below count from the end of BASE, where `rest` starts.
        let creds = |rest: &str| Credentials::parse(&format!("{BASE}{rest}"));
        let at = |offset: usize| BASE.len() + offset;
        let cases: Vec<(Result<Credentials, AuthError>, AuthError)> = vec![
            (Credentials::parse(""), Empty),
            (Credentials::parse("   "), Empty),
            (Credentials::parse("Basic dXNlcjpwYXNz"), NotDigest("Basic".into())),
            (creds(""), MissingParam("uri")),
            (creds(r#", uri="x", qop=auth, nc=00000001"#), MissingParam("cnonce")),
            (creds(r#", uri="x", qop=auth, cnonce="c""#), MissingParam("nc")),
            (creds(r#", uri="x", nc=1"#), BadNonceCount("1".into())),
            (creds(r#", uri="x", nc=0000000g"#), BadNonceCount("0000000g".into())),
            (creds(r#", uri="x", qop=auth-conf"#), UnsupportedQop("auth-conf".into())),
            (creds(r#", uri="x", algorithm=MD5-sess"#), UnsupportedAlgorithm("MD5-sess".into())),
            (creds(r#", uri="x", Username="v""#), DuplicateParam("username".into())),
            (creds(r#", uri="x"#), UnterminatedQuote { at: at(6) }),
            (creds(", uri=\"a\u{0}b\""), ControlCharacter { at: at(8) }),
            (creds(r#", uri"x""#), Syntax { at: at(5), expected: "`=` after the parameter name" }),
            (creds(r#", uri="x" y"#), Syntax { at: at(10), expected: "`,` between parameters" }),
            (creds(r#", uri="#), Syntax { at: at(6), expected: "a parameter value" }),
            (
                creds(r#", uri=ab"c""#),
                Syntax { at: at(8), expected: "a value either fully quoted or not quoted at all" },
            ),
            (creds(r#", ="x""#), Syntax { at: at(2), expected: "a parameter name" }),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, Err(want), "case {i}");
        }
        assert_eq!(Challenge::parse(r#"Digest realm="r""#), Err(MissingParam("nonce")));
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-conf""#),
            Err(UnsupportedQop("auth-conf".into()))
        );
    }

    #[test]
    fn garbage_never_panics_and_is_rejected() {
        let garbage = [
            "Digest",
            "Digest ",
            "Digest ,,,",
            "Digest=",
            "Digestrealm=\"r\"",
            "\"Digest\" realm=x",
            "Digest realm",
            "Digest realm=",
            "Digest realm=\"",
            "Digest realm=\"\\",
            "Digest realm=\"a\\\"",
            "Digest realm==x",
            "Digest ==",
            "Digest \"\"",
            "Digest realm=\"r\" nonce=\"n\"",
            "Digest realm=\"r\",nonce=\"n\",qop=",
            "Digest realm=\"é\u{301}\", nonce=\"\u{7f}\"",
            "Digest realm=\"r\", nonce=\"n\", algorithm=\"\"",
            "Digest nc=ffffffffff, username=u",
            "Digest username=\"\u{0}\"",
            "\u{feff}Digest realm=\"r\"",
            "Digest réalm=\"r\", nonce=\"n\"",
            "Digest realm=\"r\", nonce=\"n\", \u{7f}",
        ];
        for g in garbage {
            assert!(Challenge::parse(g).is_err(), "challenge accepted {g:?}");
            assert!(Credentials::parse(g).is_err(), "credentials accepted {g:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(7);
        let alphabet = b"Digest =,\"\\ \t\r\nauthrealmnoncenc0f-\x00\x7f";
        let seed = RFC7616_SHA256.as_bytes();
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = rng.random_range(0..80);
                (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect()
            } else {
                // Mutate a valid header: the interesting inputs are near valid ones.
                let mut b = seed.to_vec();
                for _ in 0..rng.random_range(1..4) {
                    let pos = rng.random_range(0..b.len());
                    b[pos] = alphabet[rng.random_range(0..alphabet.len())];
                }
                b.truncate(rng.random_range(0..=b.len()));
                b
            };
            let text = String::from_utf8_lossy(&bytes);
            let _ = Challenge::parse(&text);
            if let Ok(c) = Credentials::parse(&text) {
                // Whatever parses writes out in a form that parses back the same.
                assert_eq!(Credentials::parse(&c.to_string()), Ok(c));
            }
        }
    }
}
