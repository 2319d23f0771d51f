//! The interactive phone's command language: one line typed by the user, parsed into a
//! [`Command`] the shell carries out. Every command has a long name and a short form
//! (`dial 1002` or `d 1002`); [`HELP`] lists them.

use crate::config::{DialTarget, parse_target};

/// What the user asked the phone to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Call an extension (through the registrar) or a `sip:` URI.
    Dial(DialTarget),
    /// Answer the ringing incoming call.
    Answer,
    /// Turn the ringing incoming call away (603 Decline).
    Reject,
    /// End the call, or give up on the one being dialled.
    Hangup,
    /// Put the call on hold.
    Hold,
    /// Take the call off hold.
    Resume,
    /// Stop or restart sending our audio.
    Mute(MuteChange),
    /// Send these DTMF digits (0-9, *, #, A-D).
    Dtmf(String),
    /// Hand the call over to someone else (blind transfer).
    Transfer(DialTarget),
    /// List the commands.
    Help,
    /// Hang up, unregister and leave.
    Quit,
}

/// How `mute`, `unmute` and `m` change the microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuteChange {
    /// Mute.
    On,
    /// Unmute.
    Off,
    /// Mute when unmuted, else unmute.
    Toggle,
}

/// What was wrong with a typed command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Nothing was typed.
    #[error("no command typed: type help to list the commands")]
    Empty,
    /// The first word is no command.
    #[error("unknown command {0:?}: type help to list the commands")]
    Unknown(String),
    /// A command that needs an argument came without one.
    #[error("{command} needs {what}, like: {example}")]
    MissingArgument {
        /// The command.
        command: &'static str,
        /// What it needs.
        what: &'static str,
        /// A correct use.
        example: &'static str,
    },
    /// A command that takes no argument came with one.
    #[error("{command} takes no argument: remove {extra:?}")]
    UnexpectedArgument {
        /// The command.
        command: &'static str,
        /// What followed it.
        extra: String,
    },
    /// The target of `dial` or `transfer` is neither an extension nor a SIP URI.
    #[error("cannot call {0:?}: give an extension like 1002 or a URI like sip:1002@192.0.2.1:5060")]
    BadTarget(String),
    /// `dtmf` got something that is not a DTMF digit.
    #[error("{0:?} is not DTMF: use the digits 0-9, *, # and A-D")]
    BadDigits(String),
}

/// The commands, their short forms and keys, as `help` shows them.
pub const HELP: &[&str] = &[
    "dial EXT|URI (d)    call an extension or sip: URI",
    "answer (a)          answer the ringing call",
    "reject (r)          turn the ringing call away (603 Decline)",
    "hangup (h)          end the call, or stop dialling",
    "hold / resume       put the call on hold and take it off",
    "mute / unmute (m)   stop sending our audio; m toggles",
    "dtmf DIGITS         send 0-9 * # A-D; while connected, just press the keys",
    "transfer EXT|URI (t) hand the call over to someone else",
    "help (?)            this list",
    "quit (q)            hang up, unregister and leave",
    "keys: a r h m q act at once, d and t open the command line, : or Enter opens it, Esc closes it",
];

