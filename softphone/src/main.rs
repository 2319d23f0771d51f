//! The softphone: a SIP phone that registers, places or answers a call, and plays and records
//! its audio. Interactive on a terminal (a full-screen UI taking typed commands, [`ui::tui`]);
//! scripted mode (`--dial`, `--auto-answer`, tones and WAV files) for tests and automation.
//!
//! Layout: [`config`] (the command line) → [`agent`] (the sans-IO user agent: registration,
//! calls) → [`media`] (RTP, jitter buffer, codecs for one call) → [`audio`] (sound devices,
//! tone, WAV files, null, ring sounds) → [`ui`] (events for the user). [`shell`] is the tokio loop that joins
//! them to sockets and a 20 ms clock.
//!
//! Exit status: 0 when the scripted call happened as asked (a dialled or auto-answered call was
//! connected and ended normally, or `--cancel-after` cancelled the unanswered call and the far
//! end answered 487; with neither, the registration succeeded), 1 when the call
//! failed or never came, 2 for a bad command line or a named sound device that cannot be used,
//! 3 when registration failed.

mod agent;
mod audio;
mod config;
mod media;
mod shell;
mod ui;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = config::Cli::parse();
    if cli.list_devices {
        let devices = audio::device::list_devices();
        if devices.is_empty() {
            println!("no sound device found: use {}", audio::FILE_OPTIONS);
        }
        for device in devices {
            println!("{}", device.to_line());
        }
        return ExitCode::SUCCESS;
    }
    let mut config = match config::Config::from_cli(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("softphone: {e}");
            return ExitCode::from(2);
        }
    };
    let interactive = config.interactive(std::io::stdout().is_terminal());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if config.sip_trace { "warn,sip=trace" } else { "warn" })
    });
    let log_lines = if interactive {
        // The screen owns the terminal: log lines go to its event log.
        let (writer, lines) = ui::tui::log_writer();
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(move || writer.clone()).init();
        Some(lines)
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
        None
    };
    match audio::settle_devices(&mut config) {
        Ok(None) => {}
        Ok(Some(notice)) => eprintln!("softphone: {notice}"),
        Err(e) => {
            eprintln!("softphone: {e}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("softphone: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(shell::run(config, log_lines)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("softphone: {e:#}");
            ExitCode::from(1)
        }
    }
}
