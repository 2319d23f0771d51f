//! The tokio shell: sockets and DNS around the sans-IO cores.
//!
//! - [`framing`]: cutting SIP messages out of a TCP byte stream (RFC 3261 §18.3).
//! - [`transport`]: the UDP and TCP sockets, delivering [`Inbound`] messages and sending
//!   [`Transmit`]s (RFC 3261 §18).
//! - [`dns`]: locating a SIP server from a URI's host, port and transport (RFC 3263 §4).

pub mod dns;
pub mod framing;
pub mod transport;

pub use dns::{LocateError, Locator, Target};
pub use framing::{Frame, StreamFramer};
pub use transport::{BindError, Inbound, Transmit, TransportOptions, TransportStats, Transports};