/// Parses one typed line: a command word (any case) and its argument.
pub fn parse_command(line: &str) -> Result<Command, CommandError> {
    let line = line.trim();
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (line, ""),
    };
    let bare = |command: Command, name: &'static str| {
        if rest.is_empty() {
            Ok(command)
        } else {
            Err(CommandError::UnexpectedArgument { command: name, extra: rest.to_owned() })
        }
    };
    let target = |name: &'static str, example: &'static str| {
        if rest.is_empty() {
            return Err(CommandError::MissingArgument { command: name, what: "an extension or a sip: URI", example });
        }
        parse_target(rest).map_err(|_| CommandError::BadTarget(rest.to_owned()))
    };
    match word.to_ascii_lowercase().as_str() {
        "" => Err(CommandError::Empty),
        "dial" | "d" | "call" => target("dial", "dial 1002").map(Command::Dial),
        "answer" | "a" => bare(Command::Answer, "answer"),
        "reject" | "r" | "decline" => bare(Command::Reject, "reject"),
        "hangup" | "h" | "bye" => bare(Command::Hangup, "hangup"),
        "hold" => bare(Command::Hold, "hold"),
        "resume" | "unhold" => bare(Command::Resume, "resume"),
        "mute" => bare(Command::Mute(MuteChange::On), "mute"),
        "unmute" => bare(Command::Mute(MuteChange::Off), "unmute"),
        "m" => bare(Command::Mute(MuteChange::Toggle), "m"),
        "dtmf" => {
            if rest.is_empty() {
                return Err(CommandError::MissingArgument { command: "dtmf", what: "digits", example: "dtmf 123#" });
            }
            let digits: String = rest.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
            if digits.chars().all(|c| proto::codec::event_for_digit(c).is_some()) {
                Ok(Command::Dtmf(digits))
            } else {
                Err(CommandError::BadDigits(rest.to_owned()))
            }
        }
        "transfer" | "t" | "xfer" => target("transfer", "transfer 1003").map(Command::Transfer),
        "help" | "?" => bare(Command::Help, "help"),
        "quit" | "q" | "exit" => bare(Command::Quit, "quit"),
        _ => Err(CommandError::Unknown(word.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse_command(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn every_command_parses_in_its_long_and_short_form() {
        let ext = |e: &str| DialTarget::Extension(e.into());
        assert_eq!(ok("dial 1002"), Command::Dial(ext("1002")));
        assert_eq!(ok("d 1002"), Command::Dial(ext("1002")));
        assert_eq!(ok("answer"), Command::Answer);
        assert_eq!(ok("a"), Command::Answer);
        assert_eq!(ok("reject"), Command::Reject);
        assert_eq!(ok("r"), Command::Reject);
        assert_eq!(ok("hangup"), Command::Hangup);
        assert_eq!(ok("h"), Command::Hangup);
        assert_eq!(ok("hold"), Command::Hold);
        assert_eq!(ok("resume"), Command::Resume);
        assert_eq!(ok("mute"), Command::Mute(MuteChange::On));
        assert_eq!(ok("unmute"), Command::Mute(MuteChange::Off));
        assert_eq!(ok("m"), Command::Mute(MuteChange::Toggle));
        assert_eq!(ok("dtmf 123#"), Command::Dtmf("123#".into()));
        assert_eq!(ok("transfer 1003"), Command::Transfer(ext("1003")));
        assert_eq!(ok("t 1003"), Command::Transfer(ext("1003")));
        assert_eq!(ok("help"), Command::Help);
        assert_eq!(ok("?"), Command::Help);
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("q"), Command::Quit);
    }

    #[test]
    fn words_are_case_blind_and_spaces_around_them_do_not_matter() {
        assert_eq!(ok("  HANGUP "), Command::Hangup);
        assert_eq!(ok("Dial   1002  "), Command::Dial(DialTarget::Extension("1002".into())));
    }

    #[test]
    fn dial_and_transfer_take_sip_uris() {
        match ok("dial sip:1002@127.0.0.1:5070") {
            Command::Dial(DialTarget::Uri(uri)) => assert_eq!(uri.to_string(), "sip:1002@127.0.0.1:5070"),
            other => panic!("expected a URI target, got {other:?}"),
        }
        assert!(matches!(ok("t sip:1003@voip.test"), Command::Transfer(DialTarget::Uri(_))));
    }

    #[test]
    fn dtmf_digits_are_upper_cased_and_may_be_spaced() {
        assert_eq!(ok("dtmf 1 2 a#"), Command::Dtmf("12A#".into()));
    }

    #[test]
    fn errors_say_what_was_wrong_and_how_to_write_it() {
        assert_eq!(parse_command("   "), Err(CommandError::Empty));
        assert_eq!(parse_command("dance"), Err(CommandError::Unknown("dance".into())));
        let missing = parse_command("dial").unwrap_err();
        assert_eq!(missing.to_string(), "dial needs an extension or a sip: URI, like: dial 1002");
        assert!(matches!(parse_command("t"), Err(CommandError::MissingArgument { command: "transfer", .. })));
        assert_eq!(parse_command("dtmf").unwrap_err().to_string(), "dtmf needs digits, like: dtmf 123#");
        assert_eq!(parse_command("dial 10 02"), Err(CommandError::BadTarget("10 02".into())));
        assert_eq!(parse_command("dial sip:"), Err(CommandError::BadTarget("sip:".into())));
        assert_eq!(parse_command("dtmf 12x"), Err(CommandError::BadDigits("12x".into())));
        let extra = parse_command("answer now").unwrap_err();
        assert_eq!(extra.to_string(), "answer takes no argument: remove \"now\"");
        assert!(parse_command("hangup 2").is_err() && parse_command("q!").is_err());
    }
}
