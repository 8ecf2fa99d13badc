//! The ciphertext and HMAC token formats of docs/format.md (sections 2 and 3), checked against an
//! independent implementation written here from the specification (fed with exported key
//! material), and the environment binding: a ciphertext of one environment never decrypts in
//! another, and a data directory never opens under another environment's name.
//!
//! ```text
//! ciphertext = "tresor:v" N ":" base64(nonce ‖ AES-256-GCM-SIV ciphertext ‖ tag)
//! aad        = LP("tresor-ct-v1") ‖ LP(environment) ‖ LP(tenant) ‖ LP(key) ‖ u32(N)
//!              ‖ LP(context) ‖ LP(associated_data)
//! key        = HKDF-SHA256(material_N, info = LP("tresor-encrypt-v1"))                 not derived
//!            = HKDF-SHA256(material_N, info = LP("tresor-derive-v1") ‖ LP(context))    derived
//! nonce      = HMAC-SHA256(HKDF(material_N, LP("tresor-convergent-nonce-v1") ‖ LP(context)),
//!                          aad ‖ plaintext)[..12]                                    convergent
//! hmac       = HMAC-SHA2(HKDF(material_N, LP("tresor-hmac-v1")), input)
//! ```
//! LP(x) is x's length as a big-endian u32 followed by x.

use crate::common::{TestVault, ciphertext_error, invalid_field, join, split};
use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use hmac::Mac;
use tresor_core::CiphertextError;
use tresor_core::DecryptRequest;
use tresor_core::EncryptRequest;
use tresor_core::ExportKind;
use tresor_core::HmacAlgorithm;
use tresor_core::KeySpec;
use tresor_core::ProtectionLevel;
use tresor_core::SledStore;
use tresor_core::Vault;
use tresor_core::VaultOptions;

const T: &str = "payments";

fn lp(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

fn hkdf(material: &[u8; 32], info: &[&[u8]]) -> [u8; 32] {
    let mut encoded = Vec::new();
    for field in info {
        lp(&mut encoded, field);
    }
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(None, material)
        .expand(&encoded, &mut out)
        .unwrap();
    out
}

/// What the AAD binds, field by field.
#[derive(Clone)]
struct Binding<'a> {
    environment: &'a str,
    tenant: &'a str,
    key: &'a str,
    version: u32,
    context: &'a [u8],
    associated_data: &'a [u8],
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::new();
        lp(&mut aad, b"tresor-ct-v1");
        lp(&mut aad, self.environment.as_bytes());
        lp(&mut aad, self.tenant.as_bytes());
        lp(&mut aad, self.key.as_bytes());
        aad.extend_from_slice(&self.version.to_be_bytes());
        lp(&mut aad, self.context);
        lp(&mut aad, self.associated_data);
        aad
    }
}

fn cipher(material: &[u8; 32], derived_context: Option<&[u8]>) -> Aes256GcmSiv {
    let key = match derived_context {
        None => hkdf(material, &[b"tresor-encrypt-v1"]),
        Some(context) => hkdf(material, &[b"tresor-derive-v1", context]),
    };
    Aes256GcmSiv::new(&key.into())
}

fn reference_seal(
    material: &[u8; 32],
    derived: bool,
    binding: &Binding<'_>,
    nonce: [u8; 12],
    plaintext: &[u8],
) -> Vec<u8> {
    let aad = binding.aad();
    let sealed = cipher(material, derived.then_some(binding.context))
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .unwrap();
    [&nonce[..], &sealed].concat()
}

fn reference_open(
    material: &[u8; 32],
    derived: bool,
    binding: &Binding<'_>,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let aad = binding.aad();
    let nonce: [u8; 12] = payload[..12].try_into().unwrap();
    cipher(material, derived.then_some(binding.context))
        .decrypt(
            &nonce.into(),
            Payload {
                msg: &payload[12..],
                aad: &aad,
            },
        )
        .ok()
}

fn convergent_nonce(material: &[u8; 32], binding: &Binding<'_>, plaintext: &[u8]) -> [u8; 12] {
    let nonce_key = hkdf(material, &[b"tresor-convergent-nonce-v1", binding.context]);
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&nonce_key).unwrap();
    mac.update(&binding.aad());
    mac.update(plaintext);
    mac.finalize().into_bytes()[..12].try_into().unwrap()
}

