//! The command line and the configuration file (`--config`, several accounts, one used per run):
//! what the phone is asked to do, checked and typed before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use proto::codec::CodecKind;
use proto::sip::{Transport, Uri};

/// A SIP softphone: registers, places or answers one call, and plays and records its audio from
/// and to files, tones or nothing (scripted mode).
#[derive(Debug, Parser)]
#[command(name = "softphone", version)]
pub struct Cli {
    /// A configuration file (TOML) with accounts and defaults; flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The account of `--config` to use; the one marked default (else the first) when left out.
    #[arg(long, value_name = "NAME", requires = "config")]
    pub account: Option<String>,
    /// The registrar (and outbound proxy), HOST[:PORT] (port 5060, 5061 over TLS, when left
    /// out), or sips:HOST[:PORT] for TLS.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub registrar: Option<String>,
    /// The transport to the registrar: udp (the default), tcp, or tls (sips: implies it).
    #[arg(long, value_name = "udp|tcp|tls")]
    pub transport: Option<String>,
    /// A PEM file of certificates to trust for TLS besides the system's: a private CA, or the
    /// registrar's self-signed certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Our extension: the user part of our address and the digest user name.
    #[arg(long, value_name = "EXT")]
    pub user: Option<String>,
    /// The digest password.
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// Our SIP domain; the registrar's host when left out.
    #[arg(long, value_name = "NAME")]
    pub domain: Option<String>,
    /// The local address for SIP; a free port on the address that reaches the registrar when left out.
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<SocketAddr>,
    /// Call this extension (through the registrar's domain) or this `sip:` URI (directly).
    #[arg(long, value_name = "TARGET")]
    pub dial: Option<String>,
    /// Answer incoming calls at once.
    #[arg(long)]
    pub auto_answer: bool,
    /// Run for at most this long, then hang up, unregister and exit.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Hang up this long after the call is answered.
    #[arg(long, value_name = "SECONDS")]
    pub hangup_after: Option<f64>,
    /// Give up on the dialled call (CANCEL) if it is not answered this long after dialling;
    /// the run then counts as done as asked once the far end confirms with 487.
    #[arg(long, value_name = "SECONDS")]
    pub cancel_after: Option<f64>,
    /// What we send: `tone:FREQ` (a sine), `pulse:FREQ` (100 ms bursts of a sine each second;
    /// with `--events json`, `onset_sent` and `onset_played` events time them through the call)
    /// or a WAV file (looped); the default sound device when neither --audio-in nor --audio-out
    /// is given, else silence.
    #[arg(long, value_name = "tone:FREQ|pulse:FREQ|FILE.wav", conflicts_with = "input_device")]
    pub audio_in: Option<String>,
    /// Where the far end's audio goes: a WAV file at the codec's rate, or `null`; the default
    /// sound device when neither --audio-in nor --audio-out is given, else nothing.
    #[arg(long, value_name = "FILE.wav|null", conflicts_with = "output_device")]
    pub audio_out: Option<String>,
    /// Capture from this sound device (a name from --list-devices, or `default`).
    #[arg(long, value_name = "NAME")]
    pub input_device: Option<String>,
    /// Play on this sound device (a name from --list-devices, or `default`).
    #[arg(long, value_name = "NAME")]
    pub output_device: Option<String>,
    /// List the sound devices and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Codecs to offer and accept, most preferred first [default: opus,pcmu,pcma].
    #[arg(long, value_name = "LIST")]
    pub codecs: Option<String>,
    /// Opus target bitrate in bit/s, 6000 to 510000 [default: 32000]; the far end's
    /// `maxaveragebitrate` caps it.
    #[arg(long, value_name = "BPS")]
    pub opus_bitrate: Option<u32>,
    /// Opus encoder complexity, 0 (cheapest) to 10 (best) [default: 9].
    #[arg(long, value_name = "0-10")]
    pub opus_complexity: Option<u8>,
    /// Event output on stdout: `json` for one JSON object per line.
    #[arg(long, value_name = "FORMAT")]
    pub events: Option<String>,
    /// Put the call on hold (re-INVITE with `a=sendonly`) this long after it is answered.
    #[arg(long, value_name = "SECONDS")]
    pub hold_at: Option<f64>,
    /// Take the call off hold (re-INVITE with `a=sendrecv`) this long after it is answered.
    #[arg(long, value_name = "SECONDS")]
    pub resume_at: Option<f64>,
    /// Mute our audio (RTP goes on, carrying silence) this long after the call is answered.
    #[arg(long, value_name = "SECONDS")]
    pub mute_at: Option<f64>,
    /// Unmute our audio this long after the call is answered.
    #[arg(long, value_name = "SECONDS")]
    pub unmute_at: Option<f64>,
    /// DTMF digits to send (0-9, *, #, A-D), as RFC 4733 events when negotiated, else SIP INFO.
    #[arg(long, value_name = "DIGITS")]
    pub dtmf: Option<String>,
    /// Send `--dtmf` this long after the call is answered (at once when left out).
    #[arg(long, value_name = "SECONDS")]
    pub dtmf_at: Option<f64>,
    /// Offer and accept no telephone-event, so DTMF goes by SIP INFO.
    #[arg(long)]
    pub no_telephone_event: bool,
    /// Log every SIP message sent and received on stderr.
    #[arg(long)]
    pub sip_trace: bool,
    /// The interactive terminal UI; the default when stdout is a terminal and neither --dial,
    /// --auto-answer nor --events json is given.
    #[arg(long)]
    pub tui: bool,
    /// Transfer the connected call (blind, by REFER) to this extension or `sip:` URI.
    #[arg(long, value_name = "TARGET")]
    pub transfer: Option<String>,
    /// Send `--transfer` this long after the call is answered (at once when left out).
    #[arg(long, value_name = "SECONDS")]
    pub transfer_at: Option<f64>,
    /// Record every SIP, RTP and RTCP packet sent and received in a pcap file for Wireshark.
    /// SRTP media is recorded decrypted, as plain RTP and RTCP.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// SRTP (SDES keys in the SDP, so only over TLS signalling) [default: offer]. `off`: plain
    /// RTP only. `offer`: over TLS, offer RTP/SAVP and answer RTP/SAVP offers with SRTP and
    /// RTP/AVP ones in the clear; over UDP/TCP as `off`. `require`: over TLS as `offer` but
    /// plain offers get 488; over UDP/TCP every call fails.
    #[arg(long, value_name = "off|offer|require")]
    pub srtp: Option<String>,
    /// Over TCP or TLS, write a CRLF keep-alive to the registrar every 80% to 100% of this many
    /// seconds (RFC 5626 §4.4.1) [default: 120; 0: none].
    #[arg(long, value_name = "SECONDS")]
    pub keepalive: Option<f64>,
}

