//! Request methods (RFC 3261 §7.1 and the extensions in common use).

use std::fmt;

/// A SIP request method. Unknown extension methods are kept by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// RFC 3261: start a session.
    Invite,
    /// RFC 3261: confirm a final response to INVITE.
    Ack,
    /// RFC 3261: end a session.
    Bye,
    /// RFC 3261: cancel a pending request.
    Cancel,
    /// RFC 3261: bind a contact to an address of record.
    Register,
    /// RFC 3261: query capabilities.
    Options,
    /// RFC 6086: mid-session information.
    Info,
    /// RFC 3311: update session parameters before the dialog is confirmed.
    Update,
    /// RFC 3262: acknowledge a reliable provisional response.
    Prack,
    /// RFC 6665: subscribe to an event package.
    Subscribe,
    /// RFC 6665: notify a subscriber.
    Notify,
    /// RFC 3515: ask the recipient to issue a request (transfer).
    Refer,
    /// RFC 3428: instant message.
    Message,
    /// RFC 3903: publish event state.
    Publish,
    /// Any other method, kept as written (methods are case-sensitive, RFC 3261 §7.1).
    Other(Box<str>),
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(name) => name,
        }
    }

    /// Reads a method token; `None` if it is not a valid RFC 3261 token.
    pub fn from_token(token: &str) -> Option<Method> {
        Some(match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other if is_token(other) => Method::Other(other.into()),
            _ => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §25.1 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
        })
}
