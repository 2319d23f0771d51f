//! The protocol library: everything a SIP phone or server speaks, as sans-IO cores, plus the
//! tokio shell that feeds them.
//!
//! - [`sip`]: messages, our own parser and serializer (RFC 3261 §7, §20, §25).
//! - [`transaction`]: client and server transactions (RFC 3261 §17, RFC 6026).
//! - [`dialog`]: dialogs and route sets (RFC 3261 §12).
//! - [`auth`]: digest authentication (RFC 7616, RFC 8760).
//! - [`sdp`]: offer/answer for audio (RFC 3264, RFC 4566).
//! - [`codec`]: Opus, G.711, telephone events, resampling.
//! - [`rtp`]: RTP and RTCP, receive statistics, the jitter buffer (RFC 3550, RFC 4961).
//! - [`io`]: sockets, stream framing and DNS (RFC 3263): the only module that does I/O.
//!
//! Every module except [`io`] is fed bytes, commands and the current time, and is polled for
//! what to send and when to wake up. No sockets, threads or clocks live inside them.

pub mod auth;
pub mod codec;
pub mod dialog;
pub mod io;
pub mod rtp;
pub mod sdp;
pub mod sip;
pub mod transaction;
