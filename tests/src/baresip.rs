//! baresip 1.0 (Debian's `baresip-core`) as a test peer: a real phone built on another SIP
//! stack (libre), registering with digest auth through an outbound proxy, playing a sine and
//! recording what it hears.
//!
//! Each instance gets its own config folder (`config`, `accounts`, `contacts`) in a temporary
//! directory, so it never reads the user's `~/.baresip`. It is headless: `ausine` is the
//! microphone, `aubridge` the loudspeaker, and `sndfile` writes what it decoded to
//! `dump-…-dec.wav` (mono 16-bit at the codec's rate). The harness drives it over `ctrl_tcp`
//! (netstring-framed JSON: `{"command":"dial",…}` in, responses and events such as
//! `CALL_ESTABLISHED` out). Facts this relies on, checked with baresip 1.0.0:
//! - `net_interface 127.0.0.1` keeps loopback addresses in its SDP;
//! - the TLS listener takes the SIP port + 1, so both must be free;
//! - `ausine` produces stereo only: `ausrc_channels 2` with the 48 kHz source resampled to the
//!   codec;
//! - libre answers a 401/407 only if every challenge in it is MD5 (it gives up with "Function not
//!   implemented" on a SHA-256 one), so the registrar it talks to must challenge with MD5 alone.

use crate::build::json_string_field;
use crate::process::{stop, wait_for_exit};
use crate::{HarnessError, Peer, Result, free_port, temp_dir};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs baresip's modules (1.0 in `/usr/lib`, later ones per architecture).
const MODULE_DIRS: [&str; 3] = [
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
    "/usr/lib/aarch64-linux-gnu/baresip/modules",
];
/// How long a started baresip has to open its control port.
const CONTROL_LIMIT: Duration = Duration::from_secs(10);
/// How long a control command has to be answered.
const COMMAND_LIMIT: Duration = Duration::from_secs(5);
/// How long a stopped baresip has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// baresip quits by itself after this long (`-t`), even if the harness is killed.
const LIFETIME_SECS: u32 = 90;
/// Polling step of the waits.
const POLL: Duration = Duration::from_millis(20);
/// Starts tried when a port was taken between choosing it and binding it.
const START_ATTEMPTS: u32 = 3;

/// The one codec a baresip instance offers and accepts (its account's `audio_codecs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaresipCodec {
    /// Opus at 48 kHz, mono (`opus_stereo no`), 32 kbit/s.
    Opus,
    /// G.711 µ-law.
    Pcmu,
}

impl BaresipCodec {
    /// The account's `audio_codecs` entry (baresip names its mono Opus `opus/48000/1`).
    fn account_entry(self) -> &'static str {
        match self {
            BaresipCodec::Opus => "opus/48000/1",
            BaresipCodec::Pcmu => "PCMU/8000/1",
        }
    }

    /// The sample rate of its recordings.
    pub fn rate(self) -> u32 {
        match self {
            BaresipCodec::Opus => 48_000,
            BaresipCodec::Pcmu => 8_000,
        }
    }
}

/// How to start baresip.
#[derive(Debug, Clone)]
pub struct BaresipConfig {
    /// The extension it registers (user part and digest user name).
    pub user: String,
    /// The digest password.
    pub password: String,
    /// The SIP domain of its address-of-record.
    pub domain: String,
    /// The registrar, also used as outbound proxy for every request.
    pub proxy: SocketAddr,
    /// The only codec offered and accepted.
    pub codec: BaresipCodec,
    /// The frequency of the sine it sends, in Hz.
    pub tone: u32,
    /// How it answers incoming calls.
    pub answer: AnswerMode,
    /// Reach the proxy over TCP (`;transport=tcp`) instead of UDP.
    pub tcp: bool,
    /// Reach the proxy over TLS (`;transport=tls`; `proxy` is then its TLS address), trusting
    /// the certificates of this PEM file (`sip_cafile`).
    pub tls_ca: Option<PathBuf>,
    /// The loopback address it binds SIP and RTP to and names in its SDP (`net_interface`).
    pub ip: Ipv4Addr,
    /// Offer and accept only SRTP with SDES keys (`srtp.so`, account `mediaenc=srtp-mand`).
    pub srtp: bool,
}

