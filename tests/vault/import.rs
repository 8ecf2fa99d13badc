//! Bring your own key (issue 17; docs/format.md, section 11) through the library: imports in
//! Vault's wire format land as imported versions under their source numbers, decrypt `vault:`
//! ciphertexts and never encrypt; the first encryption adds a Tresor version after them. Every
//! refusal changes nothing. The real OpenBao round trip is tests/server/openbao.rs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_core::{
    CiphertextError, DecryptRequest, EncryptRequest, Error, KeySpec, ProtectionLevel,
};
use tresor_crypto::SecretKey;
use tresor_crypto::byok::{vault_gcm_seal_for_tests, wrap_to_pem};

use crate::common::{TestVault, ciphertext_error};

const T: &str = "payments";

fn vault_text(version: u32, key: &SecretKey, plaintext: &[u8], aad: &[u8]) -> String {
    format!(
        "vault:v{version}:{}",
        STANDARD.encode(vault_gcm_seal_for_tests(key, plaintext, aad))
    )
}

fn wrapped(v: &TestVault, tenant: &str, key: &SecretKey) -> Vec<u8> {
    let pem = v.vault.wrapping_key_pem(tenant).unwrap();
    wrap_to_pem(&pem, key.expose()).unwrap()
}

fn decrypt(
    v: &TestVault,
    key: &str,
    text: &str,
    context: Option<&[u8]>,
    ad: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    v.vault
        .decrypt(
            T,
            key,
            &DecryptRequest {
                ciphertext: text,
                context,
                associated_data: ad,
            },
        )
        .map(|p| p.to_vec())
}

