//! [`SqliteStore`]: the location service kept in an embedded SQLite database, with every binding
//! also held in memory so lookups never touch the disk.
//!
//! On disk the bindings are a log of changes (see the `log` module), appended in transactions of
//! up to [`MAX_BATCH`] changes; [`LocationStore::flush`] commits sooner. The log is compacted
//! a little on every change: once it holds [`COMPACT_FACTOR`] times more rows than there are
//! bindings, the live bindings are copied to its tail a few AORs per change, then the superseded
//! head is deleted a few rows per change. No single call does more than a bounded amount of
//! work, and the file stays within a small multiple of the live data. At open the log is
//! replayed, expired bindings are dropped and, if anything was dropped, the log is rewritten.
//! Expiry writes nothing: replay drops what has expired by the `now` it is given, which relies
//! on the clock not going back across a restart.
//!
//! Durability: WAL mode with `synchronous=NORMAL`. A committed change survives the registrar
//! being killed; an operating-system crash or power loss may lose the last commits, never
//! corrupting the file. A kill loses the changes not yet committed (at most the last
//! [`MAX_BATCH`], or those since the last flush). Losing a binding is mild: the phone registers
//! again within its interval. The file is locked exclusively, so a second registrar on the same
//! `data_dir` is refused instead of silently diverging from this one's memory.

mod log;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use self::log::{Log, ReplayError, SCHEMA, SCHEMA_VERSION};
use super::memory::MemoryStore;
use super::{AccountStore, Binding, LocationStore, StoreError};

/// The most changes committed together.
const MAX_BATCH: usize = 512;
/// Compaction starts when the log holds this many rows per live binding…
const COMPACT_FACTOR: usize = 4;
/// …plus this many, so that small stores are left alone.
const COMPACT_MIN_ROWS: usize = 4096;
/// AORs copied to the log's tail per change while compacting.
const COPY_PER_CHANGE: usize = 2;
/// Rows deleted from the log's head per change while compacting.
const DELETE_PER_CHANGE: i64 = 8;
/// How long opening waits for another process to release the database.
const OPEN_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

const SELECT_ACCOUNTS: &str = "SELECT extension, password FROM account ORDER BY extension";
const PUT_ACCOUNT: &str = "INSERT OR REPLACE INTO account (extension, password) VALUES (?1, ?2)";

/// A location and account store persisted in `DIR/registrar.db`, with an in-memory index.
///
/// A change is appended to the log before the index is updated, so a failed append leaves both
/// as they were. A failed commit leaves the index ahead of the disk; the next
/// [`flush`](LocationStore::flush) rewrites the log from the index.
#[derive(Debug)]
pub struct SqliteStore {
    log: Log,
    path: PathBuf,
    index: MemoryStore,
    compaction: Option<Compaction>,
    /// A commit failed: the log no longer matches the index and must be rewritten.
    resync: bool,
}

/// A compaction in progress.
#[derive(Debug)]
struct Compaction {
    /// The log's tail when compaction started: once every AOR is copied, rows up to here are
    /// superseded.
    boundary: i64,
    /// AORs whose bindings are still to be copied to the tail.
    remaining: Vec<String>,
}

impl SqliteStore {
    /// The database file's name inside the data directory.
    pub const FILE_NAME: &str = "registrar.db";

