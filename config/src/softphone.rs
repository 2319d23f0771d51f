//! The softphone's configuration file: its SIP accounts (several allowed, one used per run) and
//! the defaults for what the command line can also set. A command-line flag wins over the file.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::ConfigError;
use crate::document::{self, Problem, Validate};
use crate::registrar::{is_host_port, is_user_part};

/// The codec names the softphone knows, in its default order of preference.
pub const SOFTPHONE_CODECS: [&str; 3] = ["opus", "pcmu", "pcma"];

/// The softphone's whole configuration, as read from `softphone.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftphoneConfig {
    /// The local address for SIP; when unset, a free port on the address that reaches the
    /// registrar.
    pub bind: Option<SocketAddr>,
    /// Codecs to offer and accept, most preferred first: `opus`, `pcmu`, `pcma`.
    pub codecs: Vec<String>,
    /// Opus target bitrate in bit/s (6000 to 510000); 32000 when unset.
    pub opus_bitrate: Option<u32>,
    /// Opus encoder complexity, 0 to 10; 9 when unset.
    pub opus_complexity: Option<u8>,
    /// Offer and accept RFC 4733 telephone-event for DTMF (else DTMF goes by SIP INFO).
    pub telephone_event: bool,
    /// Answer incoming calls at once.
    pub auto_answer: bool,
    /// What we send, as `--audio-in` takes it: `tone:FREQ` or a WAV file.
    pub audio_in: Option<String>,
    /// Where the far end's audio goes, as `--audio-out` takes it: a WAV file or `null`.
    pub audio_out: Option<String>,
    /// Log every SIP message sent and received.
    pub sip_trace: bool,
    /// Record every SIP, RTP and RTCP packet sent and received in this pcap file.
    pub pcap: Option<std::path::PathBuf>,
    /// When calls use SRTP, as `--srtp` takes it: `off`, `offer` (the default) or `require`.
    pub srtp: Option<String>,
    /// The SIP accounts (`[[account]]` tables), in the file's order.
    #[serde(rename = "account")]
    pub accounts: Vec<AccountConfig>,
}

impl Default for SoftphoneConfig {
    fn default() -> Self {
        SoftphoneConfig {
            bind: None,
            codecs: SOFTPHONE_CODECS.iter().map(|c| (*c).to_owned()).collect(),
            opus_bitrate: None,
            opus_complexity: None,
            telephone_event: true,
            auto_answer: false,
            audio_in: None,
            audio_out: None,
            sip_trace: false,
            pcap: None,
            srtp: None,
            accounts: Vec::new(),
        }
    }
}

/// One SIP account: who we are and where we register.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The name `--account` picks it by.
    pub name: String,
    /// The extension: the user part of our address of record and the digest user name.
    pub user: String,
    /// The digest password.
    #[serde(default)]
    pub password: String,
    /// The registrar (and outbound proxy), `HOST[:PORT]`, or `sips:HOST[:PORT]` for TLS;
    /// without one, calls go peer to peer.
    #[serde(default)]
    pub registrar: Option<String>,
    /// The transport to the registrar: `udp` (the default), `tcp` or `tls` (RFC 3261 §26.2;
    /// port 5061 unless the registrar names one).
    #[serde(default)]
    pub transport: Option<String>,
    /// A PEM file of certificates to trust for TLS besides the system's (a private CA, or the
    /// registrar's self-signed certificate).
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
    /// Our SIP domain; the registrar's host when unset.
    #[serde(default)]
    pub domain: Option<String>,
    /// Use this account when `--account` names none; otherwise the first account is used.
    #[serde(default)]
    pub default: bool,
}

impl SoftphoneConfig {
    /// Parses and validates `text`; `origin` names it in error messages (usually its path).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        document::parse(text, origin)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        document::load(path)
    }

    /// The account called `name`, or without a name the one marked `default` (else the first).
    pub fn account(&self, name: Option<&str>) -> Option<&AccountConfig> {
        match name {
            Some(name) => self.accounts.iter().find(|a| a.name == name),
            None => self.accounts.iter().find(|a| a.default).or(self.accounts.first()),
        }
    }
}