/// What was wrong with the command line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--srtp` or the file's `srtp` is not a policy.
    #[error("--srtp: {0}")]
    Srtp(String),
    /// The configuration file could not be read or is not valid.
    #[error(transparent)]
    File(#[from] ::config::ConfigError),
    /// `--account` names no account of the file.
    #[error("{file}: no account named {name:?}; the file has {known}")]
    NoSuchAccount {
        /// The configuration file.
        file: String,
        /// The name asked for.
        name: String,
        /// The names it has, comma-separated.
        known: String,
    },
    /// Neither the command line nor the file says who we are.
    #[error("no account: give --user EXT (with --password and --registrar), or --config FILE with an [[account]]")]
    NoAccount,
    /// `--codecs` names a codec we do not have.
    #[error("unknown codec {0:?} in --codecs: use opus, pcmu or pcma, comma-separated")]
    UnknownCodec(String),
    /// `--codecs` is empty.
    #[error("--codecs names no codec: give at least one of opus, pcmu, pcma")]
    NoCodec,
    /// `--audio-in tone:FREQ` or `pulse:FREQ` with a bad frequency.
    #[error("bad tone {0:?} in --audio-in: write tone:FREQ or pulse:FREQ with FREQ in Hz, like tone:1000")]
    BadTone(String),
    /// `--events` names an unknown format.
    #[error("unknown --events format {0:?}: only json is supported")]
    UnknownEvents(String),
    /// `--dial` or `--transfer` is neither an extension nor a SIP URI.
    #[error("cannot call {0:?}: give an extension like 1002 or a URI like sip:1002@192.0.2.1:5060")]
    BadTarget(String),
    /// An extension was dialled (or named for a transfer) with no registrar to route it.
    #[error("calling extension {0:?} needs --registrar; without one, give a sip: URI")]
    ExtensionNeedsRegistrar(String),
    /// `--registrar` is not HOST[:PORT].
    #[error("bad --registrar {0:?}: write HOST or HOST:PORT")]
    BadRegistrar(String),
    /// `--transport` is not one we speak.
    #[error("unknown --transport {0:?}: use udp, tcp or tls")]
    BadTransport(String),
    /// A `sips:` registrar was asked for over a transport that is not TLS.
    #[error("a sips: registrar is reached over TLS only (RFC 5630): leave out --transport {0} or use tls")]
    SipsNeedsTls(String),
    /// `--dtmf` holds something that is not a DTMF digit.
    #[error("bad --dtmf {0:?}: use the digits 0-9, *, # and A-D")]
    BadDtmf(String),
    /// A duration is negative or not a number.
    #[error("bad {0}: give a non-negative number of seconds")]
    BadSeconds(&'static str),
    /// `--opus-bitrate` or `--opus-complexity` is out of range.
    #[error("bad {0}: the Opus bitrate goes from 6000 to 510000 bit/s, the complexity from 0 to 10")]
    BadOpus(&'static str),
}

/// Where the phone's outgoing audio comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioIn {
    /// Silence.
    Silence,
    /// A sine of this frequency in Hz.
    Tone(f32),
    /// Bursts of a sine of this frequency in Hz, one a second.
    Pulse(f32),
    /// A WAV file, looped.
    File(PathBuf),
    /// A sound card.
    Device(DeviceChoice),
}

/// Where the far end's audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioOut {
    /// Nowhere.
    Null,
    /// A WAV file.
    File(PathBuf),
    /// A sound card.
    Device(DeviceChoice),
}