fn material(v: &TestVault, key: &str, version: u32) -> [u8; 32] {
    let exported = v
        .vault
        .export_key(T, key, ExportKind::EncryptionKey, Some(version))
        .unwrap();
    *exported[0].1.expose()
}

fn exportable(derived: bool, convergent: bool) -> KeySpec {
    KeySpec {
        derived,
        convergent_encryption: convergent,
        exportable: true,
        ..Default::default()
    }
}

#[test]
fn vault_ciphertexts_follow_the_documented_format() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    for (name, derived, convergent) in [
        ("plain", false, false),
        ("derived", true, false),
        ("convergent", true, true),
    ] {
        v.key(T, name, exportable(derived, convergent));
        v.vault.rotate_key(T, name).unwrap();
        let context: &[u8] = if derived { b"customer-7" } else { b"" };
        let plaintext = b"4111 1111 1111 1111";
        let ciphertext = v
            .vault
            .encrypt(
                T,
                name,
                &EncryptRequest {
                    plaintext,
                    context: derived.then_some(context),
                    associated_data: Some(b"row-9"),
                    ..Default::default()
                },
            )
            .unwrap();
        let (version, payload) = split(&ciphertext.text);
        assert_eq!(version, 2);
        let binding = Binding {
            environment: "test",
            tenant: T,
            key: name,
            version,
            context,
            associated_data: b"row-9",
        };
        let material = material(&v, name, 2);
        assert_eq!(
            reference_open(&material, derived, &binding, &payload).as_deref(),
            Some(&plaintext[..]),
            "{name}: the reference implementation opens the vault's ciphertext"
        );
        if convergent {
            let nonce = convergent_nonce(&material, &binding, plaintext);
            assert_eq!(&payload[..12], &nonce, "{name}: derived nonce");
            assert_eq!(
                join(
                    2,
                    &reference_seal(&material, derived, &binding, nonce, plaintext)
                ),
                ciphertext.text,
                "{name}: byte-identical"
            );
        }
        // And the vault opens what the reference seals.
        let foreign = join(
            2,
            &reference_seal(&material, derived, &binding, [7; 12], b"from outside"),
        );
        let opened = v
            .vault
            .decrypt(
                T,
                name,
                &DecryptRequest {
                    ciphertext: &foreign,
                    context: derived.then_some(context),
                    associated_data: Some(b"row-9"),
                },
            )
            .unwrap();
        assert_eq!(opened.as_slice(), b"from outside", "{name}");
    }
}

