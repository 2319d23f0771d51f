//! The location service (RFC 3261 §10): which contacts each address-of-record is bound to, and
//! the accounts allowed to register.
//!
//! The registrar logic talks to a [`LocationStore`] and an [`AccountStore`], so the embedded
//! [`SqliteStore`] can later be swapped for a store shared by several registrar nodes.
//! [`MemoryStore`] keeps everything in memory, for tests and for measuring the logic alone.
//!
//! Times are unix seconds passed in by the caller; a binding with `expires_at <= now` has
//! expired (RFC 3261 §10.2.1.1).

mod memory;
mod sqlite;

use std::net::SocketAddr;
use std::path::PathBuf;

use proto::sip::Transport;

// Outside tests the registrar runs on SqliteStore only.
#[cfg_attr(not(test), allow(unused_imports))]
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// One contact bound to an address-of-record (RFC 3261 §10.3 step 7, RFC 5626 §6, RFC 3327).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The canonical address-of-record, e.g. `sip:1001@example.com`.
    pub aor: String,
    /// The Contact header value as the phone sent it (name-addr with parameters), byte for byte.
    pub contact: String,
    /// The contact URI: the key of this binding within its AOR.
    pub uri: String,
    /// The `q` preference times 1000 (0..=1000).
    pub q: u16,
    /// When the binding expires, in unix seconds.
    pub expires_at: u64,
    /// The Call-ID of the REGISTER that made or refreshed the binding.
    pub call_id: String,
    /// The CSeq number of that REGISTER.
    pub cseq: u32,
    /// Where the REGISTER came from (the flow to reach the phone through NAT).
    pub source: SocketAddr,
    /// The transport the REGISTER came over.
    pub transport: Transport,
    /// The Path header values, in order (RFC 3327).
    pub path: Vec<String>,
    /// The `+sip.instance` Contact parameter (RFC 5626 §4.1).
    pub instance: Option<String>,
    /// The `reg-id` Contact parameter (RFC 5626 §4.2).
    pub reg_id: Option<u32>,
    /// The User-Agent header of the REGISTER.
    pub user_agent: Option<String>,
}

impl Binding {
    /// True once the binding has expired at `now` (unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at <= now
    }
}

/// Where bindings live: keyed by (AOR, contact URI).
pub trait LocationStore {
    /// The unexpired bindings of `aor` at `now`, highest `q` first; the order among equal `q`
    /// is unspecified (RFC 3261 §16.6 treats them alike).
    fn lookup(&self, aor: &str, now: u64) -> Vec<Binding>;

    /// The binding of contact `uri` under `aor`, expired or not.
    fn get(&self, aor: &str, uri: &str) -> Option<Binding>;

    /// Adds `binding`, replacing any binding with the same AOR and URI.
    fn upsert(&mut self, binding: Binding) -> Result<(), StoreError>;

    /// Removes the binding of `uri` under `aor`; true if there was one.
    fn remove(&mut self, aor: &str, uri: &str) -> Result<bool, StoreError>;

    /// Removes every binding of `aor` (a `Contact: *` unregister); returns how many there were.
    fn remove_aor(&mut self, aor: &str) -> Result<usize, StoreError>;

    /// Removes every binding expired at `now`; returns how many.
    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError>;

    /// Makes every earlier change durable. A store may group writes for speed; the caller
    /// calls this on a short regular tick (every 100 ms or so) to bound what a crash can lose.
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How many bindings are held, counting expired ones not yet purged.
    fn len(&self) -> usize;

    /// True when no binding is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the accounts (extension and password) live.
pub trait AccountStore {
    /// Every account as (extension, password), ordered by extension.
    fn accounts(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Adds the account or changes its password.
    fn put_account(&mut self, extension: &str, password: &str) -> Result<(), StoreError>;
}

/// A store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error(
        "cannot create the data directory {}: {source}; check the data_dir setting and the parent directory's permissions",
        .path.display()
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The database file could not be opened or set up.
    #[error(
        "{}: cannot open the location database: {source}; check that the file and its directory are readable and writable",
        .path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// Another process holds the database.
    #[error(
        "{}: the location database is in use by another process; stop the other registrar or give this one its own data_dir",
        .path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The file is damaged or is not a location database.
    #[error(
        "{}: not a usable location database ({detail}); move the file aside to start with an empty one (phones register again on their own)",
        .path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was found wrong.
        detail: String,
    },
    /// The file was written by a newer version with a schema this one does not know.
    #[error(
        "{}: the location database has schema version {found}, newer than this build's {supported}; run the newer build or move the file aside",
        .path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A change could not be written.
    #[error(
        "{}: cannot write to the location database: {source}; check free disk space and permissions",
        .path.display()
    )]
    Write {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

#[cfg(test)]
pub(crate) mod tests;
