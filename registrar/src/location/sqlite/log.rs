//! The binding log: the one table that holds bindings on disk, as a sequence of changes.
//!
//! Each row is a whole binding (an upsert) or, with `contact` NULL, a removal of `(aor, uri)`;
//! replaying the rows in `seq` order rebuilds the bindings. Appending is what makes writes cheap:
//! new rows land on the table's last page, where updating rows in place would dirty a random
//! page (and write it out whole) per change.

use std::net::SocketAddr;

use rusqlite::{Connection, Row, params};

use super::super::memory::MemoryStore;
use super::super::{Binding, LocationStore};

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 1;

/// The whole schema at [`SCHEMA_VERSION`].
pub(super) const SCHEMA: &str = "
    CREATE TABLE binding_log (
        seq INTEGER PRIMARY KEY,
        aor TEXT NOT NULL,
        uri TEXT NOT NULL,
        contact TEXT,
        q INTEGER,
        expires_at INTEGER,
        call_id TEXT,
        cseq INTEGER,
        source TEXT,
        transport TEXT,
        path TEXT,
        instance TEXT,
        reg_id INTEGER,
        user_agent TEXT
    );
    CREATE TABLE account (
        extension TEXT PRIMARY KEY NOT NULL,
        password TEXT NOT NULL
    ) WITHOUT ROWID;
    PRAGMA user_version = 1;
";

const APPEND: &str = "INSERT INTO binding_log (aor, uri, contact, q, expires_at, call_id, cseq, \
    source, transport, path, instance, reg_id, user_agent) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const APPEND_REMOVAL: &str = "INSERT INTO binding_log (aor, uri) VALUES (?1, ?2)";
const DELETE_RANGE: &str = "DELETE FROM binding_log WHERE seq BETWEEN ?1 AND ?2";
const CLEAR: &str = "DELETE FROM binding_log";
const SELECT_ALL: &str = "SELECT seq, aor, uri, contact, q, expires_at, call_id, cseq, source, \
    transport, path, instance, reg_id, user_agent FROM binding_log ORDER BY seq";

/// The binding log of one open database, written in batched transactions.
#[derive(Debug)]
pub(super) struct Log {
    pub(super) conn: Connection,
    /// Statements run in the open transaction and not yet committed.
    pub(super) pending: usize,
    /// Rows in the table.
    pub(super) rows: usize,
    /// The lowest `seq` in the table (when it has rows).
    pub(super) head: i64,
    /// The highest `seq` written.
    pub(super) tail: i64,
}

/// Why the log could not be read back.
#[derive(Debug)]
pub(super) enum ReplayError {
    /// SQLite could not give a row.
    Sqlite(rusqlite::Error),
    /// A row holds a value this build could not have written.
    Value(String),
}

impl From<rusqlite::Error> for ReplayError {
    fn from(e: rusqlite::Error) -> Self {
        ReplayError::Sqlite(e)
    }
}

impl Log {
    /// A log over `conn`, whose schema is in place; call [`Log::replay`] before writing.
    pub(super) fn new(conn: Connection) -> Self {
        Log { conn, pending: 0, rows: 0, head: 0, tail: 0 }
    }

    /// Runs one write statement inside the batch transaction, opening it if needed.
    pub(super) fn execute<P: rusqlite::Params>(&mut self, sql: &str, params: P) -> Result<usize, rusqlite::Error> {
        if self.conn.is_autocommit() {
            self.conn.prepare_cached("BEGIN")?.execute([])?;
        }
        let changed = self.conn.prepare_cached(sql)?.execute(params)?;
        self.pending += 1;
        Ok(changed)
    }