/// Seals with the right key material but one AAD field changed: only the binding can make the
/// vault refuse it. The unchanged binding is the control.
#[test]
fn every_aad_field_is_bound() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", exportable(true, false));
    v.vault.rotate_key(T, "k").unwrap();
    let material = material(&v, "k", 2);
    let right = Binding {
        environment: "test",
        tenant: T,
        key: "k",
        version: 2,
        context: b"ctx",
        associated_data: b"ad",
    };
    let decrypt = |payload: &[u8]| {
        v.vault.decrypt(
            T,
            "k",
            &DecryptRequest {
                ciphertext: &join(2, payload),
                context: Some(b"ctx"),
                associated_data: Some(b"ad"),
            },
        )
    };
    let control = reference_seal(&material, true, &right, [1; 12], b"p");
    assert_eq!(decrypt(&control).unwrap().as_slice(), b"p");
    let variants = [
        Binding {
            environment: "production",
            ..right.clone()
        },
        Binding {
            tenant: "other",
            ..right.clone()
        },
        Binding {
            key: "other",
            ..right.clone()
        },
        Binding {
            version: 1,
            ..right.clone()
        },
        Binding {
            associated_data: b"other",
            ..right.clone()
        },
        // Field boundaries matter: moving a byte from one field to the next is another AAD.
        Binding {
            context: b"ct",
            associated_data: b"xad",
            ..right.clone()
        },
    ];
    for (i, wrong) in variants.iter().enumerate() {
        // The right derived key, the wrong AAD.
        let aad = wrong.aad();
        let sealed = cipher(&material, Some(b"ctx"))
            .encrypt(
                &[1; 12].into(),
                Payload {
                    msg: b"p",
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(
            ciphertext_error(decrypt(&[&[1; 12][..], &sealed].concat())),
            CiphertextError::Authentication,
            "variant {i}"
        );
    }
    // The context also selects the derived key.
    let other_context = Binding {
        context: b"other",
        ..right.clone()
    };
    let sealed = reference_seal(&material, true, &other_context, [1; 12], b"p");
    assert_eq!(
        ciphertext_error(decrypt(&sealed)),
        CiphertextError::Authentication
    );
}

#[test]
fn hmac_tokens_follow_the_documented_format() {
    let v = TestVault::new();
    v.tenant(T, ProtectionLevel::One);
    v.key(T, "k", exportable(false, false));
    let material = material(&v, "k", 1);
    let hmac_key = hkdf(&material, &[b"tresor-hmac-v1"]);
    let exported = v
        .vault
        .export_key(T, "k", ExportKind::HmacKey, None)
        .unwrap();
    assert_eq!(exported[0].1.expose(), &hmac_key);
    fn mac<M: Mac + hmac::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::KeyInit>::new_from_slice(key).unwrap();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    let input = b"alice@example.com";
    for (algorithm, expected) in [
        (
            HmacAlgorithm::Sha2_224,
            mac::<hmac::Hmac<sha2::Sha224>>(&hmac_key, input),
        ),
        (
            HmacAlgorithm::Sha2_256,
            mac::<hmac::Hmac<sha2::Sha256>>(&hmac_key, input),
        ),
        (
            HmacAlgorithm::Sha2_384,
            mac::<hmac::Hmac<sha2::Sha384>>(&hmac_key, input),
        ),
        (
            HmacAlgorithm::Sha2_512,
            mac::<hmac::Hmac<sha2::Sha512>>(&hmac_key, input),
        ),
    ] {
        assert_eq!(
            v.vault.hmac(T, "k", input, algorithm, None).unwrap().text,
            join(1, &expected),
            "{algorithm:?}"
        );
    }
}

#[test]
fn a_ciphertext_never_crosses_environments() {
    let production = TestVault::with(1, 1, "production");
    let test = TestVault::with(1, 1, "test");
    assert_eq!(production.vault.environment(), "production");
    assert_eq!(
        production.vault.seal_status().unwrap().environment,
        "production"
    );
    for v in [&production, &test] {
        v.tenant(T, ProtectionLevel::Two);
        v.key(T, "k", KeySpec::default());
    }
    let from_production = production.encrypt(T, "k", b"live card number");
    assert_eq!(
        ciphertext_error(test.decrypt(T, "k", &from_production)),
        CiphertextError::Authentication
    );
    assert_eq!(
        production.decrypt(T, "k", &from_production).unwrap(),
        b"live card number"
    );
}

#[test]
fn a_data_directory_opens_only_under_its_own_environment() {
    let v = TestVault::with(1, 1, "production");
    v.tenant(T, ProtectionLevel::Two);
    v.key(T, "k", KeySpec::default());
    let ciphertext = v.encrypt(T, "k", b"x");
    for other in ["test", "staging"] {
        let Err(err) = Vault::open(v.store.clone(), VaultOptions::new(other)) else {
            panic!("opened production data as {other}")
        };
        assert!(err.to_string().contains("production"), "{err}");
        assert_eq!(invalid_field::<()>(Err(err)), "environment");
    }
    // Still fine under its own name.
    let v = v.restart();
    assert_eq!(v.vault.environment(), "production");
    assert_eq!(v.decrypt(T, "k", &ciphertext).unwrap(), b"x");
}

#[test]
fn environment_names_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
    for bad in ["", "Production", "prod env", "-x", &"e".repeat(64)] {
        let refused = Vault::open(store.clone(), VaultOptions::new(bad)).map(|_| ());
        assert_eq!(invalid_field(refused), "environment", "{bad:?}");
    }
    assert!(Vault::open(store, VaultOptions::new("pre-prod_2")).is_ok());
}
