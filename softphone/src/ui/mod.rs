//! What the user sees. For now: `--events json`, one JSON object per line on stdout, and short
//! human lines on stderr otherwise. The terminal UI will live here too.

mod json;

use std::io::Write;

pub use json::to_json;

use crate::media::MediaStats;

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
    /// An incoming call.
    Incoming {
        /// The caller's From.
        from: String,
    },
    /// Our outgoing call is ringing.
    Ringing,
    /// The call is connected.
    Answered {
        /// The codec's encoding name.
        codec: String,
        /// Where our RTP goes.
        remote_rtp: String,
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

/// Shows events: JSON lines on stdout, or a line of text on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    json: bool,
}

impl Ui {
    /// A UI printing JSON lines when `json`, else text.
    pub fn new(json: bool) -> Ui {
        Ui { json }
    }

    /// Shows one event.
    pub fn show(&self, event: &UiEvent) {
        if self.json {
            let mut out = std::io::stdout().lock();
            // A closed stdout only loses the display, never the call.
            let _ = writeln!(out, "{}", to_json(event));
            let _ = out.flush();
        } else if !matches!(event, UiEvent::Stats(_) | UiEvent::OnsetSent { .. } | UiEvent::OnsetPlayed { .. }) {
            eprintln!("softphone: {}", to_json(event));
        }
    }
}