/// A sound device to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChoice {
    /// Its name, or `default`.
    pub name: String,
    /// Whether the user named it (`--input-device`/`--output-device`), rather than it being
    /// the default audio: a named device that fails is an error, a default one falls back.
    pub asked: bool,
}

/// Whom to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// An extension at our domain, through the registrar.
    Extension(String),
    /// A SIP URI, sent to directly.
    Uri(Uri),
}

/// The registrar's host and port as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP address.
    pub host: String,
    /// Port, 5060 by default.
    pub port: u16,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The registrar, if any.
    pub registrar: Option<HostPort>,
    /// The transport to the registrar (UDP without one).
    pub transport: Transport,
    /// Certificates to trust for TLS besides the system's.
    pub ca: Option<PathBuf>,
    /// Our extension.
    pub user: String,
    /// Our digest password.
    pub password: String,
    /// Our domain.
    pub domain: Option<String>,
    /// Local SIP address.
    pub bind: Option<SocketAddr>,
    /// Whom to call.
    pub dial: Option<DialTarget>,
    /// Answer incoming calls at once.
    pub auto_answer: bool,
    /// Run time limit.
    pub duration: Option<Duration>,
    /// Hang up this long after answer.
    pub hangup_after: Option<Duration>,
    /// CANCEL the dialled call if still unanswered this long after dialling.
    pub cancel_after: Option<Duration>,
    /// Outgoing audio.
    pub audio_in: AudioIn,
    /// Incoming audio.
    pub audio_out: AudioOut,
    /// Codecs, most preferred first.
    pub codecs: Vec<CodecKind>,
    /// How Opus is encoded.
    pub opus: crate::media::OpusSettings,
    /// JSON events on stdout.
    pub json_events: bool,
    /// Hold this long after answer.
    pub hold_at: Option<Duration>,
    /// Resume this long after answer.
    pub resume_at: Option<Duration>,
    /// Mute this long after answer.
    pub mute_at: Option<Duration>,
    /// Unmute this long after answer.
    pub unmute_at: Option<Duration>,
    /// DTMF digits to send, upper case.
    pub dtmf: String,
    /// Send the DTMF digits this long after answer.
    pub dtmf_at: Duration,
    /// Offer telephone-event (RFC 4733).
    pub telephone_event: bool,
    /// Log every SIP message.
    pub sip_trace: bool,
    /// `--tui` was given.
    pub tui: bool,
    /// Whom to transfer the call to.
    pub transfer: Option<DialTarget>,
    /// Transfer this long after answer.
    pub transfer_at: Duration,
    /// Record every packet in this pcap file.
    pub pcap: Option<PathBuf>,
    /// When calls use SRTP.
    pub srtp: crate::agent::SrtpPolicy,
    /// The CRLF keep-alive interval over TCP and TLS; `None` for none.
    pub keepalive: Option<Duration>,
}

