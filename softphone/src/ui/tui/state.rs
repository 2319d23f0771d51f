//! What the interactive screen shows, as plain data: fed [`UiEvent`]s, audio frames for the
//! level meters and keys, with the time passed in. No terminal here, so every state the screen
//! can be in is a unit test.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::command::{Command, HELP, MuteChange, parse_command};
use crate::media::MediaStats;
use crate::ui::UiEvent;

/// Lines of the event log kept for the screen.
const LOG_LINES: usize = 200;
/// The quietest level a meter shows, in dBFS; silence reads as this.
pub const METER_FLOOR_DB: f32 = -60.0;
/// How fast a meter falls back after a peak, in dB per frame (about 30 dB a second at 20 ms).
const METER_DECAY_DB: f32 = 0.6;

/// Where our registration is.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// No registrar was given: calls go straight to `sip:` URIs.
    NotConfigured,
    /// The REGISTER is out.
    Registering,
    /// The registrar accepted us.
    Registered {
        /// Seconds granted.
        expires: u32,
        /// When it was granted.
        at: Instant,
    },
    /// The registrar refused us or did not answer.
    Failed {
        /// The final status.
        status: u16,
        /// Why, in words.
        reason: String,
    },
    /// A refresh failed; the next try is due at `retry_at`.
    Lost {
        /// The final status.
        status: u16,
        /// When the phone tries again.
        retry_at: Instant,
    },
    /// Our binding is removed.
    Unregistered,
}

/// Where the call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// No call.
    Idle,
    /// Our INVITE is out, nothing heard yet.
    Dialling,
    /// The far end is ringing.
    Ringing,
    /// Someone is calling us.
    Incoming,
    /// Talking.
    Connected,
    /// On hold, by `local` or `remote`.
    Held(String),
}

impl CallState {
    /// The word the screen shows.
    pub fn label(&self) -> &'static str {
        match self {
            CallState::Idle => "idle",
            CallState::Dialling => "dialling",
            CallState::Ringing => "ringing",
            CallState::Incoming => "incoming",
            CallState::Connected => "connected",
            CallState::Held(_) => "held",
        }
    }
}

/// How bad a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something that happened.
    Info,
    /// Something that went wrong or was refused.
    Error,
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Time since the phone started.
    pub at: Duration,
    /// What happened.
    pub text: String,
    /// How bad it is.
    pub severity: Severity,
}

/// The screen's state; see the module docs.
#[derive(Debug, Clone)]
pub struct TuiState {
    started: Instant,
    /// Our address of record.
    pub aor: String,
    /// The registrar, as given.
    pub registrar: Option<String>,
    /// Our registration.
    pub registration: Registration,
    /// The call.
    pub call: CallState,
    /// Whom the call is with.
    pub peer: Option<String>,
    /// The codec of the connected call.
    pub codec: Option<String>,
    /// When the call connected.
    pub connected_at: Option<Instant>,
    /// When the incoming call began ringing.
    pub ringing_since: Option<Instant>,
    /// Our audio is muted.
    pub muted: bool,
    /// The call's latest media counters.
    pub stats: Option<MediaStats>,
    /// Our audio's level, dBFS, falling back slowly after peaks.
    pub input_db: f32,
    /// The far end's audio level, dBFS.
    pub output_db: f32,
    /// Recent events, oldest first.
    pub log: VecDeque<LogLine>,
    /// The command being typed, when the command line is open.
    pub line: Option<String>,
    /// Whom we were transferred to, while that call is being placed.
    referred_to: Option<String>,
    bell: bool,
}

impl TuiState {
    /// The screen of a phone started at `now` as `aor`, registering with `registrar` if any.
    pub fn new(aor: String, registrar: Option<String>, now: Instant) -> TuiState {
        TuiState {
            started: now,
            aor,
            registration: if registrar.is_some() { Registration::Registering } else { Registration::NotConfigured },
            registrar,
            call: CallState::Idle,
            peer: None,
            codec: None,
            connected_at: None,
            ringing_since: None,
            muted: false,
            stats: None,
            input_db: METER_FLOOR_DB,
            output_db: METER_FLOOR_DB,
            log: VecDeque::new(),
            line: None,
            referred_to: None,
            bell: false,
        }
    }

    /// True when the terminal bell should sound now (once per incoming call).
    pub fn take_bell(&mut self) -> bool {
        std::mem::take(&mut self.bell)
    }

    /// How long the connected call has lasted at `now`.
    pub fn call_duration(&self, now: Instant) -> Option<Duration> {
        self.connected_at.map(|at| now.saturating_duration_since(at))
    }

