//! The tokio shell: sockets and DNS around the sans-IO cores.
//!
//! - [`framing`]: cutting SIP messages out of a TCP byte stream (RFC 3261 §18.3).
//! - [`transport`]: the UDP, TCP and TLS sockets, delivering [`Inbound`] messages and sending
//!   [`Transmit`]s (RFC 3261 §18).
//! - [`tls`]: rustls configurations, PEM files and self-signed certificates for TLS (RFC 3261
//!   §26.2, RFC 5630).
//! - [`pcap`]: packets as a pcap file, with their Ethernet, IP and UDP/TCP headers.
//! - [`capture`]: `--pcap FILE`, the shells' record of every packet sent and received.
//! - [`dns`]: locating a SIP server from a URI's host, port and transport (RFC 3263 §4).

pub mod capture;
pub mod dns;
pub mod framing;
pub mod pcap;
pub mod tls;
pub mod transport;

pub use capture::{Capture, CaptureError, DEFAULT_CAPTURE_LIMIT};
pub use dns::{LocateError, Locator, Target};
pub use framing::{Frame, StreamFramer};
pub use pcap::{PcapError, PcapWriter};
pub use tls::{CertificateFiles, TlsError, TlsOptions};
pub use transport::{
    BindError, ConnectError, ConnectFailure, Inbound, Transmit, TransportOptions, TransportStats, Transports,
};
