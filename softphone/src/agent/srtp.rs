//! Media security policy: whether a call's SDP carries SDES-SRTP keys (RFC 4568, RFC 3711).
//!
//! SDES puts the SRTP master keys in the SDP in the clear, so they are only as secret as the
//! signalling: keys go into our SDP only when it travels over TLS (RFC 4568 §8.3), which
//! the account's [`Settings::transport`](super::Settings::transport) says. RFC 3264 does not
//! let an `RTP/SAVP` offer be answered with `RTP/AVP`, so a call is SRTP or plain from its
//! offer on. The policies:
//!
//! - [`SrtpPolicy::Off`]: plain `RTP/AVP` only. An offer with only `RTP/SAVP` audio gets 488.
//! - [`SrtpPolicy::Offer`] (the default): over TLS, our offers are `RTP/SAVP` with one
//!   `a=crypto` line per suite (`AES_CM_128_HMAC_SHA1_80`, then `_32`), each with a fresh key;
//!   `RTP/SAVP` offers are answered with SRTP and `RTP/AVP` ones in the clear. A peer without
//!   SRTP refuses our offer (488): call it with `off`. Over UDP or TCP, the same as `off`.
//! - [`SrtpPolicy::Require`]: over TLS, as `offer`, but an `RTP/AVP` offer gets 488. Over UDP
//!   or TCP no call can be secured: dialling fails with
//!   [`CommandError::SrtpNeedsTls`](super::CommandError::SrtpNeedsTls) and incoming calls get 488.
//!
//! A call keeps its keys for its life: re-offers repeat our lines, and answers to the peer's
//! re-offers use the same key (RFC 4568 §7.1.4 allows either; the peer may re-key its own side).

use std::fmt;
use std::str::FromStr;

use proto::sdp::{CryptoAttribute, LocalMedia};
use rand::{CryptoRng, RngCore};

/// When to use SRTP; see the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SrtpPolicy {
    /// Never: plain RTP only.
    Off,
    /// Over TLS signalling, offer SRTP and take it when offered; plain RTP when offered plain.
    #[default]
    Offer,
    /// SRTP or no call; calls fail unless the signalling is TLS.
    Require,
}

/// `require` was asked for but the signalling is not encrypted, so keys cannot be exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NeedsTls;

impl SrtpPolicy {
    /// Our media for one call: `base` with fresh keys from `rng` when the policy and the
    /// signalling allow them, without any otherwise.
    pub(super) fn media_for_call<R: RngCore + CryptoRng + ?Sized>(
        self,
        base: &LocalMedia,
        secure_signalling: bool,
        rng: &mut R,
    ) -> Result<LocalMedia, NeedsTls> {
        let plain = LocalMedia { crypto: Vec::new(), require_srtp: false, ..base.clone() };
        match (self, secure_signalling) {
            (SrtpPolicy::Off, _) | (SrtpPolicy::Offer, false) => Ok(plain),
            (SrtpPolicy::Require, false) => Err(NeedsTls),
            (policy, true) => Ok(LocalMedia {
                crypto: CryptoAttribute::offer_set(rng),
                require_srtp: policy == SrtpPolicy::Require,
                ..plain
            }),
        }
    }

    /// `off`, `offer` or `require`.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpPolicy::Off => "off",
            SrtpPolicy::Offer => "offer",
            SrtpPolicy::Require => "require",
        }
    }
}

impl fmt::Display for SrtpPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SrtpPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "off" => Ok(SrtpPolicy::Off),
            "offer" => Ok(SrtpPolicy::Offer),
            "require" => Ok(SrtpPolicy::Require),
            _ => Err(format!("unknown SRTP policy {text:?}; expected off, offer or require")),
        }
    }
}
