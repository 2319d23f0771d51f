//! [`MemoryStore`]: bindings and accounts held in memory only. Also the in-memory index behind
//! [`SqliteStore`](super::SqliteStore).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use super::{AccountStore, Binding, LocationStore, StoreError};

/// A location and account store that lives in memory and is lost when dropped.
///
/// Bindings are grouped by AOR; within an AOR they are few, so a contact is found by a linear
/// scan. Its operations never fail.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    by_aor: HashMap<String, Vec<Binding>>,
    len: usize,
    /// No binding expires before this (unix seconds), so a purge before it has nothing to do.
    earliest_expiry: u64,
    accounts: BTreeMap<String, String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// The bindings of `aor` as stored, expired or not.
    pub(super) fn bindings(&self, aor: &str) -> &[Binding] {
        self.by_aor.get(aor).map_or(&[], Vec::as_slice)
    }

    /// Every binding held, expired or not, grouped by AOR.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.by_aor.values().flatten()
    }

    /// Every AOR that has a binding.
    pub(super) fn aors(&self) -> Vec<String> {
        self.by_aor.keys().cloned().collect()
    }

    /// The earliest expiry time of any binding, or `u64::MAX` when there is none.
    fn earliest_expiry(&self) -> u64 {
        if self.len == 0 { u64::MAX } else { self.earliest_expiry }
    }
}

impl LocationStore for MemoryStore {
    fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        let mut found: Vec<Binding> = self.bindings(aor).iter().filter(|b| !b.is_expired(now)).cloned().collect();
        found.sort_by_key(|b| Reverse(b.q));
        found
    }

    fn get(&self, aor: &str, uri: &str) -> Option<Binding> {
        self.bindings(aor).iter().find(|b| b.uri == uri).cloned()
    }

    fn upsert(&mut self, binding: Binding) -> Result<(), StoreError> {
        if self.len == 0 || binding.expires_at < self.earliest_expiry {
            self.earliest_expiry = binding.expires_at;
        }
        let list = match self.by_aor.get_mut(&binding.aor) {
            Some(list) => list,
            None => self.by_aor.entry(binding.aor.clone()).or_default(),
        };
        match list.iter_mut().find(|b| b.uri == binding.uri) {
            Some(existing) => *existing = binding,
            None => {
                list.push(binding);
                self.len += 1;
            }
        }
        Ok(())
    }

    fn remove(&mut self, aor: &str, uri: &str) -> Result<bool, StoreError> {
        let Some(list) = self.by_aor.get_mut(aor) else {
            return Ok(false);
        };
        let Some(at) = list.iter().position(|b| b.uri == uri) else {
            return Ok(false);
        };
        list.remove(at);
        if list.is_empty() {
            self.by_aor.remove(aor);
        }
        self.len -= 1;
        Ok(true)
    }

    fn remove_aor(&mut self, aor: &str) -> Result<usize, StoreError> {
        let removed = self.by_aor.remove(aor).map_or(0, |list| list.len());
        self.len -= removed;
        Ok(removed)
    }

    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        if self.earliest_expiry() > now {
            return Ok(0);
        }
        let before = self.len;
        let mut earliest = u64::MAX;
        self.by_aor.retain(|_, list| {
            list.retain(|b| !b.is_expired(now));
            earliest = list.iter().fold(earliest, |e, b| e.min(b.expires_at));
            !list.is_empty()
        });
        self.len = self.by_aor.values().map(Vec::len).sum();
        self.earliest_expiry = earliest;
        Ok(before - self.len)
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl AccountStore for MemoryStore {
    fn accounts(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.accounts.iter().map(|(e, p)| (e.clone(), p.clone())).collect())
    }

    fn put_account(&mut self, extension: &str, password: &str) -> Result<(), StoreError> {
        self.accounts.insert(extension.to_owned(), password.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::tests::{binding, location_store_contract};

    #[test]
    fn memory_store_keeps_the_location_store_contract() {
        location_store_contract(&mut MemoryStore::new());
    }

    #[test]
    fn purge_before_the_earliest_expiry_removes_nothing_and_after_it_removes_exactly_that() {
        let mut store = MemoryStore::new();
        store.upsert(binding("sip:a@x", "sip:a@1", 1000, 200)).expect("upsert");
        store.upsert(binding("sip:a@x", "sip:a@2", 1000, 100)).expect("upsert");
        assert_eq!(store.earliest_expiry(), 100);
        assert_eq!(store.purge_expired(99).expect("purge"), 0);
        assert_eq!(store.purge_expired(100).expect("purge"), 1);
        assert_eq!(store.earliest_expiry(), 200);
        assert_eq!(store.purge_expired(250).expect("purge"), 1);
        assert_eq!(store.earliest_expiry(), u64::MAX);
        assert!(store.by_aor.is_empty(), "empty AORs are dropped");
    }

    #[test]
    fn accounts_are_ordered_and_replaced() {
        let mut store = MemoryStore::new();
        store.put_account("1002", "b").expect("put");
        store.put_account("1001", "a").expect("put");
        store.put_account("1002", "c").expect("put");
        let expected = vec![("1001".into(), "a".into()), ("1002".into(), "c".into())];
        assert_eq!(store.accounts().expect("accounts"), expected);
    }
}
