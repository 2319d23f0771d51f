//! The third-party programs the interop tests drive, and the rule for when they are
//! missing: fail loudly with the package to install, unless skipping was asked for.

use crate::{HarnessError, Result};
use std::path::{Path, PathBuf};

/// Set to `1` to skip the tests that need a peer program, on purpose.
pub const SKIP_PEERS_ENV: &str = "VOIP_TESTS_SKIP_PEERS";

/// A peer program, with the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The SIPp traffic generator (`sipp`, package `sip-tester`).
    Sipp,
    /// The Kamailio SIP server (`kamailio`, package `kamailio`).
    Kamailio,
    /// The baresip user agent (`baresip`, package `baresip-core`).
    Baresip,
    /// The tmux terminal multiplexer (`tmux`, package `tmux`): a pseudo-terminal to drive the
    /// interactive softphone through.
    Tmux,
    /// Wireshark's command-line analyzer (`tshark`, package `tshark`).
    Tshark,
    /// SIPVicious' extension scanner (`svwar`, or `sipvicious_svwar` in newer packages).
    Svwar,
    /// SIPVicious' password cracker (`svcrack` or `sipvicious_svcrack`).
    Svcrack,
    /// SIPVicious' server finder and fingerprinter (`svmap` or `sipvicious_svmap`).
    Svmap,
}

impl Peer {
    /// The program's name on PATH.
    pub fn program(self) -> &'static str {
        match self {
            Peer::Sipp => "sipp",
            Peer::Kamailio => "kamailio",
            Peer::Baresip => "baresip",
            Peer::Tmux => "tmux",
            Peer::Tshark => "tshark",
            Peer::Svwar => "svwar",
            Peer::Svcrack => "svcrack",
            Peer::Svmap => "svmap",
        }
    }

    /// Other names the program has in some package versions.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Peer::Sipp | Peer::Kamailio | Peer::Baresip | Peer::Tmux | Peer::Tshark => &[],
            Peer::Svwar => &["sipvicious_svwar"],
            Peer::Svcrack => &["sipvicious_svcrack"],
            Peer::Svmap => &["sipvicious_svmap"],
        }
    }

    /// The Debian package to install for it.
    pub fn package(self) -> &'static str {
        match self {
            Peer::Sipp => "sip-tester",
            Peer::Kamailio => "kamailio",
            Peer::Baresip => "baresip-core",
            Peer::Tmux => "tmux",
            Peer::Tshark => "tshark",
            Peer::Svwar | Peer::Svcrack | Peer::Svmap => "sipvicious",
        }
    }

    /// The program's full path, found on PATH (Kamailio lives in `/usr/sbin`, which
    /// an unprivileged PATH may lack, so the sbin folders are searched too).
    pub fn locate(self) -> Result<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
            .flat_map(|dir| {
                std::iter::once(self.program()).chain(self.aliases().iter().copied()).map(move |name| dir.join(name))
            })
            .find(|candidate| is_executable(candidate))
            .ok_or(HarnessError::MissingPeer { program: self.program(), package: self.package() })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Whether the peer tests were deliberately switched off with `VOIP_TESTS_SKIP_PEERS=1`.
fn skipping() -> bool {
    std::env::var(SKIP_PEERS_ENV).is_ok_and(|value| value == "1")
}

/// `Ok(false)` when the peer tests are skipped on purpose, `Ok(true)` when every
/// peer is installed, otherwise the error naming the first missing package.
pub fn require_peers(peers: &[Peer]) -> Result<bool> {
    if skipping() {
        return Ok(false);
    }
    for peer in peers {
        peer.locate()?;
    }
    Ok(true)
}

/// For the top of a test: `if !peers_ready(&[Peer::Sipp]) { return; }`.
///
/// Returns false (and says so on stderr) when skipping was asked for; panics with
/// the package to install when a peer is missing, so that breakage is never silent.
pub fn peers_ready(peers: &[Peer]) -> bool {
    match require_peers(peers) {
        Ok(true) => true,
        Ok(false) => {
            eprintln!("skipped: {SKIP_PEERS_ENV}=1");
            false
        }
        Err(error) => panic!("{error}"),
    }
}