impl Config {
    /// Checks the command line, reading `--config` first when given: a flag wins over the file.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => ::config::SoftphoneConfig::load(path)?,
            None => ::config::SoftphoneConfig::default(),
        };
        let account = match (&cli.config, cli.account.as_deref()) {
            (Some(path), name) => match file.account(name) {
                Some(account) => Some(account.clone()),
                None if name.is_none() => None,
                None => {
                    return Err(ConfigError::NoSuchAccount {
                        file: path.display().to_string(),
                        name: name.unwrap_or_default().to_owned(),
                        known: file.accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "),
                    });
                }
            },
            (None, _) => None,
        };
        let user = cli.user.or_else(|| account.as_ref().map(|a| a.user.clone())).ok_or(ConfigError::NoAccount)?;
        let password = cli.password.or_else(|| account.as_ref().map(|a| a.password.clone())).unwrap_or_default();
        let registrar = cli.registrar.or_else(|| account.as_ref().and_then(|a| a.registrar.clone()));
        let transport = cli.transport.or_else(|| account.as_ref().and_then(|a| a.transport.clone()));
        let (transport, registrar) = transport_and_registrar(transport.as_deref(), registrar.as_deref())?;
        let ca = cli.ca.or_else(|| account.as_ref().and_then(|a| a.ca.clone()));
        let dial = cli.dial.as_deref().map(parse_target).transpose()?;
        let transfer = cli.transfer.as_deref().map(parse_target).transpose()?;
        for target in [&dial, &transfer] {
            if let (Some(DialTarget::Extension(ext)), None) = (target, &registrar) {
                return Err(ConfigError::ExtensionNeedsRegistrar(ext.clone()));
            }
        }
        let audio_in = cli.audio_in.or(file.audio_in);
        let audio_out = cli.audio_out.or(file.audio_out);
        // Sound devices are the default audio only when no file, tone or null was asked for.
        let devices_by_default = audio_in.is_none() && audio_out.is_none();
        let device = |named: &Option<String>| match named {
            Some(name) => Some(DeviceChoice { name: name.clone(), asked: true }),
            None if devices_by_default => Some(DeviceChoice { name: "default".to_owned(), asked: false }),
            None => None,
        };
        let (input_device, output_device) = (device(&cli.input_device), device(&cli.output_device));
        Ok(Config {
            registrar,
            transport,
            ca,
            user,
            password,
            domain: cli.domain.or_else(|| account.and_then(|a| a.domain)),
            bind: cli.bind.or(file.bind),
            dial,
            auto_answer: cli.auto_answer || file.auto_answer,
            duration: seconds(cli.duration, "--duration")?,
            hangup_after: seconds(cli.hangup_after, "--hangup-after")?,
            cancel_after: seconds(cli.cancel_after, "--cancel-after")?,
            audio_in: match input_device {
                Some(choice) => AudioIn::Device(choice),
                None => audio_in.as_deref().map_or(Ok(AudioIn::Silence), parse_audio_in)?,
            },
            audio_out: match (output_device, audio_out.as_deref()) {
                (Some(choice), _) => AudioOut::Device(choice),
                (None, None | Some("null")) => AudioOut::Null,
                (None, Some(path)) => AudioOut::File(PathBuf::from(path)),
            },
            codecs: parse_codecs(&cli.codecs.unwrap_or_else(|| file.codecs.join(",")))?,
            opus: opus_settings(cli.opus_bitrate.or(file.opus_bitrate), cli.opus_complexity.or(file.opus_complexity))?,
            json_events: match cli.events.as_deref() {
                None => false,
                Some(f) if f.eq_ignore_ascii_case("json") => true,
                Some(other) => return Err(ConfigError::UnknownEvents(other.to_owned())),
            },
            hold_at: seconds(cli.hold_at, "--hold-at")?,
            resume_at: seconds(cli.resume_at, "--resume-at")?,
            mute_at: seconds(cli.mute_at, "--mute-at")?,
            unmute_at: seconds(cli.unmute_at, "--unmute-at")?,
            dtmf: parse_dtmf(cli.dtmf.as_deref().unwrap_or_default())?,
            dtmf_at: seconds(cli.dtmf_at, "--dtmf-at")?.unwrap_or_default(),
            telephone_event: !cli.no_telephone_event && file.telephone_event,
            sip_trace: cli.sip_trace || file.sip_trace,
            transfer,
            transfer_at: seconds(cli.transfer_at, "--transfer-at")?.unwrap_or_default(),
            tui: cli.tui,
            pcap: cli.pcap.or(file.pcap),
            srtp: cli.srtp.or(file.srtp).map(|p| p.parse()).transpose().map_err(ConfigError::Srtp)?.unwrap_or_default(),
            keepalive: match seconds(cli.keepalive, "--keepalive")? {
                None => Some(crate::agent::keepalive::DEFAULT_INTERVAL),
                Some(interval) => Some(interval).filter(|i| !i.is_zero()),
            },
        })
    }

    /// Whether to run the interactive terminal UI: asked for, or stdout is a terminal and
    /// nothing scripted was asked for.
    pub fn interactive(&self, stdout_is_terminal: bool) -> bool {
        self.tui || (stdout_is_terminal && self.dial.is_none() && !self.auto_answer && !self.json_events)
    }
}

