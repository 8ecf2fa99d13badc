//! A key's and a tenant's life: rotation, tenant KEK rotation, min versions and trim (Vault
//! transit rules), deletion and shredding (nothing left in the data directory), restart at every
//! protection level, level-3 custody, and sealing/unsealing with custodians' shares.

use std::sync::Arc;

use crate::common::{TestVault, ciphertext_error, find_any_chunk, invalid_field, split};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_core::CiphertextError;
use tresor_core::DecryptRequest;
use tresor_core::EncryptRequest;
use tresor_core::Error;
use tresor_core::ExportKind;
use tresor_core::HmacAlgorithm;
use tresor_core::KeySpec;
use tresor_core::ManualClock;
use tresor_core::ProtectionLevel;
use tresor_core::SledStore;
use tresor_core::Store;
use tresor_core::TenantSpec;
use tresor_core::UnsealError;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_crypto::identity::IdentityError;
use tresor_wire::custody::InitRequest;
use tresor_wire::custody::TenantCustodyKey;
use tresor_wire::keys::KeyConfigUpdate;

const T: &str = "payments";

fn config(
    v: &TestVault,
    key: &str,
    update: KeyConfigUpdate,
) -> Result<tresor_core::KeyInfo, Error> {
    v.vault.configure_key(T, key, &update)
}

fn min_versions(decryption: Option<u32>, encryption: Option<u32>) -> KeyConfigUpdate {
    KeyConfigUpdate {
        min_decryption_version: decryption,
        min_encryption_version: encryption,
        ..Default::default()
    }
}

/// Asserts that no 32-byte piece of any of `records` is left in any file under `dir`.
#[track_caller]
fn assert_gone(dir: &std::path::Path, records: &[Vec<u8>], what: &str) {
    for (i, record) in records.iter().enumerate() {
        if let Some((file, at)) = find_any_chunk(dir, record) {
            panic!(
                "{what}: bytes {at}..{} of stored record #{i} are still in {}",
                at + 32,
                file.display()
            );
        }
    }
}

/// Asserts that the live record is found by the scan (so that `assert_gone` can fail).
#[track_caller]
fn assert_on_disk(dir: &std::path::Path, record: &[u8]) {
    assert!(
        find_any_chunk(dir, record).is_some(),
        "control: a live record must be visible to the scan"
    );
}

#[test]
fn rotation_keeps_every_old_version_decryptable() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", KeySpec::default());
    let mut issued = vec![(v.encrypt(T, "k", b"v1"), b"v1".to_vec())];
    for n in 2..=6u32 {
        assert_eq!(v.vault.rotate_key(T, "k").unwrap().latest_version, n);
        let plaintext = format!("v{n}").into_bytes();
        let ciphertext = v.encrypt(T, "k", &plaintext);
        assert!(ciphertext.starts_with(&format!("tresor:v{n}:")));
        issued.push((ciphertext, plaintext));
        for (ciphertext, plaintext) in &issued {
            assert_eq!(&v.decrypt(T, "k", ciphertext).unwrap(), plaintext);
        }
    }
    // Rewrap of each brings it to the latest version with the same plaintext.
    for (ciphertext, plaintext) in &issued {
        let rewrapped = v
            .vault
            .rewrap(
                T,
                "k",
                &DecryptRequest {
                    ciphertext,
                    ..Default::default()
                },
                None,
            )
            .unwrap();
        assert!(rewrapped.text.starts_with("tresor:v6:"));
        assert_eq!(&v.decrypt(T, "k", &rewrapped.text).unwrap(), plaintext);
    }
    let v = v.restart();
    for (ciphertext, plaintext) in &issued {
        assert_eq!(&v.decrypt(T, "k", ciphertext).unwrap(), plaintext);
    }
}

struct Issued {
    key: &'static str,
    ciphertext: String,
    context: Option<&'static [u8]>,
    plaintext: Vec<u8>,
}

fn issue_some(v: &TestVault, tenant: &str) -> Vec<Issued> {
    let mut issued = Vec::new();
    for (key, context) in [("plain", None), ("derived", Some(&b"ctx"[..]))] {
        v.vault
            .create_key(
                tenant,
                key,
                KeySpec {
                    derived: context.is_some(),
                    ..Default::default()
                },
            )
            .unwrap();
        for round in 0..3 {
            let plaintext = format!("{tenant}/{key}/{round}").into_bytes();
            let ciphertext = v
                .vault
                .encrypt(
                    tenant,
                    key,
                    &EncryptRequest {
                        plaintext: &plaintext,
                        context,
                        ..Default::default()
                    },
                )
                .unwrap();
            issued.push(Issued {
                key,
                ciphertext: ciphertext.text,
                context,
                plaintext,
            });
            v.vault.rotate_key(tenant, key).unwrap();
        }
    }
    issued
}