    /// Seconds left of our registration at `now`.
    pub fn expires_in(&self, now: Instant) -> Option<u64> {
        match &self.registration {
            Registration::Registered { expires, at } => {
                Some(u64::from(*expires).saturating_sub(now.saturating_duration_since(*at).as_secs()))
            }
            _ => None,
        }
    }

    /// Takes one event.
    pub fn on_event(&mut self, event: &UiEvent, now: Instant) {
        match event {
            UiEvent::Registered { aor, expires } => {
                self.aor.clone_from(aor);
                self.registration = Registration::Registered { expires: *expires, at: now };
                self.info(now, format!("registered as {aor} for {expires} s"));
            }
            UiEvent::RegistrationFailed { status, reason } => {
                self.registration = Registration::Failed { status: *status, reason: reason.clone() };
                self.error(now, format!("registration failed: {status} {reason}"));
            }
            UiEvent::RegistrationLost { status, reason, retry_in_s } => {
                let retry_at = now + std::time::Duration::from_secs(*retry_in_s);
                self.registration = Registration::Lost { status: *status, retry_at };
                self.error(now, format!("registration lost: {status} {reason}; trying again in {retry_in_s} s"));
            }
            UiEvent::Unregistered => {
                self.registration = Registration::Unregistered;
                self.info(now, "unregistered".to_owned());
            }
            UiEvent::Dialling { target } => {
                self.new_call(CallState::Dialling, target);
                self.info(now, format!("dialling {target}"));
            }
            UiEvent::Incoming { from } => {
                self.new_call(CallState::Incoming, from);
                self.ringing_since = Some(now);
                self.bell = true;
                self.info(now, format!("incoming call from {from}: a answers, r rejects"));
            }
            UiEvent::Ringing => {
                self.call = CallState::Ringing;
                self.info(now, "ringing".to_owned());
            }
            UiEvent::Answered { codec, remote_rtp, srtp } => {
                if let Some(target) = self.referred_to.take() {
                    self.peer = Some(target);
                }
                self.call = CallState::Connected;
                self.codec = Some(codec.clone());
                self.connected_at = Some(now);
                self.ringing_since = None;
                let security = srtp.as_deref().map_or(String::new(), |suite| format!(", SRTP {suite}"));
                self.info(now, format!("connected: {codec}, media to {remote_rtp}{security}"));
            }
            UiEvent::Held { by } => {
                self.call = CallState::Held(by.clone());
                self.info(now, format!("on hold ({by})"));
            }
            UiEvent::Resumed { by } => {
                self.call = CallState::Connected;
                self.info(now, format!("off hold ({by})"));
            }
            UiEvent::Muted { muted } => {
                self.muted = *muted;
                self.info(now, if *muted { "muted" } else { "unmuted" }.to_owned());
            }
            UiEvent::Dtmf { digit, via } => self.info(now, format!("received DTMF {digit} ({via})")),
            UiEvent::Referred { target } => {
                // The far end hands us over: the new call replaces this one.
                self.referred_to = Some(target.clone());
                self.info(now, format!("transferred: calling {target}"));
            }
            UiEvent::TransferProgress { status } => self.info(now, format!("transfer: {status}")),
            UiEvent::TransferFailed { status } => {
                self.referred_to = None;
                self.error(now, format!("transfer failed ({status}): the call stays up"));
            }
            UiEvent::Stats(stats) => self.stats = Some(*stats),
            UiEvent::OnsetSent { .. } | UiEvent::OnsetPlayed { .. } => {}
            UiEvent::HungUp { reason, status, stats } => {
                let mut text = format!("call ended: {reason}");
                if let Some(status) = status {
                    text.push_str(&format!(" ({status})"));
                }
                if let (Some(s), Some(d)) = (stats, self.call_duration(now)) {
                    text.push_str(&format!(
                        " after {}, {} packets sent, {} received, {} lost",
                        clock(d),
                        s.packets_sent,
                        s.packets_received,
                        s.lost
                    ));
                }
                let severity = if status.is_some() { Severity::Error } else { Severity::Info };
                self.log_line(now, text, severity);
                match self.referred_to.take() {
                    // The call we were transferred from: the new one is being placed.
                    Some(target) => self.new_call(CallState::Dialling, &target),
                    None => {
                        self.new_call(CallState::Idle, "");
                        self.peer = None;
                    }
                }
            }
        }
    }

    fn new_call(&mut self, state: CallState, peer: &str) {
        self.call = state;
        self.peer = Some(peer.to_owned());
        self.codec = None;
        self.connected_at = None;
        self.ringing_since = None;
        self.muted = false;
        self.stats = None;
        self.input_db = METER_FLOOR_DB;
        self.output_db = METER_FLOOR_DB;
    }

