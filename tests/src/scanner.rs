//! SIPVicious, the scanner attackers point at SIP servers: `svmap` (find and fingerprint),
//! `svwar` (enumerate extensions) and `svcrack` (guess passwords), each run to completion or
//! stopped at a time limit, its output kept for the test to judge.

use crate::process::{log_stdio, stop, wait_for_exit};
use crate::{HarnessError, Peer, Result, temp_dir};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a scanner printed, and whether it had to be stopped at the limit.
#[derive(Debug)]
pub struct ScanOutput {
    /// Its stdout and stderr together.
    pub text: String,
    /// True when it was still running at the limit and was stopped.
    pub stopped: bool,
}

/// Runs `peer` (one of the SIPVicious programs) with `args` for at most `limit`.
pub fn scan(peer: Peer, args: &[&str], limit: Duration) -> Result<ScanOutput> {
    let program = peer.locate()?;
    let dir = temp_dir("scan-")?;
    let log = dir.path().join("scan.log");
    let (stdout, stderr) = log_stdio(&log)?;
    // It keeps its session state under $HOME/.sipvicious: give it a scratch home.
    let mut child = Command::new(&program)
        .args(args)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|source| HarnessError::io(format!("start {}", program.display()), source))?;
    let stopped = wait_for_exit(&mut child, limit).is_none();
    stop(&mut child, Duration::from_secs(2), false);
    let text = std::fs::read(&log).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
    Ok(ScanOutput { text, stopped })
}
