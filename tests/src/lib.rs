//! Helpers shared by the cross-binary tests: free ports, temp dirs, spawning the
//! registrar and the reference peers (SIPp, Kamailio, baresip), and the SIP flows that the
//! integration tests in `tests/tests/` run against either server.
//!
//! Every wait in here is bounded in count and in time, and every process it starts
//! is ended when its handle drops, so a failing test cannot leave servers behind.
//!
//! Environment:
//! - `VOIP_TESTS_SKIP_PEERS=1` skips the tests that need SIPp, Kamailio or baresip on purpose;
//!   without it a missing peer fails the test with the package to install.
//! - `VOIP_TESTS_REGISTRAR=/path/to/registrar` uses that binary instead of building one.

pub mod baresip;
mod build;
mod error;
pub mod flows;
mod kamailio;
pub mod netns;
mod peers;
mod ports;
mod probe;
mod process;
mod registrar;
mod scanner;
mod sipp;
pub mod softphone;
pub mod tshark;

pub use error::HarnessError;
pub use kamailio::{Kamailio, KamailioConfig, write_accounts_db};
pub use peers::{Peer, SKIP_PEERS_ENV, peers_ready, require_peers};
pub use ports::{free_port, unique_loopback_ip};
pub use probe::{options_status, wait_until_answering};
pub use registrar::{Registrar, RegistrarConfig, registrar_exe};
pub use scanner::{ScanOutput, scan};
pub use sipp::{Sipp, SippOutcome, SippRun};

use std::path::PathBuf;

/// Result type of the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// The `tests/` folder of the workspace (this crate's manifest directory).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder holding the SIPp scenarios (`tests/sipp/`).
pub fn sipp_dir() -> PathBuf {
    crate_dir().join("sipp")
}

/// The Kamailio reference configuration (`tests/kamailio/kamailio.cfg`).
pub fn kamailio_cfg() -> PathBuf {
    crate_dir().join("kamailio").join("kamailio.cfg")
}

/// A fresh temporary directory, removed when the handle drops.
pub fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| HarnessError::io("create a temporary directory", source))
}
