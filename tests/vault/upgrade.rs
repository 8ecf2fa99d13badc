//! Stored formats move on without stranding data: a data directory and custodian files written
//! by release 0.1 (the first vertical slice, before the trust-root changes) open with this
//! release, are migrated, and every ciphertext they held still decrypts.
//!
//! `tests/fixtures/store-v1/` was written once by `make_store_v1_fixture` below, run on release
//! 0.1 (commit cc44ffb) with `TRESOR_WRITE_FIXTURE=1 cargo test --test vault -- --ignored
//! make_store_v1_fixture`. It is evidence of what that release wrote: never regenerate it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tresor_core::{
    DecryptRequest, EncryptRequest, HmacAlgorithm, KeySpec, ProtectionLevel, SledStore, TenantSpec,
    Vault, VaultOptions,
};
use tresor_crypto::identity::CustodianIdentity;
use tresor_crypto::passphrase::Argon2Params;
use tresor_wire::custody::InitRequest;

/// The passphrase of both fixture identities.
const PASSPHRASE: &[u8] = b"release 0.1 fixture";
const CHEAP: Argon2Params = Argon2Params {
    memory_kib: 19 * 1024,
    iterations: 1,
    parallelism: 1,
};

/// What the fixture holds, and what each ciphertext must decrypt to.
#[derive(Serialize, Deserialize)]
struct Expected {
    environment: String,
    vault_id: String,
    /// (tenant, key, context base64 or "", ciphertext, plaintext)
    ciphertexts: Vec<(String, String, String, String, String)>,
    /// (tenant, key, input, token)
    hmacs: Vec<(String, String, String, String)>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

/// Writes the fixture. Only meaningful on release 0.1; kept to document how it was made.
#[test]
#[ignore = "writes tests/fixtures/store-v1; run only on release 0.1"]
fn make_store_v1_fixture() {
    if std::env::var_os("TRESOR_WRITE_FIXTURE").is_none() {
        return;
    }
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let alice = CustodianIdentity::generate("alice").unwrap();
    let carol = CustodianIdentity::generate("carol").unwrap();
    for id in [&alice, &carol] {
        std::fs::write(
            dir.join(format!("{}.key", id.name())),
            id.to_encrypted_json_with(PASSPHRASE, CHEAP).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{}.pub", id.name())),
            id.public().to_json(),
        )
        .unwrap();
    }
    let store = Arc::new(SledStore::open(dir.join("data")).unwrap());
    let vault = Vault::open(store, VaultOptions::new("production")).unwrap();
    vault
        .init(&InitRequest {
            custodians: vec![alice.public().clone()],
            threshold: 1,
            four_eyes: None,
        })
        .unwrap();
    let share = vault.sealed_share("alice").unwrap().open(&alice).unwrap();
    vault.unseal(vec![share]).unwrap();
    vault
        .create_tenant("payments", &TenantSpec::default())
        .unwrap();
    vault
        .create_tenant(
            "ledger",
            &TenantSpec {
                level: ProtectionLevel::Three,
                custodians: vec![carol.public().clone()],
                ..TenantSpec::default()
            },
        )
        .unwrap();
    let vault_id = vault.vault_id().unwrap();
    let custody = vault.tenant_custody_box("ledger", "carol").unwrap();
    let key = tresor_wire::custody::TenantCustodyKey::open(&carol, &vault_id, "ledger", &custody)
        .unwrap();
    vault.unlock_tenant("ledger", &key).unwrap();
    vault
        .create_key("payments", "card", KeySpec::default())
        .unwrap();
    vault
        .create_key(
            "payments",
            "iban",
            KeySpec {
                derived: true,
                convergent_encryption: true,
                ..KeySpec::default()
            },
        )
        .unwrap();
    vault
        .create_key("ledger", "entries", KeySpec::default())
        .unwrap();
    let mut expected = Expected {
        environment: "production".into(),
        vault_id: vault.vault_id().unwrap(),
        ciphertexts: Vec::new(),
        hmacs: Vec::new(),
    };
    let mut encrypt = |tenant: &str, key: &str, context: &[u8], plaintext: &str| {
        let sealed = vault
            .encrypt(
                tenant,
                key,
                &EncryptRequest {
                    plaintext: plaintext.as_bytes(),
                    context: (!context.is_empty()).then_some(context),
                    ..Default::default()
                },
            )
            .unwrap();
        use base64::Engine;
        expected.ciphertexts.push((
            tenant.into(),
            key.into(),
            base64::engine::general_purpose::STANDARD.encode(context),
            sealed.text,
            plaintext.into(),
        ));
    };
    encrypt("payments", "card", b"", "4111 1111 1111 1111");
    vault.rotate_key("payments", "card").unwrap();
    encrypt("payments", "card", b"", "5500 0000 0000 0004");
    encrypt("payments", "iban", b"customer-7", "NL91ABNA0417164300");
    encrypt("ledger", "entries", b"", "2026-11-01 +1200.00 EUR");
    let token = vault
        .hmac(
            "payments",
            "card",
            b"jan@example.com",
            HmacAlgorithm::Sha2_256,
            None,
        )
        .unwrap();
    expected.hmacs.push((
        "payments".into(),
        "card".into(),
        "jan@example.com".into(),
        token.text,
    ));
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap(),
    )
    .unwrap();
    vault.seal();
}

