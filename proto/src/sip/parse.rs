//! The message parser (RFC 3261 §7, §25): start line, header lines with folding, compact and
//! unknown names, and the body cut by Content-Length. Strict about structure, lenient about
//! whitespace and case, and it never panics: every failure is a [`ParseError`] saying what was
//! wrong.
//!
//! [`error_response`] builds a 400/513 for a request too broken to parse, from whatever of its
//! Via, From, To, Call-ID and CSeq lines can be read.

use bytes::Bytes;

use super::{HeaderName, Headers, Message, Method, ParseError, Request, Response, Uri, reason_phrase};

/// The most header lines a message may carry besides Content-Length; more is refused as
/// malformed. They are counted as the serializer writes them: a list header's elements one line
/// each, and no Content-Length (it always writes exactly one), so a message at the limit still
/// reads back after it is encoded.
const MAX_HEADERS: usize = 256;

impl Message {
    /// Parses one message from a datagram or a framed stream message.
    ///
    /// Leading CRLFs are skipped (§7.5). When Content-Length is present the body is exactly that
    /// long and any bytes after it are ignored (§18.3); when it is absent the body is the rest.
    pub fn parse(data: &[u8]) -> Result<Message, ParseError> {
        let (head, body_bytes) = split_head(data)?;
        let mut lines = Lines::new(head);
        let start = lines.next_line().ok_or_else(|| ParseError::new("empty message"))?;
        let mut headers = Headers::new();
        let mut content_lengths = 0;
        while let Some(line) = lines.next_header()? {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ParseError::new(format!("header line {:?} has no ':'", truncate(&line, 40))))?;
            let name = name.trim_end();
            if HeaderName::lookup(name) == Some(HeaderName::ContentLength) {
                content_lengths += 1;
            }
            if !super::method::is_token(name) {
                return Err(ParseError::new(format!("invalid header name {:?}", truncate(name, 40))));
            }
            headers.push_parsed(name, value.trim());
            if headers.len() - content_lengths > MAX_HEADERS {
                return Err(ParseError::new(format!("more than {MAX_HEADERS} header lines")));
            }
        }
        let body = match headers.get(HeaderName::ContentLength) {
            Some(v) => {
                let len: usize = v.parse().map_err(|_| {
                    ParseError::new(format!("malformed Content-Length {:?}: expected a number", truncate(v, 20)))
                })?;
                if len > body_bytes.len() {
                    return Err(ParseError::new(format!(
                        "Content-Length {len} exceeds the {} body bytes received",
                        body_bytes.len()
                    )));
                }
                &body_bytes[..len]
            }
            None => body_bytes,
        };
        let body = Bytes::copy_from_slice(body);

        if let Some(rest) = start.strip_prefix("SIP/") {
            let (version, rest) = rest.split_once(' ').ok_or_else(|| ParseError::new("malformed status line"))?;
            if version != "2.0" {
                return Err(ParseError::new(format!("unsupported SIP version {version:?}")));
            }
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let status = code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..700).contains(c))
                .ok_or_else(|| ParseError::new(format!("malformed status code {:?}", truncate(code, 10))))?;
            return Ok(Message::Response(Response { status, reason: reason.trim().to_owned(), headers, body }));
        }

        let mut parts = start.split(' ').filter(|p| !p.is_empty());
        let (method, uri, version) = (parts.next(), parts.next(), parts.next());
        let (Some(method), Some(uri), Some(version), None) = (method, uri, version, parts.next()) else {
            return Err(ParseError::new("malformed request line: expected METHOD URI SIP/2.0"));
        };
        if version != "SIP/2.0" {
            return Err(ParseError::new(format!("unsupported SIP version {:?}", truncate(version, 20))));
        }
        let method = Method::from_token(method)
            .ok_or_else(|| ParseError::new(format!("invalid method {:?}", truncate(method, 20))))?;
        let uri = Uri::parse(uri).map_err(|e| {
            if e.status() == 416 { e } else { ParseError::new(format!("malformed Request-URI: {}", e.reason())) }
        })?;
        Ok(Message::Request(Request { method, uri, headers, body }))
    }
}

/// Splits at the blank line ending the headers (CRLFCRLF, or bare LFs), after leading CRLFs.
fn split_head(data: &[u8]) -> Result<(&str, &[u8]), ParseError> {
    let start = data.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(data.len());
    let data = &data[start..];
    let mut i = 0;
    let end = loop {
        let Some(off) = data.get(i..).and_then(|d| d.iter().position(|&b| b == b'\n')) else {
            return Err(ParseError::new("message ends before the blank line after the headers"));
        };
        let nl = i + off;
        // A blank line is "\n" right after the previous "\n", optionally with "\r" before it.
        let line_start = i;
        let line = &data[line_start..nl];
        if nl > 0 && (line.is_empty() || line == b"\r") && line_start > 0 {
            break (line_start, nl + 1);
        }
        i = nl + 1;
    };
    let head =
        std::str::from_utf8(&data[..end.0]).map_err(|_| ParseError::new("message headers are not valid UTF-8"))?;
    Ok((head, &data[end.1..]))
}

/// Iterates header lines, undoing folding (a line starting with space or tab continues the
/// previous one, RFC 3261 §7.3.1).
struct Lines<'a> {
    rest: &'a str,
}

impl<'a> Lines<'a> {
    fn new(head: &'a str) -> Self {
        Lines { rest: head }
    }

    fn next_line(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = self.rest.split_once('\n').unwrap_or((self.rest, ""));
        self.rest = rest;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    fn next_header(&mut self) -> Result<Option<std::borrow::Cow<'a, str>>, ParseError> {
        let Some(first) = self.next_line() else {
            return Ok(None);
        };
        if first.starts_with([' ', '\t']) {
            return Err(ParseError::new("continuation line before the first header"));
        }
        if !self.rest.starts_with([' ', '\t']) {
            return Ok(Some(first.into()));
        }
        let mut joined = first.trim_end().to_owned();
        while self.rest.starts_with([' ', '\t']) {
            let more = self.next_line().unwrap_or("");
            joined.push(' ');
            joined.push_str(more.trim());
        }
        Ok(Some(joined.into()))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

/// Builds an error response (400, 513, …) for a request that could not be parsed, copying the
/// Via, From, To, Call-ID and CSeq lines that can be found. Returns `None` when no response is
/// possible: the bytes are a response, an ACK, or carry no Via to send the answer back along.
pub fn error_response(data: &[u8], status: u16, reason: &str) -> Option<Response> {
    let start = data.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let data = &data[start..];
    let head_end = find(data, b"\r\n\r\n").or_else(|| find(data, b"\n\n")).unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..head_end]);
    let mut lines = head.lines();
    let first = lines.next()?;
    if first.starts_with("SIP/") || first.starts_with("ACK ") {
        return None;
    }
    let mut headers = Headers::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = HeaderName::lookup(name.trim());
        if let Some(n @ (HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq)) =
            name
        {
            headers.push_parsed(n.as_str(), value.trim());
        }
    }
    headers.via().ok()?;
    let reason = ParseError::new(format!("{} ({reason})", reason_phrase(status)));
    Some(Response { status, reason: reason.reason().to_owned(), headers, body: Bytes::new() })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
