//! Header fields (RFC 3261 §7.3, §20): names with their compact forms, the ordered header list,
//! and typed views of the headers the core reads (Via, From/To, CSeq, Contact).

use std::fmt;

use super::uri::{Host, Params, Uri, parse_host_port, split_outside_quotes};
use super::{Method, ParseError, Transport};

macro_rules! header_names {
    ($( $variant:ident = $canonical:literal $(, $compact:literal)? ; )*) => {
        /// A header name this stack knows. Names are case-insensitive on the wire; compact forms
        /// (`v`, `f`, `t`, `i`, `m`, `l`, `k`, `c`, …) map to the same name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum HeaderName { $( $variant, )* }

        impl HeaderName {
            /// The canonical spelling, as written on output.
            pub fn as_str(self) -> &'static str {
                match self { $( HeaderName::$variant => $canonical, )* }
            }

            /// Looks a wire name up, case-insensitively, long or compact form.
            pub fn lookup(name: &str) -> Option<HeaderName> {
                $(
                    if name.eq_ignore_ascii_case($canonical) $(|| name.eq_ignore_ascii_case($compact))? {
                        return Some(HeaderName::$variant);
                    }
                )*
                None
            }
        }
    };
}

header_names! {
    Via = "Via", "v";
    From = "From", "f";
    To = "To", "t";
    CallId = "Call-ID", "i";
    CSeq = "CSeq";
    Contact = "Contact", "m";
    MaxForwards = "Max-Forwards";
    ContentLength = "Content-Length", "l";
    ContentType = "Content-Type", "c";
    ContentEncoding = "Content-Encoding", "e";
    Route = "Route";
    RecordRoute = "Record-Route";
    Expires = "Expires";
    MinExpires = "Min-Expires";
    Authorization = "Authorization";
    ProxyAuthorization = "Proxy-Authorization";
    WwwAuthenticate = "WWW-Authenticate";
    ProxyAuthenticate = "Proxy-Authenticate";
    Allow = "Allow";
    Supported = "Supported", "k";
    Require = "Require";
    ProxyRequire = "Proxy-Require";
    Unsupported = "Unsupported";
    Path = "Path";
    UserAgent = "User-Agent";
    Server = "Server";
    Accept = "Accept";
    Subject = "Subject", "s";
    Event = "Event", "o";
    ReferTo = "Refer-To", "r";
    ReferredBy = "Referred-By", "b";
    AllowEvents = "Allow-Events", "u";
    SessionExpires = "Session-Expires", "x";
    RetryAfter = "Retry-After";
    Date = "Date";
    Timestamp = "Timestamp";
    Warning = "Warning";
}

impl HeaderName {
    /// True for headers whose value is a comma-separated list that may be split into one header
    /// per element (RFC 3261 §7.3.1). Auth headers are excluded: their commas separate parameters.
    pub fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Via | Contact
                | Route
                | RecordRoute
                | Path
                | Allow
                | Supported
                | Require
                | ProxyRequire
                | Unsupported
                | Accept
                | AllowEvents
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of one header line: a known name, or an unknown one kept exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A name this stack knows.
    Known(HeaderName),
    /// Any other name, spelled as received.
    Other(Box<str>),
}

impl Name {
    /// Interprets a wire name.
    pub fn from_wire(name: &str) -> Name {
        HeaderName::lookup(name).map_or_else(|| Name::Other(name.into()), Name::Known)
    }

    /// The name as it is written on output.
    pub fn as_str(&self) -> &str {
        match self {
            Name::Known(h) => h.as_str(),
            Name::Other(s) => s,
        }
    }

    fn matches(&self, wire: &str) -> bool {
        match self {
            Name::Known(h) => HeaderName::lookup(wire) == Some(*h),
            Name::Other(s) => s.eq_ignore_ascii_case(wire),
        }
    }
}

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Its name.
    pub name: Name,
    /// Its value with folding undone and surrounding whitespace trimmed.
    pub value: String,
}

