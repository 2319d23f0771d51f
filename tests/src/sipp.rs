//! SIPp runs: one scenario from `tests/sipp/`, bounded by SIPp's own `-timeout` and
//! by a wall-clock watchdog, in a scratch directory that collects its logs and its
//! statistics file, from which the counts of successful and failed calls are read.

use crate::process::{log_stdio, stop, tail, wait_for_exit};
use crate::{HarnessError, Peer, Result, sipp_dir, temp_dir};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Extra time the watchdog gives SIPp beyond its own `-timeout`.
const WATCHDOG_SLACK: Duration = Duration::from_secs(10);

/// One SIPp invocation, built step by step.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: PathBuf,
    remote: Option<SocketAddr>,
    local_port: Option<u16>,
    injection: Vec<String>,
    args: Vec<String>,
    calls: u32,
    limit: Duration,
}

impl Sipp {
    /// A run of `tests/sipp/<name>`: one call, at most 30 s.
    pub fn scenario(name: &str) -> Self {
        Self {
            scenario: sipp_dir().join(name),
            remote: None,
            local_port: None,
            injection: Vec::new(),
            args: Vec::new(),
            calls: 1,
            limit: Duration::from_secs(30),
        }
    }

    /// The server the scenario talks to (client scenarios).
    pub fn remote(mut self, remote: SocketAddr) -> Self {
        self.remote = Some(remote);
        self
    }

    /// SIPp's own UDP port on 127.0.0.1 (`-p`); a free one if never set.
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = Some(port);
        self
    }

    /// Adds a line `EXT;[authentication username=EXT password=PW]` to the injection
    /// file: `[field0]` is the extension, `[field1]` the credentials.
    pub fn account(mut self, extension: &str, password: &str) -> Self {
        self.injection.push(format!("{extension};[authentication username={extension} password={password}]"));
        self
    }

    /// `-key NAME VALUE`: the scenario's `[NAME]`.
    pub fn key(self, name: &str, value: &str) -> Self {
        self.arg("-key").arg(name).arg(value)
    }

    /// `-set NAME VALUE`: the scenario's global variable `$NAME`.
    pub fn set(self, name: &str, value: &str) -> Self {
        self.arg("-set").arg(name).arg(value)
    }

    /// `-s USER`: the scenario's `[service]`, the callee of a UAC.
    pub fn service(self, user: &str) -> Self {
        self.arg("-s").arg(user)
    }

    /// `-auth_uri`: the digest-uri of the credentials, which must be the
    /// Request-URI without `sip:` (SIPp otherwise uses the remote address).
    pub fn auth_uri(self, uri: &str) -> Self {
        self.arg("-auth_uri").arg(uri)
    }

    /// `-oocsf`: the scenario, from `tests/sipp/`, that handles requests outside any
    /// call of the main one.
    pub fn out_of_call(self, name: &str) -> Self {
        let path = sipp_dir().join(name).display().to_string();
        self.arg("-oocsf").arg(&path)
    }

    /// `-m`: how many calls to run before exiting.
    pub fn calls(mut self, calls: u32) -> Self {
        self.calls = calls;
        self
    }

    /// SIPp's `-timeout`; the watchdog allows a few seconds more.
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Any other argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Starts SIPp in its own scratch directory and returns at once.
    pub fn spawn(&self) -> Result<SippRun> {
        let program = Peer::Sipp.locate()?;
        let dir = temp_dir("sipp-")?;
        let local_port = match self.local_port {
            Some(port) => port,
            None => crate::free_port()?,
        };
        let mut command = Command::new(program);
        command.current_dir(dir.path());
        if let Some(remote) = self.remote {
            command.arg(remote.to_string());
        }
        command.arg("-sf").arg(&self.scenario);
        if !self.injection.is_empty() {
            let inf = dir.path().join("users.csv");
            let mut text = "SEQUENTIAL\n".to_owned();
            for line in &self.injection {
                let _ = writeln!(text, "{line}");
            }
            std::fs::write(&inf, text).map_err(|source| HarnessError::io("write the SIPp injection file", source))?;
            command.arg("-inf").arg(&inf);
        }
        let limit_secs = self.limit.as_secs().max(1);
        command
            .args(["-i", "127.0.0.1", "-p", &local_port.to_string()])
            .args(["-m", &self.calls.to_string()])
            .args(["-timeout", &format!("{limit_secs}s"), "-timeout_error"])
            .args(["-nostdin", "-trace_err", "-trace_msg", "-trace_stat", "-trace_logs"])
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .arg("-log_file")
            .arg(dir.path().join("logs.log"))
            .arg("-stf")
            .arg(dir.path().join("stats.csv"))
            .args(&self.args);
        let output = dir.path().join("output.log");
        let (stdout, stderr) = log_stdio(&output)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| HarnessError::io("start sipp", source))?;
        Ok(SippRun {
            name: self.scenario_name(),
            child,
            dir,
            local_port,
            limit: Duration::from_secs(limit_secs) + WATCHDOG_SLACK,
        })
    }

    /// Runs SIPp to its end and returns what happened.
    pub fn run(&self) -> Result<SippOutcome> {
        self.spawn()?.wait()
    }

    fn scenario_name(&self) -> String {
        self.scenario.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// A SIPp process still running. Dropping it kills SIPp.
#[derive(Debug)]
pub struct SippRun {
    name: String,
    child: Child,
    dir: tempfile::TempDir,
    local_port: u16,
    limit: Duration,
}

impl SippRun {
    /// SIPp's UDP port on 127.0.0.1.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// Whether a `<log>` action of the scenario has written `text` yet.
    pub fn logged(&self, text: &str) -> bool {
        std::fs::read_to_string(self.dir.path().join("logs.log")).is_ok_and(|log| log.contains(text))
    }

    /// Waits (bounded by `limit`, polling) until the scenario logs `text`, or SIPp
    /// exits. Returns whether it was logged.
    pub fn wait_for_log(&mut self, text: &str, limit: Duration) -> bool {
        let step = Duration::from_millis(50);
        let polls = limit.as_millis() / step.as_millis() + 1;
        for _ in 0..polls {
            if self.logged(text) {
                return true;
            }
            if self.child.try_wait().ok().flatten().is_some() {
                return self.logged(text);
            }
            std::thread::sleep(step);
        }
        false
    }

    /// Waits for SIPp to end (killing it past the watchdog) and collects the outcome.
    pub fn wait(mut self) -> Result<SippOutcome> {
        let Some(status) = wait_for_exit(&mut self.child, self.limit) else {
            stop(&mut self.child, Duration::from_secs(1), false);
            return Err(HarnessError::Timeout {
                what: format!("sipp {}", self.name),
                limit: self.limit,
                output: tail(&self.dir.path().join("output.log"), 40),
            });
        };
        let stats = std::fs::read_to_string(self.dir.path().join("stats.csv")).unwrap_or_default();
        let read = |file: &str| {
            std::fs::read(self.dir.path().join(file))
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        };
        Ok(SippOutcome {
            scenario: self.name.clone(),
            status,
            created: stat_field(&stats, "TotalCallCreated").unwrap_or(0),
            successful: stat_field(&stats, "SuccessfulCall(C)").unwrap_or(0),
            failed: stat_field(&stats, "FailedCall(C)").unwrap_or(0),
            messages: read("messages.log"),
            errors: read("errors.log"),
            output: tail(&self.dir.path().join("output.log"), 40),
        })
    }

    /// The scratch directory holding SIPp's logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SippRun {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(1), false);
    }
}

