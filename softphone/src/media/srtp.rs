//! The SRTP edge of a call's media (RFC 3711, keys from SDES, RFC 4568): what
//! [`super::MediaSession`] writes is sealed here before it goes on the wire, and what arrives is
//! opened here before the session sees it. Each direction has its own context under its own
//! master key ([`SrtpKeys`]); RTP and RTCP on one socket are told apart as RFC 5761 §4 does.
//!
//! A re-INVITE that keeps a key keeps its context (and so its rollover counter and replay
//! window); a new key from either side starts a fresh context for that direction only.

use proto::rtp::packet::is_rtcp;
use proto::rtp::srtp::{SrtpContext, SrtpError};
use proto::sdp::SrtpKeys;

/// Both directions' contexts and the buffers packets pass through.
#[derive(Debug)]
pub(super) struct MediaCrypto {
    keys: SrtpKeys,
    outbound: SrtpContext,
    inbound: SrtpContext,
    pub(super) wire: Vec<u8>,
    pub(super) plain: Vec<u8>,
}

impl MediaCrypto {
    pub(super) fn new(keys: &SrtpKeys) -> MediaCrypto {
        MediaCrypto {
            outbound: SrtpContext::new(keys.profile, &keys.send, keys.send_mki),
            inbound: SrtpContext::new(keys.profile, &keys.receive, keys.receive_mki),
            keys: keys.clone(),
            wire: Vec::with_capacity(1500),
            plain: Vec::with_capacity(1500),
        }
    }

    /// The keys in use.
    pub(super) fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// Takes a new agreement on the same suite: a direction whose key changed starts afresh.
    pub(super) fn rekey(&mut self, keys: &SrtpKeys) {
        if (&keys.send, keys.send_mki) != (&self.keys.send, self.keys.send_mki) {
            self.outbound = SrtpContext::new(keys.profile, &keys.send, keys.send_mki);
        }
        if (&keys.receive, keys.receive_mki) != (&self.keys.receive, self.keys.receive_mki) {
            self.inbound = SrtpContext::new(keys.profile, &keys.receive, keys.receive_mki);
        }
        self.keys = keys.clone();
    }

    /// Protects one of our RTP or RTCP packets into [`MediaCrypto::wire`].
    pub(super) fn seal(&mut self, plain: &[u8]) -> Result<(), SrtpError> {
        if is_rtcp(plain) {
            self.outbound.protect_rtcp(plain, &mut self.wire)
        } else {
            self.outbound.protect_rtp(plain, &mut self.wire)
        }
    }

    /// Authenticates and decrypts one received datagram into `plain`.
    pub(super) fn open(&mut self, datagram: &[u8], plain: &mut Vec<u8>) -> Result<(), SrtpError> {
        if is_rtcp(datagram) {
            self.inbound.unprotect_rtcp(datagram, plain)
        } else {
            self.inbound.unprotect_rtp(datagram, plain)
        }
    }
}
