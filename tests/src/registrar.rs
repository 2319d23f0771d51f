//! The workspace's `registrar` binary as a test peer: built once per test process,
//! started on free loopback ports with its own data directory, ready once it
//! answers an OPTIONS, restartable on the same data, stopped when dropped.

use crate::process::{log_stdio, stop, tail};
use crate::{HarnessError, Result, free_port, temp_dir, wait_until_answering};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Overrides the registrar executable (skips the build).
const REGISTRAR_ENV: &str = "VOIP_TESTS_REGISTRAR";
/// How long a started registrar has to answer OPTIONS.
const READY_LIMIT: Duration = Duration::from_secs(15);
/// How long a stopped registrar has to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The path of an up-to-date `registrar` executable.
///
/// Built at most once per test process with the profile of the running test
/// (`target/<profile>/deps/…` → `--profile <profile>`), in whatever target
/// directory cargo uses (so `CARGO_TARGET_DIR` is honoured); the path comes from
/// cargo's own build report. `VOIP_TESTS_REGISTRAR` names a prebuilt one instead.
pub fn registrar_exe() -> Result<PathBuf> {
    static EXE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| {
        if let Some(path) = std::env::var_os(REGISTRAR_ENV) {
            return Ok(PathBuf::from(path));
        }
        crate::build::workspace_binary("registrar").map_err(|error| error.to_string())
    })
    .clone()
    .map_err(|message| HarnessError::io("build the registrar", std::io::Error::other(message)))
}

/// How to start the registrar.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// `--bind` addresses; empty means one free port on 127.0.0.1.
    pub binds: Vec<SocketAddr>,
    /// `--domain`, also the digest realm.
    pub domain: String,
    /// `--user EXT:PASSWORD` accounts.
    pub users: Vec<(String, String)>,
    /// `--sip-trace`: every message on stderr (kept in the log file).
    pub sip_trace: bool,
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// The network namespace to run in (see [`crate::netns`]); readiness is then its
    /// "listening" line, since the probe cannot reach into the namespace.
    pub netns: Option<String>,
    /// `--pcap FILE`: record every SIP message in a capture file.
    pub pcap: Option<PathBuf>,
    /// `--tls-bind` addresses; empty means a free port on the first bind address's IP (outside
    /// a namespace; inside one, the registrar's default, the port after the bind port).
    pub tls_binds: Vec<SocketAddr>,
}

impl RegistrarConfig {
    /// A registrar for `domain` with no accounts yet, on a free port.
    pub fn new(domain: &str) -> Self {
        Self {
            binds: Vec::new(),
            domain: domain.to_owned(),
            users: Vec::new(),
            sip_trace: false,
            config_file: None,
            netns: None,
            pcap: None,
            tls_binds: Vec::new(),
        }
    }

    /// Adds the account `extension` with `password`.
    pub fn user(mut self, extension: &str, password: &str) -> Self {
        self.users.push((extension.to_owned(), password.to_owned()));
        self
    }

    /// Turns on `--sip-trace`.
    pub fn sip_trace(mut self) -> Self {
        self.sip_trace = true;
        self
    }

    /// Turns on `--pcap FILE`.
    pub fn pcap(mut self, file: &Path) -> Self {
        self.pcap = Some(file.to_owned());
        self
    }

    /// The command-line arguments for `data_dir`.
    pub fn args(&self, data_dir: &Path) -> Vec<String> {
        let mut args = Vec::new();
        for bind in &self.binds {
            args.extend(["--bind".to_owned(), bind.to_string()]);
        }
        for bind in &self.tls_binds {
            args.extend(["--tls-bind".to_owned(), bind.to_string()]);
        }
        args.extend(["--domain".to_owned(), self.domain.clone()]);
        for (extension, password) in &self.users {
            args.extend(["--user".to_owned(), format!("{extension}:{password}")]);
        }
        args.extend(["--data-dir".to_owned(), data_dir.display().to_string()]);
        if self.sip_trace {
            args.push("--sip-trace".to_owned());
        }
        if let Some(file) = &self.pcap {
            args.extend(["--pcap".to_owned(), file.display().to_string()]);
        }
        if let Some(file) = &self.config_file {
            args.extend(["--config".to_owned(), file.display().to_string()]);
        }
        args
    }
}