/// The header fields of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// The first value of a header.
    pub fn get(&self, name: HeaderName) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of a header, in order.
    pub fn get_all(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |h| h.name == Name::Known(name)).map(|h| h.value.as_str())
    }

    /// The first value of any header by its wire name (long or compact, any case).
    pub fn get_named(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|h| h.name.matches(name)).map(|h| h.value.as_str())
    }

    /// True if the header is present.
    pub fn has(&self, name: HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// Appends a header.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header { name: Name::Known(name), value: value.into() });
    }

    /// Appends a header with any name.
    pub fn push_raw(&mut self, name: Name, value: impl Into<String>) {
        self.0.push(Header { name, value: value.into() });
    }

    /// Inserts a header before the first one of the same name, or at the end if there is none.
    /// Proxies use this for Via and Record-Route (RFC 3261 §16.6).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        let header = Header { name: Name::Known(name), value: value.into() };
        match self.0.iter().position(|h| h.name == Name::Known(name)) {
            Some(i) => self.0.insert(i, header),
            None => self.0.push(header),
        }
    }

    /// Removes and returns the first value of a header.
    pub fn remove_first(&mut self, name: HeaderName) -> Option<String> {
        let i = self.0.iter().position(|h| h.name == Name::Known(name))?;
        Some(self.0.remove(i).value)
    }

    /// Removes every value of a header.
    pub fn remove_all(&mut self, name: HeaderName) {
        self.0.retain(|h| h.name != Name::Known(name));
    }

    /// Replaces every value of a header with one value, at the position of the first.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == Name::Known(name)) {
            Some(i) => {
                self.0[i].value = value;
                let mut seen = 0;
                self.0.retain(|h| {
                    if h.name == Name::Known(name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(name, value),
        }
    }

    /// Every header, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// The number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a parsed header line, splitting list headers into one entry per element.
    pub(crate) fn push_parsed(&mut self, name: &str, value: &str) {
        let name = Name::from_wire(name);
        match name {
            Name::Known(h) if h.is_list() && value.contains(',') => {
                for part in split_outside_quotes(value, b',') {
                    let part = part.trim();
                    if !part.is_empty() {
                        self.0.push(Header { name: name.clone(), value: part.to_owned() });
                    }
                }
            }
            _ => self.0.push(Header { name, value: value.to_owned() }),
        }
    }

    /// The top Via.
    pub fn via(&self) -> Result<Via, ParseError> {
        Via::parse(self.get(HeaderName::Via).ok_or_else(|| ParseError::missing(HeaderName::Via))?)
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        self.name_addr(HeaderName::From)
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        self.name_addr(HeaderName::To)
    }

    fn name_addr(&self, name: HeaderName) -> Result<NameAddr, ParseError> {
        let value = self.get(name).ok_or_else(|| ParseError::missing(name))?;
        NameAddr::parse(value).map_err(|e| e.in_header(name))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        self.get(HeaderName::CallId).filter(|v| !v.is_empty()).ok_or_else(|| ParseError::missing(HeaderName::CallId))
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.get(HeaderName::CSeq).ok_or_else(|| ParseError::missing(HeaderName::CSeq))?)
    }

    /// Max-Forwards, if present.
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.number(HeaderName::MaxForwards)
    }

    /// The Expires header, if present.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.number(HeaderName::Expires)
    }

    fn number(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(|n| Some(n.min(u64::from(u32::MAX)) as u32))
                .map_err(|_| ParseError::new(format!("malformed {name} header {v:?}: expected a number"))),
        }
    }

    /// Every Contact value.
    pub fn contacts(&self) -> Result<Vec<Contact>, ParseError> {
        self.get_all(HeaderName::Contact).map(Contact::parse).collect()
    }
}

/// A Via header value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;branch=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport as written (`UDP`, `TCP`, `TLS`, `WS`, …).
    pub transport: String,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by port, if written.
    pub port: Option<u16>,
    /// The parameters (`branch`, `received`, `rport`, …).
    pub params: Params,
}

impl Via {
    /// Parses one Via value.
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let bad = |what: &str| ParseError::new(format!("malformed Via header {s:?}: {what}"));
        let (protocol, rest) = s
            .trim()
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or_else(|| bad("expected SIP/2.0/TRANSPORT host"))?;
        let mut parts = protocol.split('/').map(str::trim);
        let (name, version, transport) = (parts.next(), parts.next(), parts.next());
        if !name.is_some_and(|n| n.eq_ignore_ascii_case("SIP")) || version != Some("2.0") || parts.next().is_some() {
            return Err(bad("expected SIP/2.0/TRANSPORT"));
        }
        let transport = transport.filter(|t| !t.is_empty()).ok_or_else(|| bad("no transport"))?;
        let rest = rest.trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = parse_host_port(sent_by.trim()).map_err(|e| bad(&e.to_string()))?;
        Ok(Via { transport: transport.to_ascii_uppercase(), host, port, params: Params::parse(params)? })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// The transport, if it is one this stack speaks.
    pub fn transport(&self) -> Option<Transport> {
        self.transport.parse().ok()
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// A `name-addr` or `addr-spec` with header parameters, as in From, To, Contact, Route
/// (RFC 3261 §20.10, §20.20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, quotes removed.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`, …), outside the URI.
    pub params: Params,
}

impl NameAddr {
    /// Parses `"Alice" <sip:alice@example.com>;tag=1`, `<sip:…>` or `sip:alice@example.com;tag=1`.
    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let s = s.trim();
        if let Some(open) = find_unquoted(s, b'<') {
            let close = s[open..]
                .find('>')
                .map(|i| open + i)
                .ok_or_else(|| ParseError::new(format!("{s:?}: '<' without '>'")))?;
            let display = s[..open].trim();
            let display = (!display.is_empty()).then(|| super::uri::unquote(display).to_owned());
            Ok(NameAddr { display, uri: Uri::parse(&s[open + 1..close])?, params: Params::parse(&s[close + 1..])? })
        } else {
            // addr-spec: parameters after the URI belong to the header, not the URI (§20.10).
            let (uri, params) = s.split_once(';').unwrap_or((s, ""));
            Ok(NameAddr { display: None, uri: Uri::parse(uri)?, params: Params::parse(params)? })
        }
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let mut in_quotes = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b if b == needle && !in_quotes => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A Contact value: `*` (only in a REGISTER that removes every binding) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// `Contact: *`
    Star,
    /// An address with its parameters (`expires`, `q`, `+sip.instance`, `reg-id`).
    Addr(NameAddr),
}

impl Contact {
    /// Parses one Contact value.
    pub fn parse(s: &str) -> Result<Contact, ParseError> {
        if s.trim() == "*" {
            Ok(Contact::Star)
        } else {
            NameAddr::parse(s).map(Contact::Addr).map_err(|e| e.in_header(HeaderName::Contact))
        }
    }
}

/// The CSeq header (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (below 2^31 per §8.1.1.5; larger values are accepted on input).
    pub seq: u32,
    /// The method, which must match the request's.
    pub method: Method,
}

impl CSeq {
    /// Parses `4711 INVITE`.
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let bad = || ParseError::new(format!("malformed CSeq header {s:?}: expected a number and a method"));
        let mut parts = s.split_ascii_whitespace();
        let seq = parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let method = parts.next().and_then(Method::from_token).ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}
