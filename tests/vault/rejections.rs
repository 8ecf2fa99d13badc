//! Everything the vault must refuse, each with its specific error: altered, moved, truncated or
//! malformed ciphertexts; retired, missing and trimmed versions; context misuse; and storage
//! records that were tampered with or moved to another path.

use crate::common::{TestVault, ciphertext_error, invalid_field, join, split, with_version};
use tresor_core::CiphertextError;
use tresor_core::DecryptRequest;
use tresor_core::EncryptRequest;
use tresor_core::Error;
use tresor_core::KeySpec;
use tresor_core::ProtectionLevel;
use tresor_core::Store;
use tresor_wire::keys::KeyConfigUpdate;

const T: &str = "payments";

fn setup(spec: KeySpec) -> TestVault {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", spec);
    v
}

#[test]
fn a_flipped_bit_anywhere_in_the_payload_fails_authentication() {
    for spec in [
        KeySpec::default(),
        KeySpec {
            derived: true,
            ..Default::default()
        },
        KeySpec {
            derived: true,
            convergent_encryption: true,
            ..Default::default()
        },
    ] {
        let v = setup(spec.clone());
        let context = spec.derived.then_some(&b"ctx"[..]);
        let ciphertext = v
            .vault
            .encrypt(
                T,
                "k",
                &EncryptRequest {
                    plaintext: b"forty-two bytes of secret plaintext here!!",
                    context,
                    associated_data: Some(b"ad"),
                    ..Default::default()
                },
            )
            .unwrap();
        let (version, payload) = split(&ciphertext.text);
        let decrypt = |ciphertext: &str| {
            v.vault.decrypt(
                T,
                "k",
                &DecryptRequest {
                    ciphertext,
                    context,
                    associated_data: Some(b"ad"),
                },
            )
        };
        assert!(
            decrypt(&ciphertext.text).is_ok(),
            "control: the original decrypts"
        );
        // Every byte (nonce, ciphertext and tag), and in it each bit once over the run.
        for i in 0..payload.len() {
            for bit in [i % 8, (i + 3) % 8] {
                let mut altered = payload.clone();
                altered[i] ^= 1 << bit;
                assert_eq!(
                    ciphertext_error(decrypt(&join(version, &altered))),
                    CiphertextError::Authentication,
                    "{spec:?}: byte {i} bit {bit}"
                );
            }
        }
    }
}

