//! Child processes: bounded waits, graceful then forced stops, and log files.

use crate::{HarnessError, Result};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Polling step of the bounded waits.
const POLL: Duration = Duration::from_millis(20);

/// Waits up to `limit` for `child` to exit; `None` if it is still running.
pub(crate) fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    let polls = limit.as_millis() / POLL.as_millis() + 1;
    for _ in 0..polls {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => break,
        }
    }
    child.try_wait().ok().flatten()
}

/// Sends `signal` (a name such as `TERM`) to `target`, a pid or a negative process
/// group id, with the system's `kill` (the workspace forbids `unsafe`).
pub(crate) fn send_signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops `child`: SIGTERM, up to `grace` to exit, then SIGKILL. With `group`, the
/// child leads its own process group (see [`own_group`]) and the forced stop
/// reaches every process in it, so forked workers cannot outlive it.
pub(crate) fn stop(child: &mut Child, grace: Duration, group: bool) {
    if child.try_wait().ok().flatten().is_none() {
        send_signal("TERM", &child.id().to_string());
        wait_for_exit(child, grace);
    }
    if group {
        send_signal("KILL", &format!("-{}", child.id()));
    }
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Makes the command's process the leader of a new process group.
pub(crate) fn own_group(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    command.process_group(0)
}

/// How the child stands: running, or how it ended.
pub(crate) fn describe_state(child: &mut Child) -> String {
    match child.try_wait() {
        Ok(None) => "still running".to_owned(),
        Ok(Some(status)) => format!("it exited: {status}"),
        Err(error) => format!("its state is unknown: {error}"),
    }
}

/// A log file opened for appending, to hand to a child as stdout or stderr.
pub(crate) fn log_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| HarnessError::io(format!("open the log {}", path.display()), source))
}

/// The same log file as a second handle (for stdout and stderr together).
pub(crate) fn log_stdio(path: &Path) -> Result<(Stdio, Stdio)> {
    Ok((log_file(path)?.into(), log_file(path)?.into()))
}

/// The last `lines` lines of a text file (lossy UTF-8), or a note if unreadable.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("({} unreadable: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_ends_a_process_that_ignores_nothing() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let started = Instant::now();
        stop(&mut child, Duration::from_secs(2), false);
        assert!(child.try_wait().unwrap().is_some());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn stop_kills_a_whole_group_after_the_grace() {
        let mut command = Command::new("sh");
        command.args(["-c", "trap '' TERM; sleep 30 & wait"]);
        let mut child = own_group(&mut command).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stop(&mut child, Duration::from_millis(200), true);
        assert!(child.try_wait().unwrap().is_some());
    }

    #[test]
    fn wait_for_exit_gives_up_at_the_limit() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let started = Instant::now();
        assert!(wait_for_exit(&mut child, Duration::from_millis(100)).is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        stop(&mut child, Duration::from_secs(1), false);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2), "b\nc");
    }
}
