//! The server side: issuing nonces and verifying credentials (RFC 7616 §3.3, §3.5, §5.5;
//! RFC 3261 §22.1–§22.4).
//!
//! Nonces are stateless and unforgeable: each carries the algorithm it was issued for, its issue
//! time, this server instance's id and random bytes, sealed with an HMAC-SHA-256 tag under the
//! caller's secret and the realm. Verifying one needs no record of issued nonces. Only nonces
//! that have authenticated a request are remembered, with the highest nonce count seen, so that
//! a replayed request is refused; that table has a hard size cap.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::algorithm::ResponseInput;
use super::{Algorithm, AuthError, Challenge, Credentials, Qop};

/// How a [`DigestServer`] issues and checks nonces.
#[derive(Clone)]
pub struct DigestConfig {
    /// The realm named in challenges; credentials must carry exactly this value.
    pub realm: String,
    /// The key that seals nonces. Keep it secret; a random one per start is fine.
    pub secret: [u8; 32],
    /// The algorithms offered, one challenge each, in this order. Many phones (and SIPp) read
    /// only the first challenge and know only MD5, so MD5 usually comes first.
    pub algorithms: Vec<Algorithm>,
    /// How long a nonce is accepted; after that an authentic answer gets [`Verdict::Stale`].
    pub nonce_lifetime: Duration,
    /// Hard cap on the nonces remembered for replay protection.
    pub max_tracked_nonces: usize,
}

impl DigestConfig {
    /// The nonce lifetime used by [`DigestConfig::new`].
    pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
    /// The cap on remembered nonces used by [`DigestConfig::new`].
    pub const DEFAULT_MAX_TRACKED_NONCES: usize = 65_536;

    /// A configuration offering MD5 then SHA-256, with the default lifetime and cap.
    pub fn new(realm: impl Into<String>, secret: [u8; 32]) -> DigestConfig {
        DigestConfig {
            realm: realm.into(),
            secret,
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            nonce_lifetime: Self::DEFAULT_NONCE_LIFETIME,
            max_tracked_nonces: Self::DEFAULT_MAX_TRACKED_NONCES,
        }
    }
}

impl fmt::Debug for DigestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestConfig")
            .field("realm", &self.realm)
            .field("secret", &"<redacted>")
            .field("algorithms", &self.algorithms)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("max_tracked_nonces", &self.max_tracked_nonces)
            .finish()
    }
}

/// The outcome of checking credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are valid: let the request through.
    Ok,
    /// The password was right but the nonce is too old (or from before a restart): challenge
    /// again with `stale=true` so the client retries without asking its user.
    Stale,
    /// The credentials are refused: challenge again with `stale` false.
    Invalid(Rejection),
}

/// Why credentials were refused. A wrong password and an unknown user are both
/// [`Rejection::BadCredentials`], so the answer does not reveal which users exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The realm is not this server's.
    #[error("credentials are for another realm")]
    RealmMismatch,
    /// The algorithm is not one this server offers.
    #[error("digest algorithm not offered by this server")]
    AlgorithmNotOffered,
    /// The answer does not use `qop=auth` with `cnonce` and `nc`, which this server requires.
    #[error("credentials lack qop=auth with cnonce and nc")]
    QopRequired,
    /// The digest-uri is empty.
    #[error("credentials have an empty uri")]
    MissingUri,
    /// The nonce was not issued by this server (forged, altered or under another secret).
    #[error("nonce was not issued by this server")]
    ForgedNonce,
    /// The nonce was issued for another algorithm than the credentials use.
    #[error("nonce was issued for another digest algorithm")]
    AlgorithmMismatch,
    /// The response digest is wrong, or the user does not exist.
    #[error("wrong username or password")]
    BadCredentials,
    /// The nonce count is not above the last one accepted for this nonce: a replayed request.
    #[error("nonce count was already used: replayed request")]
    Replay,
}

/// Nonce layout before hex encoding: algorithm code, issue time, instance id, random, tag.
const ALG_LEN: usize = 1;
const TIME_LEN: usize = 8;
const INSTANCE_LEN: usize = 4;
const RANDOM_LEN: usize = 8;
const TAG_LEN: usize = 16;
const BODY_LEN: usize = ALG_LEN + TIME_LEN + INSTANCE_LEN + RANDOM_LEN;
const NONCE_LEN: usize = BODY_LEN + TAG_LEN;

/// Domain separation for the nonce MAC, so the secret can never be confused with another use.
const MAC_CONTEXT: &[u8] = b"proto sip digest nonce v1\0";

