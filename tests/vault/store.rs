//! The sled backend's contract: atomic checked batches, ordered scans, durable reopen, and a
//! purge that leaves no deleted bytes in the data directory.

use std::fs;

use tresor_core::store::{Batch, SledStore, Store, StoreError};

#[test]
fn commit_is_atomic_and_checks_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.put("a", b"1").unwrap();
    let conflict = store.commit(
        Batch::new()
            .expect("a", Some(b"0".to_vec()))
            .put("a", b"2".to_vec())
            .put("b", b"2".to_vec()),
    );
    assert!(matches!(conflict, Err(StoreError::Conflict { key }) if key == "a"));
    assert_eq!(store.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get("b").unwrap(), None);
    store
        .commit(
            Batch::new()
                .expect("a", Some(b"1".to_vec()))
                .expect("c", None)
                .put("c", b"3".to_vec())
                .delete("a"),
        )
        .unwrap();
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(store.get("c").unwrap().as_deref(), Some(&b"3"[..]));
}

#[test]
fn scan_prefix_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    for key in ["k/b", "k/a", "kx", "j"] {
        store.put(key, key.as_bytes()).unwrap();
    }
    let keys: Vec<String> = store
        .scan_prefix("k/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["k/a", "k/b"]);
}

#[test]
fn purge_removes_deleted_bytes_from_disk_and_keeps_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let doomed = b"DOOMED-VALUE-0123456789-ABCDEFGHIJ".repeat(4);
    store.put("keep", b"live value").unwrap();
    store.put("doomed", &doomed).unwrap();
    store.delete("doomed").unwrap();
    store.purge_stale().unwrap();
    assert_eq!(
        store.get("keep").unwrap().as_deref(),
        Some(&b"live value"[..])
    );
    assert!(!crate::common::dir_contains(dir.path(), &doomed));
    drop(store);
    let reopened = crate::common::open_store(dir.path());
    assert_eq!(
        reopened.get("keep").unwrap().as_deref(),
        Some(&b"live value"[..])
    );
}

#[test]
fn leftover_generation_from_interrupted_purge_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.put("k", b"v").unwrap();
    }
    fs::create_dir_all(dir.path().join("gen-000002")).unwrap();
    fs::write(dir.path().join("gen-000002/junk"), b"half-copied").unwrap();
    let store = crate::common::open_store(dir.path());
    assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(!dir.path().join("gen-000002").exists());
}
