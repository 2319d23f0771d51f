//! The registrar's configuration: listening addresses, the SIP domain, transaction timers
//! (RFC 3261 §17.1.1.1), registration intervals (RFC 3261 §10.2.1.1, §10.3), digest
//! authentication (RFC 7616, RFC 8760), size limits, SIP over TLS (RFC 3261 §26.2, RFC 5630)
//! and the accounts it serves.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::ConfigError;
use crate::document::{self, Problem, Validate};

/// The largest accepted `limits.max_message_size`: 1 MiB, only reachable over TCP.
const MAX_MESSAGE_SIZE_CEILING: usize = 1 << 20;
/// The smallest accepted `limits.max_message_size`: one Ethernet frame.
const MAX_MESSAGE_SIZE_FLOOR: usize = 1500;

/// The registrar's whole configuration, as read from `registrar.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Addresses to listen on; each is served on both UDP and TCP.
    #[serde(deserialize_with = "bind_addresses")]
    pub bind: Vec<SocketAddr>,
    /// The SIP domain this registrar is responsible for (the host part of the AORs it serves);
    /// also the digest realm unless `realm` is set.
    pub domain: Option<String>,
    /// The digest realm (RFC 7616 §3.3); when unset, `domain` is used (see
    /// [`RegistrarConfig::realm()`]).
    pub realm: Option<String>,
    /// Directory for the location database; created if missing. A relative path is taken from
    /// the working directory.
    pub data_dir: PathBuf,
    /// Log every SIP message sent and received.
    pub sip_trace: bool,
    /// Record every SIP message sent and received in this pcap file (created or truncated at
    /// start; a relative path is taken from the working directory).
    pub pcap: Option<PathBuf>,
    /// Name the software and its version in a Server header on our answers. Off by default,
    /// so scanners learn nothing to look vulnerabilities up by.
    pub server_header: bool,
    /// `host[:port]` to write in Via and Record-Route when bound to an unspecified address
    /// (`0.0.0.0` or `::`), where the socket's own address is not reachable by peers. The port
    /// is the UDP and TCP one; over TLS the TLS listening port is written.
    pub advertise: Option<String>,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Registration intervals.
    pub registration: RegistrationConfig,
    /// Digest authentication and brute-force protection.
    pub auth: AuthConfig,
    /// Size and count limits.
    pub limits: LimitsConfig,
    /// SIP over TLS: where, and with which certificate.
    pub tls: TlsConfig,
    /// Extension → password. Each extension is the user part of an AOR in `domain`.
    pub accounts: BTreeMap<String, String>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            bind: vec![SocketAddr::from(([0, 0, 0, 0], 5060))],
            domain: None,
            realm: None,
            data_dir: PathBuf::from("registrar-data"),
            sip_trace: false,
            pcap: None,
            server_header: false,
            advertise: None,
            timers: TimerConfig::default(),
            registration: RegistrationConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            tls: TlsConfig::default(),
            accounts: BTreeMap::new(),
        }
    }
}

impl RegistrarConfig {
    /// Parses and validates `text`; `origin` names it in error messages (usually its path).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        document::parse(text, origin)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        document::load(path)
    }

    /// The digest realm: the `realm` field if set, else `domain`.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref().or(self.domain.as_deref())
    }

    /// The addresses to accept TLS on: `tls.bind` if set, else every `bind` address with the
    /// port after its own (5060 → 5061; a system-chosen port 0 stays 0).
    pub fn tls_bind(&self) -> Vec<SocketAddr> {
        match &self.tls.bind {
            Some(bind) => bind.clone(),
            None => self
                .bind
                .iter()
                .map(|a| SocketAddr::new(a.ip(), if a.port() == 0 { 0 } else { a.port().saturating_add(1) }))
                .collect(),
        }
    }
}

/// SIP over TLS (RFC 3261 §26.2, RFC 5630). Without a certificate, the registrar makes a
/// self-signed one for its domain and addresses once and keeps it in `data_dir`, so that phones
/// can pin it across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Addresses to accept TLS on; unset: each `bind` address with the next port (5061 beside
    /// 5060); `[]` turns TLS off.
    #[serde(deserialize_with = "optional_bind_addresses")]
    pub bind: Option<Vec<SocketAddr>>,
    /// The certificate chain to present, PEM, leaf first. Give `private_key` with it.
    pub certificate: Option<PathBuf>,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub private_key: Option<PathBuf>,
}

