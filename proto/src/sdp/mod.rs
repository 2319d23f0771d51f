//! SDP for audio calls: the session description model (RFC 4566) and the offer/answer exchange
//! on top of it (RFC 3264), sans-IO and deterministic.
//!
//! This module owns:
//!
//! - [`SessionDescription`] and its parts: a small owned model that keeps every `m=` line in
//!   order, the `a=crypto` lines (RFC 4568 §9.1) and every attribute it does not model, verbatim.
//!   [`parse`] reads it and [`SessionDescription`]'s `Display` writes RFC 4566 §5 text with CRLF
//!   and the fields in the order the RFC lists them.
//! - [`CryptoAttribute`]: SDES `a=crypto` (RFC 4568 §9.1) read and written, and the choice of a
//!   crypto suite for an `RTP/SAVP` stream (§7): [`LocalMedia::crypto`] in, [`SrtpKeys`] out.
//! - [`Codec`] and [`FormatParams`]: rtpmap/fmtp (RFC 4566 §6), the static payload types of
//!   RFC 3551 §6, Opus (RFC 7587) and telephone-event (RFC 4733).
//! - [`create_offer`], [`create_reoffer`], [`create_answer`] and [`apply_answer`]: the RFC 3264
//!   §5, §6.1, §7 and §8 rules for one audio stream, ending in a [`Negotiated`] that says where to
//!   send what.
//!
//! Reading uses the `webrtc-sdp` crate's line grammar. Its document assembly drops what a
//! telephone needs (unknown protocols such as T.38 and MSRP, `a=crypto`, unknown attributes) and
//! its fmtp handling misreads and rewrites parameters, so `read.rs` is the one place that works
//! around it; each gap has a test there named for it.
//!
//! ```
//! use proto::sdp::{create_answer, parse, Direction, LocalMedia};
//!
//! let offer = parse(concat!(
//!     "v=0\r\n",
//!     "o=- 1 1 IN IP4 192.0.2.1\r\n",
//!     "s=-\r\n",
//!     "c=IN IP4 192.0.2.1\r\n",
//!     "t=0 0\r\n",
//!     "m=audio 4000 RTP/AVP 0 101\r\n",
//!     "a=rtpmap:101 telephone-event/8000\r\n",
//!     "a=fmtp:101 0-16\r\n",
//!     "a=sendonly\r\n",
//! ))?;
//! let local = LocalMedia::new("192.0.2.2".parse().unwrap(), 5000);
//! let (answer, negotiated) = create_answer(&offer, &local, 7, 1)?;
//! assert_eq!(negotiated.codec.name, "PCMU");
//! assert_eq!(negotiated.direction, Direction::RecvOnly);
//! assert!(answer.to_string().contains("m=audio 5000 RTP/AVP 0 101\r\n"));
//! # Ok::<(), proto::sdp::SdpError>(())
//! ```

mod codec;
mod crypto;
mod model;
mod negotiate;
mod read;

#[cfg(test)]
#[macro_use]
mod fixtures;
#[cfg(test)]
mod tests;

pub use codec::{Codec, FormatParams};
pub use crypto::{CryptoAttribute, CryptoError};
pub use model::{Attribute, Direction, Fmtp, MediaKind, MediaSection, Origin, Rtcp, RtpMap, SessionDescription};
pub use negotiate::{
    LocalMedia, Negotiated, SrtpKeys, TelephoneEvent, apply_answer, create_answer, create_offer, create_reoffer,
};
pub use read::parse;

/// What was wrong with a session description, or why an offer/answer exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line does not follow RFC 4566 §5.
    #[error("SDP line {line} ({text:?}): {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The line, shortened and stripped of control characters.
        text: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The description is not shaped as RFC 4566 §5 or RFC 3264 §6 requires: a line it cannot do
    /// without is missing or out of place, or an answer's `m=` lines do not match the offer's.
    #[error("malformed SDP: {0}")]
    Structure(&'static str),
    /// The offer's audio has no codec we can use: answer 488 Not Acceptable Here (RFC 3261 §13.3.1.2).
    #[error("none of the offered audio codecs is one we use: answer 488 Not Acceptable Here")]
    NoCommonCodec,
    /// The offer has no active audio stream we could take: only video, or only `RTP/SAVP` when
    /// we have no SRTP keys to answer with. Answer 488 Not Acceptable Here.
    #[error("the offer has no active audio stream in a profile we use: answer 488 Not Acceptable Here")]
    NoUsableAudio,
    /// The offer's audio is plain RTP but our policy requires SRTP: answer 488 Not Acceptable
    /// Here (RFC 4568 §7.1.2).
    #[error("the offer's audio is plain RTP/AVP and SRTP is required: answer 488 Not Acceptable Here")]
    SrtpRequired,
    /// The offer's `RTP/SAVP` audio has no `a=crypto` line we can use (unknown suites, several
    /// keys, unsupported parameters): answer 488 Not Acceptable Here (RFC 4568 §7.1.2).
    #[error("none of the offered a=crypto lines is usable (we take AES_CM_128_HMAC_SHA1_80/_32): answer 488")]
    NoCryptoSuite,
    /// The answer's `a=crypto` does not fit our `RTP/SAVP` offer: none, or not a tag and suite we
    /// offered (RFC 4568 §7.1.3). The call has no usable media security: end it.
    #[error("the answer's a=crypto does not match our offer: {0}")]
    CryptoAnswer(&'static str),
    /// The audio stream we would use has no `c=` line at media or session level (RFC 4566 §5.7).
    #[error("media section {media} has no connection address (c=) at media or session level")]
    MissingConnection {
        /// Index of the media section.
        media: usize,
    },
    /// An answer does not have one `m=` line per offered one, in the same order (RFC 3264 §6).
    #[error("the answer has {answered} media sections for {offered} offered: it must answer each one in order")]
    AnswerMismatch {
        /// Media sections in our offer.
        offered: usize,
        /// Media sections in the answer.
        answered: usize,
    },
    /// The answer rejected our audio stream with port 0 (RFC 3264 §6): the call has no audio.
    #[error("the answer rejected the audio stream (port 0): end the call or offer other codecs")]
    AudioRejected,
}
