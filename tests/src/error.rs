//! The one error type of the harness: each variant says what went wrong and what to
//! do about it, with the log of the process involved where there is one.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

/// Something the harness could not do.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An operating-system call failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What the harness was doing.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A peer program is not installed.
    #[error(
        "`{program}` is not installed: install the Debian package `{package}` \
         (apt-get install -y {package}), or set VOIP_TESTS_SKIP_PEERS=1 to skip \
         the tests that need it on purpose"
    )]
    MissingPeer {
        /// The program looked for on PATH.
        program: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },

    /// `cargo build` of a workspace binary failed.
    #[error("building `{binary}` failed ({status}); run `cargo build -p {binary}` to see why:\n{output}")]
    Build {
        /// The binary that was being built.
        binary: &'static str,
        /// Cargo's exit status.
        status: ExitStatus,
        /// What cargo printed.
        output: String,
    },

    /// `cargo build` succeeded but did not name the executable it produced.
    #[error("`cargo build` did not report an executable for `{binary}`; set VOIP_TESTS_REGISTRAR to its path")]
    NoExecutable {
        /// The binary that was being built.
        binary: &'static str,
    },

    /// A server did not start answering OPTIONS in time.
    #[error(
        "{what} did not answer an OPTIONS on {addr} with 200 within {waited:?} ({state})\n\
         --- its log ---\n{log}"
    )]
    NotReady {
        /// Which server.
        what: String,
        /// Where it should listen.
        addr: SocketAddr,
        /// How long the harness waited.
        waited: Duration,
        /// Whether the process was still running, or how it ended.
        state: String,
        /// The tail of the server's log.
        log: String,
    },

    /// A process ran past its time limit and was killed.
    #[error("{what} did not finish within {limit:?} and was killed\n--- its output ---\n{output}")]
    Timeout {
        /// Which process.
        what: String,
        /// The limit it overran.
        limit: Duration,
        /// The tail of what it printed.
        output: String,
    },

    /// A scenario could not reach the point the flow waits for.
    #[error("{what}\n{report}")]
    Scenario {
        /// What did not happen.
        what: String,
        /// SIPp's report of the run.
        report: String,
    },

    /// No free port could be found.
    #[error("found no port free for both UDP and TCP on 127.0.0.1 after {attempts} attempts")]
    NoFreePort {
        /// How many ports were tried.
        attempts: u32,
    },
}

impl HarnessError {
    /// An [`HarnessError::Io`] for `action`.
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { action: action.into(), source }
    }
}
