use super::*;
use crate::location::tests::{binding, location_store_contract};
use proto::sip::Transport;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("registrar-location-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A binding with every optional field set and awkward values in each.
fn full_binding() -> Binding {
    Binding {
        aor: "sip:1001@example.com".to_owned(),
        contact: "\"Desk, 1\" <sip:1001@[2001:db8::5]:5070;transport=tcp;ob>;q=0.7;\
                  +sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\";reg-id=1"
            .to_owned(),
        uri: "sip:1001@[2001:db8::5]:5070;transport=tcp;ob".to_owned(),
        q: 700,
        expires_at: 1_700_000_000,
        call_id: "a84b4c76e66710@pc33".to_owned(),
        cseq: u32::MAX,
        source: "[2001:db8::5]:61000".parse().expect("addr"),
        transport: Transport::Tcp,
        path: vec!["<sip:edge.example.com;lr>".to_owned(), String::new(), "odd\\value\nwith newline".to_owned()],
        instance: Some("<urn:uuid:00000000-0000-1000-8000-000a95a0e128>".to_owned()),
        reg_id: Some(u32::MAX),
        user_agent: Some("Phone/1.0 (ünïcode)".to_owned()),
    }
}

#[test]
fn sqlite_store_keeps_the_location_store_contract() {
    let dir = TempDir::new("contract");
    let mut store = SqliteStore::open(&dir.0, 0).expect("open");
    location_store_contract(&mut store);
}

#[test]
fn open_creates_the_directory_and_the_database_file() {
    let dir = TempDir::new("create");
    let nested = dir.0.join("a").join("b");
    let store = SqliteStore::open(&nested, 0).expect("open");
    assert_eq!(store.path(), nested.join("registrar.db"));
    assert!(store.path().is_file());
    assert!(store.is_empty());
}

#[cfg(unix)]
#[test]
fn database_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("private");
    let store = SqliteStore::open(&dir.0, 0).expect("open");
    let mode = std::fs::metadata(store.path()).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn bindings_survive_close_and_reopen() {
    let dir = TempDir::new("reopen");
    let full = full_binding();
    let other = binding("sip:1002@example.com", "sip:1002@192.0.2.2", 1000, 1_700_000_500);
    {
        let mut store = SqliteStore::open(&dir.0, 0).expect("open");
        store.upsert(full.clone()).expect("upsert");
        store.upsert(other.clone()).expect("upsert");
    }
    let store = SqliteStore::open(&dir.0, 1_600_000_000).expect("reopen");
    assert_eq!(store.len(), 2);
    assert_eq!(store.get(&full.aor, &full.uri), Some(full));
    assert_eq!(store.lookup(&other.aor, 1_600_000_000), vec![other]);
}

#[test]
fn replacements_and_removals_survive_reopen() {
    let dir = TempDir::new("changes");
    const A: &str = "sip:a@example.com";
    const B: &str = "sip:b@example.com";
    {
        let mut store = SqliteStore::open(&dir.0, 0).expect("open");
        store.upsert(binding(A, "sip:a@1", 1000, 500)).expect("upsert");
        store.upsert(binding(A, "sip:a@2", 1000, 500)).expect("upsert");
        let mut replaced = binding(A, "sip:a@1", 100, 600);
        replaced.cseq = 7;
        store.upsert(replaced).expect("upsert");
        store.remove(A, "sip:a@2").expect("remove");
        store.upsert(binding(B, "sip:b@1", 1000, 500)).expect("upsert");
        store.upsert(binding(B, "sip:b@2", 1000, 500)).expect("upsert");
        store.remove_aor(B).expect("remove_aor");
        store.upsert(binding("sip:c@example.com", "sip:c@1", 1000, 50)).expect("upsert");
        assert_eq!(store.purge_expired(60).expect("purge"), 1);
    }
    let store = SqliteStore::open(&dir.0, 60).expect("reopen");
    assert_eq!(store.len(), 1);
    let kept = store.get(A, "sip:a@1").expect("kept");
    assert_eq!((kept.q, kept.expires_at, kept.cseq), (100, 600, 7));
}

#[test]
fn changes_are_batched_until_flush_or_a_full_batch() {
    let dir = TempDir::new("batch");
    let mut store = SqliteStore::open(&dir.0, 0).expect("open");
    store.upsert(binding("sip:a@x", "sip:a@1", 1000, 100)).expect("upsert");
    assert!(!store.log.conn.is_autocommit(), "a change opens a batch");
    store.flush().expect("flush");
    assert!(store.log.conn.is_autocommit(), "flush commits it");
    for i in 0..MAX_BATCH {
        store.upsert(binding("sip:a@x", &format!("sip:a@{i}"), 1000, 100)).expect("upsert");
    }
    assert!(store.log.conn.is_autocommit(), "a full batch commits itself");
    store.put_account("1001", "pw").expect("put");
    assert!(store.log.conn.is_autocommit(), "account changes commit at once");
}

#[test]
fn log_stays_bounded_under_endless_refreshes() {
    let dir = TempDir::new("bounded");
    let mut store = SqliteStore::open(&dir.0, 0).expect("open");
    let uris = ["sip:a@1", "sip:a@2", "sip:a@3"];
    let mut most_rows = 0;
    for cseq in 1..=12_000u32 {
        let mut b = binding("sip:a@x", uris[cseq as usize % 3], 1000, 10_000);
        b.cseq = cseq;
        store.upsert(b).expect("upsert");
        most_rows = most_rows.max(store.log.rows);
    }
    // Compaction starts past 3 × 3 + 4096 rows; the peak adds the change that starts it, the
    // one that copies the three bindings, and the first deleting one.
    assert!(most_rows <= COMPACT_FACTOR * 3 + COMPACT_MIN_ROWS + 8, "{most_rows}");
    drop(store);
    let store = SqliteStore::open(&dir.0, 0).expect("reopen");
    assert_eq!(store.len(), 3);
    assert_eq!(store.get("sip:a@x", "sip:a@1").map(|b| b.cseq), Some(12_000));
    assert_eq!(store.log.rows, 3, "rewritten at open");
}

/// The bindings of every AOR in `store`, each AOR's sorted by URI.
fn snapshot(store: &dyn LocationStore, aors: &[String], now: u64) -> Vec<Vec<Binding>> {
    aors.iter()
        .map(|aor| {
            let mut bindings = store.lookup(aor, now);
            bindings.sort_by(|a, b| a.uri.cmp(&b.uri));
            bindings
        })
        .collect()
}

#[test]
fn random_changes_with_compactions_and_reopens_match_a_memory_store() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let dir = TempDir::new("random");
    let mut rng = StdRng::seed_from_u64(7);
    let aors: Vec<String> = (0..400).map(|i| format!("sip:{i}@example.com")).collect();
    let mut store = SqliteStore::open(&dir.0, 0).expect("open");
    let mut mirror = MemoryStore::new();
    let mut now = 0u64;
    // Steps spent in each compaction phase since the last reopen, and what has been seen.
    let (mut copying, mut deleting, mut completed) = (0, 0, 0);
    let (mut reopened_copying, mut reopened_deleting) = (false, false);
    let mut just_completed;
    for step in 0..40_000u32 {
        now += u64::from(rng.random_range(0..2u8));
        let aor = &aors[rng.random_range(0..aors.len())];
        let uri = format!("sip:{}@192.0.2.{}", step % 7, rng.random_range(0..3u8));
        match rng.random_range(0..100u8) {
            0..80 => {
                let expires_at = now + 50 + rng.random_range(0..2000);
                let mut b = binding(aor, &uri, rng.random_range(0..=1000), expires_at);
                b.cseq = step;
                store.upsert(b.clone()).expect("upsert");
                mirror.upsert(b).expect("mirror");
            }
            80..95 => {
                let existing = mirror.lookup(aor, 0).first().map(|b| b.uri.clone());
                let uri = existing.unwrap_or(uri);
                assert_eq!(store.remove(aor, &uri).ok(), mirror.remove(aor, &uri).ok());
            }
            95..98 => {
                assert_eq!(store.remove_aor(aor).ok(), mirror.remove_aor(aor).ok());
            }
            _ => {
                assert_eq!(store.purge_expired(now).ok(), mirror.purge_expired(now).ok());
            }
        }
        just_completed = false;
        match store.compaction.as_ref().map(|c| c.remaining.is_empty()) {
            Some(false) => copying += 1,
            Some(true) => deleting += 1,
            None if deleting > 0 => {
                (completed, copying, deleting) = (completed + 1, 0, 0);
                just_completed = true;
            }
            None => {}
        }
        let reopen_copying = copying == 50 && !reopened_copying;
        let reopen_deleting = deleting == 300 && !reopened_deleting;
        let reopen_completed = just_completed && completed == 1;
        if reopen_copying || reopen_deleting || reopen_completed || step % 10_000 == 9_999 {
            reopened_copying |= reopen_copying;
            reopened_deleting |= reopen_deleting;
            (copying, deleting) = (0, 0);
            drop(store);
            store = SqliteStore::open(&dir.0, now).expect("reopen");
            mirror.purge_expired(now).expect("mirror purge");
            let (got, want) = (snapshot(&store, &aors, now), snapshot(&mirror, &aors, now));
            assert!(got == want, "store and mirror differ after reopen at step {step}");
        }
    }
    assert!(completed > 0, "the test must complete a compaction");
    assert!(reopened_copying && reopened_deleting, "the test must reopen in both phases");
    drop(store);
    let store = SqliteStore::open(&dir.0, now).expect("reopen");
    assert!(snapshot(&store, &aors, now) == snapshot(&mirror, &aors, now));
}