/// A copy of the fixture in a temporary directory (the fixture itself is never written).
fn copy_fixture() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture_dir(), dir.path());
    dir
}

#[test]
fn a_release_0_1_data_directory_and_custodian_files_open_and_decrypt() {
    let dir = copy_fixture();
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("expected.json")).unwrap())
            .unwrap();
    let open_identity = |name: &str| {
        CustodianIdentity::from_encrypted_json(
            &std::fs::read_to_string(dir.path().join(format!("{name}.key"))).unwrap(),
            PASSPHRASE,
        )
        .unwrap()
    };
    let alice = open_identity("alice");
    let carol = open_identity("carol");
    let store = Arc::new(SledStore::open(dir.path().join("data")).unwrap());
    let vault = Vault::open(store, VaultOptions::new(&expected.environment)).unwrap();
    assert_eq!(vault.vault_id().unwrap(), expected.vault_id);
    let share = vault.sealed_share("alice").unwrap().open(&alice).unwrap();
    vault.unseal(vec![share]).unwrap();
    let custody = vault.tenant_custody_box("ledger", "carol").unwrap();
    let key = tresor_wire::custody::TenantCustodyKey::open(
        &carol,
        &expected.vault_id,
        "ledger",
        &custody,
    )
    .unwrap();
    vault.unlock_tenant("ledger", &key).unwrap();
    use base64::Engine;
    for (tenant, key, context, ciphertext, plaintext) in &expected.ciphertexts {
        let context = base64::engine::general_purpose::STANDARD
            .decode(context)
            .unwrap();
        let opened = vault
            .decrypt(
                tenant,
                key,
                &DecryptRequest {
                    ciphertext,
                    context: (!context.is_empty()).then_some(&context[..]),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{tenant}/{key} {ciphertext}: {e}"));
        assert_eq!(opened.as_slice(), plaintext.as_bytes());
    }
    for (tenant, key, input, token) in &expected.hmacs {
        assert!(
            vault
                .verify_hmac(
                    tenant,
                    key,
                    input.as_bytes(),
                    token,
                    HmacAlgorithm::Sha2_256
                )
                .unwrap()
        );
    }
    // And it keeps working as a vault: a new version, a new ciphertext.
    vault.rotate_key("payments", "card").unwrap();
    let fresh = vault
        .encrypt(
            "payments",
            "card",
            &EncryptRequest {
                plaintext: b"new",
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(fresh.version, 3);
}

#[test]
fn data_moved_to_another_environment_by_editing_the_seal_configuration_does_not_unseal() {
    let dir = tempfile::tempdir().unwrap();
    let alice = CustodianIdentity::generate("alice").unwrap();
    {
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let vault = Vault::open(store, VaultOptions::new("test")).unwrap();
        vault
            .init(&InitRequest {
                custodians: vec![alice.public().clone()],
                threshold: 1,
                four_eyes: None,
            })
            .unwrap();
    }
    // Someone who can write the store relabels test data as production.
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let raw = tresor_core::Store::get(store.as_ref(), "core/seal")
        .unwrap()
        .unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    config["environment"] = "production".into();
    tresor_core::Store::put(
        store.as_ref(),
        "core/seal",
        &serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let vault = Vault::open(store, VaultOptions::new("production")).unwrap();
    let share = vault.sealed_share("alice").unwrap().open(&alice).unwrap();
    let error = vault.unseal(vec![share]).unwrap_err();
    assert!(
        matches!(error, tresor_core::Error::SealConfigTampered),
        "{error}"
    );
    assert!(vault.is_sealed());
}

#[test]
fn a_release_0_1_store_is_marked_migrated_and_a_newer_store_is_refused() {
    let dir = copy_fixture();
    let alice = CustodianIdentity::from_encrypted_json(
        &std::fs::read_to_string(dir.path().join("alice.key")).unwrap(),
        PASSPHRASE,
    )
    .unwrap();
    let store = Arc::new(SledStore::open(dir.path().join("data")).unwrap());
    assert!(
        tresor_core::Store::get(store.as_ref(), "core/format")
            .unwrap()
            .is_none(),
        "release 0.1 wrote no format"
    );
    let vault = Vault::open(store.clone(), VaultOptions::new("production")).unwrap();
    let share = vault.sealed_share("alice").unwrap().open(&alice).unwrap();
    vault.unseal(vec![share]).unwrap();
    let format = tresor_core::Store::get(store.as_ref(), "core/format")
        .unwrap()
        .unwrap();
    assert_eq!(format, br#"{"format":3}"#);
    // The ledger now vouches for the records as they stood.
    assert!(
        tresor_core::Store::get(store.as_ref(), "core/ledger")
            .unwrap()
            .is_some()
    );
    // A root rotation after the migration keeps every record readable.
    vault.rotate_root(None).unwrap();
    drop(vault);
    // A store a later release wrote is refused before anything is read or written.
    tresor_core::Store::put(store.as_ref(), "core/format", br#"{"format":99}"#).unwrap();
    let error = Vault::open(store, VaultOptions::new("production"))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("newer Tresor release"), "{error}");
    assert!(error.contains("upgrade tresor"), "{error}");
}
