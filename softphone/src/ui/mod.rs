//! What the user sees: `--events json`, one JSON object per line on stdout; short human lines
//! on stderr; or the interactive terminal UI ([`tui`]).

mod json;
pub mod tui;

use std::io::Write;
use std::time::Instant;

pub use json::to_json;

use crate::media::MediaStats;
use ratatui::crossterm::event::KeyEvent;
use tui::{Command, Tui};

/// Something the user should hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    /// Registered with the registrar.
    Registered {
        /// Our address of record.
        aor: String,
        /// Seconds the registrar granted.
        expires: u32,
    },
    /// Registration failed.
    RegistrationFailed {
        /// The final status, or 408 for no answer.
        status: u16,
        /// Why, in words.
        reason: String,
    },
    /// A refresh failed; the phone tries again after `retry_in_s`.
    RegistrationLost {
        /// The final status, or 408 for no answer.
        status: u16,
        /// Why, in words.
        reason: String,
        /// Seconds until the next try.
        retry_in_s: u64,
    },
    /// An incoming call.
    Incoming {
        /// The caller's From.
        from: String,
    },
    /// We are calling someone.
    Dialling {
        /// Whom, as dialled.
        target: String,
    },
    /// Our outgoing call is ringing.
    Ringing,
    /// The call is connected.
    Answered {
        /// The codec's encoding name.
        codec: String,
        /// Where our RTP goes.
        remote_rtp: String,
        /// The SRTP suite protecting the media, `None` for plain RTP.
        srtp: Option<String>,
    },
    /// The call went on hold.
    Held {
        /// Who put it on hold: `local` or `remote`.
        by: String,
    },
    /// The call came off hold.
    Resumed {
        /// Who took it off hold: `local` or `remote`.
        by: String,
    },
    /// Our audio was muted or unmuted.
    Muted {
        /// True when muted.
        muted: bool,
    },
    /// The far end sent a DTMF digit.
    Dtmf {
        /// The digit.
        digit: char,
        /// How it came: `rtp` (RFC 4733 events) or `info` (SIP INFO).
        via: String,
    },
    /// We accepted a transfer (REFER) and are calling its target.
    Referred {
        /// The target.
        target: String,
    },
    /// A transfer moved on: the sipfrag status sent or received (100, then 200 on success).
    TransferProgress {
        /// The status.
        status: u16,
    },
    /// A transfer failed; the call stays up.
    TransferFailed {
        /// The final status that ended it.
        status: u16,
    },
    /// Media counters, every second of a call.
    Stats(MediaStats),
    /// A `pulse:` burst's first sample entered the encoder.
    OnsetSent {
        /// When, in microseconds since the Unix epoch (the realtime clock, so that phones on
        /// one host compare).
        unix_us: u64,
    },
    /// The first sample of a burst in the far end's audio left the jitter buffer, decoded.
    OnsetPlayed {
        /// When, in microseconds since the Unix epoch.
        unix_us: u64,
    },
    /// The call ended.
    HungUp {
        /// Why, as a short token (`local`, `remote`, `rejected`, `timeout`, `cancelled`, …).
        reason: String,
        /// The final SIP status when the call failed.
        status: Option<u16>,
        /// The media counters at the end, if the call had media.
        stats: Option<MediaStats>,
    },
    /// Unregistered on the way out.
    Unregistered,
}

/// Where events go.
enum Output {
    Json,
    Text,
    Terminal(Box<Tui>),
}

/// Shows events: JSON lines on stdout, a line of text on stderr, or the interactive screen.
pub struct Ui {
    output: Output,
}

impl Ui {
    /// A UI printing JSON lines when `json`, else text.
    pub fn new(json: bool) -> Ui {
        Ui { output: if json { Output::Json } else { Output::Text } }
    }

    /// The interactive screen.
    pub fn interactive(tui: Tui) -> Ui {
        Ui { output: Output::Terminal(Box::new(tui)) }
    }

    /// True for the interactive screen.
    pub fn is_interactive(&self) -> bool {
        matches!(self.output, Output::Terminal(_))
    }

    /// Shows one event.
    pub fn show(&mut self, event: &UiEvent) {
        match &mut self.output {
            Output::Json => {
                let mut out = std::io::stdout().lock();
                // A closed stdout only loses the display, never the call.
                let _ = writeln!(out, "{}", to_json(event));
                let _ = out.flush();
            }
            Output::Text
                if !matches!(event, UiEvent::Stats(_) | UiEvent::OnsetSent { .. } | UiEvent::OnsetPlayed { .. }) =>
            {
                eprintln!("softphone: {}", to_json(event))
            }
            Output::Text => {}
            Output::Terminal(tui) => tui.state().on_event(event, Instant::now()),
        }
    }

    /// Tells the user that `what` could not be done, and why.
    pub fn refused(&mut self, what: &Command, why: &str) {
        match &mut self.output {
            Output::Terminal(tui) => tui.state().error(Instant::now(), format!("{}: {why}", describe(what))),
            _ => tracing::warn!(command = describe(what), "{why}"),
        }
    }

    /// A key press on the interactive screen, and the command it makes, if any.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        match &mut self.output {
            Output::Terminal(tui) => tui.state().on_key(key, Instant::now()),
            _ => None,
        }
    }

    /// One frame of our audio and of the far end's, for the level meters.
    pub fn on_audio(&mut self, input: &[i16], output: &[i16]) {
        if let Output::Terminal(tui) = &mut self.output {
            tui.state().on_audio(input, output);
        }
    }

    /// Redraws the interactive screen.
    pub fn draw(&mut self) {
        if let Output::Terminal(tui) = &mut self.output {
            // A terminal that cannot be drawn on only loses the display, never the call.
            let _ = tui.draw(Instant::now());
        }
    }
}

/// What a command was trying to do, for a refusal.
fn describe(command: &Command) -> &'static str {
    match command {
        Command::Dial(_) => "cannot dial",
        Command::Answer => "cannot answer",
        Command::Reject => "cannot reject",
        Command::Hangup => "cannot hang up",
        Command::Hold => "cannot hold",
        Command::Resume => "cannot resume",
        Command::Mute(_) => "cannot mute",
        Command::Dtmf(_) => "cannot send DTMF",
        Command::Transfer(_) => "cannot transfer",
        Command::Help => "cannot help",
        Command::Quit => "cannot quit",
    }
}