#[test]
fn bindings_expired_while_closed_are_purged_at_open() {
    let dir = TempDir::new("purge-at-open");
    {
        let mut store = SqliteStore::open(&dir.0, 0).expect("open");
        store.upsert(binding("sip:a@x", "sip:a@1", 1000, 100)).expect("upsert");
        store.upsert(binding("sip:a@x", "sip:a@2", 1000, 300)).expect("upsert");
    }
    let store = SqliteStore::open(&dir.0, 200).expect("reopen");
    assert_eq!(store.len(), 1);
    assert_eq!(store.get("sip:a@x", "sip:a@1"), None);
    drop(store);
    // Deleted from the file, not only skipped: an earlier clock does not bring it back.
    let store = SqliteStore::open(&dir.0, 0).expect("reopen");
    assert_eq!(store.len(), 1);
}

#[test]
fn accounts_persist() {
    let dir = TempDir::new("accounts");
    {
        let mut store = SqliteStore::open(&dir.0, 0).expect("open");
        store.put_account("1002", "old").expect("put");
        store.put_account("1001", "pw1").expect("put");
        store.put_account("1002", "pw2").expect("put");
    }
    let store = SqliteStore::open(&dir.0, 0).expect("reopen");
    let expected = vec![("1001".into(), "pw1".into()), ("1002".into(), "pw2".into())];
    assert_eq!(store.accounts().expect("accounts"), expected);
}