/// How a SIPp run ended.
#[derive(Debug, Clone)]
pub struct SippOutcome {
    /// The scenario file's name.
    pub scenario: String,
    /// SIPp's exit status: 0 when every call succeeded, 1 when one failed,
    /// 97 when stopped by its timeout, 99 when no call ran.
    pub status: ExitStatus,
    /// Calls started, from the last line of the statistics file.
    pub created: u64,
    /// Successful calls, from the last line of the statistics file.
    pub successful: u64,
    /// Failed calls, from the last line of the statistics file.
    pub failed: u64,
    /// Every message sent and received (`-trace_msg`).
    pub messages: String,
    /// SIPp's error log (`-trace_err`).
    pub errors: String,
    /// The tail of SIPp's screen output.
    pub output: String,
}

impl SippOutcome {
    /// Whether SIPp exited 0 with exactly `calls` successful calls and no failed one.
    pub fn passed(&self, calls: u64) -> bool {
        self.status.success() && self.successful == calls && self.failed == 0
    }

    /// The status lines and request lines of the traced messages, in order: a
    /// compact picture of the flow for assertion messages.
    pub fn flow(&self) -> Vec<String> {
        self.messages
            .lines()
            .filter(|line| {
                line.starts_with("SIP/2.0 ")
                    || line.split_once(' ').is_some_and(|(method, rest)| {
                        method.chars().all(|c| c.is_ascii_uppercase()) && rest.ends_with(" SIP/2.0")
                    })
            })
            .map(str::to_owned)
            .collect()
    }

    /// A report for assertion messages: status, counts, flow and errors.
    pub fn report(&self) -> String {
        format!(
            "sipp {}: {} ({} successful, {} failed)\nflow:\n  {}\nerrors:\n{}\noutput:\n{}",
            self.scenario,
            self.status,
            self.successful,
            self.failed,
            self.flow().join("\n  "),
            self.errors,
            self.output
        )
    }
}

/// The value of column `name` on the last line of SIPp's `-trace_stat` CSV, whose
/// fields are separated by `;` (its date fields hold tabs, never `;`).
fn stat_field(csv: &str, name: &str) -> Option<u64> {
    let mut lines = csv.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next()?;
    let column = header.split(';').position(|field| field.trim() == name)?;
    let last = lines.next_back()?;
    last.split(';').nth(column)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_field_reads_the_last_line() {
        let csv = "StartTime;SuccessfulCall(C);FailedCall(C);\n\
                   2026-01-01\t00:00:00;0;0;\n\
                   2026-01-01\t00:00:01;7;2;\n";
        assert_eq!(stat_field(csv, "SuccessfulCall(C)"), Some(7));
        assert_eq!(stat_field(csv, "FailedCall(C)"), Some(2));
        assert_eq!(stat_field(csv, "Missing"), None);
        assert_eq!(stat_field("", "FailedCall(C)"), None);
    }

    #[test]
    fn flow_lists_request_and_status_lines() {
        let outcome = SippOutcome {
            scenario: "x".into(),
            status: std::process::Command::new("true").status().unwrap(),
            created: 1,
            successful: 1,
            failed: 0,
            messages: "----\nUDP message sent:\n\nINVITE sip:1002@voip.test SIP/2.0\nVia: x\n\n\
                       SIP/2.0 407 Proxy Authentication Required\nCSeq: 1 INVITE\n"
                .into(),
            errors: String::new(),
            output: String::new(),
        };
        assert_eq!(outcome.flow(), ["INVITE sip:1002@voip.test SIP/2.0", "SIP/2.0 407 Proxy Authentication Required"]);
        assert!(outcome.passed(1));
        assert!(!outcome.passed(2));
    }
}