    /// Takes one frame of our audio and one of the far end's for the meters.
    pub fn on_audio(&mut self, input: &[i16], output: &[i16]) {
        self.input_db = level_dbfs(input).max(self.input_db - METER_DECAY_DB);
        self.output_db = level_dbfs(output).max(self.output_db - METER_DECAY_DB);
    }

    /// Logs something that happened.
    pub fn info(&mut self, now: Instant, text: String) {
        self.log_line(now, text, Severity::Info);
    }

    /// Logs something that went wrong.
    pub fn error(&mut self, now: Instant, text: String) {
        self.log_line(now, text, Severity::Error);
    }

    fn log_line(&mut self, now: Instant, text: String, severity: Severity) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine { at: now.saturating_duration_since(self.started), text, severity });
    }

    /// Takes one key press: edits the command line, or acts at once for the single-key
    /// shortcuts. Returns the command to carry out, if the key made one.
    pub fn on_key(&mut self, key: KeyEvent, now: Instant) -> Option<Command> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return matches!(key.code, KeyCode::Char('c' | 'd')).then_some(Command::Quit);
        }
        match self.line.as_mut() {
            Some(line) => match key.code {
                KeyCode::Enter => {
                    let typed = self.line.take().unwrap_or_default();
                    if typed.trim().is_empty() {
                        return None;
                    }
                    self.run_line(&typed, now)
                }
                KeyCode::Esc => {
                    self.line = None;
                    None
                }
                KeyCode::Backspace => {
                    line.pop();
                    None
                }
                KeyCode::Char(c) => {
                    line.push(c);
                    None
                }
                _ => None,
            },
            None => self.shortcut(key.code, now),
        }
    }

    fn shortcut(&mut self, code: KeyCode, now: Instant) -> Option<Command> {
        let KeyCode::Char(c) = code else {
            if code == KeyCode::Enter {
                self.line = Some(String::new());
            }
            return None;
        };
        let talking = matches!(self.call, CallState::Connected | CallState::Held(_));
        match c {
            'a' => Some(Command::Answer),
            'r' => Some(Command::Reject),
            'h' => Some(Command::Hangup),
            'm' => Some(Command::Mute(MuteChange::Toggle)),
            'q' => Some(Command::Quit),
            '?' => self.run_line("help", now),
            ':' | '/' => {
                self.line = Some(String::new());
                None
            }
            'd' => {
                self.line = Some("dial ".to_owned());
                None
            }
            't' => {
                self.line = Some("transfer ".to_owned());
                None
            }
            '0'..='9' | '*' | '#' | 'A'..='D' if talking => {
                self.info(now, format!("sending DTMF {c}"));
                Some(Command::Dtmf(c.to_string()))
            }
            '0'..='9' => {
                self.line = Some(format!("dial {c}"));
                None
            }
            _ => None,
        }
    }

    /// Parses a typed line; errors and `help` are answered here in the log.
    fn run_line(&mut self, typed: &str, now: Instant) -> Option<Command> {
        match parse_command(typed) {
            Ok(Command::Help) => {
                for line in HELP {
                    self.info(now, (*line).to_owned());
                }
                None
            }
            Ok(Command::Dtmf(digits)) => {
                self.info(now, format!("sending DTMF {digits}"));
                Some(Command::Dtmf(digits))
            }
            Ok(command) => Some(command),
            Err(e) => {
                self.error(now, e.to_string());
                None
            }
        }
    }
}

/// A frame's RMS level in dBFS ([`proto::codec::level_dbfs`]), never below [`METER_FLOOR_DB`].
pub fn level_dbfs(samples: &[i16]) -> f32 {
    proto::codec::level_dbfs(samples).max(METER_FLOOR_DB)
}

