//! SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.
//!
//! This module owns everything between a `WWW-Authenticate` / `Proxy-Authenticate` challenge and
//! the `Authorization` / `Proxy-Authorization` answer to it:
//!
//! - [`Challenge`] and [`Credentials`]: the header values, parsed leniently and written strictly
//!   (RFC 7616 §3.3, §3.4; RFC 3261 §25.1).
//! - [`DigestServer`]: issues stateless, unforgeable nonces and verifies answers with `qop=auth`,
//!   telling a stale nonce from a wrong password and refusing replayed nonce counts
//!   (RFC 7616 §3.3, §5.5).
//! - [`respond`] and [`choose`]: the client side (RFC 7616 §3.4.1; RFC 8760 §2.4 for the
//!   preference of SHA-256 over MD5).
//! - [`FailureLimiter`]: a per-source throttle of repeated failures (RFC 7616 §5.4 notes the
//!   offline guessing risk that makes it worthwhile).
//!
//! Nothing here reads a clock or a random source: the caller passes `now` and an `RngCore`.
//!
//! ```
//! use proto::auth::{Challenge, Credentials, DigestConfig, DigestServer, Verdict, choose, respond};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let mut rng = StdRng::seed_from_u64(1);
//! let mut server = DigestServer::new(DigestConfig::new("example.com", [9; 32]), &mut rng)?;
//! // 401 Unauthorized: one WWW-Authenticate header per challenge.
//! let challenges = server.challenges(1_000, false, &mut rng);
//! let headers: Vec<String> = challenges.iter().map(Challenge::to_string).collect();
//!
//! // The client answers the best challenge it understands.
//! let offered: Vec<Challenge> = headers.iter().filter_map(|h| Challenge::parse(h).ok()).collect();
//! let chosen = choose(&offered).expect("a usable challenge");
//! let answer = respond(chosen, "REGISTER", "sip:example.com", "1001", "pw", "c1", 1);
//! let authorization = answer.to_string();
//!
//! // The server checks the retried request.
//! let creds = Credentials::parse(&authorization)?;
//! assert_eq!(server.verify(&creds, "REGISTER", Some("pw"), 1_001), Verdict::Ok);
//! # Ok::<(), proto::auth::AuthError>(())
//! ```

mod algorithm;
mod client;
mod header;
mod limiter;
mod server;

pub use algorithm::{Algorithm, Qop};
pub use client::{choose, respond};
pub use header::{Challenge, Credentials};
pub use limiter::{FailureLimiter, LimiterConfig};
pub use server::{DigestConfig, DigestServer, Rejection, Verdict};

/// What was wrong with a digest header value or a digest configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The header value is empty or only whitespace.
    #[error("empty authentication header: expected `Digest` followed by parameters")]
    Empty,
    /// The scheme is not `Digest` (for example `Basic`), which SIP does not use (RFC 3261 §22).
    #[error("authentication scheme {0:?} is not supported: only `Digest` is")]
    NotDigest(String),
    /// The parameter list does not follow `name=value, name="value", …`.
    #[error("malformed digest parameters at byte {at}: expected {expected}")]
    Syntax {
        /// Byte offset into the header value.
        at: usize,
        /// What the parser was looking for there.
        expected: &'static str,
    },
    /// A quoted string has no closing quote.
    #[error("quoted string opened at byte {at} is never closed: add the closing `\"`")]
    UnterminatedQuote {
        /// Byte offset of the opening quote.
        at: usize,
    },
    /// A control character (such as CR, LF or NUL) appears where header text is expected.
    #[error("control character at byte {at}: header values must be printable text")]
    ControlCharacter {
        /// Byte offset of the character.
        at: usize,
    },
    /// A parameter that may appear once appears twice (RFC 7616 §3.3).
    #[error("parameter `{0}` appears more than once: each may appear only once")]
    DuplicateParam(String),
    /// A required parameter is absent.
    #[error("required parameter `{0}` is missing")]
    MissingParam(&'static str),
    /// The algorithm is not one this implementation computes.
    #[error("digest algorithm {0:?} is not supported: use MD5, SHA-256 or SHA-512-256")]
    UnsupportedAlgorithm(String),
    /// The quality of protection is not one this implementation knows.
    #[error("qop {0:?} is not supported: use auth")]
    UnsupportedQop(String),
    /// The nonce count is not 8 hexadecimal digits (RFC 7616 §3.4).
    #[error("nonce count {0:?} is not 8 hexadecimal digits")]
    BadNonceCount(String),
    /// A [`DigestConfig`] value cannot work.
    #[error("invalid digest configuration: {0}")]
    Config(&'static str),
}