#[track_caller]
fn assert_all_decrypt(v: &TestVault, tenant: &str, issued: &[Issued]) {
    for item in issued {
        let plaintext = v
            .vault
            .decrypt(
                tenant,
                item.key,
                &DecryptRequest {
                    ciphertext: &item.ciphertext,
                    context: item.context,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{tenant}/{}: {e}", item.key));
        assert_eq!(plaintext.as_slice(), item.plaintext.as_slice());
    }
}

#[test]
fn tenant_kek_rotation_rewraps_the_keys_and_changes_no_ciphertext() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    let issued = issue_some(&v, T);
    let records_before = [v.raw("keys/payments/plain"), v.raw("keys/payments/derived")];
    let tenant_before = v.raw("tenants/payments");
    for expected in 2..=3 {
        let info = v.vault.rotate_tenant_kek(T).unwrap();
        assert_eq!(info.kek_version, expected);
        assert_eq!(info.keys, 2);
        assert_all_decrypt(&v, T, &issued);
    }
    assert_ne!(v.raw("tenants/payments"), tenant_before);
    assert_ne!(
        v.raw("keys/payments/plain"),
        records_before[0],
        "re-wrapped"
    );
    assert_ne!(v.raw("keys/payments/derived"), records_before[1]);
    // Keys created and rotated after the KEK rotation work alongside the re-wrapped ones.
    v.vault.rotate_key(T, "plain").unwrap();
    let fresh = v.encrypt(T, "plain", b"fresh");
    v.reload();
    assert_all_decrypt(&v, T, &issued);
    let v = v.restart();
    assert_eq!(v.vault.tenant_info(T).unwrap().kek_version, 3);
    assert_all_decrypt(&v, T, &issued);
    assert_eq!(v.decrypt(T, "plain", &fresh).unwrap(), b"fresh");
    // Level 1 has no KEK to rotate.
    v.tenant("flat", ProtectionLevel::One);
    assert_eq!(invalid_field(v.vault.rotate_tenant_kek("flat")), "tenant");
    assert!(matches!(
        v.vault.rotate_tenant_kek("missing"),
        Err(Error::TenantNotFound(_))
    ));
}

#[test]
fn level_3_kek_rotation_survives_restart_and_needs_the_same_custody_key() {
    let v = TestVault::new();
    v.tenant("vault3", ProtectionLevel::Three);
    let issued = issue_some(&v, "vault3");
    assert_eq!(v.vault.rotate_tenant_kek("vault3").unwrap().kek_version, 2);
    assert_all_decrypt(&v, "vault3", &issued);
    let v = v.restart();
    assert!(matches!(
        v.vault.rotate_tenant_kek("vault3"),
        Err(Error::TenantLocked(t)) if t == "vault3"
    ));
    v.unlock("vault3", 0);
    assert_all_decrypt(&v, "vault3", &issued);
    assert_eq!(v.vault.rotate_tenant_kek("vault3").unwrap().kek_version, 3);
    let v = v.restart();
    v.unlock("vault3", 0);
    assert_all_decrypt(&v, "vault3", &issued);
}

#[test]
fn min_versions_follow_vault_transit_rules() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", KeySpec::default());
    v.vault.rotate_key(T, "k").unwrap();
    v.vault.rotate_key(T, "k").unwrap();
    // Beyond the latest version.
    assert_eq!(
        invalid_field(config(&v, "k", min_versions(Some(4), None))),
        "min_decryption_version"
    );
    assert_eq!(
        invalid_field(config(&v, "k", min_versions(None, Some(4)))),
        "min_encryption_version"
    );
    // min_encryption_version (when set) may not be below min_decryption_version; equal is fine.
    assert_eq!(
        invalid_field(config(&v, "k", min_versions(Some(3), Some(2)))),
        "min_encryption_version"
    );
    let info = config(&v, "k", min_versions(Some(2), Some(2))).unwrap();
    assert_eq!(
        (
            info.config.min_decryption_version,
            info.config.min_encryption_version
        ),
        (2, 2)
    );
    assert_eq!(
        invalid_field(config(&v, "k", min_versions(Some(3), None))),
        "min_encryption_version",
        "raising min_decryption above a set min_encryption"
    );
    // 0 for min_decryption_version means 1, as in Vault.
    let info = config(&v, "k", min_versions(Some(0), Some(0))).unwrap();
    assert_eq!(
        (
            info.config.min_decryption_version,
            info.config.min_encryption_version
        ),
        (1, 0)
    );
    // min_encryption_version restricts encryption (and hmac), not decryption.
    let v1 = v
        .vault
        .encrypt(
            T,
            "k",
            &EncryptRequest {
                plaintext: b"old",
                key_version: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    config(&v, "k", min_versions(None, Some(3))).unwrap();
    for version in [1, 2] {
        let refused = v.vault.encrypt(
            T,
            "k",
            &EncryptRequest {
                plaintext: b"x",
                key_version: Some(version),
                ..Default::default()
            },
        );
        assert_eq!(invalid_field(refused), "key_version");
        assert_eq!(
            invalid_field(
                v.vault
                    .hmac(T, "k", b"x", HmacAlgorithm::Sha2_256, Some(version))
            ),
            "key_version"
        );
    }
    assert!(v.encrypt(T, "k", b"x").starts_with("tresor:v3:"));
    assert_eq!(v.decrypt(T, "k", &v1.text).unwrap(), b"old");
    // Rewrap to a version below min_encryption_version is refused too.
    let refused = v.vault.rewrap(
        T,
        "k",
        &DecryptRequest {
            ciphertext: &v1.text,
            ..Default::default()
        },
        Some(2),
    );
    assert_eq!(invalid_field(refused), "key_version");
}

#[test]
fn trim_follows_vault_rules_and_leaves_no_trimmed_bytes_on_disk() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", KeySpec::default());
    let mut issued = Vec::new();
    let mut records = Vec::new();
    for n in 1..=4u32 {
        if n > 1 {
            v.vault.rotate_key(T, "k").unwrap();
        }
        issued.push((n, v.encrypt(T, "k", format!("v{n}").as_bytes())));
    }
    // Refused while min_encryption_version is 0, and never 0.
    assert_eq!(
        invalid_field(v.vault.trim_key(T, "k", 1)),
        "min_available_version"
    );
    config(&v, "k", min_versions(Some(2), Some(3))).unwrap();
    for bad in [0, 3, 4] {
        assert_eq!(
            invalid_field(v.vault.trim_key(T, "k", bad)),
            "min_available_version",
            "above min_decryption_version, or 0: {bad}"
        );
    }
    config(&v, "k", min_versions(Some(3), None)).unwrap();
    assert_eq!(
        invalid_field(v.vault.trim_key(T, "k", 4)),
        "min_available_version",
        "above min_encryption_version"
    );
    let before = v.raw("keys/payments/k");
    assert_on_disk(&v.data_dir(), &before);
    records.push(before);
    let info = v.vault.trim_key(T, "k", 3).unwrap();
    assert_eq!(info.config.min_available_version, 3);
    assert_eq!(info.versions.keys().copied().collect::<Vec<_>>(), [3, 4]);
    assert_gone(&v.data_dir(), &records, "after trim");
    assert_on_disk(&v.data_dir(), &v.raw("keys/payments/k"));
    // Trim only moves forward; repeating the current value is fine.
    assert_eq!(
        invalid_field(v.vault.trim_key(T, "k", 2)),
        "min_available_version"
    );
    v.vault.trim_key(T, "k", 3).unwrap();
    // Trimmed versions cannot come back, and min_encryption_version cannot return to 0.
    assert_eq!(
        invalid_field(config(&v, "k", min_versions(Some(2), None))),
        "min_decryption_version"
    );
    assert_eq!(
        invalid_field(config(&v, "k", min_versions(None, Some(0)))),
        "min_encryption_version"
    );
    let v = v.restart();
    for (n, ciphertext) in &issued {
        let result = v.decrypt(T, "k", ciphertext);
        if *n >= 3 {
            assert_eq!(result.unwrap(), format!("v{n}").as_bytes());
        } else {
            assert_eq!(
                ciphertext_error(result),
                CiphertextError::BelowMinDecryption {
                    version: *n,
                    min_decryption: 3
                }
            );
        }
    }
    assert_eq!(
        v.vault
            .key_info(T, "k")
            .unwrap()
            .versions
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [3, 4]
    );
}

#[test]
fn deleting_a_key_makes_its_ciphertexts_undecryptable_and_leaves_no_bytes() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "doomed", KeySpec::default());
    v.key(T, "kept", KeySpec::default());
    let mut records = vec![v.raw("keys/payments/doomed")];
    let old = v.encrypt(T, "doomed", b"old");
    v.vault.rotate_key(T, "doomed").unwrap();
    records.push(v.raw("keys/payments/doomed"));
    let new = v.encrypt(T, "doomed", b"new");
    let kept = v.encrypt(T, "kept", b"kept");
    assert!(matches!(
        v.vault.delete_key(T, "doomed"),
        Err(Error::NotPermitted(_))
    ));
    assert_eq!(v.decrypt(T, "doomed", &new).unwrap(), b"new");
    let info = config(
        &v,
        "doomed",
        KeyConfigUpdate {
            deletion_allowed: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(info.config.deletion_allowed);
    records.push(v.raw("keys/payments/doomed"));
    assert_on_disk(&v.data_dir(), records.last().unwrap());
    v.vault.delete_key(T, "doomed").unwrap();
    for ciphertext in [&old, &new] {
        assert!(matches!(
            v.decrypt(T, "doomed", ciphertext),
            Err(Error::KeyNotFound { tenant, key }) if tenant == T && key == "doomed"
        ));
    }
    assert_eq!(v.vault.list_keys(T).unwrap(), ["kept"]);
    assert!(matches!(
        v.vault.delete_key(T, "doomed"),
        Err(Error::KeyNotFound { .. })
    ));
    assert_gone(&v.data_dir(), &records, "after delete");
    assert_eq!(v.decrypt(T, "kept", &kept).unwrap(), b"kept");
    assert_on_disk(&v.data_dir(), &v.raw("keys/payments/kept"));
    // A new key of the same name is a new key: the old ciphertexts stay dead.
    let v = v.restart();
    v.key(T, "doomed", KeySpec::default());
    assert_eq!(
        ciphertext_error(v.decrypt(T, "doomed", &old)),
        CiphertextError::Authentication
    );
    assert_eq!(
        ciphertext_error(v.decrypt(T, "doomed", &new)),
        CiphertextError::UnknownVersion {
            version: 2,
            latest: 1
        }
    );
}

#[test]
fn shredding_a_tenant_makes_its_ciphertexts_undecryptable_and_leaves_no_bytes() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.tenant("neighbour", ProtectionLevel::Two);
    let issued = issue_some(&v, T);
    let neighbour = issue_some(&v, "neighbour");
    let mut records = vec![
        v.raw("tenants/payments"),
        v.raw("keys/payments/plain"),
        v.raw("keys/payments/derived"),
    ];
    v.vault.rotate_tenant_kek(T).unwrap();
    records.extend([
        v.raw("tenants/payments"),
        v.raw("keys/payments/plain"),
        v.raw("keys/payments/derived"),
    ]);
    for record in &records[3..] {
        assert_on_disk(&v.data_dir(), record);
    }
    v.vault.shred_tenant(T).unwrap();
    for item in &issued {
        let result = v.vault.decrypt(
            T,
            item.key,
            &DecryptRequest {
                ciphertext: &item.ciphertext,
                context: item.context,
                ..Default::default()
            },
        );
        assert!(matches!(result, Err(Error::TenantNotFound(ref t)) if t == T));
    }
    assert_eq!(v.vault.list_tenants().unwrap(), ["neighbour"]);
    assert!(matches!(
        v.vault.shred_tenant(T),
        Err(Error::TenantNotFound(_))
    ));
    assert_gone(&v.data_dir(), &records, "after shred");
    assert_all_decrypt(&v, "neighbour", &neighbour);
    assert_on_disk(&v.data_dir(), &v.raw("tenants/neighbour"));
    let v = v.restart();
    assert!(matches!(
        v.vault.tenant_info(T),
        Err(Error::TenantNotFound(_))
    ));
    assert_gone(&v.data_dir(), &records, "after restart");
    assert_all_decrypt(&v, "neighbour", &neighbour);
}