impl Validate for TlsConfig {
    fn validate(&self) -> Result<(), Problem> {
        match (&self.certificate, &self.private_key) {
            (Some(_), None) => Err(Problem::at(
                &[&["tls", "certificate"]],
                "tls.certificate is set without tls.private_key; expected both PEM files, or neither for a self-signed certificate",
            )),
            (None, Some(_)) => Err(Problem::at(
                &[&["tls", "private_key"]],
                "tls.private_key is set without tls.certificate; expected both PEM files, or neither for a self-signed certificate",
            )),
            _ => Ok(()),
        }
    }
}

impl Validate for RegistrarConfig {
    fn validate(&self) -> Result<(), Problem> {
        if self.bind.is_empty() {
            return Err(Problem::at(
                &[&["bind"]],
                "no bind address; expected at least one ADDR:PORT like 0.0.0.0:5060",
            ));
        }
        for (i, addr) in self.bind.iter().enumerate() {
            if self.bind[..i].contains(addr) {
                return Err(Problem::at(
                    &[&["bind"]],
                    format!("bind address {addr} is listed twice; expected each address once"),
                ));
            }
        }
        if let Some(domain) = &self.domain
            && !is_host(domain)
        {
            return Err(Problem::at(
                &[&["domain"]],
                format!(
                    "invalid domain {domain:?}; expected a host name or IP address like example.com, without scheme or port"
                ),
            ));
        }
        if let Some(realm) = &self.realm
            && (realm.is_empty() || realm.chars().any(|c| c == '"' || c == '\\' || c.is_control()))
        {
            return Err(Problem::at(
                &[&["realm"]],
                format!(
                    "invalid realm {realm:?}; expected a non-empty name without quotes, backslashes or control characters"
                ),
            ));
        }
        if let Some(advertise) = &self.advertise
            && !is_host_port(advertise)
        {
            return Err(Problem::at(
                &[&["advertise"]],
                format!(
                    "invalid advertise address {advertise:?}; expected HOST or HOST:PORT like sip.example.com:5060"
                ),
            ));
        }
        self.timers.validate()?;
        self.registration.validate()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.tls.validate()?;
        validate_accounts(&self.accounts)
    }
}

/// RFC 3261 transaction timers, in milliseconds (§17.1.1.1, Table 4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimerConfig {
    /// T1, the round-trip time estimate; the first retransmission interval. At least 1.
    pub t1_ms: u64,
    /// T2, the longest retransmission interval for non-INVITE requests and INVITE responses.
    /// At least T1.
    pub t2_ms: u64,
    /// T4, the longest time a message stays in the network.
    pub t4_ms: u64,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig { t1_ms: 500, t2_ms: 4000, t4_ms: 5000 }
    }
}

impl TimerConfig {
    /// T1 as a duration.
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }

    /// T2 as a duration.
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }

    /// T4 as a duration.
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
}

impl Validate for TimerConfig {
    fn validate(&self) -> Result<(), Problem> {
        if self.t1_ms == 0 {
            return Err(Problem::at(
                &[&["timers", "t1_ms"]],
                "t1_ms is 0; expected at least 1 (RFC 3261 recommends 500)",
            ));
        }
        if self.t2_ms < self.t1_ms {
            return Err(Problem::at(
                &[&["timers", "t2_ms"], &["timers", "t1_ms"]],
                format!("t2_ms ({}) is less than t1_ms ({}); expected t2_ms >= t1_ms", self.t2_ms, self.t1_ms),
            ));
        }
        Ok(())
    }
}

/// How long registrations last, in seconds (RFC 3261 §10.2.1.1, §10.3 step 7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Shorter non-zero requests are refused with 423 Interval Too Brief. At least 1.
    pub min_expires: u32,
    /// Longer requests are shortened to this.
    pub max_expires: u32,
    /// Granted when a REGISTER asks for no particular interval.
    pub default_expires: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig { min_expires: 60, max_expires: 3600, default_expires: 3600 }
    }
}

