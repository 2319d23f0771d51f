//! SIP messages (RFC 3261 §7, §20, §25): the message model, parsing and serialization.

mod transport;

pub use transport::Transport;
