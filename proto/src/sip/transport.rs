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
}

impl Transport {
    /// True for stream transports, where the transport layer guarantees delivery and the
    /// transaction layer does not retransmit.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The name as written in a Via header (`UDP`, `TCP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport name is not one this stack speaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported transport {0:?}: expected UDP or TCP")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("udp") {
            Ok(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Ok(Transport::Tcp)
        } else {
            Err(UnknownTransport(s.to_owned()))
        }
    }
}