/// The Opus settings asked for, each checked; the defaults where none was given.
fn opus_settings(bitrate: Option<u32>, complexity: Option<u8>) -> Result<crate::media::OpusSettings, ConfigError> {
    let defaults = crate::media::OpusSettings::default();
    let bitrate = bitrate.unwrap_or(defaults.bitrate);
    if !(6_000..=510_000).contains(&bitrate) {
        return Err(ConfigError::BadOpus("--opus-bitrate"));
    }
    let complexity = complexity.unwrap_or(defaults.complexity);
    if complexity > 10 {
        return Err(ConfigError::BadOpus("--opus-complexity"));
    }
    Ok(crate::media::OpusSettings { bitrate, complexity })
}

fn seconds(value: Option<f64>, what: &'static str) -> Result<Option<Duration>, ConfigError> {
    value.map(|s| Duration::try_from_secs_f64(s).map_err(|_| ConfigError::BadSeconds(what))).transpose()
}

/// Checks `--dtmf`: every character a DTMF digit; letters made upper case.
pub fn parse_dtmf(digits: &str) -> Result<String, ConfigError> {
    let upper = digits.to_ascii_uppercase();
    if upper.chars().all(|c| proto::codec::event_for_digit(c).is_some()) {
        Ok(upper)
    } else {
        Err(ConfigError::BadDtmf(digits.to_owned()))
    }
}

/// Parses `opus,pcmu,pcma`.
pub fn parse_codecs(list: &str) -> Result<Vec<CodecKind>, ConfigError> {
    let mut codecs = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = match name.to_ascii_lowercase().as_str() {
            "opus" => CodecKind::Opus,
            "pcmu" => CodecKind::Pcmu,
            "pcma" => CodecKind::Pcma,
            _ => return Err(ConfigError::UnknownCodec(name.to_owned())),
        };
        if !codecs.contains(&kind) {
            codecs.push(kind);
        }
    }
    if codecs.is_empty() {
        return Err(ConfigError::NoCodec);
    }
    Ok(codecs)
}

/// Parses `tone:FREQ`, `pulse:FREQ` or a file name.
pub fn parse_audio_in(text: &str) -> Result<AudioIn, ConfigError> {
    let (kind, freq): (fn(f32) -> AudioIn, _) = match (text.strip_prefix("tone:"), text.strip_prefix("pulse:")) {
        (Some(freq), _) => (AudioIn::Tone, freq),
        (None, Some(freq)) => (AudioIn::Pulse, freq),
        (None, None) => return Ok(AudioIn::File(PathBuf::from(text))),
    };
    match freq.trim().parse::<f32>() {
        Ok(f) if f.is_finite() && f > 0.0 && f < 24_000.0 => Ok(kind(f)),
        _ => Err(ConfigError::BadTone(text.to_owned())),
    }
}