/// `mm:ss`, or `h:mm:ss` past the hour.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DialTarget;

    fn key(c: char) -> KeyEvent {
        KeyEvent::from(KeyCode::Char(c))
    }

    fn typed(state: &mut TuiState, text: &str, now: Instant) -> Option<Command> {
        text.chars().for_each(|c| assert_eq!(state.on_key(key(c), now), None, "typing {c:?}"));
        state.on_key(KeyEvent::from(KeyCode::Enter), now)
    }

    fn phone(now: Instant) -> TuiState {
        TuiState::new("sip:1001@voip.test".into(), Some("127.0.0.1:5060".into()), now)
    }

    fn last_log(state: &TuiState) -> &str {
        state.log.back().map_or("", |l| l.text.as_str())
    }

    #[test]
    fn registration_shows_granted_time_counting_down_then_failure_reason() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        assert_eq!(s.registration, Registration::Registering);
        s.on_event(&UiEvent::Registered { aor: "sip:1001@voip.test".into(), expires: 300 }, t0);
        assert_eq!(s.expires_in(t0 + Duration::from_secs(100)), Some(200));
        s.on_event(&UiEvent::RegistrationFailed { status: 403, reason: "Forbidden".into() }, t0);
        assert_eq!(s.registration, Registration::Failed { status: 403, reason: "Forbidden".into() });
        assert_eq!(s.expires_in(t0), None);
        assert_eq!(s.log.back().map(|l| l.severity), Some(Severity::Error));
    }

    #[test]
    fn an_outgoing_call_goes_dialling_ringing_connected_held_and_back_to_idle() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        s.on_event(&UiEvent::Dialling { target: "sip:1002@voip.test".into() }, t0);
        assert_eq!((s.call.label(), s.peer.as_deref()), ("dialling", Some("sip:1002@voip.test")));
        s.on_event(&UiEvent::Ringing, t0);
        assert_eq!(s.call, CallState::Ringing);
        let t1 = t0 + Duration::from_secs(2);
        s.on_event(&UiEvent::Answered { codec: "opus".into(), remote_rtp: "127.0.0.1:4000".into(), srtp: None }, t1);
        assert_eq!((s.call.label(), s.codec.as_deref()), ("connected", Some("opus")));
        assert_eq!(s.call_duration(t1 + Duration::from_secs(75)), Some(Duration::from_secs(75)));
        s.on_event(&UiEvent::Held { by: "remote".into() }, t1);
        assert_eq!(s.call, CallState::Held("remote".into()));
        s.on_event(&UiEvent::Resumed { by: "remote".into() }, t1);
        assert_eq!(s.call, CallState::Connected);
        let stats = MediaStats { packets_sent: 50, packets_received: 49, lost: 1, ..MediaStats::default() };
        s.on_event(&UiEvent::Stats(stats), t1);
        assert_eq!(s.stats, Some(stats));
        let end = UiEvent::HungUp { reason: "remote".into(), status: None, stats: Some(stats) };
        s.on_event(&end, t1 + Duration::from_secs(61));
        assert_eq!((s.call.clone(), s.peer.clone(), s.codec.clone(), s.stats), (CallState::Idle, None, None, None));
        assert_eq!(last_log(&s), "call ended: remote after 01:01, 50 packets sent, 49 received, 1 lost");
    }

    #[test]
    fn an_incoming_call_rings_once_with_the_bell_until_answered() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        s.on_event(&UiEvent::Incoming { from: "<sip:1002@voip.test>;tag=x".into() }, t0);
        assert_eq!(s.call, CallState::Incoming);
        assert!(s.take_bell(), "the bell sounds for a new call");
        assert!(!s.take_bell(), "and only once");
        assert_eq!(s.ringing_since, Some(t0));
        s.on_event(&UiEvent::Answered { codec: "PCMU".into(), remote_rtp: "127.0.0.1:4000".into(), srtp: None }, t0);
        assert_eq!(s.call, CallState::Connected);
        assert_eq!(s.ringing_since, None);
    }

    #[test]
    fn a_rejected_call_is_logged_as_an_error_with_its_status() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        s.on_event(&UiEvent::Dialling { target: "1002".into() }, t0);
        s.on_event(&UiEvent::HungUp { reason: "rejected".into(), status: Some(486), stats: None }, t0);
        assert_eq!(last_log(&s), "call ended: rejected (486)");
        assert_eq!(s.log.back().map(|l| l.severity), Some(Severity::Error));
        assert_eq!(s.call, CallState::Idle);
    }

    #[test]
    fn a_transfer_is_followed_in_the_log_and_a_referral_moves_the_screen_to_its_target() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        s.on_event(&UiEvent::Answered { codec: "opus".into(), remote_rtp: "127.0.0.1:4000".into(), srtp: None }, t0);
        s.on_event(&UiEvent::TransferFailed { status: 480 }, t0);
        assert_eq!(last_log(&s), "transfer failed (480): the call stays up");
        assert_eq!(s.call, CallState::Connected);
        s.on_event(&UiEvent::Referred { target: "sip:1003@voip.test".into() }, t0);
        assert_eq!(s.call, CallState::Connected, "still talking until the old call ends");
        s.on_event(&UiEvent::HungUp { reason: "remote".into(), status: None, stats: None }, t0);
        assert_eq!((s.call.clone(), s.peer.as_deref()), (CallState::Dialling, Some("sip:1003@voip.test")));
        s.on_event(&UiEvent::Answered { codec: "PCMU".into(), remote_rtp: "127.0.0.1:4002".into(), srtp: None }, t0);
        assert_eq!((s.call.clone(), s.peer.as_deref()), (CallState::Connected, Some("sip:1003@voip.test")));
        s.on_event(&UiEvent::HungUp { reason: "remote".into(), status: None, stats: None }, t0);
        assert_eq!(s.call, CallState::Idle, "the new call's end is the end");
    }

    #[test]
    fn mute_shows_until_the_call_ends() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        s.on_event(&UiEvent::Answered { codec: "opus".into(), remote_rtp: "127.0.0.1:4000".into(), srtp: None }, t0);
        s.on_event(&UiEvent::Muted { muted: true }, t0);
        assert!(s.muted);
        s.on_event(&UiEvent::HungUp { reason: "local".into(), status: None, stats: None }, t0);
        assert!(!s.muted);
    }

    #[test]
    fn shortcut_keys_act_at_once_and_digits_are_dtmf_only_while_talking() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        assert_eq!(s.on_key(key('a'), t0), Some(Command::Answer));
        assert_eq!(s.on_key(key('r'), t0), Some(Command::Reject));
        assert_eq!(s.on_key(key('h'), t0), Some(Command::Hangup));
        assert_eq!(s.on_key(key('m'), t0), Some(Command::Mute(MuteChange::Toggle)));
        assert_eq!(s.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), t0), Some(Command::Quit));
        // Idle: a digit starts dialling it.
        assert_eq!(s.on_key(key('1'), t0), None);
        assert_eq!(s.line.as_deref(), Some("dial 1"));
        assert_eq!(typed(&mut s, "002", t0), Some(Command::Dial(DialTarget::Extension("1002".into()))));
        assert_eq!(s.line, None, "Enter closes the command line");
        s.on_event(&UiEvent::Answered { codec: "opus".into(), remote_rtp: "127.0.0.1:4000".into(), srtp: None }, t0);
        assert_eq!(s.on_key(key('5'), t0), Some(Command::Dtmf("5".into())));
        assert_eq!(last_log(&s), "sending DTMF 5");
        assert_eq!(s.on_key(key('#'), t0), Some(Command::Dtmf("#".into())));
        assert_eq!(s.on_key(key('q'), t0), Some(Command::Quit));
    }

    #[test]
    fn the_command_line_edits_and_reports_mistakes_in_the_log() {
        let t0 = Instant::now();
        let mut s = phone(t0);
        s.on_key(key(':'), t0);
        assert_eq!(typed(&mut s, "hol", t0), None, "hol is no command");
        assert_eq!(last_log(&s), "unknown command \"hol\": type help to list the commands");
        s.on_key(key(':'), t0);
        "holdx".chars().for_each(|c| drop(s.on_key(key(c), t0)));
        s.on_key(KeyEvent::from(KeyCode::Backspace), t0);
        assert_eq!(s.on_key(KeyEvent::from(KeyCode::Enter), t0), Some(Command::Hold));
        s.on_key(key('t'), t0);
        assert_eq!(s.line.as_deref(), Some("transfer "));
        s.on_key(KeyEvent::from(KeyCode::Esc), t0);
        assert_eq!(s.line, None, "Esc leaves the command line");
        assert_eq!(s.on_key(key('?'), t0), None);
        assert!(s.log.iter().any(|l| l.text.starts_with("dial EXT|URI (d)")), "help lists the commands");
    }

    #[test]
    fn meters_read_rms_dbfs_above_a_floor_and_fall_back_slowly() {
        assert_eq!(level_dbfs(&[0; 160]), METER_FLOOR_DB);
        assert_eq!(level_dbfs(&[]), METER_FLOOR_DB);
        let full: Vec<i16> = (0..160).map(|n| if n % 2 == 0 { i16::MAX } else { -i16::MAX }).collect();
        assert!(level_dbfs(&full).abs() < 0.01, "full scale square is 0 dBFS");
        let half: Vec<i16> = full.iter().map(|s| s / 2).collect();
        assert!((level_dbfs(&half) + 6.02).abs() < 0.05, "half scale is -6 dBFS: {}", level_dbfs(&half));
        let mut s = phone(Instant::now());
        s.on_audio(&full, &half);
        s.on_audio(&[0; 160], &[0; 160]);
        assert!((s.input_db + METER_DECAY_DB).abs() < 0.01, "one frame of decay: {}", s.input_db);
    }

    #[test]
    fn clocks_read_minutes_and_hours() {
        assert_eq!(clock(Duration::from_secs(75)), "01:15");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