#[test]
fn imported_versions_keep_their_numbers_decrypt_vault_texts_and_never_encrypt() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    let (k1, k2, k3) = (
        SecretKey::random(),
        SecretKey::random(),
        SecretKey::random(),
    );
    let pem = v.vault.wrapping_key_pem(T).unwrap();
    assert_eq!(
        pem,
        v.vault.wrapping_key_pem(T).unwrap(),
        "made once, then kept"
    );
    let info = v
        .vault
        .import_key(T, "k", KeySpec::default(), &wrapped(&v, T, &k1))
        .unwrap();
    assert_eq!(
        (info.latest_version, info.imported_versions.clone()),
        (1, vec![1])
    );
    v.vault
        .import_key_version(T, "k", None, &wrapped(&v, T, &k2))
        .unwrap();
    // An explicit number; an existing one and 0 are refused.
    let info = v
        .vault
        .import_key_version(T, "k", Some(3), &wrapped(&v, T, &k3))
        .unwrap();
    assert_eq!(info.imported_versions, [1, 2, 3]);
    for bad in [Some(2), Some(0)] {
        assert!(matches!(
            v.vault
                .import_key_version(T, "k", bad, &wrapped(&v, T, &k3)),
            Err(Error::InvalidInput {
                field: "version",
                ..
            })
        ));
    }

    let old = vault_text(1, &k1, b"one", b"");
    let bound = vault_text(3, &k3, b"three", b"order-1");
    assert_eq!(decrypt(&v, "k", &old, None, None).unwrap(), b"one");
    assert_eq!(
        decrypt(&v, "k", &bound, None, Some(b"order-1")).unwrap(),
        b"three"
    );
    assert_eq!(
        ciphertext_error(decrypt(&v, "k", &bound, None, Some(b"order-2"))),
        CiphertextError::Authentication
    );
    // Version 3's text under version 2's number: the key does not match.
    let moved = bound.replacen("vault:v3:", "vault:v2:", 1);
    assert_eq!(
        ciphertext_error(decrypt(&v, "k", &moved, None, Some(b"order-1"))),
        CiphertextError::Authentication
    );
    assert_eq!(
        ciphertext_error(decrypt(
            &v,
            "k",
            &old.replacen("vault:", "tresor:", 1),
            None,
            None
        )),
        CiphertextError::WrongOrigin {
            version: 1,
            imported: true
        }
    );
    // Asked to encrypt with an imported version: refused.
    assert!(matches!(
        v.vault.encrypt(
            T,
            "k",
            &EncryptRequest {
                plaintext: b"x",
                key_version: Some(3),
                ..Default::default()
            }
        ),
        Err(Error::InvalidInput {
            field: "key_version",
            ..
        })
    ));

    // The first encryption adds Tresor version 4; rewrap goes there too.
    let sealed = v.encrypt(T, "k", b"new");
    assert!(sealed.starts_with("tresor:v4:"), "{sealed}");
    let rewrapped = v
        .vault
        .rewrap(
            T,
            "k",
            &DecryptRequest {
                ciphertext: &old,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert!(rewrapped.text.starts_with("tresor:v4:"));
    assert_eq!(
        decrypt(&v, "k", &rewrapped.text, None, None).unwrap(),
        b"one"
    );
    assert_eq!(
        ciphertext_error(decrypt(
            &v,
            "k",
            &sealed.replacen("tresor:", "vault:", 1),
            None,
            None
        )),
        CiphertextError::WrongOrigin {
            version: 4,
            imported: false
        }
    );
    // From now on nothing more is imported, and nothing replaces the key.
    assert!(matches!(
        v.vault.import_key_version(T, "k", None, &wrapped(&v, T, &k1)),
        Err(Error::NotPermitted(m)) if m.contains("Tresor version 4")
    ));
    assert!(matches!(
        v.vault
            .import_key(T, "k", KeySpec::default(), &wrapped(&v, T, &k1)),
        Err(Error::KeyExists { .. })
    ));

    // A restart keeps all of it.
    let v = v.restart();
    assert_eq!(
        decrypt(&v, "k", &bound, None, Some(b"order-1")).unwrap(),
        b"three"
    );
    assert_eq!(decrypt(&v, "k", &sealed, None, None).unwrap(), b"new");
    assert_eq!(v.vault.key_info(T, "k").unwrap().latest_version, 4);
}

#[test]
fn derived_imports_and_refused_imports() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Three);
    v.tenant("other", ProtectionLevel::Two);
    let key = SecretKey::random();
    let spec = KeySpec {
        derived: true,
        convergent_encryption: true,
        ..KeySpec::default()
    };
    v.vault
        .import_key(T, "d", spec.clone(), &wrapped(&v, T, &key))
        .unwrap();
    // Vault's derived key: HKDF-SHA256(key, no salt, info = context).
    let derived = tresor_crypto::derive_key(&key, b"user-1");
    let text = vault_text(1, &derived, b"per user", b"");
    assert_eq!(
        decrypt(&v, "d", &text, Some(b"user-1"), None).unwrap(),
        b"per user"
    );
    assert_eq!(
        ciphertext_error(decrypt(&v, "d", &text, Some(b"user-2"), None)),
        CiphertextError::Authentication
    );

    // Refused, each changing nothing: wrapped for another tenant, tampered, not a key, an
    // exportable import, and after the wrapping key was rotated.
    let for_other = wrapped(&v, "other", &key);
    let mut tampered = wrapped(&v, T, &key);
    *tampered.last_mut().unwrap() ^= 1;
    let short = wrap_to_pem(&v.vault.wrapping_key_pem(T).unwrap(), &[1u8; 16]).unwrap();
    for (bytes, what) in [
        (for_other.as_slice(), "another wrapping key"),
        (tampered.as_slice(), "integrity check"),
        (short.as_slice(), "32 bytes"),
        (&b"short"[..], "bytes"),
    ] {
        match v.vault.import_key(T, "x", KeySpec::default(), bytes) {
            Err(Error::InvalidInput {
                field: "ciphertext",
                reason,
            }) => {
                assert!(reason.contains(what), "{reason}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(matches!(
        v.vault.import_key(
            T,
            "x",
            KeySpec {
                exportable: true,
                ..KeySpec::default()
            },
            &wrapped(&v, T, &key)
        ),
        Err(Error::InvalidInput {
            field: "exportable",
            ..
        })
    ));
    let before = wrapped(&v, T, &key);
    let old_pem = v.vault.wrapping_key_pem(T).unwrap();
    assert_ne!(v.vault.rotate_wrapping_key(T).unwrap(), old_pem);
    assert!(matches!(
        v.vault.import_key(T, "x", KeySpec::default(), &before),
        Err(Error::InvalidInput {
            field: "ciphertext",
            ..
        })
    ));
    assert_eq!(v.vault.list_keys(T).unwrap(), ["d"]);

    // A shred takes the wrapping key with it.
    let record = v.raw("wrapping/payments");
    v.vault.shred_tenant(T).unwrap();
    assert!(
        tresor_core::Store::get(v.store.as_ref(), "wrapping/payments")
            .unwrap()
            .is_none()
    );
    assert!(crate::common::find_any_chunk(&v.data_dir(), &record).is_none());
}