impl Validate for SoftphoneConfig {
    fn validate(&self) -> Result<(), Problem> {
        if let Some(srtp) = &self.srtp
            && !["off", "offer", "require"].contains(&srtp.to_ascii_lowercase().as_str())
        {
            return Err(Problem::at(
                &[&["srtp"]],
                format!("unknown srtp policy {srtp:?}; expected off, offer or require"),
            ));
        }
        if self.codecs.is_empty() {
            return Err(Problem::at(&[&["codecs"]], "codecs is empty; expected at least one of opus, pcmu, pcma"));
        }
        if let Some(unknown) = self.codecs.iter().find(|c| !SOFTPHONE_CODECS.contains(&c.to_ascii_lowercase().as_str()))
        {
            return Err(Problem::at(&[&["codecs"]], format!("unknown codec {unknown:?}; expected opus, pcmu or pcma")));
        }
        if let Some(bitrate) = self.opus_bitrate
            && !(6_000..=510_000).contains(&bitrate)
        {
            return Err(Problem::at(
                &[&["opus_bitrate"]],
                format!("opus_bitrate {bitrate} is out of range; expected 6000 to 510000"),
            ));
        }
        if let Some(complexity) = self.opus_complexity
            && complexity > 10
        {
            return Err(Problem::at(
                &[&["opus_complexity"]],
                format!("opus_complexity {complexity} is out of range; expected 0 to 10"),
            ));
        }
        let mut names = BTreeSet::new();
        for account in &self.accounts {
            let at = [&["account"][..]];
            if account.name.is_empty() || !names.insert(account.name.as_str()) {
                return Err(Problem::at(
                    &at,
                    format!(
                        "account name {:?} is empty or used twice; expected a unique name per account",
                        account.name
                    ),
                ));
            }
            if !is_user_part(&account.user) {
                return Err(Problem::at(
                    &at,
                    format!(
                        "account {:?} has the invalid user {:?}; expected an extension like 1001",
                        account.name, account.user
                    ),
                ));
            }
            if let Some(transport) = &account.transport
                && !["udp", "tcp", "tls"].contains(&transport.to_ascii_lowercase().as_str())
            {
                return Err(Problem::at(
                    &at,
                    format!(
                        "account {:?} has the unknown transport {transport:?}; expected udp, tcp or tls",
                        account.name
                    ),
                ));
            }
            if let Some(registrar) = &account.registrar
                && !is_host_port(registrar.strip_prefix("sips:").unwrap_or(registrar))
            {
                return Err(Problem::at(
                    &at,
                    format!(
                        "account {:?} has the invalid registrar {registrar:?}; expected HOST or HOST:PORT like pbx.example.com:5060",
                        account.name
                    ),
                ));
            }
        }
        if self.accounts.iter().filter(|a| a.default).count() > 1 {
            return Err(Problem::at(
                &[&["account"]],
                "more than one account says default = true; expected at most one",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_SOFTPHONE_TOML;

    fn parse(text: &str) -> Result<SoftphoneConfig, ConfigError> {
        SoftphoneConfig::from_toml(text, Path::new("softphone.toml"))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("").expect("empty is valid"), SoftphoneConfig::default());
    }

    #[test]
    fn example_file_parses_and_picks_its_default_account() {
        let config = parse(DEFAULT_SOFTPHONE_TOML).expect("the example parses");
        assert_eq!(config.accounts.len(), 2);
        assert_eq!(config.account(None).map(|a| a.name.as_str()), Some("office"));
        assert_eq!(config.account(Some("home")).map(|a| a.user.as_str()), Some("2001"));
        assert_eq!(config.account(Some("nosuch")), None);
    }

    #[test]
    fn account_takes_a_tls_transport_and_a_ca_file() {
        let text = "[[account]]\nname = \"a\"\nuser = \"1001\"\nregistrar = \"sips:pbx.test\"\ntransport = \"tls\"\nca = \"ca.pem\"\n";
        let config = parse(text).expect("valid");
        let account = config.account(None).unwrap();
        assert_eq!(account.transport.as_deref(), Some("tls"));
        assert_eq!(account.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        let error = parse(&text.replace("\"tls\"", "\"sctp\"")).unwrap_err().to_string();
        assert!(error.contains("unknown transport \"sctp\"; expected udp, tcp or tls"), "{error}");
    }

    #[test]
    fn pcap_key_names_the_capture_file() {
        let config = parse("pcap = \"phone.pcap\"\n").expect("valid");
        assert_eq!(config.pcap.as_deref(), Some(std::path::Path::new("phone.pcap")));
    }

    #[test]
    fn without_a_default_the_first_account_is_used() {
        let config =
            parse("[[account]]\nname = \"a\"\nuser = \"1\"\n[[account]]\nname = \"b\"\nuser = \"2\"\n").expect("valid");
        assert_eq!(config.account(None).map(|a| a.name.as_str()), Some("a"));
    }

    #[test]
    fn duplicate_account_names_are_refused_at_the_account() {
        let text = "[[account]]\nname = \"a\"\nuser = \"1\"\n[[account]]\nname = \"a\"\nuser = \"2\"\n";
        let error = parse(text).expect_err("duplicate names").to_string();
        assert!(error.starts_with("softphone.toml:1:"), "{error}");
        assert!(error.contains("used twice"), "{error}");
    }

    #[test]
    fn bad_user_registrar_and_codec_are_named() {
        let bad_user = parse("[[account]]\nname = \"a\"\nuser = \"10 01\"\n").expect_err("bad user").to_string();
        assert!(bad_user.contains("invalid user \"10 01\""), "{bad_user}");
        let bad_registrar = parse("[[account]]\nname = \"a\"\nuser = \"1\"\nregistrar = \"pbx:0\"\n")
            .expect_err("bad registrar")
            .to_string();
        assert!(bad_registrar.contains("invalid registrar \"pbx:0\""), "{bad_registrar}");
        let bad_codec = parse("codecs = [\"opus\", \"g729\"]\n").expect_err("bad codec").to_string();
        assert!(bad_codec.starts_with("softphone.toml:1:"), "{bad_codec}");
        assert!(bad_codec.contains("unknown codec \"g729\""), "{bad_codec}");
    }

    #[test]
    fn two_defaults_and_unknown_keys_are_refused() {
        let two = "[[account]]\nname = \"a\"\nuser = \"1\"\ndefault = true\n[[account]]\nname = \"b\"\nuser = \"2\"\ndefault = true\n";
        assert!(parse(two).expect_err("two defaults").to_string().contains("more than one account"));
        let typo = parse("[[account]]\nname = \"a\"\nuser = \"1\"\npasword = \"x\"\n").expect_err("typo").to_string();
        assert!(typo.starts_with("softphone.toml:4:"), "{typo}");
    }
}