impl Validate for RegistrationConfig {
    fn validate(&self) -> Result<(), Problem> {
        let RegistrationConfig { min_expires: min, max_expires: max, default_expires: default } = *self;
        if min == 0 {
            return Err(Problem::at(&[&["registration", "min_expires"]], "min_expires is 0; expected at least 1"));
        }
        if min > max {
            return Err(Problem::at(
                &[&["registration", "min_expires"], &["registration", "max_expires"]],
                format!(
                    "min_expires ({min}) is greater than max_expires ({max}); expected min_expires <= default_expires <= max_expires"
                ),
            ));
        }
        if !(min..=max).contains(&default) {
            return Err(Problem::at(
                &[
                    &["registration", "default_expires"],
                    &["registration", "min_expires"],
                    &["registration", "max_expires"],
                ],
                format!(
                    "default_expires ({default}) is outside min_expires..=max_expires ({min}..={max}); expected min_expires <= default_expires <= max_expires"
                ),
            ));
        }
        Ok(())
    }
}

/// The digest algorithms a challenge may offer, as named in the config (RFC 7616 §3.3, RFC 8760).
pub use proto::auth::Algorithm as DigestAlgorithm;

/// Reads one name of `auth.algorithms`, case-insensitively.
fn digest_algorithm<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DigestAlgorithm, D::Error> {
    deserializer.deserialize_str(ParseVisitor {
        expecting: "a digest algorithm name like \"SHA-256\"",
        parse: |name| {
            DigestAlgorithm::parse(name)
                .map_err(|_| format!("unknown digest algorithm {name:?}; expected one of MD5, SHA-256, SHA-512-256"))
        },
    })
}

/// Reads `auth.algorithms`.
fn digest_algorithms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<DigestAlgorithm>, D::Error> {
    #[derive(Deserialize)]
    struct Name(#[serde(deserialize_with = "digest_algorithm")] DigestAlgorithm);
    Ok(Vec::<Name>::deserialize(deserializer)?.into_iter().map(|Name(a)| a).collect())
}

/// Digest authentication (RFC 3261 §22, RFC 7616) and brute-force lockout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Algorithms to challenge with, most preferred first; one challenge is sent per algorithm
    /// (RFC 8760 §2.4). Not empty, no repeats.
    #[serde(deserialize_with = "digest_algorithms")]
    pub algorithms: Vec<DigestAlgorithm>,
    /// How long a nonce is accepted before the client is told `stale=true`. At least 1.
    pub nonce_lifetime_secs: u64,
    /// Failed authentications from one source within the window before it is locked out;
    /// 0 turns lockout off.
    pub max_failures: u32,
    /// The window over which failures are counted. At least 1.
    pub failure_window_secs: u64,
    /// How long a locked-out source is refused.
    pub lockout_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            algorithms: vec![DigestAlgorithm::Md5],
            nonce_lifetime_secs: 300,
            max_failures: 10,
            failure_window_secs: 60,
            lockout_secs: 300,
        }
    }
}

impl AuthConfig {
    /// The nonce lifetime as a duration.
    pub fn nonce_lifetime(&self) -> Duration {
        Duration::from_secs(self.nonce_lifetime_secs)
    }

    /// The failure-counting window as a duration.
    pub fn failure_window(&self) -> Duration {
        Duration::from_secs(self.failure_window_secs)
    }

    /// The lockout period as a duration.
    pub fn lockout(&self) -> Duration {
        Duration::from_secs(self.lockout_secs)
    }
}

impl Validate for AuthConfig {
    fn validate(&self) -> Result<(), Problem> {
        if self.algorithms.is_empty() {
            return Err(Problem::at(
                &[&["auth", "algorithms"]],
                "no digest algorithm; expected at least one of MD5, SHA-256, SHA-512-256",
            ));
        }
        for (i, algorithm) in self.algorithms.iter().enumerate() {
            if self.algorithms[..i].contains(algorithm) {
                return Err(Problem::at(
                    &[&["auth", "algorithms"]],
                    format!("digest algorithm {algorithm} is listed twice; expected each algorithm once"),
                ));
            }
        }
        if self.nonce_lifetime_secs == 0 {
            return Err(Problem::at(
                &[&["auth", "nonce_lifetime_secs"]],
                "nonce_lifetime_secs is 0; expected at least 1",
            ));
        }
        if self.failure_window_secs == 0 {
            return Err(Problem::at(
                &[&["auth", "failure_window_secs"]],
                "failure_window_secs is 0; expected at least 1 (set max_failures = 0 to turn lockout off)",
            ));
        }
        Ok(())
    }
}

