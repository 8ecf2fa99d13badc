//! The operations callers come for, through the public `Vault` facade: a real sled store in a
//! temporary directory, an unsealed vault, a level-2 tenant (the default). docs/benchmarks.md
//! has the figures and the command.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tresor_core::DecryptRequest;
use tresor_core::EncryptRequest;
use tresor_core::HmacAlgorithm;
use tresor_core::KeySpec;
use tresor_core::SledStore;
use tresor_core::TenantSpec;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_wire::custody::InitRequest;

const TENANT: &str = "bench";
const PLAIN: &str = "plain";
const DERIVED: &str = "derived";
const CONVERGENT: &str = "convergent";
const CONTEXT: &[u8] = b"customers.email";
const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];

/// An unsealed vault with one level-2 tenant holding a plain, a derived and a convergent key.
/// The directory must outlive the vault.
fn vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let vault = Vault::open(store, VaultOptions::new("bench")).unwrap();
    let custodian = CustodianIdentity::generate("custodian").unwrap();
    vault
        .init(&InitRequest {
            custodians: vec![custodian.public().clone()],
            threshold: 1,
            four_eyes: None,
        })
        .unwrap();
    let share = vault
        .sealed_share("custodian")
        .unwrap()
        .open(&custodian)
        .unwrap();
    vault.unseal(vec![share]).unwrap();
    vault.create_tenant(TENANT, &TenantSpec::default()).unwrap();
    vault.create_key(TENANT, PLAIN, KeySpec::default()).unwrap();
    let derived = KeySpec {
        derived: true,
        ..Default::default()
    };
    vault.create_key(TENANT, DERIVED, derived).unwrap();
    let convergent = KeySpec {
        derived: true,
        convergent_encryption: true,
        ..Default::default()
    };
    vault.create_key(TENANT, CONVERGENT, convergent).unwrap();
    (dir, vault)
}

fn encrypt_decrypt(c: &mut Criterion) {
    let (_dir, vault) = vault();
    let mut encrypt = c.benchmark_group("encrypt");
    for (size, name) in SIZES {
        let plaintext = vec![0x5a; size];
        encrypt.throughput(Throughput::Bytes(size as u64));
        encrypt.bench_with_input(BenchmarkId::from_parameter(name), &plaintext, |b, p| {
            b.iter(|| {
                vault.encrypt(
                    TENANT,
                    PLAIN,
                    &EncryptRequest {
                        plaintext: black_box(p),
                        ..Default::default()
                    },
                )
            })
        });
    }
    encrypt.finish();

    let mut decrypt = c.benchmark_group("decrypt");
    for (size, name) in SIZES {
        let ciphertext = vault
            .encrypt(
                TENANT,
                PLAIN,
                &EncryptRequest {
                    plaintext: &vec![0x5a; size],
                    ..Default::default()
                },
            )
            .unwrap();
        decrypt.throughput(Throughput::Bytes(size as u64));
        decrypt.bench_with_input(BenchmarkId::from_parameter(name), &ciphertext, |b, ct| {
            b.iter(|| {
                vault.decrypt(
                    TENANT,
                    PLAIN,
                    &DecryptRequest {
                        ciphertext: black_box(&ct.text),
                        ..Default::default()
                    },
                )
            })
        });
    }
    decrypt.finish();

    let mut derived = c.benchmark_group("derived");
    derived.throughput(Throughput::Bytes(64));
    for key in [DERIVED, CONVERGENT] {
        derived.bench_function(BenchmarkId::new("encrypt", format!("{key}-64B")), |b| {
            b.iter(|| {
                vault.encrypt(
                    TENANT,
                    key,
                    &EncryptRequest {
                        plaintext: black_box(&[0x5a; 64]),
                        context: Some(CONTEXT),
                        ..Default::default()
                    },
                )
            })
        });
    }
    let ciphertext = vault
        .encrypt(
            TENANT,
            DERIVED,
            &EncryptRequest {
                plaintext: &[0x5a; 64],
                context: Some(CONTEXT),
                ..Default::default()
            },
        )
        .unwrap();
    derived.bench_function(BenchmarkId::new("decrypt", "derived-64B"), |b| {
        b.iter(|| {
            vault.decrypt(
                TENANT,
                DERIVED,
                &DecryptRequest {
                    ciphertext: black_box(&ciphertext.text),
                    context: Some(CONTEXT),
                    ..Default::default()
                },
            )
        })
    });
    derived.finish();
}

fn datakey_hmac(c: &mut Criterion) {
    let (_dir, vault) = vault();
    let mut group = c.benchmark_group("keys");
    group.throughput(Throughput::Elements(1));
    group.bench_function("datakey-256", |b| {
        b.iter(|| vault.datakey(TENANT, PLAIN, black_box(256), None, None, true))
    });
    group.bench_function("hmac-sha256-64B", |b| {
        b.iter(|| {
            vault.hmac(
                TENANT,
                PLAIN,
                black_box(&[0x5a; 64]),
                HmacAlgorithm::Sha2_256,
                None,
            )
        })
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let (_dir, vault) = vault();
    let plaintext = [0x5a; 64];
    let mut group = c.benchmark_group("encrypt_batch");
    for n in [100usize, 1000] {
        let items = vec![
            EncryptRequest {
                plaintext: &plaintext,
                ..Default::default()
            };
            n
        ];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("64B", n), &items, |b, items| {
            b.iter(|| vault.encrypt_batch(TENANT, PLAIN, black_box(items)))
        });
    }
    group.finish();
}

criterion_group!(benches, encrypt_decrypt, datakey_hmac, batch);
criterion_main!(benches);