    /// Commits the open transaction, if any. On failure the transaction is rolled back.
    pub(super) fn commit(&mut self) -> Result<(), rusqlite::Error> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        let result = self.conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        if result.is_err() {
            self.rollback();
        }
        self.pending = 0;
        result.map(drop)
    }

    /// Abandons the open transaction, if any.
    fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.pending = 0;
    }

    /// Appends `b` as the binding's newest state.
    pub(super) fn append(&mut self, b: &Binding) -> Result<(), rusqlite::Error> {
        self.execute(
            APPEND,
            params![
                b.aor,
                b.uri,
                b.contact,
                b.q,
                to_sql_int(b.expires_at),
                b.call_id,
                b.cseq,
                b.source.to_string(),
                b.transport.as_str(),
                encode_path(&b.path),
                b.instance,
                b.reg_id,
                b.user_agent,
            ],
        )?;
        self.appended();
        Ok(())
    }

    /// Appends the removal of `uri` from `aor`.
    pub(super) fn append_removal(&mut self, aor: &str, uri: &str) -> Result<(), rusqlite::Error> {
        self.execute(APPEND_REMOVAL, [aor, uri])?;
        self.appended();
        Ok(())
    }

    fn appended(&mut self) {
        self.tail = self.conn.last_insert_rowid();
        if self.rows == 0 {
            self.head = self.tail;
        }
        self.rows += 1;
    }

    /// Deletes up to `max_rows` sequence numbers from the head of the log, none above `up_to`.
    pub(super) fn delete_head(&mut self, up_to: i64, max_rows: i64) -> Result<(), rusqlite::Error> {
        let last = up_to.min(self.head.saturating_add(max_rows - 1));
        let deleted = self.execute(DELETE_RANGE, [self.head, last])?;
        self.rows = self.rows.saturating_sub(deleted);
        self.head = last + 1;
        Ok(())
    }

    /// Replaces the whole log with one row per binding in `index`, in one transaction. On
    /// failure nothing changes on disk and the row counts are unknown until a rewrite succeeds.
    pub(super) fn rewrite(&mut self, index: &MemoryStore) -> Result<(), rusqlite::Error> {
        self.commit()?;
        let result = (|| {
            self.execute(CLEAR, [])?;
            self.rows = 0;
            for binding in index.iter() {
                self.append(binding)?;
            }
            self.commit()
        })();
        if result.is_err() {
            self.rollback();
        }
        result
    }

    /// Applies every row, oldest first, to `index`.
    pub(super) fn replay(&mut self, index: &mut MemoryStore) -> Result<(), ReplayError> {
        let mut statement = self.conn.prepare(SELECT_ALL)?;
        let mut rows = statement.query([])?;
        let (mut count, mut head, mut tail) = (0, 0, 0);
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            if count == 0 {
                head = seq;
            }
            (count, tail) = (count + 1, seq);
            let aor: String = row.get(1)?;
            let uri: String = row.get(2)?;
            match row.get::<_, Option<String>>(3)? {
                // The memory store never fails.
                None => drop(index.remove(&aor, &uri)),
                Some(contact) => drop(index.upsert(read_binding(row, aor, uri, contact)?)),
            }
        }
        (self.rows, self.head, self.tail) = (count, head, tail);
        Ok(())
    }
}

/// Builds a binding from the value columns of a [`SELECT_ALL`] row.
fn read_binding(row: &Row<'_>, aor: String, uri: String, contact: String) -> Result<Binding, ReplayError> {
    let bad = |what: &str, value: &dyn std::fmt::Display| {
        ReplayError::Value(format!("binding {uri} of {aor} has {what} {value}"))
    };
    let q: i64 = row.get(4)?;
    let expires_at: i64 = row.get(5)?;
    let cseq: i64 = row.get(7)?;
    let source: String = row.get(8)?;
    let transport: String = row.get(9)?;
    let path: String = row.get(10)?;
    let reg_id: Option<i64> = row.get(12)?;
    Ok(Binding {
        q: u16::try_from(q).ok().filter(|q| *q <= 1000).ok_or_else(|| bad("q", &q))?,
        expires_at: u64::try_from(expires_at).map_err(|_| bad("expiry", &expires_at))?,
        call_id: row.get(6)?,
        cseq: u32::try_from(cseq).map_err(|_| bad("CSeq", &cseq))?,
        source: source.parse::<SocketAddr>().map_err(|_| bad("source address", &source))?,
        transport: transport.parse().map_err(|_| bad("transport", &transport))?,
        path: decode_path(&path).ok_or_else(|| bad("Path", &format!("{path:?}")))?,
        instance: row.get(11)?,
        reg_id: reg_id.map(|id| u32::try_from(id).map_err(|_| bad("reg-id", &id))).transpose()?,
        user_agent: row.get(13)?,
        aor,
        uri,
        contact,
    })
}

/// Unix seconds as an SQLite integer (which is signed); far-future times saturate.
pub(super) fn to_sql_int(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// Writes the Path values as one text: each value followed by a newline, with `\` and newline
/// inside a value escaped, so any list (including empty values) reads back exactly.
pub(super) fn encode_path(path: &[String]) -> String {
    let mut out = String::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for value in path {
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('\n');
    }
    out
}

/// Reads what [`encode_path`] wrote; `None` if it could not have written it.
pub(super) fn decode_path(text: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\\' => current.push('\\'),
                'n' => current.push('\n'),
                _ => return None,
            },
            '\n' => values.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    current.is_empty().then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_encoding_round_trips_every_list() {
        let lists: [Vec<String>; 4] = [
            vec![],
            vec![String::new()],
            vec!["<sip:p1;lr>".into(), "<sip:p2;lr>".into()],
            vec!["a\\nb".into(), "c\nd\\".into(), String::new()],
        ];
        for list in lists {
            assert_eq!(decode_path(&encode_path(&list)), Some(list));
        }
    }

    #[test]
    fn path_decoding_refuses_text_it_could_not_have_written() {
        assert_eq!(decode_path("no terminator"), None);
        assert_eq!(decode_path("bad \\x escape\n"), None);
        assert_eq!(decode_path("dangling \\"), None);
    }
}