/// What an authentic nonce says about itself.
struct IssuedNonce {
    algorithm: Algorithm,
    issued: u64,
    instance: [u8; INSTANCE_LEN],
    tag: [u8; TAG_LEN],
}

fn algorithm_code(alg: Algorithm) -> u8 {
    match alg {
        Algorithm::Md5 => 1,
        Algorithm::Sha256 => 2,
        Algorithm::Sha512_256 => 3,
    }
}

fn algorithm_from_code(code: u8) -> Option<Algorithm> {
    [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256].into_iter().find(|&a| algorithm_code(a) == code)
}

/// Issues digest challenges and verifies the credentials that answer them, for one realm.
///
/// `now_secs` is any clock in whole seconds that does not go backwards (seconds since the UNIX
/// epoch, or since a fixed start). Nonces issued by an earlier instance, even with the same
/// secret, are answered [`Verdict::Stale`]; several processes cannot share nonces.
pub struct DigestServer {
    realm: String,
    /// HMAC keyed with the secret and already fed the context and realm.
    mac: Hmac<Sha256>,
    algorithms: Vec<Algorithm>,
    lifetime_secs: u64,
    max_tracked: usize,
    instance: [u8; INSTANCE_LEN],
    /// Nonces that authenticated a request, keyed by (issue time, tag), with the last `nc`.
    seen: BTreeMap<(u64, [u8; TAG_LEN]), u32>,
    /// Every nonce issued at or before this time that is not in `seen` may have been forgotten.
    forgotten_up_to: Option<u64>,
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("lifetime_secs", &self.lifetime_secs)
            .field("tracked_nonces", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// Builds a server; `rng` draws this instance's id.
    ///
    /// Fails if the realm is empty or has control characters, no algorithm is given, or the
    /// lifetime or the cap is zero.
    pub fn new<R: RngCore + ?Sized>(config: DigestConfig, rng: &mut R) -> Result<DigestServer, AuthError> {
        if config.realm.is_empty() || config.realm.chars().any(char::is_control) {
            return Err(AuthError::Config("realm must be non-empty printable text"));
        }
        if config.algorithms.is_empty() {
            return Err(AuthError::Config("offer at least one digest algorithm"));
        }
        if config.nonce_lifetime.as_secs() == 0 {
            return Err(AuthError::Config("nonce lifetime must be at least 1 s"));
        }
        if config.max_tracked_nonces == 0 {
            return Err(AuthError::Config("max_tracked_nonces must be at least 1"));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&config.secret)
            .map_err(|_| AuthError::Config("secret key rejected by HMAC"))?;
        mac.update(MAC_CONTEXT);
        mac.update(&(config.realm.len() as u64).to_be_bytes());
        mac.update(config.realm.as_bytes());
        let mut algorithms = config.algorithms;
        let mut offered = Vec::with_capacity(algorithms.len());
        algorithms.retain(|a| {
            let first = !offered.contains(a);
            offered.push(*a);
            first
        });
        let mut instance = [0; INSTANCE_LEN];
        rng.fill_bytes(&mut instance);
        Ok(DigestServer {
            realm: config.realm,
            mac,
            algorithms,
            lifetime_secs: config.nonce_lifetime.as_secs(),
            max_tracked: config.max_tracked_nonces,
            instance,
            seen: BTreeMap::new(),
            forgotten_up_to: None,
        })
    }

    /// The realm this server challenges for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How many nonces are remembered for replay protection (at most the configured cap).
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }

    /// One challenge per configured algorithm, in offer order, each with a fresh nonce and
    /// `qop="auth"`. Set `stale` when answering a [`Verdict::Stale`].
    pub fn challenges<R: RngCore + ?Sized>(&self, now_secs: u64, stale: bool, rng: &mut R) -> Vec<Challenge> {
        self.algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.realm.clone(),
                nonce: self.mint(algorithm, now_secs, rng),
                opaque: None,
                algorithm,
                qop: vec![Qop::Auth],
                stale,
            })
            .collect()
    }

    /// Checks credentials for a request with `method`, given the user's `password`, or `None`
    /// when no such user exists: that case does the same work and gives the same answer as a
    /// wrong password.
    ///
    /// Whether `creds.uri` matches the Request-URI is for the caller to check (RFC 7616 §3.4.6).
    /// An [`Verdict::Ok`] records the nonce count, so the same credentials are refused as a
    /// replay the second time.
    pub fn verify(&mut self, creds: &Credentials, method: &str, password: Option<&str>, now_secs: u64) -> Verdict {
        match self.check(creds, method, password, now_secs) {
            Ok(verdict) => verdict,
            Err(rejection) => Verdict::Invalid(rejection),
        }
    }

    fn check(
        &mut self,
        creds: &Credentials,
        method: &str,
        password: Option<&str>,
        now_secs: u64,
    ) -> Result<Verdict, Rejection> {
        if creds.realm != self.realm {
            return Err(Rejection::RealmMismatch);
        }
        if !self.algorithms.contains(&creds.algorithm) {
            return Err(Rejection::AlgorithmNotOffered);
        }
        let (Some(Qop::Auth), Some(nc), Some(cnonce)) = (creds.qop, creds.nc, creds.cnonce.as_deref()) else {
            return Err(Rejection::QopRequired);
        };
        if creds.uri.is_empty() {
            return Err(Rejection::MissingUri);
        }
        let nonce = self.open(&creds.nonce).ok_or(Rejection::ForgedNonce)?;
        if nonce.algorithm != creds.algorithm {
            return Err(Rejection::AlgorithmMismatch);
        }

        // From here on an unknown user takes exactly the path of a wrong password.
        let expected = ResponseInput {
            algorithm: creds.algorithm,
            username: &creds.username,
            realm: &creds.realm,
            password: password.unwrap_or_default(),
            method,
            uri: &creds.uri,
            nonce: &creds.nonce,
            auth: Some((nc, cnonce)),
        }
        .compute();
        let given = hex::decode(&creds.response).unwrap_or_default();
        let digest_matches: bool = expected.ct_eq(&given).into();
        if !(digest_matches & password.is_some()) {
            return Err(Rejection::BadCredentials);
        }

        let expired = now_secs.saturating_sub(nonce.issued) > self.lifetime_secs;
        if expired || nonce.instance != self.instance {
            return Ok(Verdict::Stale);
        }
        self.record_use(&nonce, nc, now_secs)
    }

    fn mint<R: RngCore + ?Sized>(&self, algorithm: Algorithm, now_secs: u64, rng: &mut R) -> String {
        let mut random = [0; RANDOM_LEN];
        rng.fill_bytes(&mut random);
        let mut raw = Vec::with_capacity(NONCE_LEN);
        raw.push(algorithm_code(algorithm));
        raw.extend_from_slice(&now_secs.to_be_bytes());
        raw.extend_from_slice(&self.instance);
        raw.extend_from_slice(&random);
        let mut mac = self.mac.clone();
        mac.update(&raw);
        let tag = mac.finalize().into_bytes();
        raw.extend_from_slice(tag.get(..TAG_LEN).unwrap_or_default());
        hex::encode(raw)
    }

    /// Decodes a nonce and checks its tag; `None` if it is not one this server issued.
    fn open(&self, nonce: &str) -> Option<IssuedNonce> {
        let mut raw = [0u8; NONCE_LEN];
        hex::decode_to_slice(nonce, &mut raw).ok()?;
        let (body, tag) = raw.split_at(BODY_LEN);
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_truncated_left(tag).ok()?;
        let (alg, rest) = body.split_first()?;
        let (issued, rest) = rest.split_first_chunk::<TIME_LEN>()?;
        let (instance, _random) = rest.split_first_chunk::<INSTANCE_LEN>()?;
        Some(IssuedNonce {
            algorithm: algorithm_from_code(*alg)?,
            issued: u64::from_be_bytes(*issued),
            instance: *instance,
            tag: tag.try_into().ok()?,
        })
    }

    /// Replay protection for an authentic, fresh nonce whose digest matched.
    fn record_use(&mut self, nonce: &IssuedNonce, nc: u32, now_secs: u64) -> Result<Verdict, Rejection> {
        self.forget_expired(now_secs);
        let key = (nonce.issued, nonce.tag);
        if let Some(last) = self.seen.get_mut(&key) {
            if nc <= *last {
                return Err(Rejection::Replay);
            }
            *last = nc;
            return Ok(Verdict::Ok);
        }
        if self.forgotten_up_to.is_some_and(|t| nonce.issued <= t) {
            // It may have been used and forgotten: its nonce counts are unknown.
            return Ok(Verdict::Stale);
        }
        if self.seen.len() >= self.max_tracked {
            self.forget_oldest();
        }
        self.seen.insert(key, nc);
        Ok(Verdict::Ok)
    }

    fn forget_expired(&mut self, now_secs: u64) {
        while self
            .seen
            .first_key_value()
            .is_some_and(|((issued, _), _)| now_secs.saturating_sub(*issued) > self.lifetime_secs)
        {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(((issued, _), _)) = self.seen.pop_first() {
            self.forgotten_up_to = Some(self.forgotten_up_to.map_or(issued, |t| t.max(issued)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{choose, respond};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const REALM: &str = "example.com";
    const URI: &str = "sip:example.com";

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    fn config(algorithms: Vec<Algorithm>) -> DigestConfig {
        DigestConfig { algorithms, ..DigestConfig::new(REALM, [7; 32]) }
    }

    fn server(config: DigestConfig) -> DigestServer {
        DigestServer::new(config, &mut rng()).expect("valid config")
    }

    fn challenge(server: &DigestServer, alg: Algorithm, now: u64) -> Challenge {
        server.challenges(now, false, &mut rng()).into_iter().find(|c| c.algorithm == alg).expect("algorithm offered")
    }

    fn answer(c: &Challenge, password: &str, nc: u32) -> Credentials {
        respond(c, "REGISTER", URI, "1001", password, "cn0nce", nc)
    }

    #[test]
    fn challenges_follow_offer_order_with_qop_auth() {
        let s = server(DigestConfig::new(REALM, [1; 32]));
        let cs = s.challenges(1000, true, &mut rng());
        let algs: Vec<_> = cs.iter().map(|c| c.algorithm).collect();
        assert_eq!(algs, [Algorithm::Md5, Algorithm::Sha256]);
        for c in &cs {
            assert_eq!(c.realm, REALM);
            assert_eq!(c.qop, [Qop::Auth]);
            assert!(c.stale);
            assert_eq!(c.nonce.len(), 2 * NONCE_LEN);
        }
        assert_ne!(cs[0].nonce, cs[1].nonce);
    }

    #[test]
    fn round_trip_through_headers_verifies_for_each_algorithm() {
        for alg in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256] {
            let mut s = server(config(vec![alg]));
            let sent: Vec<String> = s.challenges(1000, false, &mut rng()).iter().map(Challenge::to_string).collect();
            let received: Vec<Challenge> =
                sent.iter().map(|h| Challenge::parse(h).expect("own challenge parses")).collect();
            let chosen = choose(&received).expect("one usable challenge");
            let header = answer(chosen, "secret", 1).to_string();
            let creds = Credentials::parse(&header).expect("own credentials parse");
            assert_eq!(creds.algorithm, alg);
            assert_eq!(s.verify(&creds, "REGISTER", Some("secret"), 1010), Verdict::Ok, "{alg}");
        }
    }

    #[test]
    fn client_picks_sha256_from_the_default_offer_and_verifies() {
        let mut s = server(DigestConfig::new(REALM, [3; 32]));
        let offer = s.challenges(50, false, &mut rng());
        let chosen = choose(&offer).expect("usable");
        assert_eq!(chosen.algorithm, Algorithm::Sha256);
        let creds = answer(chosen, "pw", 1);
        assert_eq!(s.verify(&creds, "REGISTER", Some("pw"), 50), Verdict::Ok);
    }

    #[test]
    fn wrong_password_and_unknown_user_get_identical_verdicts() {
        let mut s = server(config(vec![Algorithm::Md5]));
        let c = challenge(&s, Algorithm::Md5, 100);
        let creds = answer(&c, "guess", 1);
        let wrong = s.verify(&creds, "REGISTER", Some("right"), 100);
        let unknown = s.verify(&creds, "REGISTER", None, 100);
        assert_eq!(wrong, Verdict::Invalid(Rejection::BadCredentials));
        assert_eq!(wrong, unknown);
        // Even a response computed with the empty password the unknown-user path hashes with.
        let empty = answer(&c, "", 1);
        assert_eq!(s.verify(&empty, "REGISTER", None, 100), unknown);
        assert_eq!(s.tracked_nonces(), 0, "failures record nothing");
    }

    #[test]
    fn stale_nonce_gets_stale_only_with_the_right_password() {
        let mut s = server(config(vec![Algorithm::Sha256]));
        let c = challenge(&s, Algorithm::Sha256, 1000);
        let creds = answer(&c, "pw", 1);
        let lifetime = DigestConfig::DEFAULT_NONCE_LIFETIME.as_secs();
        let late = 1000 + lifetime + 1;
        assert_eq!(s.verify(&creds, "REGISTER", Some("pw"), late), Verdict::Stale);
        assert_eq!(s.verify(&creds, "REGISTER", Some("other"), late), Verdict::Invalid(Rejection::BadCredentials));
        assert_eq!(
            s.verify(&creds, "REGISTER", Some("pw"), 1000 + lifetime),
            Verdict::Ok,
            "still fresh at exactly the lifetime"
        );
    }

    #[test]
    fn nonce_from_a_previous_instance_is_stale() {
        let before = server(config(vec![Algorithm::Md5]));
        let c = challenge(&before, Algorithm::Md5, 10);
        let mut after = DigestServer::new(config(vec![Algorithm::Md5]), &mut StdRng::seed_from_u64(9)).expect("valid");
        let creds = answer(&c, "pw", 1);
        assert_eq!(after.verify(&creds, "REGISTER", Some("pw"), 11), Verdict::Stale);
    }

    #[test]
    fn forged_and_tampered_nonces_are_refused() {
        let mut s = server(config(vec![Algorithm::Md5]));
        let c = challenge(&s, Algorithm::Md5, 500);
        let mut raw = hex::decode(&c.nonce).expect("hex nonce");
        let forged = |nonce: String| Challenge { nonce, ..c.clone() };

        // Move the issue time forward to dodge expiry.
        raw[ALG_LEN + TIME_LEN - 1] ^= 1;
        let tampered = forged(hex::encode(&raw));
        let other_secret = server(DigestConfig { secret: [8; 32], ..config(vec![Algorithm::Md5]) });
        let foreign = challenge(&other_secret, Algorithm::Md5, 500);
        for bad in [
            tampered,
            foreign,
            forged("00".repeat(NONCE_LEN)),
            forged(c.nonce[..c.nonce.len() - 2].to_owned()),
            forged(format!("{}zz", &c.nonce[..c.nonce.len() - 2])),
            forged(String::new()),
            forged("é".repeat(NONCE_LEN)),
        ] {
            let creds = answer(&bad, "pw", 1);
            assert_eq!(
                s.verify(&creds, "REGISTER", Some("pw"), 500),
                Verdict::Invalid(Rejection::ForgedNonce),
                "{}",
                bad.nonce
            );
        }
        let good = answer(&c, "pw", 1);
        assert_eq!(s.verify(&good, "REGISTER", Some("pw"), 500), Verdict::Ok);
    }

    #[test]
    fn nonce_used_with_another_algorithm_is_refused() {
        let mut s = server(DigestConfig::new(REALM, [2; 32]));
        let mut c = challenge(&s, Algorithm::Md5, 0);
        c.algorithm = Algorithm::Sha256;
        let creds = answer(&c, "pw", 1);
        assert_eq!(s.verify(&creds, "REGISTER", Some("pw"), 0), Verdict::Invalid(Rejection::AlgorithmMismatch));
    }

    #[test]
    fn replayed_nonce_count_is_refused() {
        let mut s = server(config(vec![Algorithm::Md5]));
        let c = challenge(&s, Algorithm::Md5, 0);
        let first = answer(&c, "pw", 1);
        assert_eq!(s.verify(&first, "REGISTER", Some("pw"), 0), Verdict::Ok);
        assert_eq!(s.verify(&first, "REGISTER", Some("pw"), 1), Verdict::Invalid(Rejection::Replay));
        let third = answer(&c, "pw", 3);
        assert_eq!(s.verify(&third, "REGISTER", Some("pw"), 2), Verdict::Ok);
        let second = answer(&c, "pw", 2);
        assert_eq!(
            s.verify(&second, "REGISTER", Some("pw"), 3),
            Verdict::Invalid(Rejection::Replay),
            "a count below the highest seen is a replay too"
        );
    }

    #[test]
    fn requests_that_cannot_be_checked_are_refused_with_their_reason() {
        let mut s = server(config(vec![Algorithm::Md5]));
        let c = challenge(&s, Algorithm::Md5, 0);
        let good = answer(&c, "pw", 1);
        let cases = [
            (Credentials { realm: "other".into(), ..good.clone() }, Rejection::RealmMismatch),
            (Credentials { algorithm: Algorithm::Sha256, ..good.clone() }, Rejection::AlgorithmNotOffered),
            (Credentials { qop: None, ..good.clone() }, Rejection::QopRequired),
            (Credentials { nc: None, ..good.clone() }, Rejection::QopRequired),
            (Credentials { qop: Some(Qop::AuthInt), ..good.clone() }, Rejection::QopRequired),
            (Credentials { uri: String::new(), ..good.clone() }, Rejection::MissingUri),
            (Credentials { response: "zz".into(), ..good.clone() }, Rejection::BadCredentials),
            (Credentials { uri: "sip:elsewhere".into(), ..good.clone() }, Rejection::BadCredentials),
            (Credentials { username: "1002".into(), ..good.clone() }, Rejection::BadCredentials),
        ];
        for (creds, reason) in cases {
            assert_eq!(s.verify(&creds, "REGISTER", Some("pw"), 0), Verdict::Invalid(reason));
        }
        assert_eq!(
            s.verify(&good, "INVITE", Some("pw"), 0),
            Verdict::Invalid(Rejection::BadCredentials),
            "the method is part of the digest"
        );
        let upper = Credentials { response: good.response.to_uppercase(), ..good };
        assert_eq!(s.verify(&upper, "REGISTER", Some("pw"), 0), Verdict::Ok);
    }

    #[test]
    fn rfc2069_answer_is_refused() {
        let mut s = server(config(vec![Algorithm::Md5]));
        let mut c = challenge(&s, Algorithm::Md5, 0);
        c.qop.clear();
        let creds = answer(&c, "pw", 1);
        assert_eq!(s.verify(&creds, "REGISTER", Some("pw"), 0), Verdict::Invalid(Rejection::QopRequired));
    }

    #[test]
    fn nonce_table_stays_bounded_and_forgotten_nonces_turn_stale() {
        const CAP: usize = 4096;
        let mut s = server(DigestConfig { max_tracked_nonces: CAP, ..config(vec![Algorithm::Md5]) });
        let mut r = rng();
        let first = s.challenges(0, false, &mut r).remove(0);
        assert_eq!(s.verify(&answer(&first, "pw", 1), "REGISTER", Some("pw"), 0), Verdict::Ok);
        let mut last = first.clone();
        for i in 0..100_000u64 {
            let now = 1 + i / 1000; // 1000 new nonces a second, all within the lifetime
            last = s.challenges(now, false, &mut r).remove(0);
            assert_eq!(s.verify(&answer(&last, "pw", 1), "REGISTER", Some("pw"), now), Verdict::Ok);
            assert!(s.tracked_nonces() <= CAP);
        }
        assert_eq!(s.tracked_nonces(), CAP);
        // The first nonce was pushed out: its next use cannot be told from a replay.
        assert_eq!(s.verify(&answer(&first, "pw", 2), "REGISTER", Some("pw"), 100), Verdict::Stale);
        // The newest is still tracked.
        assert_eq!(s.verify(&answer(&last, "pw", 1), "REGISTER", Some("pw"), 100), Verdict::Invalid(Rejection::Replay));
    }

    #[test]
    fn expired_nonces_leave_the_table() {
        let mut s = server(config(vec![Algorithm::Md5]));
        let mut r = rng();
        for now in 0..100 {
            let c = s.challenges(now, false, &mut r).remove(0);
            assert_eq!(s.verify(&answer(&c, "pw", 1), "REGISTER", Some("pw"), now), Verdict::Ok);
        }
        assert_eq!(s.tracked_nonces(), 100);
        let later = 99 + DigestConfig::DEFAULT_NONCE_LIFETIME.as_secs() + 1;
        let c = s.challenges(later, false, &mut r).remove(0);
        assert_eq!(s.verify(&answer(&c, "pw", 1), "REGISTER", Some("pw"), later), Verdict::Ok);
        assert_eq!(s.tracked_nonces(), 1);
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = [
            DigestConfig::new("", [0; 32]),
            DigestConfig::new("a\r\nb", [0; 32]),
            config(vec![]),
            DigestConfig { nonce_lifetime: Duration::from_millis(500), ..config(vec![Algorithm::Md5]) },
            DigestConfig { max_tracked_nonces: 0, ..config(vec![Algorithm::Md5]) },
        ];
        for c in bad {
            assert!(matches!(DigestServer::new(c, &mut rng()), Err(AuthError::Config(_))));
        }
    }

    #[test]
    fn duplicate_algorithms_are_offered_once() {
        let s = server(config(vec![Algorithm::Md5, Algorithm::Sha256, Algorithm::Md5]));
        assert_eq!(s.challenges(0, false, &mut rng()).len(), 2);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let text = format!("{:?}", DigestConfig::new(REALM, [0xab; 32]));
        assert!(!text.contains("171"), "{text}");
        assert!(text.contains("redacted"));
    }
}
