//! The transport protocols a SIP message travels over (RFC 3261 §18).

use std::fmt;
use std::str::FromStr;

/// A SIP transport protocol, as named in a Via header or a `transport=` URI parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams; the sender retransmits (RFC 3261 §17).
    Udp,
    /// A byte stream; messages are framed by Content-Length (RFC 3261 §18.3).
    Tcp,
    /// TCP with TLS on top (RFC 3261 §26.2, RFC 5630): framed like TCP, the only transport a
    /// `sips:` URI may be reached over.
    Tls,
}

impl Transport {
    /// True for stream transports, where the transport layer guarantees delivery and the
    /// transaction layer does not retransmit.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// True when the transport encrypts and authenticates the hop (RFC 3261 §26.2).
    pub fn is_secure(self) -> bool {
        self == Transport::Tls
    }

    /// The name as written in a Via header (`UDP`, `TCP`, `TLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The `transport=` URI parameter value (`udp`, `tcp`, `tls`).
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The port a URI without one means over this transport (RFC 3261 §19.1.2): 5061 for TLS.
    pub fn default_port(self) -> u16 {
        if self == Transport::Tls { 5061 } else { 5060 }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport name is not one this stack speaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported transport {0:?}: expected UDP, TCP or TLS")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("udp") {
            Ok(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Ok(Transport::Tcp)
        } else if s.eq_ignore_ascii_case("tls") {
            Ok(Transport::Tls)
        } else {
            Err(UnknownTransport(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_a_reliable_secure_transport_named_like_rfc_3261() {
        let tls: Transport = "tls".parse().unwrap();
        assert_eq!(tls, Transport::Tls);
        assert_eq!("TLS".parse::<Transport>(), Ok(Transport::Tls));
        assert!(tls.is_reliable() && tls.is_secure());
        assert!(!Transport::Tcp.is_secure());
        assert_eq!((tls.as_str(), tls.param(), tls.default_port()), ("TLS", "tls", 5061));
        assert_eq!(Transport::Udp.default_port(), 5060);
        assert!("sctp".parse::<Transport>().is_err());
    }
}