#[test]
fn second_open_of_the_same_directory_is_refused_as_locked() {
    let dir = TempDir::new("locked");
    let _first = SqliteStore::open(&dir.0, 0).expect("open");
    let err = SqliteStore::open(&dir.0, 0).expect_err("second open");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("in use by another process"), "{err}");
}

#[test]
fn garbage_file_is_reported_as_corrupt_with_its_name_and_a_remedy() {
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let file = dir.0.join("registrar.db");
    std::fs::write(&file, vec![0x5a; 8192]).expect("write");
    let err = SqliteStore::open(&dir.0, 0).expect_err("garbage");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&file.display().to_string()), "{message}");
    assert!(message.contains("move the file aside"), "{message}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = TempDir::new("newer");
    drop(SqliteStore::open(&dir.0, 0).expect("open"));
    let file = dir.0.join("registrar.db");
    let conn = Connection::open(&file).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("set version");
    drop(conn);
    match SqliteStore::open(&dir.0, 0) {
        Err(StoreError::NewerSchema { found, supported, .. }) => {
            assert_eq!((found, supported), (99, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn row_with_an_impossible_value_is_reported_as_corrupt() {
    let dir = TempDir::new("bad-row");
    {
        let mut store = SqliteStore::open(&dir.0, 0).expect("open");
        store.upsert(binding("sip:a@x", "sip:a@1", 1000, 100)).expect("upsert");
    }
    let conn = Connection::open(dir.0.join("registrar.db")).expect("raw open");
    conn.execute("UPDATE binding_log SET source = 'nowhere'", []).expect("update");
    drop(conn);
    let err = SqliteStore::open(&dir.0, 0).expect_err("bad row");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(message.contains("source address nowhere"), "{message}");
}

#[test]
fn stores_can_be_moved_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<SqliteStore>();
    assert_send::<MemoryStore>();
}