/// The transport (`--transport`, else TLS for a `sips:` registrar, else UDP) and the registrar,
/// whose port defaults to the transport's (5061 for TLS).
fn transport_and_registrar(
    transport: Option<&str>,
    registrar: Option<&str>,
) -> Result<(Transport, Option<HostPort>), ConfigError> {
    let named =
        transport.map(|t| t.parse::<Transport>().map_err(|_| ConfigError::BadTransport(t.to_owned()))).transpose()?;
    let (sips, registrar) = match registrar {
        Some(r) => match r.strip_prefix("sips:") {
            Some(rest) => (true, Some(rest)),
            None => (false, Some(r.strip_prefix("sip:").unwrap_or(r))),
        },
        None => (false, None),
    };
    let transport = match (sips, named) {
        (true, Some(t)) if t != Transport::Tls => return Err(ConfigError::SipsNeedsTls(t.param().to_owned())),
        (true, _) => Transport::Tls,
        (false, named) => named.unwrap_or(Transport::Udp),
    };
    let registrar = registrar.map(|r| host_port(r, transport.default_port())).transpose()?;
    Ok((transport, registrar))
}

/// Parses `HOST[:PORT]` (IPv6 literals in brackets) with `default_port` when it names none.
fn host_port(text: &str, default_port: u16) -> Result<HostPort, ConfigError> {
    let bad = || ConfigError::BadRegistrar(text.to_owned());
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(HostPort { host: addr.ip().to_string(), port: addr.port() });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            (host, port.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (text, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(HostPort { host: host.to_owned(), port })
}

/// Parses an extension or a `sip:` URI.
pub fn parse_target(text: &str) -> Result<DialTarget, ConfigError> {
    let bad = || ConfigError::BadTarget(text.to_owned());
    if text.contains(':') {
        let uri = Uri::parse(text).map_err(|_| bad())?;
        return Ok(DialTarget::Uri(uri));
    }
    let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()+".contains(&b));
    if valid { Ok(DialTarget::Extension(text.to_owned())) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dtmf_digits_are_checked_and_letters_made_upper_case() {
        assert_eq!(super::parse_dtmf("12*#ab").unwrap(), "12*#AB");
        assert!(matches!(super::parse_dtmf("12x"), Err(super::ConfigError::BadDtmf(_))));
    }

    use super::*;

    #[test]
    fn codecs_parse_in_order_without_duplicates() {
        assert_eq!(parse_codecs("pcmu, opus,pcmu").unwrap(), [CodecKind::Pcmu, CodecKind::Opus]);
        assert!(matches!(parse_codecs("g729"), Err(ConfigError::UnknownCodec(_))));
        assert!(matches!(parse_codecs(""), Err(ConfigError::NoCodec)));
    }

    #[test]
    fn audio_in_reads_tones_and_files() {
        assert_eq!(parse_audio_in("tone:1500").unwrap(), AudioIn::Tone(1500.0));
        assert_eq!(parse_audio_in("a.wav").unwrap(), AudioIn::File("a.wav".into()));
        assert!(parse_audio_in("tone:x").is_err());
        assert_eq!(parse_audio_in("pulse:1000").unwrap(), AudioIn::Pulse(1000.0));
        assert!(parse_audio_in("pulse:0").is_err());
    }

    #[test]
    fn tls_comes_from_transport_or_a_sips_registrar_with_port_5061() {
        let tls = |t: Option<&str>, r: &str| transport_and_registrar(t, Some(r)).unwrap();
        let at = |host: &str, port| Some(HostPort { host: host.into(), port });
        assert_eq!(tls(None, "sips:pbx.test"), (Transport::Tls, at("pbx.test", 5061)));
        assert_eq!(tls(Some("tls"), "pbx.test"), (Transport::Tls, at("pbx.test", 5061)));
        assert_eq!(tls(Some("TLS"), "sips:127.0.0.1:7001"), (Transport::Tls, at("127.0.0.1", 7001)));
        assert_eq!(tls(None, "pbx.test"), (Transport::Udp, at("pbx.test", 5060)));
        assert_eq!(tls(Some("tcp"), "sip:pbx.test"), (Transport::Tcp, at("pbx.test", 5060)));
        let error = transport_and_registrar(Some("udp"), Some("sips:pbx.test")).unwrap_err();
        assert!(matches!(error, ConfigError::SipsNeedsTls(_)));
        assert!(matches!(transport_and_registrar(Some("sctp"), None), Err(ConfigError::BadTransport(_))));
    }

    #[test]
    fn registrar_takes_host_with_or_without_port() {
        assert_eq!(host_port("127.0.0.1:5070", 5060).unwrap(), HostPort { host: "127.0.0.1".into(), port: 5070 });
        assert_eq!(host_port("pbx.test", 5060).unwrap(), HostPort { host: "pbx.test".into(), port: 5060 });
        assert_eq!(host_port("[::1]:5080", 5060).unwrap(), HostPort { host: "::1".into(), port: 5080 });
        assert!(host_port("a:b", 5060).is_err());
    }

    #[test]
    fn opus_settings_are_checked_and_default_to_32k_complexity_9() {
        assert_eq!(opus_settings(None, None).unwrap(), crate::media::OpusSettings { bitrate: 32_000, complexity: 9 });
        assert_eq!(
            opus_settings(Some(16_000), Some(3)).unwrap(),
            crate::media::OpusSettings { bitrate: 16_000, complexity: 3 }
        );
        assert!(matches!(opus_settings(Some(5_999), None), Err(ConfigError::BadOpus("--opus-bitrate"))));
        assert!(matches!(opus_settings(None, Some(11)), Err(ConfigError::BadOpus("--opus-complexity"))));
    }

    #[test]
    fn durations_must_be_non_negative_and_finite() {
        assert_eq!(seconds(Some(1.5), "--duration").unwrap(), Some(Duration::from_millis(1500)));
        assert!(seconds(Some(-1.0), "--duration").is_err());
        assert!(seconds(Some(f64::INFINITY), "--duration").is_err());
        assert!(seconds(Some(1e300), "--duration").is_err());
    }

    #[test]
    fn targets_are_extensions_or_uris() {
        assert_eq!(parse_target("1002").unwrap(), DialTarget::Extension("1002".into()));
        assert!(matches!(parse_target("sip:1002@127.0.0.1:5070").unwrap(), DialTarget::Uri(_)));
        assert!(parse_target("10 02").is_err());
    }

    fn audio(args: &[&str]) -> (AudioIn, AudioOut) {
        let cli = Cli::try_parse_from(["softphone", "--user", "1001"].iter().chain(args)).unwrap();
        let config = Config::from_cli(cli).unwrap();
        (config.audio_in, config.audio_out)
    }

    #[test]
    fn sound_devices_are_the_default_only_when_no_file_or_tone_is_asked_for() {
        let default = |asked| DeviceChoice { name: "default".into(), asked };
        assert_eq!(audio(&[]), (AudioIn::Device(default(false)), AudioOut::Device(default(false))));
        assert_eq!(audio(&["--audio-in", "tone:440"]), (AudioIn::Tone(440.0), AudioOut::Null));
        assert_eq!(audio(&["--audio-out", "null"]), (AudioIn::Silence, AudioOut::Null));
        let hw = DeviceChoice { name: "hw:0".into(), asked: true };
        assert_eq!(audio(&["--input-device", "hw:0"]), (AudioIn::Device(hw.clone()), AudioOut::Device(default(false))));
        assert_eq!(
            audio(&["--output-device", "hw:0", "--audio-in", "a.wav"]),
            (AudioIn::File("a.wav".into()), AudioOut::Device(hw))
        );
        let both = ["softphone", "--user", "1", "--audio-in", "a.wav", "--input-device", "x"];
        assert!(Cli::try_parse_from(both).is_err(), "a file and a device for the same way conflict");
    }

    #[test]
    fn list_devices_needs_no_user() {
        assert!(Cli::try_parse_from(["softphone", "--list-devices"]).unwrap().list_devices);
    }

    #[test]
    fn interactive_on_a_terminal_unless_a_script_is_given_or_always_with_tui() {
        let config = |args: &[&str]| {
            let cli = Cli::try_parse_from(["softphone", "--user", "1001"].iter().chain(args)).unwrap();
            Config::from_cli(cli).unwrap()
        };
        assert!(config(&[]).interactive(true));
        assert!(!config(&[]).interactive(false), "not when stdout is a pipe or a file");
        assert!(!config(&["--dial", "sip:1002@127.0.0.1"]).interactive(true));
        assert!(!config(&["--auto-answer"]).interactive(true));
        assert!(!config(&["--events", "json"]).interactive(true));
        assert!(config(&["--tui"]).interactive(false));
    }

    #[test]
    fn transfer_takes_a_target_and_a_time_and_an_extension_needs_a_registrar() {
        let cli =
            ["softphone", "--user", "1002", "--registrar", "127.0.0.1", "--transfer", "1003", "--transfer-at", "2"];
        let config = Config::from_cli(Cli::try_parse_from(cli).unwrap()).unwrap();
        assert_eq!(config.transfer, Some(DialTarget::Extension("1003".into())));
        assert_eq!(config.transfer_at, Duration::from_secs(2));
        let cli = Cli::try_parse_from(["softphone", "--user", "1002", "--transfer", "1003"]).unwrap();
        assert!(matches!(Config::from_cli(cli), Err(ConfigError::ExtensionNeedsRegistrar(_))));
    }

    #[test]
    fn cancel_after_is_parsed_in_seconds() {
        let cli = Cli::try_parse_from(["softphone", "--user", "1001", "--cancel-after", "2.5"]).unwrap();
        assert_eq!(Config::from_cli(cli).unwrap().cancel_after, Some(Duration::from_millis(2500)));
        let cli = Cli::try_parse_from(["softphone", "--user", "1001", "--cancel-after=-1"]).unwrap();
        assert!(matches!(Config::from_cli(cli), Err(ConfigError::BadSeconds("--cancel-after"))));
    }
    fn config_from(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("softphone").chain(args.iter().copied())).expect("valid flags");
        Config::from_cli(cli)
    }

    fn write_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("softphone.toml");
        std::fs::write(&path, text).expect("write the file");
        let path = path.display().to_string();
        (dir, path)
    }

    #[test]
    fn config_file_accounts_are_picked_by_name_or_default() {
        let (_dir, path) = write_file(::config::DEFAULT_SOFTPHONE_TOML);
        let office = config_from(&["--config", &path]).expect("default account");
        assert_eq!((office.user.as_str(), office.password.as_str()), ("1001", "change-me"));
        assert_eq!(office.registrar, Some(HostPort { host: "127.0.0.1".into(), port: 5060 }));
        let home = config_from(&["--config", &path, "--account", "home"]).expect("named account");
        assert_eq!(home.user, "2001");
        assert_eq!(home.registrar, Some(HostPort { host: "127.0.0.1".into(), port: 5070 }));
        let error = config_from(&["--config", &path, "--account", "cottage"]).expect_err("no such account");
        assert!(error.to_string().ends_with("no account named \"cottage\"; the file has office, home"), "{error}");
    }

    #[test]
    fn flags_win_over_the_file() {
        let (_dir, path) = write_file(
            "codecs = [\"pcmu\"]\naudio_in = \"tone:440\"\n[[account]]\nname = \"a\"\nuser = \"1001\"\npassword = \"pw\"\nregistrar = \"127.0.0.1:5060\"\n",
        );
        let from_file = config_from(&["--config", &path]).expect("valid");
        assert_eq!(from_file.codecs, [CodecKind::Pcmu]);
        assert_eq!(from_file.audio_in, AudioIn::Tone(440.0));
        let overridden =
            config_from(&["--config", &path, "--user", "1009", "--codecs", "opus", "--audio-in", "tone:1000"])
                .expect("valid");
        assert_eq!((overridden.user.as_str(), overridden.password.as_str()), ("1009", "pw"));
        assert_eq!(overridden.codecs, [CodecKind::Opus]);
        assert_eq!(overridden.audio_in, AudioIn::Tone(1000.0));
    }

    #[test]
    fn a_bad_file_is_reported_with_its_line_and_no_account_is_an_error() {
        let (_dir, path) = write_file("[[account]]\nname = \"a\"\nuser = \"1001\"\nregistar = \"x\"\n");
        let error = config_from(&["--config", &path]).expect_err("a typo").to_string();
        assert!(error.contains("softphone.toml:4:"), "{error}");
        assert!(matches!(config_from(&[]), Err(ConfigError::NoAccount)));
    }
}