/// How baresip answers incoming calls (its account's `answermode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerMode {
    /// Rings (180) until told to [`Baresip::accept`].
    Manual,
    /// Answers at once (200).
    Auto,
    /// Answers 183 Session Progress with its SDP (early media) until told to
    /// [`Baresip::accept`].
    Early,
}

impl AnswerMode {
    fn as_str(self) -> &'static str {
        match self {
            AnswerMode::Manual => "manual",
            AnswerMode::Auto => "auto",
            AnswerMode::Early => "early",
        }
    }
}

impl BaresipConfig {
    /// baresip registering `user` with `password` in `domain` at `proxy`; Opus, a 1000 Hz sine,
    /// manual answer.
    pub fn new(user: &str, password: &str, domain: &str, proxy: SocketAddr) -> Self {
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            domain: domain.to_owned(),
            proxy,
            codec: BaresipCodec::Opus,
            tone: 1000,
            answer: AnswerMode::Manual,
            tcp: false,
            tls_ca: None,
            ip: Ipv4Addr::LOCALHOST,
            srtp: false,
        }
    }

    /// Binds SIP and media to `ip` (an address in 127.0.0.0/8, so that a capture can pick out
    /// its traffic) instead of 127.0.0.1.
    pub fn ip(mut self, ip: Ipv4Addr) -> Self {
        self.ip = ip;
        self
    }

    /// Offers and accepts only `codec`.
    pub fn codec(mut self, codec: BaresipCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Sends a sine of `hz`.
    pub fn tone(mut self, hz: u32) -> Self {
        self.tone = hz;
        self
    }

    /// Talks to the proxy over TCP.
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Talks to the proxy over TLS, trusting the certificates in `ca`.
    pub fn tls(mut self, ca: &Path) -> Self {
        self.tls_ca = Some(ca.to_owned());
        self
    }

    /// Encrypts its media with SRTP and SDES keys, refusing plain RTP (`mediaenc=srtp-mand`).
    pub fn srtp(mut self) -> Self {
        self.srtp = true;
        self
    }

    /// Answers incoming calls as `mode` says.
    pub fn answer(mut self, mode: AnswerMode) -> Self {
        self.answer = mode;
        self
    }

    /// The `config` file for SIP on `sip`, control on `ctrl`, recordings in `dir`.
    fn config_file(&self, sip: SocketAddr, ctrl: SocketAddr, modules: &Path, dir: &Path) -> String {
        format!(
            "poll_method\tepoll\n\
             sip_listen\t{sip}\n\
             net_interface\t{ip}\n\
             audio_source\tausine,{tone}\n\
             audio_player\taubridge,play\n\
             audio_alert\taubridge,alert\n\
             ausrc_srate\t48000\n\
             ausrc_channels\t2\n\
             opus_bitrate\t32000\n\
             opus_stereo\tno\n\
             module_path\t{modules}\n\
             module\topus.so\n\
             module\tg711.so\n\
             module\tausine.so\n\
             module\taubridge.so\n\
             module\tsndfile.so\n\
             snd_path\t{dir}\n\
             module_app\taccount.so\n\
             module_app\tmenu.so\n\
             module_app\tctrl_tcp.so\n\
             ctrl_tcp_listen\t{ctrl}\n{cafile}{srtp}",
            srtp = if self.srtp { "module\tsrtp.so\n" } else { "" },
            cafile = self.tls_ca.as_ref().map(|ca| format!("sip_cafile\t{}\n", ca.display())).unwrap_or_default(),
            ip = sip.ip(),
            tone = self.tone,
            modules = modules.display(),
            dir = dir.display(),
        )
    }

    /// The `accounts` file: one account, registering through the proxy.
    fn accounts_file(&self) -> String {
        format!(
            "<sip:{user}@{domain}>;auth_pass={password};outbound=\"sip:{proxy}{transport}\";regint=300;\
             answermode={answer};audio_codecs={codec}{mediaenc}\n",
            mediaenc = if self.srtp { ";mediaenc=srtp-mand" } else { "" },
            user = self.user,
            domain = self.domain,
            password = self.password,
            proxy = self.proxy,
            transport = match (&self.tls_ca, self.tcp) {
                (Some(_), _) => ";transport=tls",
                (None, true) => ";transport=tcp",
                (None, false) => "",
            },
            answer = self.answer.as_str(),
            codec = self.codec.account_entry(),
        )
    }
}

