//! Kamailio as the reference server: `tests/kamailio/kamailio.cfg` started
//! unprivileged in a scratch directory, with the listen address, domain and accounts
//! given from outside (listen flags, `-A` defines, a generated db_text table).

use crate::process::{log_stdio, own_group, stop, tail};
use crate::{HarnessError, Peer, Result, free_port, kamailio_cfg, temp_dir, wait_until_answering};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a started Kamailio has to answer OPTIONS.
const READY_LIMIT: Duration = Duration::from_secs(15);
/// How long Kamailio has to stop its workers and exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Writes the db_text table `accounts` (and its `version` row) into `dir`: one
/// htable row per account, key = extension, string value = password.
pub fn write_accounts_db(dir: &Path, users: &[(String, String)]) -> Result<()> {
    let io = |source| HarnessError::io(format!("write the accounts table in {}", dir.display()), source);
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(dir.join("version"), "table_name(string) table_version(int) \naccounts:2\n").map_err(io)?;
    let file = std::fs::File::create(dir.join("accounts")).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    out.write_all(b"id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) \n")
        .map_err(io)?;
    for (id, (extension, password)) in users.iter().enumerate() {
        writeln!(out, "{}:{}:0:0:{}:0", id + 1, db_text_escape(extension), db_text_escape(password)).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Escapes the characters that db_text gives a meaning to.
fn db_text_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ':' => escaped.push_str("\\:"),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// How to start Kamailio.
#[derive(Debug, Clone)]
pub struct KamailioConfig {
    /// UDP and TCP listen address; `None` means a free port on 127.0.0.1.
    pub addr: Option<SocketAddr>,
    /// The domain (alias and digest realm).
    pub domain: String,
    /// Accounts: extension and password.
    pub users: Vec<(String, String)>,
    /// Worker processes per listener (`-n`).
    pub children: u32,
    /// Shared memory in MB (`-m`).
    pub shm_mb: u32,
    /// Private memory per process in MB (`-M`).
    pub pkg_mb: u32,
}

impl KamailioConfig {
    /// Kamailio for `domain` with no accounts yet, on a free port.
    pub fn new(domain: &str) -> Self {
        Self { addr: None, domain: domain.to_owned(), users: Vec::new(), children: 2, shm_mb: 64, pkg_mb: 8 }
    }

    /// Adds the account `extension` with `password`.
    pub fn user(mut self, extension: &str, password: &str) -> Self {
        self.users.push((extension.to_owned(), password.to_owned()));
        self
    }
}

/// A running Kamailio. Dropping it stops the whole process group.
#[derive(Debug)]
pub struct Kamailio {
    addr: SocketAddr,
    domain: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Kamailio {
    /// Writes the accounts, checks the config, starts Kamailio and waits until it
    /// answers OPTIONS.
    pub fn start(config: KamailioConfig) -> Result<Self> {
        let program = Peer::Kamailio.locate()?;
        let addr = match config.addr {
            Some(addr) => addr,
            None => SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)),
        };
        let dir = temp_dir("kamailio-")?;
        let db = dir.path().join("db");
        write_accounts_db(&db, &config.users)?;
        let log = dir.path().join("kamailio.log");
        let (stdout, stderr) = log_stdio(&log)?;
        let mut command = Command::new(program);
        command
            .current_dir(dir.path())
            .args(Self::args(&config, addr, dir.path(), &db))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let mut child = own_group(&mut command).spawn().map_err(|source| HarnessError::io("start kamailio", source))?;
        if let Err(error) = wait_until_answering("kamailio", addr, &mut child, &log, READY_LIMIT) {
            stop(&mut child, STOP_GRACE, true);
            return Err(error);
        }
        Ok(Self { addr, domain: config.domain, dir, child })
    }

    /// The command line for the foreground server (`-DD`, logs on stderr).
    fn args(config: &KamailioConfig, addr: SocketAddr, dir: &Path, db: &Path) -> Vec<String> {
        let domain = &config.domain;
        vec![
            "-f".into(),
            kamailio_cfg().display().to_string(),
            "-DD".into(),
            "-E".into(),
            "-P".into(),
            dir.join("kamailio.pid").display().to_string(),
            "-w".into(),
            dir.display().to_string(),
            "-m".into(),
            config.shm_mb.to_string(),
            "-M".into(),
            config.pkg_mb.to_string(),
            "-n".into(),
            config.children.to_string(),
            "-l".into(),
            format!("udp:{addr}"),
            "-l".into(),
            format!("tcp:{addr}"),
            format!("--alias={domain}"),
            "-A".into(),
            format!("DOMAIN=\"{domain}\""),
            "-A".into(),
            format!("ACCOUNTS_DB=\"text://{}\"", db.display()),
        ]
    }

    /// Where SIP requests go (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The domain (and realm) it serves.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Its scratch directory (pid file, accounts, log).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("kamailio.log"), lines)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        stop(&mut self.child, STOP_GRACE, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_table_has_one_escaped_row_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let users = [("1001".to_owned(), "pw".to_owned()), ("1002".to_owned(), "a:b\\c".to_owned())];
        write_accounts_db(dir.path(), &users).unwrap();
        let table = std::fs::read_to_string(dir.path().join("accounts")).unwrap();
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows, ["1:1001:0:0:pw:0", "2:1002:0:0:a\\:b\\\\c:0"]);
    }

    #[test]
    fn command_line_takes_address_domain_and_accounts_from_outside() {
        let config = KamailioConfig::new("voip.test");
        let addr = "127.0.0.1:5070".parse().unwrap();
        let args = Kamailio::args(&config, addr, Path::new("/w"), Path::new("/w/db")).join(" ");
        assert!(args.contains("-l udp:127.0.0.1:5070 -l tcp:127.0.0.1:5070"), "{args}");
        assert!(args.contains("-A DOMAIN=\"voip.test\""), "{args}");
        assert!(args.contains("--alias=voip.test"), "{args}");
        assert!(args.contains("-A ACCOUNTS_DB=\"text:///w/db\""), "{args}");
    }
}
