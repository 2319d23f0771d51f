//! `registrar`: a SIP registrar and transaction-stateful proxy. Phones REGISTER extensions with
//! digest authentication and call each other through it.
//!
//! This file is the command line: configuration from embedded defaults, a file, then flags; the
//! rest lives in the library (`registrar::server` and the cores it drives).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use config::RegistrarConfig;

/// A SIP registrar and stateful proxy: phones register extensions and call each other through it.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML); flags override it. Without one, built-in defaults apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, UDP and TCP (repeatable). Default 0.0.0.0:5060.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Vec<SocketAddr>,
    /// Address to accept SIP over TLS on (repeatable). Default: each --bind address with the
    /// next port (5061 beside 5060).
    #[arg(long, value_name = "ADDR:PORT")]
    tls_bind: Vec<SocketAddr>,
    /// The SIP domain served; also the digest realm.
    #[arg(long, value_name = "NAME")]
    domain: Option<String>,
    /// An extension and its password (repeatable), e.g. --user 1001:secret.
    #[arg(long, value_name = "EXT:PASSWORD", value_parser = parse_user)]
    user: Vec<(String, String)>,
    /// Where bindings and accounts are stored. Default ./registrar-data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log every SIP message received and sent.
    #[arg(long)]
    sip_trace: bool,
    /// Record every SIP message received and sent in a pcap file for Wireshark.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((ext, pw)) if !ext.is_empty() && !pw.is_empty() => Ok((ext.to_owned(), pw.to_owned())),
        _ => Err(format!("{s:?} is not EXT:PASSWORD, e.g. 1001:secret")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => match RegistrarConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("registrar: {e}");
                return ExitCode::from(2);
            }
        },
        None => RegistrarConfig::default(),
    };
    if !cli.bind.is_empty() {
        config.bind = cli.bind.clone();
    }
    if !cli.tls_bind.is_empty() {
        config.tls.bind = Some(cli.tls_bind.clone());
    }
    if cli.domain.is_some() {
        config.domain = cli.domain.clone();
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    config.sip_trace |= cli.sip_trace;
    if cli.pcap.is_some() {
        config.pcap = cli.pcap.clone();
    }
    config.accounts.extend(cli.user.iter().cloned());

    let filter = if config.sip_trace { "info,sip=trace" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("registrar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(registrar::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("registrar: {e:#}");
            ExitCode::FAILURE
        }
    }
}
