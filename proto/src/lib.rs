//! The protocol library: SIP messages, RFC 3261 transactions, digest authentication and the
//! tokio shell that feeds them.
//!
//! Every module except [`io`] is sans-IO: it is fed bytes, commands and the current time, and is
//! polled for what to send and when to wake up. No sockets, threads or clocks live inside them.

pub mod auth;
pub mod codec;
pub mod dialog;
pub mod io;
pub mod sdp;
pub mod sip;
pub mod transaction;
