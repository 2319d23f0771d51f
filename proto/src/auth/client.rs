//! The client side: answering a challenge (RFC 7616 §3.4; RFC 3261 §22.2–§22.3).

use super::algorithm::ResponseInput;
use super::{Challenge, Credentials, Qop};

/// Answers `challenge` for a request with `method` and Request-URI `uri`.
///
/// With `qop="auth"` offered, the answer uses `qop=auth` with the given client nonce and nonce
/// count (1 for the first request with this nonce, then one more per request). Without a qop
/// list, it is the RFC 2069 form: no `qop`, `cnonce` or `nc`. A challenge offering only
/// `auth-int` gets the RFC 2069 form too, which the server will refuse: [`choose`] skips such
/// challenges.
pub fn respond(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Credentials {
    let use_qop = challenge.qop.contains(&Qop::Auth);
    let response = ResponseInput {
        algorithm: challenge.algorithm,
        username,
        realm: &challenge.realm,
        password,
        method,
        uri,
        nonce: &challenge.nonce,
        auth: use_qop.then_some((nc, cnonce)),
    }
    .compute();
    Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response: hex::encode(response),
        algorithm: challenge.algorithm,
        cnonce: use_qop.then(|| cnonce.to_owned()),
        opaque: challenge.opaque.clone(),
        qop: use_qop.then_some(Qop::Auth),
        nc: use_qop.then_some(nc),
    }
}

/// Picks the challenge to answer among several for one realm: the strongest algorithm
/// (SHA-512-256, then SHA-256, then MD5, per RFC 8760 §2.4), and among equals the first.
///
/// Challenges that can only be answered with `auth-int` are skipped. A response with several
/// realms (a proxy and a registrar) needs one answer per realm (RFC 3261 §22.3): group the
/// challenges by realm first.
pub fn choose(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .filter(|c| c.qop.is_empty() || c.qop.contains(&Qop::Auth))
        .rev()
        .max_by_key(|c| c.algorithm.strength())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Algorithm;

    fn challenge(algorithm: Algorithm, qop: Vec<Qop>, nonce: &str) -> Challenge {
        Challenge { realm: "example.com".into(), nonce: nonce.into(), opaque: None, algorithm, qop, stale: false }
    }

    #[test]
    fn respond_reproduces_the_rfc7616_example() {
        let mut c =
            challenge(Algorithm::Sha256, vec![Qop::Auth, Qop::AuthInt], "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
        c.realm = "http-auth@example.org".into();
        c.opaque = Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into());
        let creds = respond(
            &c,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert_eq!(creds.response, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
        assert_eq!(creds.qop, Some(Qop::Auth));
        assert_eq!(creds.nc, Some(1));
        assert_eq!(creds.opaque, c.opaque);
        assert_eq!(creds.algorithm, Algorithm::Sha256);
    }

    #[test]
    fn respond_without_qop_uses_rfc2069_form() {
        let mut c = challenge(Algorithm::Md5, vec![], "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        c.realm = "testrealm@host.com".into();
        let creds = respond(&c, "GET", "/dir/index.html", "Mufasa", "CircleOfLife", "x", 1);
        assert_eq!(creds.response, "1949323746fe6a43ef61f9606e7febea");
        assert_eq!((creds.qop, creds.nc, creds.cnonce), (None, None, None));
    }

    #[test]
    fn choose_prefers_sha256_over_md5_whatever_the_order() {
        let md5 = challenge(Algorithm::Md5, vec![Qop::Auth], "a");
        let sha = challenge(Algorithm::Sha256, vec![Qop::Auth], "b");
        assert_eq!(choose(&[md5.clone(), sha.clone()]), Some(&sha));
        assert_eq!(choose(&[sha.clone(), md5.clone()]), Some(&sha));
        assert_eq!(choose(std::slice::from_ref(&md5)), Some(&md5));
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn choose_takes_the_first_among_equals() {
        let first = challenge(Algorithm::Md5, vec![Qop::Auth], "first");
        let second = challenge(Algorithm::Md5, vec![Qop::Auth], "second");
        assert_eq!(choose(&[first.clone(), second]), Some(&first));
    }

    #[test]
    fn choose_skips_challenges_needing_auth_int() {
        let auth_int = challenge(Algorithm::Sha256, vec![Qop::AuthInt], "a");
        let md5 = challenge(Algorithm::Md5, vec![Qop::Auth], "b");
        assert_eq!(choose(&[auth_int.clone(), md5.clone()]), Some(&md5));
        assert_eq!(choose(&[auth_int]), None);
    }
}
