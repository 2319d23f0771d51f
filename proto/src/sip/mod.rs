//! SIP messages (RFC 3261 §7, §19, §20, §25): the message model, parsing and serialization.
//!
//! The parser is our own: compact header names, folding, IPv6 references, unknown methods and
//! headers, and the Contacts real phones send all read correctly (see the tests, which also
//! cross-check well-formed messages against the rsip crate).

mod error;
mod header;
mod message;
mod method;
mod parse;
mod transport;
mod uri;

pub use error::ParseError;
pub use header::{CSeq, Contact, Header, HeaderName, Headers, Name, NameAddr, Via};
pub use message::{Message, Request, Response, reason_phrase};
pub use method::Method;
pub use parse::error_response;
pub use transport::Transport;
pub use uri::{Host, Param, Params, Scheme, Uri};

#[cfg(test)]
mod tests;