#[test]
fn a_ciphertext_moved_to_another_tenant_key_or_version_fails() {
    let v = TestVault::new();
    for tenant in ["alpha", "beta"] {
        v.tenant(tenant, ProtectionLevel::Two);
        for key in ["k", "other"] {
            v.key(tenant, key, KeySpec::default());
        }
    }
    v.vault.rotate_key("alpha", "k").unwrap();
    let v1 = v
        .vault
        .encrypt(
            "alpha",
            "k",
            &EncryptRequest {
                plaintext: b"secret",
                key_version: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let v2 = v.encrypt("alpha", "k", b"secret");
    assert!(v2.starts_with("tresor:v2:"));
    assert_eq!(v.decrypt("alpha", "k", &v1.text).unwrap(), b"secret");
    for (tenant, key) in [("beta", "k"), ("alpha", "other"), ("beta", "other")] {
        assert_eq!(
            ciphertext_error(v.decrypt(tenant, key, &v1.text)),
            CiphertextError::Authentication,
            "moved to {tenant}/{key}"
        );
    }
    // Relabelled as another version that exists.
    assert_eq!(
        ciphertext_error(v.decrypt("alpha", "k", &with_version(&v1.text, 2))),
        CiphertextError::Authentication
    );
    assert_eq!(
        ciphertext_error(v.decrypt("alpha", "k", &with_version(&v2, 1))),
        CiphertextError::Authentication
    );
    // Relabelled as a version that does not exist (yet).
    assert_eq!(
        ciphertext_error(v.decrypt("alpha", "k", &with_version(&v1.text, 3))),
        CiphertextError::UnknownVersion {
            version: 3,
            latest: 2
        }
    );
    // … and when that version comes to exist, it still does not decrypt.
    v.vault.rotate_key("alpha", "k").unwrap();
    assert_eq!(
        ciphertext_error(v.decrypt("alpha", "k", &with_version(&v1.text, 3))),
        CiphertextError::Authentication
    );
    // Missing targets are named.
    assert!(matches!(
        v.decrypt("gamma", "k", &v1.text),
        Err(Error::TenantNotFound(t)) if t == "gamma"
    ));
    assert!(matches!(
        v.decrypt("alpha", "nope", &v1.text),
        Err(Error::KeyNotFound { tenant, key }) if tenant == "alpha" && key == "nope"
    ));
}

#[test]
fn truncated_malformed_and_foreign_ciphertexts_are_refused_specifically() {
    let v = setup(KeySpec::default());
    let ciphertext = v.encrypt(T, "k", b"some plaintext");
    let (version, payload) = split(&ciphertext);
    assert_eq!(payload.len(), 28 + 14);
    // Shorter than nonce and tag.
    for len in [0, 1, 12, 27] {
        assert_eq!(
            ciphertext_error(v.decrypt(T, "k", &join(version, &payload[..len]))),
            CiphertextError::TooShort(len),
            "{len}"
        );
    }
    // Long enough to parse, but cut.
    for len in [28, 29, payload.len() - 1] {
        assert_eq!(
            ciphertext_error(v.decrypt(T, "k", &join(version, &payload[..len]))),
            CiphertextError::Authentication,
            "{len}"
        );
    }
    // Extended.
    let mut longer = payload.clone();
    longer.push(0);
    assert_eq!(
        ciphertext_error(v.decrypt(T, "k", &join(version, &longer))),
        CiphertextError::Authentication
    );
    // Cut in the middle of the text: no longer valid base64.
    assert_eq!(
        ciphertext_error(v.decrypt(T, "k", &ciphertext[..ciphertext.len() - 1])),
        CiphertextError::NotBase64
    );
    for text in [
        "tresor:v1:%%%%",
        "tresor:v1:YWJj*",
        "tresor:v1:YW Jj",
        "tresor:v1:YWJjZA", // missing padding
        "tresor:v1:YWJjZA=",
        "tresor:v1:-_-_", // URL-safe alphabet
    ] {
        assert_eq!(
            ciphertext_error(v.decrypt(T, "k", text)),
            CiphertextError::NotBase64,
            "{text}"
        );
    }
    let body = &ciphertext["tresor:v1:".len()..];
    // `vault:` is read, but only for versions imported from Vault/OpenBao (docs/format.md,
    // section 11): this key's version 1 is Tresor's own.
    assert_eq!(
        ciphertext_error(v.decrypt(T, "k", &format!("vault:v1:{body}"))),
        CiphertextError::WrongOrigin {
            version: 1,
            imported: false
        }
    );
    for text in [
        format!("VAULT:v1:{body}"),
        format!("TRESOR:v1:{body}"),
        format!("tresor:1:{body}"),
        format!(" tresor:v1:{body}"),
        format!("tresor:v1{body}"),
        "tresor:v1".to_owned(),
        String::new(),
        body.to_owned(),
    ] {
        assert_eq!(
            ciphertext_error(v.decrypt(T, "k", &text)),
            CiphertextError::WrongPrefix,
            "{text}"
        );
    }
    for (field, shown) in [
        ("0", "0"),
        ("01", "01"),
        ("-1", "-1"),
        ("x", "x"),
        ("", ""),
        ("4294967296", "4294967296"),
        ("1.0", "1.0"),
    ] {
        assert_eq!(
            ciphertext_error(v.decrypt(T, "k", &format!("tresor:v{field}:{body}"))),
            CiphertextError::BadVersion(shown.into()),
            "{field}"
        );
    }
}

#[test]
fn versions_below_min_decryption_version_are_refused_until_it_is_lowered() {
    let v = setup(KeySpec::default());
    let v1 = v.encrypt(T, "k", b"one");
    v.vault.rotate_key(T, "k").unwrap();
    let v2 = v.encrypt(T, "k", b"two");
    v.vault.rotate_key(T, "k").unwrap();
    let raise = |min| {
        v.vault.configure_key(
            T,
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(min),
                ..Default::default()
            },
        )
    };
    raise(3).unwrap();
    for (ciphertext, version) in [(&v1, 1), (&v2, 2)] {
        assert_eq!(
            ciphertext_error(v.decrypt(T, "k", ciphertext)),
            CiphertextError::BelowMinDecryption {
                version,
                min_decryption: 3
            }
        );
        // Rewrap cannot launder a retired ciphertext either.
        assert_eq!(
            ciphertext_error(v.vault.rewrap(
                T,
                "k",
                &DecryptRequest {
                    ciphertext,
                    ..Default::default()
                },
                None
            )),
            CiphertextError::BelowMinDecryption {
                version,
                min_decryption: 3
            }
        );
    }
    // Nor can a retired version encrypt.
    let old = v.vault.encrypt(
        T,
        "k",
        &EncryptRequest {
            plaintext: b"x",
            key_version: Some(2),
            ..Default::default()
        },
    );
    assert_eq!(invalid_field(old), "key_version");
    // It survives a restart.
    let v = v.restart();
    assert!(matches!(
        v.decrypt(T, "k", &v2),
        Err(Error::Ciphertext(
            CiphertextError::BelowMinDecryption { .. }
        ))
    ));
    // Lowering brings the versions back (they were retired, not destroyed), as in Vault.
    v.vault
        .configure_key(
            T,
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(v.decrypt(T, "k", &v1).unwrap(), b"one");
    assert_eq!(v.decrypt(T, "k", &v2).unwrap(), b"two");
}

#[test]
fn trimmed_versions_are_refused_and_cannot_be_brought_back() {
    let v = setup(KeySpec::default());
    let v1 = v.encrypt(T, "k", b"one");
    v.vault.rotate_key(T, "k").unwrap();
    let v2 = v.encrypt(T, "k", b"two");
    v.vault
        .configure_key(
            T,
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(2),
                min_encryption_version: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    let info = v.vault.trim_key(T, "k", 2).unwrap();
    assert_eq!(info.config.min_available_version, 2);
    assert_eq!(info.versions.keys().copied().collect::<Vec<_>>(), [2]);
    // Vault checks min_decryption_version before looking the version up, so a trimmed
    // version reports the policy that retired it.
    assert_eq!(
        ciphertext_error(v.decrypt(T, "k", &v1)),
        CiphertextError::BelowMinDecryption {
            version: 1,
            min_decryption: 2
        }
    );
    assert_eq!(v.decrypt(T, "k", &v2).unwrap(), b"two");
    let lower = v.vault.configure_key(
        T,
        "k",
        &KeyConfigUpdate {
            min_decryption_version: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(invalid_field(lower), "min_decryption_version");
    assert!(matches!(
        v.decrypt(T, "k", &v1),
        Err(Error::Ciphertext(
            CiphertextError::BelowMinDecryption { .. }
        ))
    ));
}

#[test]
fn context_must_be_given_exactly_for_derived_keys() {
    let v = setup(KeySpec::default());
    v.key(
        T,
        "derived",
        KeySpec {
            derived: true,
            ..Default::default()
        },
    );
    let plain_ct = v.encrypt(T, "k", b"x");
    let derived_ct = v
        .vault
        .encrypt(
            T,
            "derived",
            &EncryptRequest {
                plaintext: b"x",
                context: Some(b"ctx"),
                ..Default::default()
            },
        )
        .unwrap();
    // A context for a non-derived key is refused, never silently ignored.
    let with_context = EncryptRequest {
        plaintext: b"x",
        context: Some(b"ctx"),
        ..Default::default()
    };
    assert_eq!(
        invalid_field(v.vault.encrypt(T, "k", &with_context)),
        "context"
    );
    let decrypt_with_context = DecryptRequest {
        ciphertext: &plain_ct,
        context: Some(b"ctx"),
        ..Default::default()
    };
    assert_eq!(
        invalid_field(v.vault.decrypt(T, "k", &decrypt_with_context)),
        "context"
    );
    assert_eq!(
        invalid_field(v.vault.rewrap(T, "k", &decrypt_with_context, None)),
        "context"
    );
    assert_eq!(
        invalid_field(v.vault.datakey(T, "k", 256, Some(b"ctx"), None, true)),
        "context"
    );
    // A derived key needs one; an empty context counts as none.
    for context in [None, Some(&b""[..])] {
        let request = EncryptRequest {
            plaintext: b"x",
            context,
            ..Default::default()
        };
        assert_eq!(
            invalid_field(v.vault.encrypt(T, "derived", &request)),
            "context"
        );
        let decrypt = DecryptRequest {
            ciphertext: &derived_ct.text,
            context,
            ..Default::default()
        };
        assert_eq!(
            invalid_field(v.vault.decrypt(T, "derived", &decrypt)),
            "context"
        );
        assert_eq!(
            invalid_field(v.vault.rewrap(T, "derived", &decrypt, None)),
            "context"
        );
        assert_eq!(
            invalid_field(v.vault.datakey(T, "derived", 128, context, None, false)),
            "context"
        );
    }
}

#[test]
fn a_tampered_storage_record_is_an_integrity_error_naming_its_path() {
    let v = setup(KeySpec::default());
    let ciphertext = v.encrypt(T, "k", b"x");
    for path in ["keys/payments/k", "tenants/payments"] {
        let original = v.raw(path);
        // The first byte (format), one inside, and the last (tag).
        for at in [0, original.len() / 2, original.len() - 1] {
            let mut altered = original.clone();
            altered[at] ^= 0x20;
            v.store.put(path, &altered).unwrap();
            // Every fresh read of the record fails; cached keys are not re-read until reload.
            v.reload();
            let err = v.decrypt(T, "k", &ciphertext).unwrap_err();
            assert!(
                matches!(&err, Error::Integrity { path: p } if p == path),
                "{path} byte {at}: {err:?}"
            );
            assert!(err.to_string().contains(path), "{err}");
            assert!(matches!(
                v.vault.key_info(T, "k"),
                Err(Error::Integrity { path: p }) if p == path
            ));
        }
        v.store.put(path, &original).unwrap();
        v.reload();
        assert_eq!(v.decrypt(T, "k", &ciphertext).unwrap(), b"x");
    }
    // A truncated or empty record.
    let original = v.raw("keys/payments/k");
    for cut in [0, 1, original.len() - 1] {
        v.store.put("keys/payments/k", &original[..cut]).unwrap();
        assert!(matches!(
            v.vault.key_info(T, "k"),
            Err(Error::Integrity { path }) if path == "keys/payments/k"
        ));
    }
}

#[test]
fn a_storage_record_copied_to_another_path_is_an_integrity_error() {
    let v = TestVault::new();
    for tenant in ["alpha", "beta"] {
        v.tenant(tenant, ProtectionLevel::Two);
        v.key(tenant, "a", KeySpec::default());
        v.key(tenant, "b", KeySpec::default());
    }
    // One key's record over another key of the same tenant.
    v.store.put("keys/alpha/b", &v.raw("keys/alpha/a")).unwrap();
    // One tenant's key record into the other tenant (same key name).
    v.store.put("keys/beta/a", &v.raw("keys/alpha/a")).unwrap();
    // One tenant's record over the other's.
    let beta_tenant = v.raw("tenants/beta");
    v.store
        .put("tenants/beta", &v.raw("tenants/alpha"))
        .unwrap();
    v.reload();
    for (tenant, key, path) in [
        ("alpha", "b", "keys/alpha/b"),
        ("beta", "a", "tenants/beta"),
        ("beta", "b", "tenants/beta"),
    ] {
        let err = v.vault.key_info(tenant, key).unwrap_err();
        assert!(
            matches!(&err, Error::Integrity { path: p } if p == path),
            "{tenant}/{key}: {err:?}"
        );
        let err = v
            .vault
            .encrypt(
                tenant,
                key,
                &EncryptRequest {
                    plaintext: b"x",
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::Integrity { path: p } if p == path),
            "{err:?}"
        );
    }
    assert!(matches!(
        v.vault.tenant_info("beta"),
        Err(Error::Integrity { path }) if path == "tenants/beta"
    ));
    // Put the tenant back: the moved key record is still caught, by its own path.
    v.store.put("tenants/beta", &beta_tenant).unwrap();
    v.reload();
    assert!(matches!(
        v.vault.key_info("beta", "a"),
        Err(Error::Integrity { path }) if path == "keys/beta/a"
    ));
    assert!(v.vault.key_info("beta", "b").is_ok());
    assert!(v.vault.key_info("alpha", "a").is_ok());
}

#[test]
fn a_tampered_root_check_keeps_the_vault_sealed() {
    let v = TestVault::new();
    v.vault.seal();
    let original = v.raw("core/root-check");
    let mut altered = original.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    v.store.put("core/root-check", &altered).unwrap();
    let err = v.vault.unseal(vec![v.share(0)]).unwrap_err();
    assert!(
        matches!(&err, Error::Unseal(tresor_core::UnsealError::RootMismatch)),
        "{err:?}"
    );
    assert!(err.to_string().contains("core/root-check"), "{err}");
    assert!(v.vault.is_sealed());
    v.store.put("core/root-check", &original).unwrap();
    v.vault.unseal(vec![v.share(0)]).unwrap();
    assert!(!v.vault.is_sealed());
}
