//! The error a malformed message produces, carrying the status and reason phrase to answer with.

use super::HeaderName;

/// What was wrong with a message. Its text is fit for a reason phrase (RFC 3261 §21.4.1) and
/// its [`status`](ParseError::status) is the response to send: 400, or 416 for an unsupported
/// URI scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    reason: String,
    status: u16,
}

impl ParseError {
    /// A 400-class error.
    pub fn new(reason: impl Into<String>) -> ParseError {
        let mut reason: String = reason.into();
        // A reason phrase is one line of printable text.
        reason.retain(|c| !c.is_control());
        reason.truncate(reason.floor_char_boundary(200));
        ParseError { reason, status: 400 }
    }

    /// A mandatory header is absent.
    pub fn missing(name: HeaderName) -> ParseError {
        ParseError::new(format!("missing {name} header"))
    }

    /// The URI scheme is not `sip`, `sips` or `tel`.
    pub fn unsupported_scheme(scheme: &str) -> ParseError {
        let mut e = ParseError::new(format!("unsupported URI scheme {scheme:?}"));
        e.status = 416;
        e
    }

    /// Names the header the error was found in.
    pub(crate) fn in_header(self, name: HeaderName) -> ParseError {
        if self.reason.contains(name.as_str()) {
            return self;
        }
        ParseError { reason: format!("malformed {name} header: {}", self.reason), ..self }
    }

    /// The status code to answer a request with (400 or 416).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// What was wrong, as one line.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