    /// Opens (creating if needed) `dir` and the database in it, loads the bindings unexpired at
    /// `now` (unix seconds) and removes the others from the file.
    pub fn open(dir: &Path, now: u64) -> Result<Self, StoreError> {
        create_private_dir(dir)?;
        let path = dir.join(Self::FILE_NAME);
        let fail = |e| open_error(&path, e);
        let conn = Connection::open(&path).map_err(fail)?;
        set_up(&conn).map_err(fail)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(fail)?;
        match version {
            0 => conn.execute_batch(&format!("BEGIN; {SCHEMA} COMMIT;")).map_err(fail)?,
            SCHEMA_VERSION => {}
            found if found > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema { path, found, supported: SCHEMA_VERSION });
            }
            found => {
                return Err(StoreError::Corrupt { path, detail: format!("unknown schema version {found}") });
            }
        }

        let mut log = Log::new(conn);
        let mut index = MemoryStore::new();
        log.replay(&mut index).map_err(|e| match e {
            ReplayError::Sqlite(e) => fail(e),
            ReplayError::Value(detail) => StoreError::Corrupt { path: path.clone(), detail },
        })?;
        // The memory store never fails.
        let _ = index.purge_expired(now);
        if log.rows > index.len() {
            log.rewrite(&index).map_err(fail)?;
        }
        tracing::debug!(path = %path.display(), bindings = index.len(), "location database opened");
        restrict_permissions(&path);
        Ok(SqliteStore { log, path, index, compaction: None, resync: false })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ends a change: commits when the batch is full.
    fn changed(&mut self) -> Result<(), StoreError> {
        if self.log.pending >= MAX_BATCH {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.log.commit().map_err(|e| {
            self.resync = true;
            self.compaction = None;
            self.write_error(e)
        })
    }

    /// Does one change's share of compaction, starting it when the log has grown enough.
    fn compact_step(&mut self) -> Result<(), StoreError> {
        if self.resync {
            return Ok(());
        }
        let Some(compaction) = &mut self.compaction else {
            if self.log.rows > COMPACT_FACTOR * self.index.len() + COMPACT_MIN_ROWS {
                self.compaction = Some(Compaction { boundary: self.log.tail, remaining: self.index.aors() });
            }
            return Ok(());
        };
        let result = if compaction.remaining.is_empty() {
            let result = self.log.delete_head(compaction.boundary, DELETE_PER_CHANGE);
            if self.log.head > compaction.boundary {
                self.compaction = None;
            }
            result
        } else {
            (|| {
                for _ in 0..COPY_PER_CHANGE {
                    // Popped only once copied, so a failed copy is retried.
                    let Some(aor) = compaction.remaining.last() else {
                        break;
                    };
                    for binding in self.index.bindings(aor) {
                        self.log.append(binding)?;
                    }
                    compaction.remaining.pop();
                }
                Ok(())
            })()
        };
        result.map_err(|e| self.write_error(e))
    }

    fn write_error(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e).unwrap_or_else(|source| StoreError::Write { path: self.path.clone(), source })
    }
}

impl LocationStore for SqliteStore {
    fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        self.index.lookup(aor, now)
    }

    fn get(&self, aor: &str, uri: &str) -> Option<Binding> {
        self.index.get(aor, uri)
    }

    fn upsert(&mut self, binding: Binding) -> Result<(), StoreError> {
        self.compact_step()?;
        self.log.append(&binding).map_err(|e| self.write_error(e))?;
        self.index.upsert(binding)?;
        self.changed()
    }

    fn remove(&mut self, aor: &str, uri: &str) -> Result<bool, StoreError> {
        if self.index.get(aor, uri).is_none() {
            return Ok(false);
        }
        self.compact_step()?;
        self.log.append_removal(aor, uri).map_err(|e| self.write_error(e))?;
        self.index.remove(aor, uri)?;
        self.changed()?;
        Ok(true)
    }

    fn remove_aor(&mut self, aor: &str) -> Result<usize, StoreError> {
        let uris: Vec<String> = self.index.bindings(aor).iter().map(|b| b.uri.clone()).collect();
        for uri in &uris {
            self.remove(aor, uri)?;
        }
        Ok(uris.len())
    }

    /// Forgets expired bindings in memory. Their rows stay in the log, where replay ignores
    /// them, until compaction or the next open drops them.
    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        self.index.purge_expired(now)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.resync {
            self.log.rewrite(&self.index).map_err(|e| self.write_error(e))?;
            self.resync = false;
            return Ok(());
        }
        self.commit()
    }

    fn len(&self) -> usize {
        self.index.len()
    }
}

impl AccountStore for SqliteStore {
    fn accounts(&self) -> Result<Vec<(String, String)>, StoreError> {
        let read = || -> Result<Vec<(String, String)>, rusqlite::Error> {
            let mut statement = self.log.conn.prepare_cached(SELECT_ACCOUNTS)?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        };
        read().map_err(|e| open_error(&self.path, e))
    }

    fn put_account(&mut self, extension: &str, password: &str) -> Result<(), StoreError> {
        self.log.execute(PUT_ACCOUNT, [extension, password]).map_err(|e| self.write_error(e))?;
        self.commit()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "location changes lost at close");
        }
    }
}

/// Takes the exclusive lock and sets the journal and sync modes.
fn set_up(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(OPEN_BUSY_TIMEOUT)?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "WAL journal mode unavailable; writes will be slower");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(())
}

/// Turns an error met while opening into the [`StoreError`] that tells the user what to do.
fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    classify(path, e).unwrap_or_else(|source| StoreError::Open { path: path.to_owned(), source })
}

/// The specific [`StoreError`] for a locked or corrupt database; other errors are handed back.
fn classify(path: &Path, e: rusqlite::Error) -> Result<StoreError, rusqlite::Error> {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Ok(StoreError::Locked { path: path.to_owned() }),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            Ok(StoreError::Corrupt { path: path.to_owned(), detail: e.to_string() })
        }
        _ => Err(e),
    }
}

/// Creates `dir` (and its parents); on Unix a directory created here is private to its owner.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| StoreError::CreateDir { path: dir.to_owned(), source })
}

/// Makes the database (which holds passwords) readable by its owner only, where supported.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot restrict database permissions");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests;
