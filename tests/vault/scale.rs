//! The scale points of docs/benchmarks.md ("Scale (issue 18)") proven small: what the figures
//! measure at 100,000 versions must also hold, as behaviour, at a size a test can afford.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{TestVault, decrypt};
use tresor_core::{EncryptRequest, KeySpec, ProtectionLevel, Vault};

const T: &str = "scale";
/// 200 keys of 10 versions each: 2,000 data-key versions for one KEK rotation to re-wrap.
const KEYS: usize = 200;
const VERSIONS: u32 = 10;

/// A ciphertext made before the rotation, and what it must decrypt to.
struct Sample {
    key: String,
    version: u32,
    plaintext: Vec<u8>,
    ciphertext: String,
}

fn encrypt(vault: &Vault, key: &str, plaintext: &[u8]) -> Result<String, tresor_core::Error> {
    vault
        .encrypt(
            T,
            key,
            &EncryptRequest {
                plaintext,
                ..Default::default()
            },
        )
        .map(|sealed| sealed.text)
}

/// Every key at every version, with one ciphertext per version, in a tenant of `level`.
fn populate(v: &TestVault, level: ProtectionLevel) -> Vec<Sample> {
    v.tenant(T, level);
    let mut samples = Vec::new();
    for k in 0..KEYS {
        let key = format!("k{k:03}");
        v.key(T, &key, KeySpec::default());
        for version in 1..=VERSIONS {
            if version > 1 {
                v.vault.rotate_key(T, &key).unwrap();
            }
            let plaintext = format!("{key}/v{version}").into_bytes();
            let ciphertext = encrypt(&v.vault, &key, &plaintext).unwrap();
            assert!(ciphertext.starts_with(&format!("tresor:v{version}:")));
            samples.push(Sample {
                key: key.clone(),
                version,
                plaintext,
                ciphertext,
            });
        }
    }
    samples
}

fn assert_all_decrypt(vault: &Vault, samples: &[Sample]) {
    for s in samples {
        let plaintext = decrypt(vault, T, &s.key, &s.ciphertext)
            .unwrap_or_else(|e| panic!("{}/{} v{}: {e}", T, s.key, s.version));
        assert_eq!(plaintext, s.plaintext);
    }
}

/// Runs `change` while four threads encrypt and decrypt with the tenant's keys, half of their
/// lookups missing the ring cache so they read and unwrap key records while `change` re-wraps
/// them; fails if any request failed, or if none ran while `change` did (the test would then
/// prove nothing).
fn under_concurrent_requests(v: &TestVault, samples: &Arc<Vec<Sample>>, change: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let changing = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (vault, samples) = (v.vault.clone(), samples.clone());
            let (stop, changing, during, failures) = (
                stop.clone(),
                changing.clone(),
                during.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                let mut i = w * 7919;
                while !stop.load(Ordering::SeqCst) {
                    i = (i + 1) % samples.len();
                    let s = &samples[i];
                    if i % 2 == 0 {
                        // A cache miss: the record is read and unwrapped under the KEK now.
                        vault.invalidate([format!("keys/{T}/{}", s.key).as_str()]);
                    }
                    let result = decrypt(&vault, T, &s.key, &s.ciphertext)
                        .and_then(|plain| {
                            if plain == s.plaintext {
                                Ok(())
                            } else {
                                Err(tresor_core::Error::invalid("plaintext", "differs"))
                            }
                        })
                        .and_then(|()| encrypt(&vault, &s.key, b"during"))
                        .and_then(|fresh| decrypt(&vault, T, &s.key, &fresh))
                        .map(|plain| assert_eq!(plain, b"during"));
                    if let Err(e) = result {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}/{} v{}: {e}", T, s.key, s.version));
                    }
                    if changing.load(Ordering::SeqCst) {
                        during.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    changing.store(true, Ordering::SeqCst);
    change();
    changing.store(false, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} requests failed during the change, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        during.load(Ordering::Relaxed) > 0,
        "no request overlapped the change"
    );
}

/// Rotating the KEK of a tenant with 2,000 data-key versions while other threads encrypt and
/// decrypt with its keys: no request fails, every ciphertext made before decrypts after, and
/// the vault restarts and unseals onto the new KEK.
#[test]
fn kek_rotation_of_2000_versions_under_concurrent_requests() {
    let v = TestVault::new();
    let samples = Arc::new(populate(&v, ProtectionLevel::Two));
    let before = v.vault.tenant_info(T).unwrap().kek_version;
    under_concurrent_requests(&v, &samples, || {
        for round in 1..=3 {
            let info = v.vault.rotate_tenant_kek(T).unwrap();
            assert_eq!(info.kek_version, before + round);
            assert_eq!(info.keys, KEYS);
        }
    });
    assert_all_decrypt(&v.vault, &samples);

    let v = v.restart();
    assert_eq!(v.vault.tenant_info(T).unwrap().kek_version, before + 3);
    assert_all_decrypt(&v.vault, &samples);
    let fresh = encrypt(&v.vault, "k000", b"after").unwrap();
    assert!(fresh.starts_with(&format!("tresor:v{VERSIONS}:")));
    assert_eq!(decrypt(&v.vault, T, "k000", &fresh).unwrap(), b"after");
    // A ciphertext stays bound to its key: the rotation did not mix keys up.
    assert!(decrypt(&v.vault, T, "k001", &samples[0].ciphertext).is_err());
}

/// Changing a level-3 tenant's custodians re-wraps every data-key version under a fresh KEK and
/// adds a version to every key, in one commit, while other threads use the keys: no request
/// fails (neither a ring loaded from a record the change has already re-wrapped, nor one that
/// arrives as the tenant's state is replaced), and every earlier ciphertext decrypts after.
#[test]
fn a_level3_custodian_change_under_concurrent_requests_fails_no_request() {
    // Enough changes that requests meet every moment of one (two were not, before the fix).
    const CHANGES: u32 = 8;
    let v = TestVault::new();
    let samples = Arc::new(populate(&v, ProtectionLevel::Three));
    let custodians = [v.custodians[0].public().clone()];
    let before = v.vault.tenant_info(T).unwrap().kek_version;
    under_concurrent_requests(&v, &samples, || {
        for round in 1..=CHANGES {
            let info = v
                .vault
                .change_tenant_custodians(T, &custodians, None)
                .unwrap();
            assert_eq!(info.kek_version, before + round);
            assert!(!info.locked);
        }
    });
    assert_all_decrypt(&v.vault, &samples);
    // Each change added a version to every key, which new data uses.
    let fresh = encrypt(&v.vault, "k000", b"after").unwrap();
    assert!(
        fresh.starts_with(&format!("tresor:v{}:", VERSIONS + CHANGES)),
        "{fresh}"
    );
}
