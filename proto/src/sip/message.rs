//! Requests and responses (RFC 3261 §7): the model, response construction (§8.2.6) and
//! serialization.

use bytes::{BufMut, Bytes, BytesMut};

use super::{HeaderName, Headers, Method, Name, ParseError, Uri};

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// The headers, in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100–699.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers, in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Serializes the message.
    pub fn encode(&self) -> Bytes {
        match self {
            Message::Request(r) => r.encode(),
            Message::Response(r) => r.encode(),
        }
    }
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request { method, uri, headers: Headers::new(), body: Bytes::new() }
    }

    /// Checks the headers every request must carry (RFC 3261 §8.1.1): Via, From, To, Call-ID,
    /// CSeq with the request's method, and a numeric Max-Forwards if present.
    pub fn validate(&self) -> Result<(), ParseError> {
        self.headers.via()?;
        self.headers.from()?;
        self.headers.to()?;
        self.headers.call_id()?;
        let cseq = self.headers.cseq()?;
        if cseq.method != self.method {
            return Err(ParseError::new(format!(
                "CSeq method {} does not match request method {}",
                cseq.method, self.method
            )));
        }
        self.headers.max_forwards()?;
        Ok(())
    }

    /// Builds a response per RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied, the
    /// standard reason phrase for the code. The caller adds a To tag where one is needed.
    pub fn response(&self, status: u16) -> Response {
        let mut headers = Headers::new();
        for h in self.headers.iter() {
            if let Name::Known(
                n @ (HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq),
            ) = h.name
            {
                headers.push(n, h.value.clone());
            }
        }
        Response { status, reason: reason_phrase(status).to_owned(), headers, body: Bytes::new() }
    }

    /// Serializes the request; Content-Length is always written from the body's length.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(512 + self.body.len());
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.to_string().as_bytes());
        out.put_slice(b" SIP/2.0\r\n");
        encode_rest(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

impl Response {
    /// Checks the headers every response must carry: Via, From, To, Call-ID and CSeq.
    pub fn validate(&self) -> Result<(), ParseError> {
        self.headers.via()?;
        self.headers.from()?;
        self.headers.to()?;
        self.headers.call_id()?;
        self.headers.cseq()?;
        Ok(())
    }

    /// Replaces the reason phrase.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Response {
        self.reason = reason.into();
        self
    }

    /// Serializes the response; Content-Length is always written from the body's length.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(512 + self.body.len());
        out.put_slice(b"SIP/2.0 ");
        out.put_slice(self.status.to_string().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.reason.as_bytes());
        out.put_slice(b"\r\n");
        encode_rest(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

fn encode_rest(out: &mut BytesMut, headers: &Headers, body: &[u8]) {
    for h in headers.iter() {
        if h.name == Name::Known(HeaderName::ContentLength) {
            continue;
        }
        out.put_slice(h.name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(h.value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Length: ");
    out.put_slice(body.len().to_string().as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body);
}

/// The standard reason phrase for a status code (RFC 3261 §21 and extensions).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match status / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}