#[test]
fn a_locked_level_3_tenant_can_be_shredded() {
    let v = TestVault::new();
    v.tenant("vault3", ProtectionLevel::Three);
    let issued = issue_some(&v, "vault3");
    let records = [v.raw("tenants/vault3"), v.raw("keys/vault3/plain")];
    let v = v.restart();
    assert!(v.vault.tenant_info("vault3").unwrap().locked);
    v.vault.shred_tenant("vault3").unwrap();
    assert_gone(&v.data_dir(), &records, "after shred");
    assert!(matches!(
        v.vault.decrypt(
            "vault3",
            "plain",
            &DecryptRequest {
                ciphertext: &issued[0].ciphertext,
                ..Default::default()
            }
        ),
        Err(Error::TenantNotFound(_))
    ));
}

#[test]
fn exported_key_material_never_reaches_the_data_directory() {
    let v = TestVault::new();
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let check = |v: &TestVault, secrets: &[Vec<u8>], when: &str| {
        for secret in secrets {
            assert_gone(&v.data_dir(), std::slice::from_ref(secret), when);
            let b64 = STANDARD.encode(secret);
            assert!(
                !crate::common::dir_contains(&v.data_dir(), b64.as_bytes()),
                "{when}: base64 of exported material found"
            );
        }
    };
    for (tenant, level) in [
        ("flat", ProtectionLevel::One),
        ("kek", ProtectionLevel::Two),
    ] {
        v.tenant(tenant, level);
        v.vault
            .create_key(
                tenant,
                "k",
                KeySpec {
                    exportable: true,
                    ..Default::default()
                },
            )
            .unwrap();
        v.vault.rotate_key(tenant, "k").unwrap();
        for kind in [ExportKind::EncryptionKey, ExportKind::HmacKey] {
            for (_, key) in v.vault.export_key(tenant, "k", kind, None).unwrap() {
                secrets.push(key.expose().to_vec());
            }
        }
    }
    assert_eq!(secrets.len(), 8);
    check(&v, &secrets, "after export");
    v.vault.rotate_tenant_kek("kek").unwrap();
    for tenant in ["flat", "kek"] {
        v.encrypt(tenant, "k", b"x");
        v.vault
            .configure_key(
                tenant,
                "k",
                &KeyConfigUpdate {
                    deletion_allowed: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    check(&v, &secrets, "after KEK rotation");
    let v = v.restart();
    check(&v, &secrets, "after restart");
    for tenant in ["flat", "kek"] {
        v.vault.delete_key(tenant, "k").unwrap();
        check(&v, &secrets, "after delete");
    }
}

#[test]
fn a_restarted_vault_decrypts_everything_at_every_level() {
    let v = TestVault::new();
    let levels = [
        ("one", ProtectionLevel::One),
        ("two", ProtectionLevel::Two),
        ("three", ProtectionLevel::Three),
    ];
    let mut issued = Vec::new();
    let mut tokens = Vec::new();
    let mut datakeys = Vec::new();
    for (tenant, level) in levels {
        v.tenant(tenant, level);
        issued.push(issue_some(&v, tenant));
        tokens.push(
            v.vault
                .hmac(tenant, "plain", b"pseudonym", HmacAlgorithm::Sha2_256, None)
                .unwrap(),
        );
        let key = v
            .vault
            .datakey(tenant, "plain", 256, None, None, true)
            .unwrap();
        datakeys.push((key.ciphertext, key.plaintext.unwrap().to_vec()));
    }
    let v = v.reopen();
    assert!(matches!(
        v.decrypt("two", "plain", &issued[1][0].ciphertext),
        Err(Error::Sealed)
    ));
    v.unseal();
    for (i, (tenant, level)) in levels.iter().enumerate() {
        if *level == ProtectionLevel::Three {
            // Locked until one of its own custodians unlocks it.
            assert!(v.vault.tenant_info(tenant).unwrap().locked);
            let ciphertext = &issued[i][0].ciphertext;
            assert!(matches!(
                v.decrypt(tenant, "plain", ciphertext),
                Err(Error::TenantLocked(ref t)) if t == tenant
            ));
            assert!(matches!(
                v.vault.encrypt(tenant, "plain", &EncryptRequest::default()),
                Err(Error::TenantLocked(_))
            ));
            assert!(matches!(
                v.vault.key_info(tenant, "plain"),
                Err(Error::TenantLocked(_))
            ));
            assert!(matches!(
                v.vault.list_keys(tenant),
                Err(Error::TenantLocked(_))
            ));
            assert!(matches!(
                v.vault.rotate_key(tenant, "plain"),
                Err(Error::TenantLocked(_))
            ));
            assert!(matches!(
                v.vault.create_key(tenant, "new", KeySpec::default()),
                Err(Error::TenantLocked(_))
            ));
            v.unlock(tenant, 0);
        }
        assert!(!v.vault.tenant_info(tenant).unwrap().locked);
        assert_all_decrypt(&v, tenant, &issued[i]);
        assert!(
            v.vault
                .verify_hmac(
                    tenant,
                    "plain",
                    b"pseudonym",
                    &tokens[i].text,
                    HmacAlgorithm::Sha2_256
                )
                .unwrap()
        );
        assert_eq!(
            v.vault
                .hmac(tenant, "plain", b"pseudonym", HmacAlgorithm::Sha2_256, None)
                .unwrap(),
            tokens[i],
            "the same token after the restart"
        );
        assert_eq!(
            v.decrypt(tenant, "plain", &datakeys[i].0.text).unwrap(),
            datakeys[i].1
        );
    }
    // Sealing and unsealing in the same process locks level 3 again.
    v.reload();
    assert!(v.vault.tenant_info("three").unwrap().locked);
    assert!(matches!(
        v.decrypt("three", "plain", &issued[2][0].ciphertext),
        Err(Error::TenantLocked(_))
    ));
    // And lock_tenant locks it at once.
    v.unlock("three", 0);
    v.vault.lock_tenant("three").unwrap();
    assert!(matches!(
        v.decrypt("three", "plain", &issued[2][0].ciphertext),
        Err(Error::TenantLocked(_))
    ));
}

#[test]
fn level_3_custody_keys_open_only_for_their_custodians_and_tenant() {
    let v = TestVault::with(2, 1, "test");
    let carol = &v.custodians[0];
    let dave = &v.custodians[1];
    let vault_id = v.vault.vault_id().unwrap();
    let spec = |who: &[&CustodianIdentity]| TenantSpec {
        level: ProtectionLevel::Three,
        custodians: who.iter().map(|c| c.public().clone()).collect(),
        ..TenantSpec::default()
    };
    let info = v.vault.create_tenant("ledger", &spec(&[carol])).unwrap();
    assert!(info.locked);
    assert_eq!(info.custodians, [carol.name()]);
    v.vault
        .create_tenant("archive", &spec(&[carol, dave]))
        .unwrap();
    let ledger_box = v.vault.tenant_custody_box("ledger", carol.name()).unwrap();
    // Another custodian's identity cannot open it.
    assert!(matches!(
        tresor_wire::custody::TenantCustodyKey::open(dave, &vault_id, "ledger", &ledger_box),
        Err(IdentityError::Format { .. })
    ));
    // Nor does it open as another tenant's, or another vault's.
    assert!(
        tresor_wire::custody::TenantCustodyKey::open(carol, &vault_id, "archive", &ledger_box)
            .is_err()
    );
    assert!(
        tresor_wire::custody::TenantCustodyKey::open(carol, "another-vault", "ledger", &ledger_box)
            .is_err()
    );
    assert!(
        tresor_wire::custody::TenantCustodyKey::open(carol, &vault_id, "ledger", "not base64!")
            .is_err()
    );
    // dave is no custodian of ledger.
    assert_eq!(
        invalid_field(v.vault.tenant_custody_box("ledger", dave.name())),
        "custodian"
    );
    // A custody key of another tenant is refused, and the tenant stays locked.
    let archive_key = tresor_wire::custody::TenantCustodyKey::open(
        carol,
        &vault_id,
        "archive",
        &v.vault.tenant_custody_box("archive", carol.name()).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        v.vault.unlock_tenant("ledger", &archive_key),
        Err(Error::NotPermitted(_))
    ));
    assert!(v.vault.tenant_info("ledger").unwrap().locked);
    assert!(matches!(
        v.vault.create_key("ledger", "k", KeySpec::default()),
        Err(Error::TenantLocked(_))
    ));
    // Any one of a tenant's custodians unlocks it.
    v.unlock("archive", 1);
    v.vault.lock_tenant("archive").unwrap();
    assert!(v.vault.tenant_info("archive").unwrap().locked);
    v.vault.unlock_tenant("archive", &archive_key).unwrap();
    v.key("archive", "k", KeySpec::default());
    assert!(format!("{archive_key:?}").contains("REDACTED"));
    // Levels 1 and 2 have no custody.
    v.tenant("two", ProtectionLevel::Two);
    assert_eq!(
        invalid_field(v.vault.unlock_tenant("two", &archive_key)),
        "tenant"
    );
    assert_eq!(invalid_field(v.vault.lock_tenant("two")), "tenant");
    assert_eq!(
        invalid_field(v.vault.tenant_custody_box("two", carol.name())),
        "tenant"
    );
    assert_eq!(
        invalid_field(v.vault.create_tenant(
            "nobody",
            &TenantSpec {
                level: ProtectionLevel::Three,
                custodians: Vec::new(),
                ..TenantSpec::default()
            }
        )),
        "custodians"
    );
    assert_eq!(
        invalid_field(v.vault.create_tenant(
            "extra",
            &TenantSpec {
                level: ProtectionLevel::Two,
                custodians: vec![carol.public().clone()],
                ..TenantSpec::default()
            }
        )),
        "custodians"
    );
    assert_eq!(
        invalid_field(v.vault.create_tenant("twice", &spec(&[carol, carol]))),
        "custodians"
    );
}

#[test]
fn two_of_three_custodians_unseal() {
    let v = TestVault::with(3, 2, "test");
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", KeySpec::default());
    let ciphertext = v.encrypt(T, "k", b"x");
    let other = TestVault::with(3, 2, "test");
    let mut v = v.reopen();
    let status = v.vault.seal_status().unwrap();
    assert!(status.initialized && status.sealed);
    assert_eq!((status.threshold, status.shares), (2, 3));
    assert_eq!(
        status.custodians,
        ["custodian-0", "custodian-1", "custodian-2"]
    );
    // Any two of the three.
    for pair in [[0, 1], [0, 2], [2, 1]] {
        let first = v.vault.submit_share(v.share(pair[0])).unwrap();
        assert!(first.sealed, "one share is not enough");
        assert_eq!(first.submitted, [format!("custodian-{}", pair[0])]);
        assert!(v.vault.is_sealed());
        assert!(matches!(v.decrypt(T, "k", &ciphertext), Err(Error::Sealed)));
        // A share of another vault is named wrong and changes nothing.
        let foreign = other.share(pair[1]);
        assert!(matches!(
            v.vault.submit_share(foreign),
            Err(Error::Unseal(UnsealError::WrongShare(i))) if usize::from(i) == pair[1] + 1
        ));
        // The same share twice is a duplicate, not a second share.
        assert!(matches!(
            v.vault.submit_share(v.share(pair[0])),
            Err(Error::Unseal(UnsealError::Duplicate(i))) if usize::from(i) == pair[0] + 1
        ));
        let status = v.vault.seal_status().unwrap();
        assert_eq!(status.submitted, [format!("custodian-{}", pair[0])]);
        assert!(status.sealed);
        let done = v.vault.submit_share(v.share(pair[1])).unwrap();
        assert!(!done.sealed);
        assert!(!v.vault.is_sealed());
        assert_eq!(v.decrypt(T, "k", &ciphertext).unwrap(), b"x");
        v = v.reopen();
    }
    // A share whose index this vault does not have.
    let five = TestVault::with(5, 1, "test");
    assert!(matches!(
        v.vault.submit_share(five.share(4)),
        Err(Error::Unseal(UnsealError::UnknownShare(5)))
    ));
    // unseal() with too few shares refuses and stays sealed.
    assert!(matches!(
        v.vault.unseal(vec![v.share(1)]),
        Err(Error::Unseal(UnsealError::NotEnoughShares {
            given: 1,
            threshold: 2
        }))
    ));
    assert!(v.vault.is_sealed());
    v.vault.unseal(vec![v.share(2), v.share(1)]).unwrap();
    assert!(!v.vault.is_sealed());
}

#[test]
fn a_sealed_vault_refuses_every_operation() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", KeySpec::default());
    let ciphertext = v.encrypt(T, "k", b"x");
    v.vault.seal();
    assert!(v.vault.is_sealed());
    assert!(v.vault.seal_status().unwrap().sealed);
    let sealed = |r: Result<(), Error>, what: &str| {
        assert!(matches!(r, Err(Error::Sealed)), "{what}: {r:?}")
    };
    sealed(v.decrypt(T, "k", &ciphertext).map(drop), "decrypt");
    sealed(
        v.vault
            .encrypt(T, "k", &EncryptRequest::default())
            .map(drop),
        "encrypt",
    );
    sealed(
        v.vault
            .rewrap(
                T,
                "k",
                &DecryptRequest {
                    ciphertext: &ciphertext,
                    ..Default::default()
                },
                None,
            )
            .map(drop),
        "rewrap",
    );
    sealed(
        v.vault.datakey(T, "k", 256, None, None, true).map(drop),
        "datakey",
    );
    sealed(
        v.vault
            .hmac(T, "k", b"x", HmacAlgorithm::Sha2_256, None)
            .map(drop),
        "hmac",
    );
    sealed(v.vault.rotate_key(T, "k").map(drop), "rotate");
    sealed(v.vault.key_info(T, "k").map(drop), "key_info");
    sealed(v.vault.list_keys(T).map(drop), "list_keys");
    sealed(
        v.vault.create_key(T, "new", KeySpec::default()).map(drop),
        "create_key",
    );
    sealed(v.vault.list_tenants().map(drop), "list_tenants");
    sealed(v.vault.tenant_info(T).map(drop), "tenant_info");
    sealed(
        v.vault
            .create_tenant("new", &TenantSpec::default())
            .map(drop),
        "create_tenant",
    );
    sealed(v.vault.rotate_tenant_kek(T).map(drop), "rotate_tenant_kek");
    sealed(v.vault.shred_tenant(T), "shred_tenant");
    sealed(v.vault.delete_key(T, "k"), "delete_key");
    sealed(v.vault.trim_key(T, "k", 1).map(drop), "trim_key");
    sealed(
        v.vault
            .export_key(T, "k", ExportKind::EncryptionKey, None)
            .map(drop),
        "export_key",
    );
    sealed(v.vault.rotate_due_keys().map(drop), "rotate_due_keys");
    // Nothing was changed while sealed.
    v.unseal();
    assert_eq!(v.vault.key_info(T, "k").unwrap().latest_version, 1);
    assert_eq!(v.decrypt(T, "k", &ciphertext).unwrap(), b"x");
}

#[test]
fn init_validates_custodians_and_threshold() {
    let ids: Vec<CustodianIdentity> = (0..17)
        .map(|i| CustodianIdentity::generate(&format!("c{i}")).unwrap())
        .collect();
    let publics = |n: usize| ids[..n].iter().map(|c| c.public().clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(
        Arc::new(SledStore::open(dir.path()).unwrap()),
        VaultOptions::new("test"),
    )
    .unwrap();
    assert!(!vault.seal_status().unwrap().initialized);
    assert!(matches!(vault.vault_id(), Err(Error::NotInitialized)));
    assert!(matches!(
        vault.sealed_share("c0"),
        Err(Error::NotInitialized)
    ));
    let elsewhere = TestVault::new();
    assert!(matches!(
        vault.submit_share(elsewhere.share(0)),
        Err(Error::NotInitialized)
    ));
    for (n, k, field) in [
        (3, 0, "threshold"),
        (3, 4, "threshold"),
        (0, 0, "custodians"),
        (0, 1, "custodians"),
        (17, 2, "custodians"),
    ] {
        let request = InitRequest {
            custodians: publics(n),
            threshold: k,
            four_eyes: None,
        };
        assert_eq!(invalid_field(vault.init(&request)), field, "{k} of {n}");
    }
    let twice_named = CustodianIdentity::generate("c0").unwrap();
    let request = InitRequest {
        custodians: vec![ids[0].public().clone(), twice_named.public().clone()],
        threshold: 1,
        four_eyes: None,
    };
    assert_eq!(invalid_field(vault.init(&request)), "custodians");
    // One person under two names would hold two shares.
    let alias = tresor_crypto::identity::CustodianPublicKey::from_json(
        &ids[1].public().to_json().replace("\"c1\"", "\"c1-alias\""),
    )
    .unwrap();
    assert_eq!(alias.name(), "c1-alias");
    let request = InitRequest {
        custodians: vec![ids[1].public().clone(), alias],
        threshold: 1,
        four_eyes: None,
    };
    assert_eq!(invalid_field(vault.init(&request)), "custodians");
    assert!(!vault.seal_status().unwrap().initialized, "nothing stored");
    // 16 of 16 is the largest.
    let status = vault
        .init(&InitRequest {
            custodians: publics(16),
            threshold: 16,
            four_eyes: None,
        })
        .unwrap();
    assert_eq!((status.threshold, status.shares), (16, 16));
    assert!(matches!(
        vault.init(&InitRequest {
            custodians: publics(1),
            threshold: 1,
            four_eyes: None,
        }),
        Err(Error::AlreadyInitialized)
    ));
    let shares = ids[..16]
        .iter()
        .map(|c| vault.sealed_share(c.name()).unwrap().open(c).unwrap())
        .collect();
    vault.unseal(shares).unwrap();
    assert!(!vault.is_sealed());
}

#[test]
fn a_share_sealed_to_one_custodian_opens_only_with_their_identity() {
    let v = TestVault::with(2, 2, "test");
    let sealed = v.vault.sealed_share("custodian-0").unwrap();
    assert!(matches!(
        sealed.open(&v.custodians[1]),
        Err(IdentityError::Format { .. })
    ));
    // Relabelled for another index or vault, it does not open either.
    let mut relabelled = sealed.clone();
    relabelled.index = 2;
    assert!(relabelled.open(&v.custodians[0]).is_err());
    let mut relabelled = sealed.clone();
    relabelled.vault_id = "0".repeat(32);
    assert!(relabelled.open(&v.custodians[0]).is_err());
    assert!(sealed.open(&v.custodians[0]).is_ok());
    assert_eq!(invalid_field(v.vault.sealed_share("mallory")), "custodian");
    // The identity file round-trips and opens shares after a passphrase check.
    let file = v.custodians[0].to_encrypted_json(b"correct horse").unwrap();
    assert!(matches!(
        CustodianIdentity::from_encrypted_json(&file, b"wrong horse"),
        Err(IdentityError::WrongPassphrase)
    ));
    let reopened = CustodianIdentity::from_encrypted_json(&file, b"correct horse").unwrap();
    assert!(sealed.open(&reopened).is_ok());
}

#[test]
fn unseal_progress_expires() {
    let ids: Vec<CustodianIdentity> = (0..3)
        .map(|i| CustodianIdentity::generate(&format!("c{i}")).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let vault = Vault::open(
        Arc::new(SledStore::open(dir.path()).unwrap()),
        VaultOptions::new("test").with_clock(clock.clone()),
    )
    .unwrap();
    vault
        .init(&InitRequest {
            custodians: ids.iter().map(|c| c.public().clone()).collect(),
            threshold: 2,
            four_eyes: None,
        })
        .unwrap();
    let share = |i: usize| {
        vault
            .sealed_share(ids[i].name())
            .unwrap()
            .open(&ids[i])
            .unwrap()
    };
    vault.submit_share(share(0)).unwrap();
    clock.advance(601);
    assert!(vault.seal_status().unwrap().submitted.is_empty());
    let progress = vault.submit_share(share(1)).unwrap();
    assert!(progress.sealed, "the first share expired");
    assert_eq!(progress.submitted, ["c1"]);
    clock.advance(600);
    assert!(!vault.submit_share(share(2)).unwrap().sealed);
}

#[test]
fn unseal_without_shares_names_the_real_threshold() {
    let v = TestVault::with(3, 2, "test").reopen();
    assert!(matches!(
        v.vault.unseal(Vec::new()),
        Err(Error::Unseal(UnsealError::NotEnoughShares {
            given: 0,
            threshold: 2
        }))
    ));
    let dir = tempfile::tempdir().unwrap();
    let uninitialised = Vault::open(
        Arc::new(SledStore::open(dir.path()).unwrap()),
        VaultOptions::new("test"),
    )
    .unwrap();
    assert!(matches!(
        uninitialised.unseal(Vec::new()),
        Err(Error::NotInitialized)
    ));
}

/// `Error::Unseal` promises "progress is unchanged": a one-shot unseal that is refused must not
/// leave some of its shares behind in the round.
#[test]
fn a_refused_one_shot_unseal_leaves_progress_unchanged() {
    let v = TestVault::with(3, 2, "test").reopen();
    let other = TestVault::with(3, 2, "test");
    // A good share followed by a wrong one.
    assert!(matches!(
        v.vault.unseal(vec![v.share(0), other.share(1)]),
        Err(Error::Unseal(UnsealError::WrongShare(2)))
    ));
    assert!(v.vault.seal_status().unwrap().submitted.is_empty());
    // Too few shares.
    assert!(matches!(
        v.vault.unseal(vec![v.share(0)]),
        Err(Error::Unseal(UnsealError::NotEnoughShares {
            given: 1,
            threshold: 2
        }))
    ));
    assert!(v.vault.seal_status().unwrap().submitted.is_empty());
    // So the operator's retry with the full set is not refused as a duplicate.
    assert!(!v.vault.unseal(vec![v.share(0), v.share(1)]).unwrap().sealed);
    // Shares given one by one before are kept: unseal completes that round.
    let v = v.reopen();
    v.vault.submit_share(v.share(2)).unwrap();
    assert!(matches!(
        v.vault.unseal(vec![v.share(2)]),
        Err(Error::Unseal(UnsealError::Duplicate(3)))
    ));
    assert_eq!(v.vault.seal_status().unwrap().submitted, ["custodian-2"]);
    v.vault.unseal(vec![v.share(1)]).unwrap();
    assert!(!v.vault.is_sealed());
}

/// The custody key two of `custodians` rebuild from their shares of level-3 tenant `tenant`.
fn pooled_custody_key(v: &TestVault, tenant: &str, custodians: &[usize]) -> TenantCustodyKey {
    let vault_id = v.vault.vault_id().unwrap();
    let shares: Vec<_> = custodians
        .iter()
        .map(|&i| {
            let custodian = &v.custodians[i];
            let sealed = v
                .vault
                .tenant_custody_box(tenant, custodian.name())
                .unwrap();
            TenantCustodyKey::open(custodian, &vault_id, tenant, &sealed)
                .unwrap()
                .share()
                .expect("a k-of-n tenant's custodians hold shares")
        })
        .collect();
    TenantCustodyKey::new(tresor_crypto::shamir::combine(&shares).unwrap())
}

/// Issue 11.2: after a change of a level-3 tenant's custodians, removed custodians who pool
/// their shares, even with the tenant's record as stored before the change put back on disk,
/// decrypt nothing written after it; what was written before stays readable to the new ones.
#[test]
fn removed_tenant_custodians_with_an_old_store_copy_open_nothing_written_after_the_change() {
    let v = TestVault::with(4, 1, "test");
    let spec = TenantSpec {
        level: ProtectionLevel::Three,
        custodians: v.custodians[..3]
            .iter()
            .map(|c| c.public().clone())
            .collect(),
        threshold: 2,
        ..TenantSpec::default()
    };
    let info = v.vault.create_tenant("ledger", &spec).unwrap();
    assert_eq!((info.threshold, info.locked), (2, true));
    // One share does not open it; two do.
    let one = {
        let custodian = &v.custodians[0];
        let sealed = v
            .vault
            .tenant_custody_box("ledger", custodian.name())
            .unwrap();
        TenantCustodyKey::open(custodian, &v.vault.vault_id().unwrap(), "ledger", &sealed).unwrap()
    };
    assert!(matches!(
        v.vault.unlock_tenant("ledger", &one),
        Err(Error::NotPermitted(message)) if message.contains("needs 2")
    ));
    let old_key = pooled_custody_key(&v, "ledger", &[0, 1]);
    v.vault.unlock_tenant("ledger", &old_key).unwrap();
    v.key("ledger", "k", KeySpec::default());
    let before = v.encrypt("ledger", "k", b"written before");
    let old_record = v.raw("tenants/ledger");

    // Custodians 0 and 1 leave; 2 stays, 3 joins (2 of 2).
    let new_set = [
        v.custodians[2].public().clone(),
        v.custodians[3].public().clone(),
    ];
    let info = v
        .vault
        .change_tenant_custodians("ledger", &new_set, None)
        .unwrap();
    assert_eq!(info.custodians, ["custodian-2", "custodian-3"]);
    assert_eq!(info.threshold, 2);
    let after = v.encrypt("ledger", "k", b"written after");
    assert_ne!(
        split(&before).0,
        split(&after).0,
        "new data uses a new key version"
    );

    // The old custody key opens nothing in the current store.
    v.vault.lock_tenant("ledger").unwrap();
    assert!(matches!(
        v.vault.unlock_tenant("ledger", &old_key),
        Err(Error::NotPermitted(message)) if message.contains("does not unlock")
    ));
    // The record from before the change, put back, is refused by the ledger: it is not the
    // one the vault last wrote. (Even if it were taken, it would open the old KEK only, and
    // every key version in the current store is wrapped under the new one: what they wrote
    // down before the change, in a full copy of the old store, is all they keep.)
    let current_record = v.raw("tenants/ledger");
    v.store.put("tenants/ledger", &old_record).unwrap();
    v.vault.seal();
    v.unseal();
    assert!(matches!(
        v.vault.unlock_tenant("ledger", &old_key),
        Err(Error::Rollback { path, .. }) if path == "tenants/ledger"
    ));
    for ciphertext in [&after, &before] {
        assert!(v.decrypt("ledger", "k", ciphertext).is_err());
    }

    // With the current record back, the new custodians read both.
    v.store.put("tenants/ledger", &current_record).unwrap();
    v.vault.seal();
    v.unseal();
    v.vault
        .unlock_tenant("ledger", &pooled_custody_key(&v, "ledger", &[2, 3]))
        .unwrap();
    assert_eq!(
        v.decrypt("ledger", "k", &before).unwrap(),
        b"written before"
    );
    assert_eq!(v.decrypt("ledger", "k", &after).unwrap(), b"written after");
}

/// Issue 13, point 4: a node that sees the root key rotated by another node (both on one store)
/// seals itself instead of going on with a barrier key that opens nothing the store now holds;
/// its custodians unseal it with the new shares.
#[test]
fn a_node_that_sees_the_root_rotated_elsewhere_seals_itself() {
    let v = TestVault::new();
    v.unseal();
    v.tenant("t", ProtectionLevel::Two);
    v.key("t", "k", KeySpec::default());
    let ciphertext = v.encrypt("t", "k", b"before the rotation");
    let other = Vault::open(
        v.store.clone() as Arc<dyn Store>,
        VaultOptions::new(&v.environment),
    )
    .unwrap();
    other.unseal(vec![v.share(0)]).unwrap();
    // A change the other node follows that is not the root: it keeps serving.
    other.invalidate(["keys/t/k"]);
    assert!(!other.is_sealed());
    v.vault.rotate_root(None).unwrap();
    other.invalidate(["core/seal", "core/root-check"]);
    assert!(other.is_sealed(), "the other node kept the replaced root");
    // With the new shares it serves again, and every ciphertext decrypts.
    other.unseal(vec![v.share(0)]).unwrap();
    assert_eq!(
        crate::common::decrypt(&other, "t", "k", &ciphertext).unwrap(),
        b"before the rotation"
    );
}