/// One message baresip sent on its control connection, and when it arrived.
#[derive(Debug, Clone)]
pub struct ControlMessage {
    /// When the harness read it.
    pub at: Instant,
    /// The JSON object as sent.
    pub json: String,
}

impl ControlMessage {
    /// A string field of the JSON object (`"param"`, `"peeruri"`, …).
    pub fn field(&self, name: &str) -> Option<String> {
        json_string_field(&self.json, name)
    }

    /// The event type (`"CALL_ESTABLISHED"`, …); `None` for a command response.
    pub fn event_type(&self) -> Option<String> {
        self.json.contains("\"event\":true").then(|| json_string_field(&self.json, "type")).flatten()
    }
}

/// A running baresip. Dropping it stops the process and removes its folder.
#[derive(Debug)]
pub struct Baresip {
    name: String,
    dir: tempfile::TempDir,
    sip: SocketAddr,
    child: Option<Child>,
    control: TcpStream,
    inbox: Vec<u8>,
    messages: Vec<ControlMessage>,
    next_token: u32,
}

impl Baresip {
    /// Writes its config folder, starts it and connects to its control port. Does not wait
    /// for the registration: see [`Baresip::wait_registered`].
    pub fn start(name: &str, config: &BaresipConfig) -> Result<Baresip> {
        let program = Peer::Baresip.locate()?;
        let modules =
            MODULE_DIRS.iter().map(Path::new).find(|dir| dir.join("ausine.so").exists()).ok_or_else(|| {
                HarnessError::io(
                    format!("find baresip's modules (ausine.so) in {}", MODULE_DIRS.join(" or ")),
                    std::io::Error::other("they are missing: reinstall the Debian package baresip-core"),
                )
            })?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::launch(name, &program, modules, config) {
                // A port chosen free was taken before baresip bound it: choose again.
                Err(error @ HarnessError::Timeout { .. }) if error.to_string().contains("Address already in use") => {
                    last_error = Some(error)
                }
                result => return result,
            }
        }
        Err(last_error.unwrap_or(HarnessError::NoFreePort { attempts: START_ATTEMPTS }))
    }

    /// One start on freshly chosen ports.
    fn launch(name: &str, program: &Path, modules: &Path, config: &BaresipConfig) -> Result<Baresip> {
        let sip = SocketAddr::from((config.ip, sip_port(config.ip)?));
        let ctrl = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let dir = temp_dir(&format!("baresip-{name}-"))?;
        let write = |file: &str, text: &str| {
            std::fs::write(dir.path().join(file), text)
                .map_err(|source| HarnessError::io(format!("write baresip's {file}"), source))
        };
        write("config", &config.config_file(sip, ctrl, modules, dir.path()))?;
        write("accounts", &config.accounts_file())?;
        write("contacts", "")?;
        let log = dir.path().join("baresip.log");
        let (stdout, stderr) = crate::process::log_stdio(&log)?;
        let child = Command::new(program)
            .arg("-f")
            .arg(dir.path())
            .args(["-t", &LIFETIME_SECS.to_string()])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| HarnessError::io(format!("start {}", program.display()), source))?;
        let mut child = Some(child);
        let deadline = Instant::now() + CONTROL_LIMIT;
        let control = loop {
            if let Ok(stream) = TcpStream::connect_timeout(&ctrl, Duration::from_millis(200)) {
                break stream;
            }
            let exited = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                if let Some(mut child) = child.take() {
                    stop(&mut child, STOP_GRACE, false);
                }
                return Err(HarnessError::Timeout {
                    what: format!("baresip {name} (opening its control port {ctrl}; exit: {exited:?})"),
                    limit: CONTROL_LIMIT,
                    output: clean_log(&log, 60),
                });
            }
            std::thread::sleep(POLL);
        };
        let _ = control.set_nodelay(true);
        Ok(Baresip {
            name: name.to_owned(),
            dir,
            sip,
            child,
            control,
            inbox: Vec::new(),
            messages: Vec::new(),
            next_token: 0,
        })
    }

    /// Its SIP address (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
    }

    /// Waits up to `limit` until its registration stands (the `reginfo` command reports OK).
    pub fn wait_registered(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let info = self.command("reginfo", "")?;
            if info.contains("[32mOK") || self.event("REGISTER_OK").is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!("baresip {} (registering; last reginfo: {info:?})", self.name),
                    limit,
                    output: self.output(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Calls `uri` (`sip:1001@domain`), through the outbound proxy.
    pub fn dial(&mut self, uri: &str) -> Result<()> {
        self.command("dial", uri).map(drop)
    }

    /// Answers the ringing (or early) incoming call.
    pub fn accept(&mut self) -> Result<()> {
        self.command("accept", "").map(drop)
    }

    /// Puts the current call on hold (a re-INVITE with `a=sendonly`).
    pub fn hold(&mut self) -> Result<()> {
        self.command("hold", "").map(drop)
    }

    /// Takes the current call off hold (a re-INVITE with `a=sendrecv`).
    pub fn resume(&mut self) -> Result<()> {
        self.command("resume", "").map(drop)
    }

    /// Sends one DTMF digit in the current call (RFC 4733 telephone-event when negotiated).
    pub fn send_digit(&mut self, digit: char) -> Result<()> {
        self.command("sndcode", &digit.to_string()).map(drop)
    }

    /// Sends an OPTIONS to `uri`; baresip prints the response in its log.
    pub fn options(&mut self, uri: &str) -> Result<()> {
        self.command("options", uri).map(drop)
    }

    /// Its log without the status lines.
    pub fn log(&self) -> String {
        clean_log(&self.dir.path().join("baresip.log"), usize::MAX)
    }

    /// Hangs up the current call.
    pub fn hangup(&mut self) -> Result<()> {
        self.command("hangup", "").map(drop)
    }

    /// Sends a control command and returns the `data` of its successful response.
    pub fn command(&mut self, command: &str, params: &str) -> Result<String> {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let json = format!(
            "{{\"command\":\"{}\",\"params\":\"{}\",\"token\":\"{token}\"}}",
            json_escape(command),
            json_escape(params)
        );
        let frame = format!("{}:{json},", json.len());
        self.control
            .write_all(frame.as_bytes())
            .map_err(|source| HarnessError::io(format!("send {command:?} to baresip {}", self.name), source))?;
        let needle = format!("\"token\":\"{token}\"");
        let found = self.wait_for(COMMAND_LIMIT, |m| m.json.contains("\"response\":true") && m.json.contains(&needle));
        let Some(response) = found else {
            return Err(HarnessError::Timeout {
                what: format!("baresip {} (answering the command {command:?})", self.name),
                limit: COMMAND_LIMIT,
                output: self.output(),
            });
        };
        let data = json_string_field(&response.json, "data").unwrap_or_default();
        if !response.json.contains("\"ok\":true") {
            return Err(HarnessError::Scenario {
                what: format!("baresip {} refused the command {command:?} {params:?}: {data}", self.name),
                report: self.output(),
            });
        }
        Ok(data)
    }

    /// Waits up to `limit` for the first event of type `kind` (`"CALL_ESTABLISHED"`,
    /// `"CALL_CLOSED"`, …), counting those that came before the call.
    pub fn wait_for_event(&mut self, kind: &str, limit: Duration) -> Result<ControlMessage> {
        self.wait_for(limit, |m| m.event_type().as_deref() == Some(kind)).ok_or_else(|| HarnessError::Timeout {
            what: format!("baresip {} (waiting for a {kind} event)", self.name),
            limit,
            output: self.output(),
        })
    }

    /// The first event of type `kind` received so far.
    pub fn event(&self, kind: &str) -> Option<ControlMessage> {
        self.messages.iter().find(|m| m.event_type().as_deref() == Some(kind)).cloned()
    }

    /// Every event of type `kind` received so far, in order.
    pub fn events(&self, kind: &str) -> Vec<ControlMessage> {
        self.messages.iter().filter(|m| m.event_type().as_deref() == Some(kind)).cloned().collect()
    }

    /// The first message matching `wanted`, reading the control connection for up to `limit`.
    fn wait_for(&mut self, limit: Duration, wanted: impl Fn(&ControlMessage) -> bool) -> Option<ControlMessage> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(message) = self.messages.iter().find(|m| wanted(m)) {
                return Some(message.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.read_control(left.min(Duration::from_millis(200))) {
                return self.messages.iter().find(|m| wanted(m)).cloned();
            }
        }
    }

    /// Reads what arrived on the control connection within `wait`; false once it is closed.
    fn read_control(&mut self, wait: Duration) -> bool {
        let _ = self.control.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let mut buffer = [0u8; 8192];
        match self.control.read(&mut buffer) {
            Ok(0) => return false,
            Ok(len) => self.inbox.extend_from_slice(buffer.get(..len).unwrap_or_default()),
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
        let now = Instant::now();
        while let Some((json, used)) = next_netstring(&self.inbox) {
            self.messages.push(ControlMessage { at: now, json });
            self.inbox.drain(..used);
        }
        true
    }

    /// The WAV file of what it decoded last. `sndfile` starts a new `dump-<time>-dec.wav` each
    /// time the audio stream is set up again (a call, a hold, a resume); names sort by time.
    pub fn recording(&self) -> Result<PathBuf> {
        let entries = std::fs::read_dir(self.dir.path())
            .map_err(|source| HarnessError::io(format!("list {}", self.dir.path().display()), source))?;
        entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("-dec.wav")))
            .max()
            .ok_or_else(|| {
                HarnessError::io(
                    format!("find baresip {}'s recording in {}", self.name, self.dir.path().display()),
                    std::io::Error::other(format!("no dump-*-dec.wav\n{}", self.output())),
                )
            })
    }

    /// Waits up to `limit` for it to quit after a `quit` command; kills it after that.
    pub fn quit(&mut self, limit: Duration) -> Result<()> {
        let _ = self.command("quit", "");
        if let Some(mut child) = self.child.take()
            && wait_for_exit(&mut child, limit).is_none()
        {
            stop(&mut child, STOP_GRACE, false);
            return Err(HarnessError::Timeout { what: format!("baresip {}", self.name), limit, output: self.output() });
        }
        Ok(())
    }

    /// Its control messages and its log (without the per-second status lines), for failure
    /// messages.
    pub fn output(&self) -> String {
        let messages: Vec<&str> = self.messages.iter().map(|m| m.json.as_str()).collect();
        format!(
            "--- baresip {} control messages ---\n{}\n--- its log ---\n{}",
            self.name,
            messages.join("\n"),
            clean_log(&self.dir.path().join("baresip.log"), 60)
        )
    }

    /// Stops the process (SIGTERM, then SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, STOP_GRACE, false);
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free port for SIP whose successor (baresip's TLS listener) is free for TCP too.
fn sip_port(ip: Ipv4Addr) -> Result<u16> {
    for _ in 0..32 {
        let port = free_port()?;
        if port < u16::MAX && TcpListener::bind((ip, port)).is_ok() && TcpListener::bind((ip, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(HarnessError::NoFreePort { attempts: 32 })
}

/// The first complete netstring (`LEN:DATA,`) in `bytes` and how many bytes it used.
fn next_netstring(bytes: &[u8]) -> Option<(String, usize)> {
    let colon = bytes.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(bytes.get(..colon)?).ok()?.trim().parse().ok()?;
    let end = colon.checked_add(1)?.checked_add(len)?;
    let data = bytes.get(colon + 1..end)?;
    (bytes.get(end) == Some(&b',')).then(|| (String::from_utf8_lossy(data).into_owned(), end + 1))
}

/// `text` escaped for a JSON string.
fn json_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The last `lines` lines of baresip's log, without the status line it rewrites with `\r`
/// every 100 ms.
fn clean_log(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let kept: Vec<&str> = text
        .split(['\r', '\n'])
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .filter(|line| !(line.starts_with('[') && line.contains("] audio=")))
        .collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_are_split_and_partial_ones_wait() {
        let bytes = b"3:abc,5:{\"a\"},2:x";
        assert_eq!(next_netstring(bytes), Some(("abc".to_owned(), 6)));
        assert_eq!(next_netstring(&bytes[6..]), Some(("{\"a\"}".to_owned(), 8)));
        assert_eq!(next_netstring(&bytes[14..]), None);
        assert_eq!(next_netstring(b"2:abc"), None, "no comma where the length ends");
        assert_eq!(next_netstring(b"x:ab,"), None);
    }

    #[test]
    fn account_registers_through_the_proxy_with_one_codec() {
        let config = BaresipConfig::new("1002", "pw", "voip.test", "127.0.0.1:5070".parse().unwrap())
            .codec(BaresipCodec::Pcmu)
            .answer(AnswerMode::Auto);
        assert_eq!(
            config.accounts_file(),
            "<sip:1002@voip.test>;auth_pass=pw;outbound=\"sip:127.0.0.1:5070\";regint=300;\
             answermode=auto;audio_codecs=PCMU/8000/1\n"
        );
        assert!(config.tcp().accounts_file().contains("outbound=\"sip:127.0.0.1:5070;transport=tcp\""));
    }

    #[test]
    fn config_names_the_addresses_tone_and_recording_folder() {
        let config = BaresipConfig::new("1", "pw", "d", "127.0.0.1:5070".parse().unwrap()).tone(1500);
        let text = config.config_file(
            "127.0.0.1:5080".parse().unwrap(),
            "127.0.0.1:5090".parse().unwrap(),
            Path::new("/m"),
            Path::new("/r"),
        );
        for line in [
            "module_path\t/m",
            "sip_listen\t127.0.0.1:5080",
            "ctrl_tcp_listen\t127.0.0.1:5090",
            "audio_source\tausine,1500",
            "snd_path\t/r",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn event_type_is_read_from_events_only() {
        let event = ControlMessage { at: Instant::now(), json: r#"{"event":true,"type":"CALL_CLOSED"}"#.into() };
        let response = ControlMessage { at: Instant::now(), json: r#"{"response":true,"type":"x"}"#.into() };
        assert_eq!(event.event_type().as_deref(), Some("CALL_CLOSED"));
        assert_eq!(response.event_type(), None);
    }

    #[test]
    fn status_lines_are_left_out_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "ready\n[0:00:01] audio=0/0 (bit/s)\r[0:00:02] audio=1/1 (bit/s)\rcall: done\n").unwrap();
        assert_eq!(clean_log(&path, 10), "ready\ncall: done");
        assert_eq!(clean_log(&path, 1), "call: done");
    }
}