/// A running registrar. Dropping it stops the process and removes its data.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    exe: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Registrar {
    /// Builds (once) and starts the registrar, and waits until it answers OPTIONS.
    pub fn start(mut config: RegistrarConfig) -> Result<Self> {
        if config.binds.is_empty() {
            config.binds.push(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)));
        }
        if config.tls_binds.is_empty() && config.netns.is_none() {
            config.tls_binds.push(SocketAddr::new(config.binds[0].ip(), free_port()?));
        }
        let dir = temp_dir("registrar-")?;
        std::fs::create_dir_all(dir.path().join("data"))
            .map_err(|source| HarnessError::io("create the registrar's data directory", source))?;
        let mut registrar = Self { config, exe: registrar_exe()?, dir, child: None };
        registrar.launch()?;
        Ok(registrar)
    }

    fn launch(&mut self) -> Result<()> {
        let log = self.log_path();
        let (stdout, stderr) = log_stdio(&log)?;
        let child = crate::netns::command_in(self.config.netns.as_deref(), &self.exe)
            .args(self.config.args(&self.data_dir()))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| HarnessError::io(format!("start {}", self.exe.display()), source))?;
        let child = self.child.insert(child);
        if self.config.netns.is_none() {
            return wait_until_answering("the registrar", self.config.binds[0], child, &log, READY_LIMIT);
        }
        let started = Instant::now();
        while started.elapsed() < READY_LIMIT {
            if std::fs::read_to_string(&log).is_ok_and(|text| text.contains("registrar listening on")) {
                return Ok(());
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HarnessError::io(
            "start the registrar in its network namespace",
            std::io::Error::other(format!("no \"listening\" line within {READY_LIMIT:?}:\n{}", tail(&log, 40))),
        ))
    }

    /// The first `--bind` address: where SIP requests go.
    pub fn addr(&self) -> SocketAddr {
        self.config.binds[0]
    }

    /// Where it accepts SIP over TLS.
    pub fn tls_addr(&self) -> SocketAddr {
        let bind = self.config.binds[0];
        self.config.tls_binds.first().copied().unwrap_or(SocketAddr::new(bind.ip(), bind.port() + 1))
    }

    /// The self-signed certificate it made in its data directory, for phones to trust.
    pub fn tls_certificate(&self) -> PathBuf {
        self.data_dir().join("tls-certificate.pem")
    }

    /// The domain (and realm) it serves.
    pub fn domain(&self) -> &str {
        &self.config.domain
    }

    /// Its `--data-dir`, kept across [`Registrar::restart`].
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file that collects its stdout and stderr (the SIP trace goes there).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registrar.log")
    }

    /// Everything it has logged so far, over all restarts.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path()).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    /// Stops it (SIGTERM, then SIGKILL after a grace period) and starts it again
    /// with the same arguments and data directory; waits until it answers again.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running: it has not exited or crashed.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Its resident memory in KiB, from `/proc/PID/status` (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Kills it with SIGKILL, as a crash or power cut would: nothing is flushed or closed.
    /// [`Registrar::restart`] starts it again on the same data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process; the data directory stays until the handle drops.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, STOP_GRACE, false);
        }
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_the_cli_contract() {
        let mut config = RegistrarConfig::new("voip.test").user("1001", "pw1").sip_trace();
        config.binds.push("127.0.0.1:5060".parse().unwrap());
        let args = config.args(Path::new("/data"));
        assert_eq!(
            args,
            [
                "--bind",
                "127.0.0.1:5060",
                "--domain",
                "voip.test",
                "--user",
                "1001:pw1",
                "--data-dir",
                "/data",
                "--sip-trace"
            ]
        );
    }

    #[test]
    fn executable_is_read_from_cargo_json() {
        let line = r#"{"reason":"compiler-artifact","executable":"/t/debug/registrar","fresh":true}"#;
        assert_eq!(crate::build::json_string_field(line, "executable").as_deref(), Some("/t/debug/registrar"));
        assert_eq!(crate::build::json_string_field(r#"{"executable":null}"#, "executable"), None);
    }
}
