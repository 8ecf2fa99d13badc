//! Round trips of every key operation through the public `Vault` facade on a real sled store:
//! encrypt/decrypt (with and without associated data), derived and convergent keys, rewrap,
//! rotate, datakey, hmac, key configuration, export, and the batch forms.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::common::{TestVault, ciphertext_error, invalid_field, split, with_version};
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
use tresor_core::TenantSpec;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_wire::custody::InitRequest;
use tresor_wire::keys::KeyConfigUpdate;

const T: &str = "payments";

fn vault_with_key(spec: KeySpec) -> TestVault {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", spec);
    v
}

fn derived() -> KeySpec {
    KeySpec {
        derived: true,
        ..Default::default()
    }
}

fn convergent() -> KeySpec {
    KeySpec {
        derived: true,
        convergent_encryption: true,
        ..Default::default()
    }
}

#[test]
fn encrypt_decrypt_round_trip_with_and_without_associated_data() {
    let v = vault_with_key(KeySpec::default());
    for len in [0, 1, 15, 16, 17, 1024, 64 * 1024] {
        let plaintext = crate::common::bytes(len, len as u64);
        for associated_data in [None, Some(&b"row 17 of table cards"[..])] {
            let ciphertext = v
                .vault
                .encrypt(
                    T,
                    "k",
                    &EncryptRequest {
                        plaintext: &plaintext,
                        associated_data,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert!(ciphertext.text.starts_with("tresor:v1:"), "{ciphertext}");
            let (_, payload) = split(&ciphertext.text);
            assert_eq!(payload.len(), 12 + len + 16, "nonce ‖ ciphertext ‖ tag");
            let decrypted = v
                .vault
                .decrypt(
                    T,
                    "k",
                    &DecryptRequest {
                        ciphertext: &ciphertext.text,
                        associated_data,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(decrypted.as_slice(), plaintext.as_slice(), "len {len}");
            // The associated data is bound: another value, or none where one was given, fails.
            let other = match associated_data {
                Some(_) => None,
                None => Some(&b"x"[..]),
            };
            let wrong = v.vault.decrypt(
                T,
                "k",
                &DecryptRequest {
                    ciphertext: &ciphertext.text,
                    associated_data: other,
                    ..Default::default()
                },
            );
            assert_eq!(ciphertext_error(wrong), CiphertextError::Authentication);
        }
    }
}

#[test]
fn encryption_is_randomised_for_ordinary_keys() {
    let v = vault_with_key(KeySpec::default());
    let a = v.encrypt(T, "k", b"same plaintext");
    let b = v.encrypt(T, "k", b"same plaintext");
    assert_ne!(a, b, "a fresh nonce per encryption");
    assert_eq!(v.decrypt(T, "k", &a).unwrap(), b"same plaintext");
    assert_eq!(v.decrypt(T, "k", &b).unwrap(), b"same plaintext");
}

#[test]
fn derived_keys_bind_the_context() {
    let v = vault_with_key(derived());
    let encrypt = |context: &[u8], associated_data: Option<&[u8]>| {
        v.vault
            .encrypt(
                T,
                "k",
                &EncryptRequest {
                    plaintext: b"IBAN DE89 3704 0044 0532 0130 00",
                    context: Some(context),
                    associated_data,
                    ..Default::default()
                },
            )
            .unwrap()
    };
    let decrypt = |ciphertext: &str, context: &[u8], associated_data: Option<&[u8]>| {
        v.vault
            .decrypt(
                T,
                "k",
                &DecryptRequest {
                    ciphertext,
                    context: Some(context),
                    associated_data,
                },
            )
            .map(|p| p.to_vec())
    };
    let for_alice = encrypt(b"customer-alice", None);
    let for_bob = encrypt(b"customer-bob", Some(b"ad"));
    assert_eq!(
        decrypt(&for_alice.text, b"customer-alice", None).unwrap(),
        b"IBAN DE89 3704 0044 0532 0130 00"
    );
    assert_eq!(
        decrypt(&for_bob.text, b"customer-bob", Some(b"ad")).unwrap(),
        b"IBAN DE89 3704 0044 0532 0130 00"
    );
    assert_eq!(
        ciphertext_error(decrypt(&for_alice.text, b"customer-bob", None)),
        CiphertextError::Authentication
    );
    assert_eq!(
        ciphertext_error(decrypt(&for_bob.text, b"customer-bob", None)),
        CiphertextError::Authentication
    );
    // Not deterministic unless convergent.
    assert_ne!(for_alice, encrypt(b"customer-alice", None));
}

#[test]
fn convergent_encryption_is_deterministic_per_plaintext_context_and_version() {
    let v = vault_with_key(convergent());
    let encrypt = |plaintext: &[u8], context: &[u8], associated_data: Option<&[u8]>| {
        v.vault
            .encrypt(
                T,
                "k",
                &EncryptRequest {
                    plaintext,
                    context: Some(context),
                    associated_data,
                    ..Default::default()
                },
            )
            .unwrap()
    };
    let a = encrypt(b"4111 1111 1111 1111", b"cards", None);
    assert_eq!(a, encrypt(b"4111 1111 1111 1111", b"cards", None));
    assert_ne!(a, encrypt(b"4111 1111 1111 1111", b"accounts", None));
    assert_ne!(a, encrypt(b"4111 1111 1111 1112", b"cards", None));
    assert_ne!(a, encrypt(b"4111 1111 1111 1111", b"cards", Some(b"ad")));
    // Equal ciphertexts must not mean equal nonces for different plaintexts.
    let nonce = |ct: &str| split(ct).1[..12].to_vec();
    assert_ne!(
        nonce(&a.text),
        nonce(&(encrypt(b"4111 1111 1111 1112", b"cards", None)).text)
    );
    assert_eq!(
        v.vault
            .decrypt(
                T,
                "k",
                &DecryptRequest {
                    ciphertext: &a.text,
                    context: Some(b"cards"),
                    ..Default::default()
                }
            )
            .unwrap()
            .as_slice(),
        b"4111 1111 1111 1111"
    );
    // A new version gives a new deterministic ciphertext, still stable.
    v.vault.rotate_key(T, "k").unwrap();
    let b = encrypt(b"4111 1111 1111 1111", b"cards", None);
    assert!(b.text.starts_with("tresor:v2:"));
    assert_ne!(split(&a.text).1, split(&b.text).1);
    assert_eq!(b, encrypt(b"4111 1111 1111 1111", b"cards", None));
    // Convergent encryption needs derivation.
    let refused = v.vault.create_key(
        T,
        "not-derived",
        KeySpec {
            convergent_encryption: true,
            ..Default::default()
        },
    );
    assert_eq!(invalid_field(refused), "convergent_encryption");
}

#[test]
fn rotate_adds_a_version_and_encrypts_with_the_latest() {
    let v = vault_with_key(KeySpec::default());
    let v1 = v.encrypt(T, "k", b"one");
    let info = v.vault.rotate_key(T, "k").unwrap();
    assert_eq!(info.latest_version, 2);
    assert_eq!(
        info.versions.keys().copied().collect::<Vec<_>>(),
        [1, 2],
        "both versions held"
    );
    assert_eq!(v.vault.key_info(T, "k").unwrap(), info);
    let v2 = v.encrypt(T, "k", b"two");
    assert!(v2.starts_with("tresor:v2:"), "{v2}");
    assert_eq!(v.decrypt(T, "k", &v1).unwrap(), b"one");
    assert_eq!(v.decrypt(T, "k", &v2).unwrap(), b"two");
    // An older version can still be chosen explicitly; one that does not exist cannot.
    let explicit = v
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
    assert!(explicit.text.starts_with("tresor:v1:"));
    assert_eq!(v.decrypt(T, "k", &explicit.text).unwrap(), b"old");
    let zero_is_latest = v
        .vault
        .encrypt(
            T,
            "k",
            &EncryptRequest {
                plaintext: b"latest",
                key_version: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(zero_is_latest.text.starts_with("tresor:v2:"));
    let too_new = v.vault.encrypt(
        T,
        "k",
        &EncryptRequest {
            plaintext: b"x",
            key_version: Some(3),
            ..Default::default()
        },
    );
    assert_eq!(invalid_field(too_new), "key_version");
}

#[test]
fn rewrap_moves_to_the_latest_version_and_keeps_the_plaintext() {
    let v = vault_with_key(derived());
    let request = |plaintext: &'static [u8]| EncryptRequest {
        plaintext,
        context: Some(b"ctx"),
        associated_data: Some(b"ad"),
        ..Default::default()
    };
    let old = v.vault.encrypt(T, "k", &request(b"secret")).unwrap();
    v.vault.rotate_key(T, "k").unwrap();
    v.vault.rotate_key(T, "k").unwrap();
    let decrypt_request = |ciphertext| DecryptRequest {
        ciphertext,
        context: Some(b"ctx"),
        associated_data: Some(b"ad"),
    };
    let rewrapped = v
        .vault
        .rewrap(T, "k", &decrypt_request(&old.text), None)
        .unwrap();
    assert!(rewrapped.text.starts_with("tresor:v3:"), "{rewrapped}");
    assert_eq!(
        v.vault
            .decrypt(T, "k", &decrypt_request(&rewrapped.text))
            .unwrap()
            .as_slice(),
        b"secret"
    );
    // The old ciphertext still decrypts (rewrap does not retire versions).
    assert_eq!(
        v.vault
            .decrypt(T, "k", &decrypt_request(&old.text))
            .unwrap()
            .as_slice(),
        b"secret"
    );
    // An explicit target version.
    let to_two = v
        .vault
        .rewrap(T, "k", &decrypt_request(&old.text), Some(2))
        .unwrap();
    assert!(to_two.text.starts_with("tresor:v2:"));
    assert_eq!(
        v.vault
            .decrypt(T, "k", &decrypt_request(&to_two.text))
            .unwrap()
            .as_slice(),
        b"secret"
    );
    // Rewrap with the wrong context fails instead of re-encrypting garbage.
    let wrong = v.vault.rewrap(
        T,
        "k",
        &DecryptRequest {
            ciphertext: &old.text,
            context: Some(b"other"),
            associated_data: Some(b"ad"),
        },
        None,
    );
    assert_eq!(ciphertext_error(wrong), CiphertextError::Authentication);
}

#[test]
fn datakey_wraps_a_fresh_key_of_each_size() {
    let v = vault_with_key(KeySpec::default());
    for bits in [128u32, 256, 512] {
        let with = v.vault.datakey(T, "k", bits, None, None, true).unwrap();
        let plaintext = with.plaintext.as_ref().expect("plaintext asked for");
        assert_eq!(plaintext.len(), bits as usize / 8);
        assert!(with.ciphertext.text.starts_with("tresor:v1:"));
        assert_eq!(
            v.decrypt(T, "k", &with.ciphertext.text).unwrap(),
            plaintext.as_slice(),
            "the wrapped key decrypts to the plaintext key ({bits} bits)"
        );
        let wrapped_only = v.vault.datakey(T, "k", bits, None, None, false).unwrap();
        assert!(wrapped_only.plaintext.is_none());
        let unwrapped = v.decrypt(T, "k", &wrapped_only.ciphertext.text).unwrap();
        assert_eq!(unwrapped.len(), bits as usize / 8);
        assert_ne!(unwrapped, plaintext.as_slice(), "every data key is fresh");
        assert!(
            !format!("{with:?}").contains(&format!("{:?}", plaintext.as_slice())),
            "Debug must not show the key"
        );
    }
    for bits in [0u32, 64, 192, 1024] {
        let refused = v.vault.datakey(T, "k", bits, None, None, true);
        assert_eq!(invalid_field(refused), "bits");
    }
}

#[test]
fn datakey_on_a_derived_key_binds_context_and_associated_data() {
    let v = vault_with_key(derived());
    let key = v
        .vault
        .datakey(T, "k", 256, Some(b"file-42"), Some(b"ad"), true)
        .unwrap();
    let opened = v
        .vault
        .decrypt(
            T,
            "k",
            &DecryptRequest {
                ciphertext: &key.ciphertext.text,
                context: Some(b"file-42"),
                associated_data: Some(b"ad"),
            },
        )
        .unwrap();
    assert_eq!(opened.as_slice(), key.plaintext.unwrap().as_slice());
    let missing = v.vault.datakey(T, "k", 256, None, None, true);
    assert_eq!(invalid_field(missing), "context");
}

#[test]
fn hmac_tokens_are_stable_keyed_and_verifiable_for_every_algorithm() {
    let v = vault_with_key(KeySpec::default());
    v.key(T, "other", KeySpec::default());
    for (algorithm, len) in [
        (HmacAlgorithm::Sha2_224, 28),
        (HmacAlgorithm::Sha2_256, 32),
        (HmacAlgorithm::Sha2_384, 48),
        (HmacAlgorithm::Sha2_512, 64),
    ] {
        let token = v
            .vault
            .hmac(T, "k", b"alice@example.com", algorithm, None)
            .unwrap();
        assert!(token.text.starts_with("tresor:v1:"), "{token}");
        assert_eq!(split(&token.text).1.len(), len, "{algorithm:?}");
        assert_eq!(
            token,
            v.vault
                .hmac(T, "k", b"alice@example.com", algorithm, None)
                .unwrap(),
            "stable"
        );
        assert_ne!(
            token,
            v.vault
                .hmac(T, "k", b"bob@example.com", algorithm, None)
                .unwrap()
        );
        assert_ne!(
            token,
            v.vault
                .hmac(T, "other", b"alice@example.com", algorithm, None)
                .unwrap(),
            "keyed: another key gives another token"
        );
        assert!(
            v.vault
                .verify_hmac(T, "k", b"alice@example.com", &token.text, algorithm)
                .unwrap()
        );
        assert!(
            !v.vault
                .verify_hmac(T, "k", b"alice@example.co", &token.text, algorithm)
                .unwrap()
        );
        assert!(
            !v.vault
                .verify_hmac(T, "other", b"alice@example.com", &token.text, algorithm)
                .unwrap()
        );
    }
    // An algorithm other than the token's does not verify.
    let token = v
        .vault
        .hmac(T, "k", b"x", HmacAlgorithm::Sha2_256, None)
        .unwrap();
    assert!(
        !v.vault
            .verify_hmac(T, "k", b"x", &token.text, HmacAlgorithm::Sha2_512)
            .unwrap()
    );
    assert!(
        !v.vault
            .verify_hmac(T, "k", b"x", &token.text, HmacAlgorithm::Sha2_224)
            .unwrap()
    );
    // Parsing of algorithm names (the API's strings).
    assert_eq!(
        "sha2-384".parse::<HmacAlgorithm>().unwrap(),
        HmacAlgorithm::Sha2_384
    );
    assert_eq!(
        invalid_field("sha3-256".parse::<HmacAlgorithm>()),
        "algorithm"
    );
}

#[test]
fn hmac_versions_rotate_and_old_tokens_keep_verifying() {
    let v = vault_with_key(KeySpec::default());
    let alg = HmacAlgorithm::Sha2_256;
    let v1 = v.vault.hmac(T, "k", b"input", alg, None).unwrap();
    v.vault.rotate_key(T, "k").unwrap();
    let v2 = v.vault.hmac(T, "k", b"input", alg, None).unwrap();
    assert!(v2.text.starts_with("tresor:v2:"));
    assert_ne!(
        split(&v1.text).1,
        split(&v2.text).1,
        "each version has its own HMAC key"
    );
    assert_eq!(v.vault.hmac(T, "k", b"input", alg, Some(1)).unwrap(), v1);
    assert!(
        v.vault
            .verify_hmac(T, "k", b"input", &v1.text, alg)
            .unwrap()
    );
    assert!(
        v.vault
            .verify_hmac(T, "k", b"input", &v2.text, alg)
            .unwrap()
    );
    // A token relabelled with another existing version does not verify.
    assert!(
        !v.vault
            .verify_hmac(T, "k", b"input", &with_version(&v1.text, 2), alg)
            .unwrap()
    );
    // A version that does not exist, for hmac and for verify.
    assert_eq!(
        invalid_field(v.vault.hmac(T, "k", b"input", alg, Some(3))),
        "key_version"
    );
    assert_eq!(
        ciphertext_error(
            v.vault
                .verify_hmac(T, "k", b"input", &with_version(&v1.text, 9), alg)
        ),
        CiphertextError::UnknownVersion {
            version: 9,
            latest: 2
        }
    );
    // After min_decryption_version passes v1, its tokens are refused, not reported false.
    v.vault
        .configure_key(
            T,
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        ciphertext_error(v.vault.verify_hmac(T, "k", b"input", &v1.text, alg)),
        CiphertextError::BelowMinDecryption {
            version: 1,
            min_decryption: 2
        }
    );
    assert_eq!(
        ciphertext_error(v.vault.verify_hmac(T, "k", b"input", "vault:v1:AAAA", alg)),
        CiphertextError::WrongPrefix
    );
}

#[test]
fn key_configuration_changes_are_stored_and_follow_vault_rules() {
    let v = vault_with_key(KeySpec::default());
    v.vault.rotate_key(T, "k").unwrap();
    v.vault.rotate_key(T, "k").unwrap();
    let info = v
        .vault
        .configure_key(
            T,
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(2),
                min_encryption_version: Some(3),
                deletion_allowed: Some(true),
                exportable: Some(true),
                auto_rotate_period: Some(86_400),
                deletion_window: None,
            },
        )
        .unwrap();
    let c = &info.config;
    assert_eq!(
        (
            c.min_decryption_version,
            c.min_encryption_version,
            c.deletion_allowed,
            c.exportable,
            c.auto_rotate_period
        ),
        (2, 3, true, true, 86_400)
    );
    // The change is in storage, not only in memory.
    let v = v.restart();
    assert_eq!(v.vault.key_info(T, "k").unwrap().config, info.config);
    // Export cannot be revoked: false is a no-op, as in Vault.
    let after = v
        .vault
        .configure_key(
            T,
            "k",
            &KeyConfigUpdate {
                exportable: Some(false),
                deletion_allowed: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(after.config.exportable);
    assert!(!after.config.deletion_allowed);
    // A refused update changes nothing at all, not even its valid fields.
    let refused = v.vault.configure_key(
        T,
        "k",
        &KeyConfigUpdate {
            deletion_allowed: Some(true),
            auto_rotate_period: Some(60),
            ..Default::default()
        },
    );
    assert_eq!(invalid_field(refused), "auto_rotate_period");
    assert!(!v.vault.key_info(T, "k").unwrap().config.deletion_allowed);
    // Settings on a missing key.
    assert!(matches!(
        v.vault
            .configure_key(T, "missing", &KeyConfigUpdate::default()),
        Err(Error::KeyNotFound { .. })
    ));
}

#[test]
fn auto_rotation_rotates_only_keys_that_are_due() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let vault = Vault::open(
        Arc::new(SledStore::open(dir.path()).unwrap()),
        VaultOptions::new("test").with_clock(clock.clone()),
    )
    .unwrap();
    let alice = CustodianIdentity::generate("alice").unwrap();
    vault
        .init(&InitRequest {
            custodians: vec![alice.public().clone()],
            threshold: 1,
            four_eyes: None,
        })
        .unwrap();
    vault
        .unseal(vec![
            vault.sealed_share("alice").unwrap().open(&alice).unwrap(),
        ])
        .unwrap();
    vault.create_tenant(T, &TenantSpec::default()).unwrap();
    let hourly = KeySpec {
        auto_rotate_period: 3600,
        ..Default::default()
    };
    vault.create_key(T, "hourly", hourly).unwrap();
    vault.create_key(T, "manual", KeySpec::default()).unwrap();
    assert!(vault.rotate_due_keys().unwrap().is_empty());
    clock.advance(3599);
    assert!(vault.rotate_due_keys().unwrap().is_empty());
    // Vault rotates once the period has passed (it compares strictly; either way, one second
    // later the key is due).
    clock.advance(2);
    let rotated = vault.rotate_due_keys().unwrap();
    assert_eq!(rotated.len(), 1);
    assert_eq!(
        (rotated[0].name.as_str(), rotated[0].latest_version),
        ("hourly", 2)
    );
    assert_eq!(rotated[0].rotated_at, 1_003_601);
    assert!(
        vault.rotate_due_keys().unwrap().is_empty(),
        "not due again yet"
    );
    assert_eq!(vault.key_info(T, "manual").unwrap().latest_version, 1);
    // A manual rotation between listing the due keys and rotating them makes the key no longer
    // due: it is rotated once, not twice.
    clock.advance(3601);
    assert_eq!(
        vault.due_keys().unwrap(),
        [(T.to_owned(), "hourly".to_owned())]
    );
    assert_eq!(vault.rotate_key(T, "hourly").unwrap().latest_version, 3);
    assert!(vault.rotate_key_if_due(T, "hourly").unwrap().is_none());
    assert_eq!(vault.key_info(T, "hourly").unwrap().latest_version, 3);
    let refused = vault.create_key(
        T,
        "too-fast",
        KeySpec {
            auto_rotate_period: 59,
            ..Default::default()
        },
    );
    assert_eq!(invalid_field(refused), "auto_rotate_period");
}

#[test]
fn export_hands_out_material_only_for_exportable_keys() {
    let v = vault_with_key(KeySpec {
        exportable: true,
        ..Default::default()
    });
    v.key(T, "locked-in", KeySpec::default());
    v.vault.rotate_key(T, "k").unwrap();
    let all = v
        .vault
        .export_key(T, "k", ExportKind::EncryptionKey, None)
        .unwrap();
    assert_eq!(all.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2]);
    assert_ne!(all[0].1.expose(), all[1].1.expose());
    let hmac = v
        .vault
        .export_key(T, "k", ExportKind::HmacKey, None)
        .unwrap();
    assert_ne!(
        hmac[0].1.expose(),
        all[0].1.expose(),
        "the HMAC key is derived, not the encryption key itself"
    );
    let one = v
        .vault
        .export_key(T, "k", ExportKind::EncryptionKey, Some(2))
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].0, one[0].1.expose()), (2, all[1].1.expose()));
    // Export is stable: the same material every time, also after a restart.
    let v = v.restart();
    let again = v
        .vault
        .export_key(T, "k", ExportKind::EncryptionKey, None)
        .unwrap();
    assert_eq!(again[1].1.expose(), all[1].1.expose());
    assert_eq!(
        invalid_field(
            v.vault
                .export_key(T, "k", ExportKind::EncryptionKey, Some(7))
        ),
        "version"
    );
    for kind in [ExportKind::EncryptionKey, ExportKind::HmacKey] {
        assert!(matches!(
            v.vault.export_key(T, "locked-in", kind, None),
            Err(Error::NotPermitted(_))
        ));
    }
    // Debug never shows the material.
    assert_eq!(format!("{:?}", all[0].1), "SecretKey([REDACTED])");
}

#[test]
fn export_leaves_out_versions_below_min_decryption_version() {
    // Vault's transit: a version retired by min_decryption_version is not exported, and asking
    // for it by number is refused.
    let v = vault_with_key(KeySpec {
        exportable: true,
        ..Default::default()
    });
    v.vault.rotate_key(T, "k").unwrap();
    v.vault
        .configure_key(
            T,
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    for kind in [ExportKind::EncryptionKey, ExportKind::HmacKey] {
        let exported = v.vault.export_key(T, "k", kind, None).unwrap();
        assert_eq!(exported.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2]);
        assert_eq!(
            invalid_field(v.vault.export_key(T, "k", kind, Some(1))),
            "version"
        );
    }
}

#[test]
fn batches_return_one_result_per_item_in_order() {
    let v = vault_with_key(KeySpec::default());
    let items = [
        EncryptRequest {
            plaintext: b"first",
            ..Default::default()
        },
        EncryptRequest {
            plaintext: b"bad: context on a non-derived key",
            context: Some(b"ctx"),
            ..Default::default()
        },
        EncryptRequest {
            plaintext: b"third",
            associated_data: Some(b"ad"),
            ..Default::default()
        },
        EncryptRequest {
            plaintext: b"bad: no such version",
            key_version: Some(9),
            ..Default::default()
        },
        EncryptRequest {
            plaintext: b"fifth",
            ..Default::default()
        },
    ];
    let encrypted = v.vault.encrypt_batch(T, "k", &items).unwrap();
    assert_eq!(encrypted.len(), 5);
    assert!(
        matches!(
            &encrypted[1],
            Err(Error::InvalidInput {
                field: "context",
                ..
            })
        ),
        "{:?}",
        encrypted[1]
    );
    assert!(
        matches!(
            &encrypted[3],
            Err(Error::InvalidInput {
                field: "key_version",
                ..
            })
        ),
        "{:?}",
        encrypted[3]
    );
    let first = encrypted[0].as_ref().unwrap();
    let third = encrypted[2].as_ref().unwrap();
    let fifth = encrypted[4].as_ref().unwrap();
    assert_eq!(v.decrypt(T, "k", &first.text).unwrap(), b"first");
    assert_eq!(v.decrypt(T, "k", &fifth.text).unwrap(), b"fifth");

    let decrypt_items = [
        DecryptRequest {
            ciphertext: &first.text,
            ..Default::default()
        },
        DecryptRequest {
            ciphertext: "tresor:v1:not base64!",
            ..Default::default()
        },
        DecryptRequest {
            ciphertext: &third.text,
            associated_data: Some(b"ad"),
            ..Default::default()
        },
        DecryptRequest {
            ciphertext: &third.text, // without its associated data
            ..Default::default()
        },
        DecryptRequest {
            ciphertext: &fifth.text,
            ..Default::default()
        },
    ];
    let decrypted = v.vault.decrypt_batch(T, "k", &decrypt_items).unwrap();
    assert_eq!(decrypted.len(), 5);
    assert_eq!(decrypted[0].as_ref().unwrap().as_slice(), b"first");
    assert!(matches!(
        decrypted[1],
        Err(Error::Ciphertext(CiphertextError::NotBase64))
    ));
    assert_eq!(decrypted[2].as_ref().unwrap().as_slice(), b"third");
    assert!(matches!(
        decrypted[3],
        Err(Error::Ciphertext(CiphertextError::Authentication))
    ));
    assert_eq!(decrypted[4].as_ref().unwrap().as_slice(), b"fifth");

    v.vault.rotate_key(T, "k").unwrap();
    let rewrapped = v.vault.rewrap_batch(T, "k", &decrypt_items, None).unwrap();
    assert_eq!(rewrapped.len(), 5);
    assert!(matches!(
        rewrapped[1],
        Err(Error::Ciphertext(CiphertextError::NotBase64))
    ));
    assert!(matches!(
        rewrapped[3],
        Err(Error::Ciphertext(CiphertextError::Authentication))
    ));
    for (i, expected) in [(0, &b"first"[..]), (4, b"fifth")] {
        let ct = rewrapped[i].as_ref().unwrap();
        assert!(ct.text.starts_with("tresor:v2:"), "{ct}");
        assert_eq!(v.decrypt(T, "k", &ct.text).unwrap(), expected);
    }
    let ct = rewrapped[2].as_ref().unwrap();
    assert!(ct.text.starts_with("tresor:v2:"));
    assert_eq!(
        v.vault
            .decrypt(
                T,
                "k",
                &DecryptRequest {
                    ciphertext: &ct.text,
                    associated_data: Some(b"ad"),
                    ..Default::default()
                }
            )
            .unwrap()
            .as_slice(),
        b"third"
    );

    let alg = HmacAlgorithm::Sha2_256;
    let inputs: [&[u8]; 3] = [b"a", b"", b"c"];
    let tokens = v.vault.hmac_batch(T, "k", &inputs, alg, None).unwrap();
    for (input, token) in inputs.iter().zip(&tokens) {
        assert_eq!(
            token.as_ref().unwrap(),
            &v.vault.hmac(T, "k", input, alg, None).unwrap()
        );
    }
    let a = tokens[0].as_ref().unwrap().text.as_str();
    let c = tokens[2].as_ref().unwrap().text.as_str();
    let checks = v
        .vault
        .verify_hmac_batch(
            T,
            "k",
            &[(b"a", a), (b"c", "no prefix"), (b"c", c), (b"a", c)],
            alg,
        )
        .unwrap();
    assert!(matches!(checks[0], Ok(true)));
    assert!(matches!(
        checks[1],
        Err(Error::Ciphertext(CiphertextError::WrongPrefix))
    ));
    assert!(matches!(checks[2], Ok(true)));
    assert!(matches!(checks[3], Ok(false)));
    // A batch version that does not exist fails every item, and says so per item.
    let bad_version = v.vault.hmac_batch(T, "k", &inputs, alg, Some(5)).unwrap();
    assert!(bad_version.iter().all(|r| matches!(
        r,
        Err(Error::InvalidInput {
            field: "key_version",
            ..
        })
    )));
    // A missing key or tenant fails the batch as a whole.
    assert!(matches!(
        v.vault.encrypt_batch(T, "missing", &items),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        v.vault.decrypt_batch("missing", "k", &decrypt_items),
        Err(Error::TenantNotFound(t)) if t == "missing"
    ));
}

#[test]
fn tenants_and_keys_are_created_listed_and_described() {
    let v = TestVault::new();
    v.tenant("zeta", ProtectionLevel::One);
    v.tenant("alpha", ProtectionLevel::Two);
    assert_eq!(v.vault.list_tenants().unwrap(), ["alpha", "zeta"]);
    assert!(matches!(
        v.vault.create_tenant("alpha", &TenantSpec::default()),
        Err(Error::TenantExists(t)) if t == "alpha"
    ));
    for bad in [
        "",
        "Upper",
        "-dash",
        "sys",
        "metrics",
        "a/b",
        &"a".repeat(64),
    ] {
        assert_eq!(
            invalid_field(v.vault.create_tenant(bad, &TenantSpec::default())),
            "tenant",
            "{bad:?}"
        );
    }
    let info = v.vault.tenant_info("zeta").unwrap();
    assert_eq!((info.level, info.kek_version, info.locked), (1, 0, false));
    let info = v.vault.tenant_info("alpha").unwrap();
    assert_eq!((info.level, info.kek_version, info.locked), (2, 1, false));

    for name in ["b-key", "a.key", "C_key"] {
        v.key("alpha", name, KeySpec::default());
    }
    assert_eq!(
        v.vault.list_keys("alpha").unwrap(),
        ["C_key", "a.key", "b-key"],
        "sorted by byte order"
    );
    assert!(v.vault.list_keys("zeta").unwrap().is_empty());
    assert_eq!(v.vault.tenant_info("alpha").unwrap().keys, 3);
    assert!(matches!(
        v.vault.create_key("alpha", "a.key", KeySpec::default()),
        Err(Error::KeyExists { tenant, key }) if tenant == "alpha" && key == "a.key"
    ));
    for bad in ["", ".hidden", "a/b", "a b"] {
        assert_eq!(
            invalid_field(v.vault.create_key("alpha", bad, KeySpec::default())),
            "name"
        );
    }
    let key = v.vault.key_info("alpha", "a.key").unwrap();
    assert_eq!((key.tenant.as_str(), key.name.as_str()), ("alpha", "a.key"));
    assert_eq!(key.latest_version, 1);
    assert_eq!(
        key.versions.keys().copied().collect::<BTreeSet<_>>(),
        [1].into()
    );
    let c = &key.config;
    assert_eq!(
        (
            c.derived,
            c.convergent_encryption,
            c.exportable,
            c.deletion_allowed,
            c.min_decryption_version,
            c.min_encryption_version,
            c.min_available_version,
            c.auto_rotate_period
        ),
        (false, false, false, false, 1, 0, 0, 0),
        "Vault's defaults"
    );
    assert!(matches!(
        v.vault.key_info("alpha", "missing"),
        Err(Error::KeyNotFound { tenant, key }) if tenant == "alpha" && key == "missing"
    ));
    assert!(matches!(
        v.vault.create_key("missing", "k", KeySpec::default()),
        Err(Error::TenantNotFound(t)) if t == "missing"
    ));
    assert!(matches!(
        v.vault.tenant_info("missing"),
        Err(Error::TenantNotFound(_))
    ));
}

/// Two vaults on one store, as two nodes on one database: what one changes, the other's cache
/// does not know until told (`Vault::invalidate`, what the change-log follower calls), except
/// that a ciphertext naming a version newer than its cached ring makes it reload the ring.
#[test]
fn a_second_vault_on_the_same_store_follows_changes_it_is_told_of() {
    let v = TestVault::new();
    v.tenant("t", ProtectionLevel::Two);
    v.key("t", "k", KeySpec::default());
    let other = Vault::open(v.store.clone(), VaultOptions::new("test")).unwrap();
    assert!(!other.unseal(vec![v.share(0)]).unwrap().sealed);
    let v1 = v.encrypt("t", "k", b"one");
    // The other vault caches the ring (version 1 only).
    assert_eq!(
        crate::common::decrypt(&other, "t", "k", &v1).unwrap(),
        b"one"
    );
    v.vault.rotate_key("t", "k").unwrap();
    let v2 = v.encrypt("t", "k", b"two");
    assert!(v2.starts_with("tresor:v2:"), "{v2}");
    // Version 2 is newer than its cached ring: it reloads instead of failing, in batches too,
    // and rewraps to the version named.
    assert_eq!(
        crate::common::decrypt(&other, "t", "k", &v2).unwrap(),
        b"two"
    );
    v.vault.rotate_key("t", "k").unwrap();
    let v3 = v.encrypt("t", "k", b"three");
    let items = [v1.as_str(), v3.as_str()].map(|ciphertext| DecryptRequest {
        ciphertext,
        ..Default::default()
    });
    let results = other.decrypt_batch("t", "k", &items).unwrap();
    assert_eq!(results[1].as_ref().unwrap().as_slice(), b"three");
    v.vault.rotate_key("t", "k").unwrap();
    let rewrapped = other
        .rewrap(
            "t",
            "k",
            &DecryptRequest {
                ciphertext: &v1,
                ..Default::default()
            },
            Some(4),
        )
        .unwrap();
    assert!(
        rewrapped.text.starts_with("tresor:v4:"),
        "{}",
        rewrapped.text
    );
    // A version that exists nowhere is still refused after the reload.
    let v9 = with_version(&v1, 9);
    assert!(matches!(
        ciphertext_error(crate::common::decrypt(&other, "t", "k", &v9)),
        CiphertextError::UnknownVersion { version: 9, .. }
    ));

    // A configuration change is not visible until the other vault is told of the path.
    v.vault
        .configure_key(
            "t",
            "k",
            &KeyConfigUpdate {
                min_decryption_version: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        crate::common::decrypt(&other, "t", "k", &v1).is_ok(),
        "control: the other vault's cache still has the old configuration"
    );
    other.invalidate(["keys/t/k"]);
    assert!(matches!(
        ciphertext_error(crate::common::decrypt(&other, "t", "k", &v1)),
        CiphertextError::BelowMinDecryption { version: 1, .. }
    ));

    // A tenant KEK rotated elsewhere: told of the tenant record, the other vault reloads the
    // tenant (its new KEK) and its rings, and everything still decrypts.
    v.vault.rotate_tenant_kek("t").unwrap();
    other.invalidate(["tenants/t"]);
    assert_eq!(
        crate::common::decrypt(&other, "t", "k", &v2).unwrap(),
        b"two"
    );
    other.invalidate_all();
    assert_eq!(
        crate::common::decrypt(&other, "t", "k", &v3).unwrap(),
        b"three"
    );
}
