//! The raw primitives under the vault's hot path, measured in the same run and on the same
//! machine as `benches/vault.rs`, so the vault's own overhead can be read off by subtraction
//! (docs/benchmarks.md). These call the crates directly, not Tresor.

use std::hint::black_box;

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];

fn aead(c: &mut Criterion) {
    let cipher = Aes256GcmSiv::new(&[7u8; 32].into());
    let nonce = Nonce::from([9u8; 12]);
    let mut group = c.benchmark_group("aes256gcmsiv_in_place");
    for (size, name) in SIZES {
        let mut buffer = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("encrypt", name), |b| {
            b.iter(|| {
                cipher
                    .encrypt_inout_detached(&nonce, black_box(b"aad"), buffer.as_mut_slice().into())
                    .unwrap()
            })
        });
        let mut sealed = vec![0x5a; size];
        let tag = cipher
            .encrypt_inout_detached(&nonce, b"aad", sealed.as_mut_slice().into())
            .unwrap();
        group.bench_function(BenchmarkId::new("decrypt", name), |b| {
            b.iter(|| {
                // Decrypt a fresh copy each time (a real decrypt also starts from a copy).
                let mut buffer = sealed.clone();
                cipher
                    .decrypt_inout_detached(&nonce, b"aad", buffer.as_mut_slice().into(), &tag)
                    .unwrap();
                buffer
            })
        });
    }
    group.bench_function("key_setup", |b| {
        b.iter(|| Aes256GcmSiv::new(black_box(&[7u8; 32].into())))
    });
    group.finish();
}

fn kdf_mac(c: &mut Criterion) {
    let mut group = c.benchmark_group("kdf");
    let ikm = [3u8; 32];
    group.bench_function("hkdf_extract_expand", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            Hkdf::<Sha256>::new(None, black_box(&ikm))
                .expand(
                    b"\x00\x00\x00\x10tresor-derive-v1\x00\x00\x00\x0fcustomers.email",
                    &mut out,
                )
                .unwrap();
            out
        })
    });
    let prk = Hkdf::<Sha256>::new(None, &ikm);
    group.bench_function("hkdf_expand_only", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            black_box(&prk)
                .expand(
                    b"\x00\x00\x00\x10tresor-derive-v1\x00\x00\x00\x0fcustomers.email",
                    &mut out,
                )
                .unwrap();
            out
        })
    });
    group.bench_function("hmac_sha256_64B", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&ikm).unwrap();
            mac.update(black_box(&[0x5a; 64]));
            mac.finalize().into_bytes()
        })
    });
    let keyed = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&ikm).unwrap();
    group.bench_function("hmac_sha256_64B_prekeyed", |b| {
        b.iter(|| {
            let mut mac = keyed.clone();
            mac.update(black_box(&[0x5a; 64]));
            mac.finalize().into_bytes()
        })
    });
    group.bench_function("thread_rng_nonce", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            rand::rng().fill_bytes(&mut nonce);
            nonce
        })
    });
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("base64");
    for (size, name) in SIZES {
        let payload = vec![0x5a; size + 28];
        let text = STANDARD.encode(&payload);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| STANDARD.encode(black_box(&payload)))
        });
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| STANDARD.decode(black_box(&text)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, aead, kdf_mac, encoding);
criterion_main!(benches);
