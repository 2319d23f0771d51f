//! The interactive phone: a full-screen terminal UI for real calls.
//!
//! - [`command`]: the typed command language (`dial 1002`, `answer`, `mute`, …), parsed into a
//!   [`Command`] the shell carries out.
//! - [`state`]: what the screen shows, fed [`crate::ui::UiEvent`]s, audio levels and keys.
//! - [`view`]: draws that state with ratatui.
//!
//! This module owns the terminal itself: [`Tui`] puts it in raw mode on the alternate screen and
//! gives it back on drop and on panic; [`read_keys`] reads key presses on a thread of its own;
//! [`log_writer`] catches the phone's log lines so they land in the event log instead of over
//! the screen.

pub mod command;
pub mod state;
pub mod view;

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEvent};

pub use command::Command;
pub use state::TuiState;

/// The terminal, taken over for the phone's screen.
pub struct Tui {
    terminal: DefaultTerminal,
    state: TuiState,
    logs: Option<Receiver<String>>,
}

impl Tui {
    /// Takes over the terminal (raw mode, alternate screen) to show `state`; log lines sent by
    /// [`log_writer`] arrive on `logs`. The terminal is restored when the `Tui` is dropped, and
    /// before a panic message is printed.
    pub fn start(state: TuiState, logs: Option<Receiver<String>>) -> io::Result<Tui> {
        let terminal = ratatui::try_init()?;
        Ok(Tui { terminal, state, logs })
    }

    /// The state on screen.
    pub fn state(&mut self) -> &mut TuiState {
        &mut self.state
    }

    /// Redraws the screen as of `now`, with the log lines that came since the last time, and
    /// rings the terminal bell for a new incoming call.
    pub fn draw(&mut self, now: Instant) -> io::Result<()> {
        if let Some(logs) = &self.logs {
            for line in logs.try_iter() {
                self.state.error(now, line);
            }
        }
        let state = &self.state;
        self.terminal.draw(|frame| view::render(frame, state, now))?;
        if self.state.take_bell() {
            let mut out = io::stdout().lock();
            out.write_all(b"\x07")?;
            out.flush()?;
        }
        Ok(())
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Reads key presses from the terminal on a thread of its own (reading blocks) and hands them
/// over; the thread ends when the receiver is dropped and the next key comes, or with the process.
pub fn read_keys() -> tokio::sync::mpsc::UnboundedReceiver<KeyEvent> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        loop {
            match event::read() {
                Ok(TermEvent::Key(key)) => {
                    if tx.send(key).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    rx
}

/// A writer for the log that sends each line to the screen's event log instead of stderr,
/// and the receiving end to give [`Tui::start`].
pub fn log_writer() -> (LogWriter, Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    (LogWriter(tx), rx)
}

/// Sends what is written to it, line by line, to the screen; see [`log_writer`].
#[derive(Debug, Clone)]
pub struct LogWriter(Sender<String>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for line in String::from_utf8_lossy(buf).lines().filter(|l| !l.trim().is_empty()) {
            // With the screen gone, the line has nowhere to go.
            let _ = self.0.send(line.trim_end().to_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_written_go_to_the_receiver_one_by_one() {
        let (mut writer, rx) = log_writer();
        writer.write_all(b"WARN one\nWARN two\n\n").unwrap();
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["WARN one", "WARN two"]);
    }
}
