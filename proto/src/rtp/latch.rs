//! Symmetric RTP (RFC 4961): send to where the far end's media really comes from.
//!
//! Behind NAT, the address in the far end's SDP is often not where its packets come from, and
//! only that source address reaches it. [`RemoteAddress`] starts at the signalled address and
//! latches onto the source of valid RTP of a negotiated payload type. The first such packet picks
//! the stream's SSRC; after that, only packets of that SSRC move the latch (a NAT rebinding), so
//! a stranger spraying RTP at our port cannot steal the media. A new SSRC is adopted only from
//! the address already latched (the far end restarted its stream).
//!
//! Feed it packets that parsed as RTP and, ideally, passed [`ReceiverStats`] probation
//! (`SeqStatus::Valid`), so a single forged packet is not enough.
//!
//! [`ReceiverStats`]: super::stats::ReceiverStats

use std::net::SocketAddr;

use super::packet::RtpHeader;

/// Where to send our RTP (or RTCP), learned from what arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAddress {
    signalled: SocketAddr,
    latched: Option<SocketAddr>,
    ssrc: Option<u32>,
    payload_types: Vec<u8>,
}

impl RemoteAddress {
    /// Starts at the address from the far end's SDP, accepting the negotiated `payload_types`.
    pub fn new(signalled: SocketAddr, payload_types: &[u8]) -> Self {
        RemoteAddress { signalled, latched: None, ssrc: None, payload_types: payload_types.to_vec() }
    }

    /// Where to send now.
    pub fn target(&self) -> SocketAddr {
        self.latched.unwrap_or(self.signalled)
    }

    /// The SSRC latched onto, if any.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Whether [`on_rtp`](Self::on_rtp) would take this packet: a negotiated payload type, and
    /// the latched SSRC or a new one from the latched address.
    pub fn accepts(&self, from: SocketAddr, header: &RtpHeader) -> bool {
        self.payload_types.contains(&header.payload_type)
            && (self.ssrc.is_none_or(|ssrc| ssrc == header.ssrc) || Some(from) == self.latched)
    }

    /// Considers an RTP packet from `from`; returns true if the target changed.
    pub fn on_rtp(&mut self, from: SocketAddr, header: &RtpHeader) -> bool {
        if !self.accepts(from, header) {
            return false;
        }
        self.ssrc = Some(header.ssrc);
        self.latch(from)
    }

    /// For the RTCP address of a session without rtcp-mux: considers an RTCP packet from `from`
    /// whose sender is `sender_ssrc`, latching only if that is `media_ssrc`, the SSRC the RTP
    /// latch picked. Returns true if the target changed.
    pub fn on_rtcp(&mut self, from: SocketAddr, sender_ssrc: u32, media_ssrc: Option<u32>) -> bool {
        media_ssrc == Some(sender_ssrc) && self.latch(from)
    }

    fn latch(&mut self, from: SocketAddr) -> bool {
        let changed = self.target() != from;
        self.latched = Some(from);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn rtp(ssrc: u32, payload_type: u8) -> RtpHeader {
        RtpHeader { ssrc, payload_type, ..RtpHeader::default() }
    }

    #[test]
    fn sends_to_the_signalled_address_until_media_arrives() {
        let mut remote = RemoteAddress::new(addr("192.0.2.10:4000"), &[111]);
        assert_eq!(remote.target(), addr("192.0.2.10:4000"));
        assert!(remote.on_rtp(addr("198.51.100.7:61000"), &rtp(5, 111)));
        assert_eq!(remote.target(), addr("198.51.100.7:61000"));
        assert_eq!(remote.ssrc(), Some(5));
        assert!(!remote.on_rtp(addr("198.51.100.7:61000"), &rtp(5, 111)), "no change");
    }

    #[test]
    fn ignores_unnegotiated_payload_types_and_other_ssrcs_from_elsewhere() {
        let mut remote = RemoteAddress::new(addr("192.0.2.10:4000"), &[111, 0]);
        assert!(!remote.on_rtp(addr("203.0.113.9:1"), &rtp(5, 96)));
        assert_eq!(remote.target(), addr("192.0.2.10:4000"));
        remote.on_rtp(addr("198.51.100.7:61000"), &rtp(5, 0));
        assert!(!remote.on_rtp(addr("203.0.113.9:1"), &rtp(6, 111)), "a stranger cannot steal the media");
        assert_eq!(remote.target(), addr("198.51.100.7:61000"));
    }

    #[test]
    fn follows_the_same_ssrc_to_a_new_address_after_nat_rebinding() {
        let mut remote = RemoteAddress::new(addr("192.0.2.10:4000"), &[111]);
        remote.on_rtp(addr("198.51.100.7:61000"), &rtp(5, 111));
        assert!(remote.on_rtp(addr("198.51.100.7:62000"), &rtp(5, 111)));
        assert_eq!(remote.target(), addr("198.51.100.7:62000"));
    }

    #[test]
    fn adopts_a_new_ssrc_only_from_the_latched_address() {
        let mut remote = RemoteAddress::new(addr("192.0.2.10:4000"), &[111]);
        remote.on_rtp(addr("198.51.100.7:61000"), &rtp(5, 111));
        assert!(!remote.on_rtp(addr("198.51.100.7:61000"), &rtp(9, 111)));
        assert_eq!(remote.ssrc(), Some(9));
    }

    #[test]
    fn rtcp_moves_the_latch_only_for_the_media_ssrc() {
        let mut media = RemoteAddress::new(addr("192.0.2.10:4000"), &[111]);
        let mut rtcp = RemoteAddress::new(addr("192.0.2.10:4001"), &[]);
        assert!(!rtcp.on_rtcp(addr("198.51.100.7:61001"), 5, media.ssrc()), "no SSRC known yet");
        media.on_rtp(addr("198.51.100.7:61000"), &rtp(5, 111));
        assert!(rtcp.on_rtcp(addr("198.51.100.7:61001"), 5, media.ssrc()));
        assert!(!rtcp.on_rtcp(addr("203.0.113.9:1"), 6, media.ssrc()));
        assert_eq!(rtcp.target(), addr("198.51.100.7:61001"));
        assert_eq!(media.target(), addr("198.51.100.7:61000"));
    }
}
