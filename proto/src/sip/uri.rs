//! SIP and SIPS URIs (RFC 3261 §19.1), hosts including IPv6 references, and `;name=value`
//! parameter lists.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ParseError;

/// A host: a domain name, an IPv4 address, or an IPv6 reference (`[2001:db8::1]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, kept as written (compare with [`Host::eq_ignore_case`]).
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address, written in brackets.
    V6(Ipv6Addr),
}

impl Host {
    /// Reads `example.com`, `192.0.2.1` or `[2001:db8::1]` (a bare IPv6 address is accepted too).
    pub fn parse(s: &str) -> Result<Host, ParseError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| ParseError::new(format!("IPv6 reference {s:?} lacks its closing ']'")))?;
            return inner
                .parse()
                .map(Host::V6)
                .map_err(|_| ParseError::new(format!("{inner:?} is not an IPv6 address")));
        }
        if s.is_empty() {
            return Err(ParseError::new("empty host"));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(ip.into());
        }
        if s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
            Ok(Host::Domain(s.to_owned()))
        } else {
            Err(ParseError::new(format!("{s:?} is not a valid host name")))
        }
    }

    /// The address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }

    /// Compares hosts as RFC 3261 §19.1.4 does: domains case-insensitively, addresses by value.
    pub fn eq_ignore_case(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]`, minding IPv6 brackets.
pub(crate) fn parse_host_port(s: &str) -> Result<(Host, Option<u16>), ParseError> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => (&s[..=end], s[end + 1..].strip_prefix(':')),
            None => {
                return Err(ParseError::new(format!("IPv6 reference in {s:?} lacks its closing ']'")));
            }
        }
    } else if s.bytes().filter(|&b| b == b':').count() > 1 {
        // A bare IPv6 address, as some phones write in Via (not RFC-conformant, but unambiguous).
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| ParseError::new(format!("port {p:?} is not a number from 1 to 65535")))?,
        ),
        None => None,
    };
    Ok((Host::parse(host)?, port))
}

/// One `;name[=value]` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name as written; compared case-insensitively.
    pub name: String,
    /// The value as written (quotes kept), if any.
    pub value: Option<String>,
}

/// An ordered list of `;name[=value]` parameters, as on URIs, Via, Contact, From and To.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    /// Parses `;a=1;b;c="x;y"` (the leading `;` optional). Quoted values may hold `;`.
    pub fn parse(s: &str) -> Result<Params, ParseError> {
        let mut params = Vec::new();
        for part in split_outside_quotes(s, b';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
                None => (part, None),
            };
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b == b'"') {
                return Err(ParseError::new(format!("malformed parameter {part:?}")));
            }
            params.push(Param { name: name.to_owned(), value });
        }
        Ok(Params(params))
    }

    /// The value of the first parameter with this name: `Some(None)` for a flag like `;lr`.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_deref())
    }

    /// The value of a parameter that has one, with surrounding quotes removed.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(unquote)
    }

    /// True if the parameter is present, with or without a value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets a parameter, replacing an existing one of the same name in place.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self.0.iter_mut().find(|p| p.name.eq_ignore_ascii_case(name)) {
            Some(p) => p.value = value,
            None => self.0.push(Param { name: name.to_owned(), value }),
        }
    }

    /// Removes every parameter with this name.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match &p.value {
                Some(v) => write!(f, ";{}={v}", p.name)?,
                None => write!(f, ";{}", p.name)?,
            }
        }
        Ok(())
    }
}

/// Removes one pair of surrounding double quotes, if present.
pub(crate) fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// Splits on `sep` where it is outside double quotes and angle brackets.
pub(crate) fn split_outside_quotes(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    let mut in_quotes = false;
    let mut angle = 0u32;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while pos < bytes.len() {
            let b = bytes[pos];
            pos += 1;
            match b {
                b'\\' if in_quotes => pos += 1,
                b'"' => in_quotes = !in_quotes,
                b'<' if !in_quotes => angle += 1,
                b'>' if !in_quotes => angle = angle.saturating_sub(1),
                _ if b == sep && !in_quotes && angle == 0 => {
                    let part = &s[start..pos - 1];
                    start = pos;
                    return Some(part);
                }
                _ => {}
            }
        }
        done = true;
        Some(s.get(start..).unwrap_or(""))
    })
}

/// A URI scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:` (RFC 3261 §26)
    Sips,
    /// `tel:` (RFC 3966); the number is held as the user part, the host is empty.
    Tel,
}

/// A `sip:`, `sips:` or `tel:` URI (RFC 3261 §19.1, RFC 3966).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// The scheme.
    pub scheme: Scheme,
    /// The user part, still percent-encoded as written.
    pub user: Option<String>,
    /// The password after `user:`, deprecated but legal.
    pub password: Option<String>,
    /// The host; an empty domain for `tel:` URIs.
    pub host: Host,
    /// The port, if written.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params,
    /// The `?header=value&…` part, without the `?`.
    pub headers: Option<String>,
}

impl Uri {
    /// Parses a URI.
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let s = s.trim();
        let (scheme, rest) =
            s.split_once(':').ok_or_else(|| ParseError::new(format!("{s:?} is not a URI: expected sip:user@host")))?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = rest.split_once(';').unwrap_or((rest, ""));
            if number.is_empty() {
                return Err(ParseError::new("tel URI without a number"));
            }
            return Ok(Uri {
                scheme: Scheme::Tel,
                user: Some(number.to_owned()),
                password: None,
                host: Host::Domain(String::new()),
                port: None,
                params: Params::parse(params)?,
                headers: None,
            });
        } else {
            return Err(ParseError::unsupported_scheme(scheme));
        };
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_owned())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p.to_owned())),
                    None => (ui, None),
                };
                if u.is_empty() || u.bytes().any(|b| b.is_ascii_whitespace() || b == b'<' || b == b'>') {
                    return Err(ParseError::new(format!("malformed user part in {s:?}")));
                }
                (Some(u.to_owned()), p)
            }
            None => (None, None),
        };
        let (hostport, params) = hostpart.split_once(';').unwrap_or((hostpart, ""));
        let (host, port) = parse_host_port(hostport)?;
        Ok(Uri { scheme, user, password, host, port, params: Params::parse(params)?, headers })
    }

    /// A `sip:` URI for a user at a host.
    pub fn sip(user: Option<&str>, host: Host, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Params::default(),
            headers: None,
        }
    }

    /// The `transport=` parameter, lowercased comparisons left to the caller.
    pub fn transport_param(&self) -> Option<&str> {
        self.params.value("transport")
    }

    /// The socket address when the host is an IP literal; the port defaults to 5060 (5061 for sips).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let default = if self.scheme == Scheme::Sips { 5061 } else { 5060 };
        Some(SocketAddr::new(self.host.ip()?, self.port.unwrap_or(default)))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Sip => f.write_str("sip:")?,
            Scheme::Sips => f.write_str("sips:")?,
            Scheme::Tel => {
                return write!(f, "tel:{}{}", self.user.as_deref().unwrap_or(""), self.params);
            }
        }
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}
