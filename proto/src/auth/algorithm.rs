//! Digest algorithms, quality of protection, and the response computation of RFC 7616 §3.4.1.

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use super::AuthError;

/// A digest hash algorithm (RFC 7616 §3.3; RFC 8760 registers SHA-256 and SHA-512-256 for SIP).
///
/// The `-sess` variants are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5: the default when a header names no algorithm; the only one many SIP phones know.
    Md5,
    /// SHA-256, preferred over MD5 (RFC 8760 §2.4).
    Sha256,
    /// SHA-512/256.
    Sha512_256,
}

impl Algorithm {
    /// The name as written in a header: `MD5`, `SHA-256` or `SHA-512-256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Reads an algorithm name, ignoring case. `SHA256` and `SHA512-256` are accepted too, as
    /// some implementations write them.
    pub fn parse(name: &str) -> Result<Algorithm, AuthError> {
        const NAMES: [(&str, Algorithm); 5] = [
            ("MD5", Algorithm::Md5),
            ("SHA-256", Algorithm::Sha256),
            ("SHA256", Algorithm::Sha256),
            ("SHA-512-256", Algorithm::Sha512_256),
            ("SHA512-256", Algorithm::Sha512_256),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, a)| a)
            .ok_or_else(|| AuthError::UnsupportedAlgorithm(name.to_owned()))
    }

    /// How strongly a client should prefer this algorithm; higher is better.
    pub(crate) fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 => 0,
            Algorithm::Sha256 => 1,
            Algorithm::Sha512_256 => 2,
        }
    }

    /// `H(a:b:c…)`: the hash of the parts joined with `:`, as raw bytes.
    pub(crate) fn hash(self, parts: &[&str]) -> Vec<u8> {
        match self {
            Algorithm::Md5 => hash_with::<Md5>(parts),
            Algorithm::Sha256 => hash_with::<Sha256>(parts),
            Algorithm::Sha512_256 => hash_with::<Sha512_256>(parts),
        }
    }
}

fn hash_with<D: Digest>(parts: &[&str]) -> Vec<u8> {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_vec()
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s)
    }
}

/// Quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// Authentication of the request line: the only value this module computes.
    Auth,
    /// Authentication with integrity protection of the body; recognised but not computed.
    AuthInt,
}

impl Qop {
    /// The token as written in a header: `auth` or `auth-int`.
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    /// Reads a qop token, ignoring case.
    pub fn parse(token: &str) -> Result<Qop, AuthError> {
        if token.eq_ignore_ascii_case("auth") {
            Ok(Qop::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Ok(Qop::AuthInt)
        } else {
            Err(AuthError::UnsupportedQop(token.to_owned()))
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the `response` value of RFC 7616 §3.4.1 is computed from.
pub(crate) struct ResponseInput<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `Some((nc, cnonce))` for `qop=auth`; `None` for the RFC 2069 form without qop.
    pub auth: Option<(u32, &'a str)>,
}

impl ResponseInput<'_> {
    /// The response digest as raw bytes (hex-encode it for the header).
    pub(crate) fn compute(&self) -> Vec<u8> {
        let alg = self.algorithm;
        let ha1 = hex::encode(alg.hash(&[self.username, self.realm, self.password]));
        let ha2 = hex::encode(alg.hash(&[self.method, self.uri]));
        match self.auth {
            Some((nc, cnonce)) => {
                let nc = format!("{nc:08x}");
                alg.hash(&[&ha1, self.nonce, &nc, cnonce, Qop::Auth.as_str(), &ha2])
            }
            None => alg.hash(&[&ha1, self.nonce, &ha2]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: the same request answered with each algorithm.
    fn rfc7616_example(algorithm: Algorithm) -> String {
        hex::encode(
            ResponseInput {
                algorithm,
                username: "Mufasa",
                realm: "http-auth@example.org",
                password: "Circle of Life",
                method: "GET",
                uri: "/dir/index.html",
                nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                auth: Some((1, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
            }
            .compute(),
        )
    }

    #[test]
    fn rfc7616_md5_example_gives_printed_response() {
        assert_eq!(rfc7616_example(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_sha256_example_gives_printed_response() {
        assert_eq!(
            rfc7616_example(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_example_gives_printed_response() {
        let response = ResponseInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            auth: Some((1, "0a4f113b")),
        }
        .compute();
        assert_eq!(hex::encode(response), "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn without_qop_the_rfc2069_form_is_used() {
        // The RFC 2069 example's inputs; the expected value was computed with another MD5
        // implementation as MD5(HA1:nonce:HA2).
        let response = ResponseInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "CircleOfLife",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            auth: None,
        }
        .compute();
        assert_eq!(hex::encode(response), "1949323746fe6a43ef61f9606e7febea");
    }

    #[test]
    fn algorithm_names_are_written_canonically_and_read_leniently() {
        assert_eq!(Algorithm::Md5.as_str(), "MD5");
        assert_eq!(Algorithm::Sha256.as_str(), "SHA-256");
        assert_eq!(Algorithm::Sha512_256.to_string(), "SHA-512-256");
        for (name, expected) in [
            ("md5", Algorithm::Md5),
            ("MD5", Algorithm::Md5),
            ("sha-256", Algorithm::Sha256),
            ("SHA256", Algorithm::Sha256),
            ("Sha-512-256", Algorithm::Sha512_256),
        ] {
            assert_eq!(name.parse::<Algorithm>(), Ok(expected), "{name}");
        }
        for bad in ["", "MD5-sess", "SHA-256-sess", "SHA-1", "MD 5"] {
            assert_eq!(Algorithm::parse(bad), Err(AuthError::UnsupportedAlgorithm(bad.to_owned())));
        }
    }

    #[test]
    fn qop_tokens_round_trip() {
        assert_eq!(Qop::parse("AUTH"), Ok(Qop::Auth));
        assert_eq!(Qop::parse("auth-int"), Ok(Qop::AuthInt));
        assert_eq!(Qop::AuthInt.to_string(), "auth-int");
        assert!(Qop::parse("auth-conf").is_err());
    }
}
