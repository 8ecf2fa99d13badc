//! The ledger (issue 11, finding 4; docs/custody.md, "Rollback"): a record put back — a deleted
//! key, a trimmed version, a shredded tenant, an older ledger — is refused; a whole store put
//! back is shown at unseal by its generation.

use tresor_core::keys::KeyConfigUpdate;
use tresor_core::{Error, KeySpec, ProtectionLevel, Store};

use crate::common::TestVault;

fn rolled_back<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, String) {
    match result {
        Err(Error::Rollback { path, reason }) => (path, reason),
        other => panic!("expected a rollback, got {other:?}"),
    }
}

/// A vault with tenant `t` (level 2) and key `t/k`, deletable.
fn vault() -> TestVault {
    let v = TestVault::new();
    v.unseal();
    v.tenant("t", ProtectionLevel::Two);
    v.key("t", "k", KeySpec::default());
    v.vault
        .configure_key(
            "t",
            "k",
            &KeyConfigUpdate {
                deletion_allowed: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    v
}

#[test]
fn a_deleted_key_put_back_is_refused() {
    let v = vault();
    let old = v.raw("keys/t/k");
    v.vault.delete_key("t", "k").unwrap();
    v.store.put("keys/t/k", &old).unwrap();
    v.reload();
    let (path, reason) = rolled_back(v.vault.key_info("t", "k"));
    assert_eq!(path, "keys/t/k");
    assert!(reason.contains("deleted"), "{reason}");
    // Encrypting to it does not quietly create a fresh key over it either.
    rolled_back(v.vault.encrypt(
        "t",
        "k",
        &tresor_core::EncryptRequest {
            plaintext: b"x",
            ..Default::default()
        },
    ));
}

#[test]
fn a_trimmed_version_put_back_is_refused_and_what_stands_is_unharmed() {
    let v = vault();
    v.vault.rotate_key("t", "k").unwrap();
    let first = v.encrypt("t", "k", b"under version 2");
    let before_trim = v.raw("keys/t/k");
    v.vault
        .configure_key(
            "t",
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(2),
                min_encryption_version: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    v.vault.trim_key("t", "k", 2).unwrap();
    let trimmed = v.raw("keys/t/k");
    v.store.put("keys/t/k", &before_trim).unwrap();
    v.reload();
    let (path, reason) = rolled_back(v.decrypt("t", "k", &first));
    assert_eq!(path, "keys/t/k");
    assert!(reason.contains("older copy"), "{reason}");
    // The record the vault wrote, back in place, serves again.
    v.store.put("keys/t/k", &trimmed).unwrap();
    v.reload();
    assert_eq!(v.decrypt("t", "k", &first).unwrap(), b"under version 2");
}

#[test]
fn a_shredded_tenant_put_back_is_refused() {
    let v = vault();
    let tenant = v.raw("tenants/t");
    let key = v.raw("keys/t/k");
    v.vault.shred_tenant("t").unwrap();
    v.store.put("tenants/t", &tenant).unwrap();
    v.store.put("keys/t/k", &key).unwrap();
    v.reload();
    let (path, _) = rolled_back(v.vault.key_info("t", "k"));
    assert_eq!(path, "tenants/t");
}

#[test]
fn a_record_removed_behind_the_vaults_back_is_named() {
    let v = vault();
    v.store.delete("keys/t/k").unwrap();
    v.reload();
    let (path, reason) = rolled_back(v.vault.key_info("t", "k"));
    assert_eq!(path, "keys/t/k");
    assert!(reason.contains("missing"), "{reason}");
}

#[test]
fn an_older_ledger_put_back_with_its_records_is_refused_while_the_vault_runs() {
    let v = vault();
    let snapshot: Vec<(String, Vec<u8>)> = v.store.scan_prefix("").unwrap();
    v.vault.rotate_key("t", "k").unwrap();
    // Everything the ledger covers, put back as it was: consistent with itself, but older than
    // the ledger this process has seen.
    for (path, raw) in &snapshot {
        v.store.put(path, raw).unwrap();
    }
    v.vault.delete_key("t", "k").unwrap_err();
    let (path, reason) = rolled_back(v.vault.rotate_key("t", "k"));
    assert!(path.starts_with("core/ledger"), "{path}");
    assert!(reason.contains("went back"), "{reason}");
}

#[test]
fn a_ledger_removed_from_the_store_refuses_the_unseal() {
    let v = vault();
    v.vault.seal();
    v.store.delete("core/ledger").unwrap();
    let share = v.share(0);
    let (path, reason) = rolled_back(v.vault.unseal(vec![share]));
    assert_eq!(path, "core/ledger");
    assert!(reason.contains("missing"), "{reason}");
    assert!(v.vault.is_sealed());
}

#[test]
fn a_whole_store_put_back_shows_an_older_generation_at_unseal() {
    let v = vault();
    let snapshot: Vec<(String, Vec<u8>)> = v.store.scan_prefix("").unwrap();
    v.vault.seal();
    let unsealed = v.vault.unseal(vec![v.share(0)]).unwrap();
    let then = unsealed.store.expect("an unsealed vault shows its store");
    v.vault.rotate_key("t", "k").unwrap();
    v.vault.rotate_key("t", "k").unwrap();
    v.vault.seal();
    let now = v.vault.unseal(vec![v.share(0)]).unwrap().store.unwrap();
    assert_eq!(now.generation, then.generation + 2);
    // The whole store, as it was: every record, leaf and root from one moment.
    v.vault.seal();
    for (path, _) in v.store.scan_prefix("").unwrap() {
        v.store.delete(&path).unwrap();
    }
    for (path, raw) in &snapshot {
        v.store.put(path, raw).unwrap();
    }
    let restored = v.vault.unseal(vec![v.share(0)]).unwrap().store.unwrap();
    assert_eq!(restored, then, "the restored store says how old it is");
    assert_eq!(v.vault.key_info("t", "k").unwrap().latest_version, 1);
}