/// Limits that bound the memory a peer can make the registrar use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest SIP message accepted, in bytes, from 1500 to 1 MiB (1048576). A UDP datagram
    /// can carry at most 65535 bytes whatever this says, so larger values matter only for TCP.
    pub max_message_size: usize,
    /// The most server transactions held at once. From 90% of it on, and while the inbound
    /// queue is long, new requests are answered 503 with Retry-After.
    pub max_transactions: usize,
    /// REGISTERs per second accepted from one source IP, in bursts of up to that many; the
    /// excess is answered 503 with Retry-After. 0 means unlimited.
    pub register_per_source_per_s: u32,
    /// INVITEs per second accepted from one source IP, as for REGISTER. 0 means unlimited.
    pub invite_per_source_per_s: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_size: 65535,
            max_transactions: 100_000,
            register_per_source_per_s: 0,
            invite_per_source_per_s: 0,
        }
    }
}

impl Validate for LimitsConfig {
    fn validate(&self) -> Result<(), Problem> {
        if !(MAX_MESSAGE_SIZE_FLOOR..=MAX_MESSAGE_SIZE_CEILING).contains(&self.max_message_size) {
            return Err(Problem::at(
                &[&["limits", "max_message_size"]],
                format!(
                    "max_message_size {} is out of range; expected {MAX_MESSAGE_SIZE_FLOOR} to {MAX_MESSAGE_SIZE_CEILING} bytes",
                    self.max_message_size
                ),
            ));
        }
        if self.max_transactions == 0 {
            return Err(Problem::at(&[&["limits", "max_transactions"]], "max_transactions is 0; expected at least 1"));
        }
        Ok(())
    }
}

fn validate_accounts(accounts: &BTreeMap<String, String>) -> Result<(), Problem> {
    for (extension, password) in accounts {
        if !is_user_part(extension) {
            return Err(Problem::at(
                &[&["accounts", extension]],
                format!(
                    "invalid extension {extension:?}; expected a SIP user part of letters, digits and -_.!~*'()&=+$,;?/"
                ),
            ));
        }
        if password.is_empty() {
            return Err(Problem::at(
                &[&["accounts", extension]],
                format!("empty password for extension {extension:?}; expected a non-empty password"),
            ));
        }
    }
    Ok(())
}

/// True for a non-empty RFC 3261 `user` (§25.1) made of `unreserved` and `user-unreserved`
/// characters. `%XX` escapes are refused so that each extension has exactly one spelling.
pub(crate) fn is_user_part(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b))
}

/// True for an RFC 3261 `host` (§25.1): a host name, an IPv4 address or a bracketed IPv6 one.
fn is_host(s: &str) -> bool {
    if let Some(inner) = s.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    if s.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    name.len() <= 253
        && labels.iter().all(label_ok)
        && labels.last().and_then(|top| top.bytes().next()).is_some_and(|b| b.is_ascii_alphabetic())
}

/// True for `host` or `host:port` with a non-zero port.
pub(crate) fn is_host_port(s: &str) -> bool {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => (&s[..=end], &s[end + 1..]),
            None => return false,
        }
    } else {
        match s.find(':') {
            Some(colon) => (&s[..colon], &s[colon..]),
            None => (s, ""),
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.parse::<u16>().is_ok_and(|p| p != 0),
    };
    is_host(host) && port_ok
}

/// Deserializes the `bind` list, explaining a bad address in the house style.
fn bind_addresses<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<SocketAddr>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of addresses like [\"0.0.0.0:5060\"]")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut addresses = Vec::new();
            while let Some(BindAddress(address)) = seq.next_element()? {
                addresses.push(address);
            }
            Ok(addresses)
        }
    }

    deserializer.deserialize_seq(ListVisitor)
}

fn optional_bind_addresses<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<SocketAddr>>, D::Error> {
    bind_addresses(deserializer).map(Some)
}

struct BindAddress(SocketAddr);

impl<'de> Deserialize<'de> for BindAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseVisitor {
            expecting: "an address like \"0.0.0.0:5060\"",
            parse: |text| {
                text.parse().map(BindAddress).map_err(|_| {
                    format!("invalid bind address {text:?}; expected ADDR:PORT like 0.0.0.0:5060 or [::]:5060")
                })
            },
        })
    }
}

/// Parses a string value inside the deserializer, so that a failure carries the span of the
/// value itself (an element, not the whole array) and the message `parse` wrote.
struct ParseVisitor<T> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for ParseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<T, E> {
        (self.parse)(value).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests;
