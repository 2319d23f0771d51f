//! The behaviour every [`LocationStore`] must show, run against each implementation.

use super::*;

/// A binding of `uri` under `aor` with preference `q` (×1000) expiring at `expires_at`.
pub(crate) fn binding(aor: &str, uri: &str, q: u16, expires_at: u64) -> Binding {
    Binding {
        aor: aor.to_owned(),
        contact: format!("<{uri}>;expires=3600"),
        uri: uri.to_owned(),
        q,
        expires_at,
        call_id: "call-1".to_owned(),
        cseq: 1,
        source: SocketAddr::from(([192, 0, 2, 10], 5060)),
        transport: Transport::Udp,
        path: Vec::new(),
        instance: None,
        reg_id: None,
        user_agent: None,
    }
}

fn uris(bindings: &[Binding]) -> Vec<&str> {
    bindings.iter().map(|b| b.uri.as_str()).collect()
}

/// Exercises `store`, which must start empty, through the whole [`LocationStore`] contract.
pub(crate) fn location_store_contract(store: &mut dyn LocationStore) {
    const A: &str = "sip:1001@example.com";
    const B: &str = "sip:1002@example.com";
    assert!(store.is_empty());

    // Lookups come back highest q first.
    store.upsert(binding(A, "sip:1001@192.0.2.1", 500, 100)).expect("upsert");
    store.upsert(binding(A, "sip:1001@192.0.2.2", 1000, 200)).expect("upsert");
    store.upsert(binding(A, "sip:1001@192.0.2.3", 0, 300)).expect("upsert");
    store.upsert(binding(B, "sip:1002@192.0.2.9", 1000, 300)).expect("upsert");
    assert_eq!(store.len(), 4);
    assert_eq!(uris(&store.lookup(A, 50)), ["sip:1001@192.0.2.2", "sip:1001@192.0.2.1", "sip:1001@192.0.2.3"]);
    assert_eq!(uris(&store.lookup(B, 50)), ["sip:1002@192.0.2.9"]);
    assert!(store.lookup("sip:nobody@example.com", 50).is_empty());

    // Upsert replaces the binding with the same AOR and URI.
    let mut refreshed = binding(A, "sip:1001@192.0.2.1", 1000, 150);
    refreshed.cseq = 2;
    store.upsert(refreshed.clone()).expect("upsert");
    assert_eq!(store.len(), 4);
    assert_eq!(store.get(A, "sip:1001@192.0.2.1"), Some(refreshed));
    assert_eq!(store.get(B, "sip:1001@192.0.2.1"), None, "URIs are keyed per AOR");
    let refreshed = store.lookup(A, 50);
    assert_eq!(uris(&refreshed).last(), Some(&"sip:1001@192.0.2.3"), "q=0 comes last");

    // A binding is gone from lookups at its expiry second, but held until purged.
    assert_eq!(store.lookup(A, 149).len(), 3);
    assert_eq!(uris(&store.lookup(A, 150)), ["sip:1001@192.0.2.2", "sip:1001@192.0.2.3"]);
    assert!(store.get(A, "sip:1001@192.0.2.1").is_some());
    assert_eq!(store.len(), 4);
    assert_eq!(store.purge_expired(150).expect("purge"), 1);
    assert_eq!(store.len(), 3);
    assert_eq!(store.get(A, "sip:1001@192.0.2.1"), None);
    assert_eq!(store.purge_expired(150).expect("purge"), 0);

    // Removal of one contact, then of a whole AOR.
    assert!(store.remove(A, "sip:1001@192.0.2.2").expect("remove"));
    assert!(!store.remove(A, "sip:1001@192.0.2.2").expect("remove again"));
    assert!(!store.remove("sip:nobody@example.com", "sip:x").expect("remove unknown"));
    assert_eq!(store.len(), 2);
    assert_eq!(store.remove_aor(A).expect("remove_aor"), 1);
    assert_eq!(store.remove_aor(A).expect("remove_aor again"), 0);
    assert!(store.lookup(A, 0).is_empty());
    assert_eq!(store.len(), 1);
    assert_eq!(uris(&store.lookup(B, 299)), ["sip:1002@192.0.2.9"]);

    assert_eq!(store.purge_expired(1000).expect("purge"), 1);
    assert!(store.is_empty());
}
