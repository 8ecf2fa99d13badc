//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod audit;
pub mod clients;
pub mod custody;
pub mod deployment;
pub mod dev;
pub mod impostor;
pub mod postgres;
pub mod process;
pub mod recording;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_core::CiphertextError;
use tresor_core::DecryptRequest;
use tresor_core::EncryptRequest;
use tresor_core::Error;
use tresor_core::KeySpec;
use tresor_core::ProtectionLevel;
use tresor_core::SledStore;
use tresor_core::Store;
use tresor_core::TenantSpec;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_wire::custody::InitRequest;
use tresor_wire::custody::RootShare;

/// True if any file under `dir` (recursively) contains `needle`.
pub fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    assert!(needle.len() >= 8, "needle too short to be meaningful");
    find_in_dir(dir, &[needle]).is_some()
}

/// The first 32-byte chunk of `secret` (taken every 16 bytes) found in any file under `dir`,
/// with the file's path and the chunk's offset in `secret`. Searching for chunks rather than the
/// whole value also catches a backend that stores a value in pieces.
pub fn find_any_chunk(dir: &Path, secret: &[u8]) -> Option<(PathBuf, usize)> {
    const CHUNK: usize = 32;
    assert!(secret.len() >= CHUNK, "secret too short to be meaningful");
    let offsets: Vec<usize> = (0..=secret.len() - CHUNK).step_by(16).collect();
    let chunks: Vec<&[u8]> = offsets.iter().map(|&at| &secret[at..at + CHUNK]).collect();
    find_in_dir(dir, &chunks).map(|(file, i)| (file, offsets[i]))
}

/// The first file under `dir` holding any of `needles` (each at least 2 bytes), and which one.
/// One pass per file with a two-byte prefilter: the tests run unoptimised and sled's files are
/// half a megabyte each.
fn find_in_dir(dir: &Path, needles: &[&[u8]]) -> Option<(PathBuf, usize)> {
    let mut by_prefix: Vec<Vec<usize>> = vec![Vec::new(); 1 << 16];
    for (i, needle) in needles.iter().enumerate() {
        assert!(needle.len() >= 2);
        by_prefix[usize::from(u16::from_le_bytes([needle[0], needle[1]]))].push(i);
    }
    for file in walk(dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for at in 0..bytes.len().saturating_sub(1) {
            let prefix = usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
            for &i in &by_prefix[prefix] {
                if bytes[at..].starts_with(needles[i]) {
                    return Some((file, i));
                }
            }
        }
    }
    None
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Opens the sled store in `path` (`SledStore::open` itself waits for a lock this process is
/// still letting go of).
pub fn open_store(path: &Path) -> SledStore {
    SledStore::open(path)
        .unwrap_or_else(|e| panic!("cannot open the store in {}: {e}", path.display()))
}

/// A vault on a real sled store in a temporary directory, with its custodians.
pub struct TestVault {
    /// Keeps the directory alive; the sled store lives in `dir/data`.
    pub dir: tempfile::TempDir,
    /// The same store the vault uses, for raw reads and writes.
    pub store: Arc<SledStore>,
    pub vault: Vault,
    pub custodians: Vec<CustodianIdentity>,
    pub environment: String,
    /// The test's clock, if it moves time itself (kept across `reopen`).
    pub clock: Option<Arc<tresor_core::ManualClock>>,
}

impl TestVault {
    /// As [`TestVault::new`], on a clock the test moves.
    pub fn with_clock(clock: Arc<tresor_core::ManualClock>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let custodians = vec![CustodianIdentity::generate("custodian-0").unwrap()];
        let test = Self::open_with(dir, custodians, "test", Some(clock));
        test.vault
            .init(&InitRequest {
                custodians: test.custodians.iter().map(|c| c.public().clone()).collect(),
                threshold: 1,
                four_eyes: None,
            })
            .unwrap();
        test.unseal();
        test
    }

    /// An initialised and unsealed vault for environment `test` with one custodian.
    pub fn new() -> Self {
        Self::with(1, 1, "test")
    }

    /// An initialised, unsealed vault with `n` generated custodians and threshold `k`.
    pub fn with(n: usize, k: u8, environment: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let custodians = (0..n)
            .map(|i| CustodianIdentity::generate(&format!("custodian-{i}")).unwrap())
            .collect();
        let test = Self::open_in(dir, custodians, environment);
        test.vault
            .init(&InitRequest {
                custodians: test.custodians.iter().map(|c| c.public().clone()).collect(),
                threshold: k,
                four_eyes: None,
            })
            .unwrap();
        test.unseal();
        test
    }

    fn open_in(dir: tempfile::TempDir, custodians: Vec<CustodianIdentity>, env: &str) -> Self {
        Self::open_with(dir, custodians, env, None)
    }

    fn open_with(
        dir: tempfile::TempDir,
        custodians: Vec<CustodianIdentity>,
        env: &str,
        clock: Option<Arc<tresor_core::ManualClock>>,
    ) -> Self {
        let store = Arc::new(open_store(&dir.path().join("data")));
        let mut options = VaultOptions::new(env);
        if let Some(clock) = &clock {
            options = options.with_clock(clock.clone());
        }
        let vault = Vault::open(store.clone(), options).unwrap();
        TestVault {
            dir,
            store,
            vault,
            custodians,
            environment: env.to_owned(),
            clock,
        }
    }

    /// The data directory (everything the vault ever writes is under it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Custodian `i`'s share, opened with their identity.
    pub fn share(&self, i: usize) -> RootShare {
        let custodian = &self.custodians[i];
        self.vault
            .sealed_share(custodian.name())
            .unwrap()
            .open(custodian)
            .unwrap()
    }

    /// Unseals with the first `threshold` custodians' shares.
    pub fn unseal(&self) {
        let threshold = self.vault.seal_status().unwrap().threshold;
        let shares = (0..usize::from(threshold)).map(|i| self.share(i)).collect();
        let progress = self.vault.unseal(shares).unwrap();
        assert!(!progress.sealed);
    }

    /// Drops the vault and the store (as a process exit would) and opens the directory again.
    /// The result is sealed.
    pub fn reopen(self) -> Self {
        let TestVault {
            dir,
            store,
            vault,
            custodians,
            environment,
            clock,
        } = self;
        drop(vault);
        drop(store);
        let reopened = Self::open_with(dir, custodians, &environment, clock);
        assert!(reopened.vault.is_sealed(), "a reopened vault starts sealed");
        reopened
    }

    /// Reopens and unseals.
    pub fn restart(self) -> Self {
        let reopened = self.reopen();
        reopened.unseal();
        reopened
    }

    /// Seals and unseals in place: every cached key leaves memory and is read back from storage.
    pub fn reload(&self) {
        self.vault.seal();
        self.unseal();
    }

    /// Creates a tenant at `level` (level 3 gets custodian 0 as its own custodian; it starts
    /// locked and is unlocked here).
    pub fn tenant(&self, name: &str, level: ProtectionLevel) {
        let custodians = match level {
            ProtectionLevel::Three => vec![self.custodians[0].public().clone()],
            _ => Vec::new(),
        };
        self.vault
            .create_tenant(
                name,
                &TenantSpec {
                    level,
                    custodians,
                    ..TenantSpec::default()
                },
            )
            .unwrap();
        if level == ProtectionLevel::Three {
            self.unlock(name, 0);
        }
    }

    /// Unlocks level-3 tenant `name` with custodian `i`'s custody key.
    pub fn unlock(&self, name: &str, i: usize) {
        let custodian = &self.custodians[i];
        let sealed = self
            .vault
            .tenant_custody_box(name, custodian.name())
            .unwrap();
        let key = tresor_wire::custody::TenantCustodyKey::open(
            custodian,
            &self.vault.vault_id().unwrap(),
            name,
            &sealed,
        )
        .unwrap();
        let info = self.vault.unlock_tenant(name, &key).unwrap();
        assert!(!info.locked);
    }

    /// Creates key `name` in `tenant`.
    pub fn key(&self, tenant: &str, name: &str, spec: KeySpec) {
        self.vault.create_key(tenant, name, spec).unwrap();
    }

    /// Encrypts without context or associated data.
    pub fn encrypt(&self, tenant: &str, key: &str, plaintext: &[u8]) -> String {
        self.vault
            .encrypt(
                tenant,
                key,
                &EncryptRequest {
                    plaintext,
                    ..Default::default()
                },
            )
            .unwrap()
            .text
    }

    /// Decrypts without context or associated data.
    pub fn decrypt(&self, tenant: &str, key: &str, ciphertext: &str) -> Result<Vec<u8>, Error> {
        decrypt(&self.vault, tenant, key, ciphertext)
    }

    /// The raw (barrier-sealed) bytes stored at `path`.
    pub fn raw(&self, path: &str) -> Vec<u8> {
        self.store
            .get(path)
            .unwrap()
            .unwrap_or_else(|| panic!("nothing stored at {path}"))
    }
}

impl Default for TestVault {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrypts without context or associated data.
pub fn decrypt(vault: &Vault, tenant: &str, key: &str, ciphertext: &str) -> Result<Vec<u8>, Error> {
    vault
        .decrypt(
            tenant,
            key,
            &DecryptRequest {
                ciphertext,
                ..Default::default()
            },
        )
        .map(|p| p.to_vec())
}

/// The ciphertext error inside `result`, or a panic naming what came instead.
#[track_caller]
pub fn ciphertext_error<T: std::fmt::Debug>(result: Result<T, Error>) -> CiphertextError {
    match result {
        Err(Error::Ciphertext(e)) => e,
        other => panic!("expected a ciphertext error, got {other:?}"),
    }
}

/// The field of the `InvalidInput` error inside `result`, or a panic.
#[track_caller]
pub fn invalid_field<T: std::fmt::Debug>(result: Result<T, Error>) -> &'static str {
    match result {
        Err(Error::InvalidInput { field, .. }) => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// Splits `tresor:v<N>:<base64>` into N and the decoded payload.
pub fn split(ciphertext: &str) -> (u32, Vec<u8>) {
    let rest = ciphertext.strip_prefix("tresor:v").expect("tresor prefix");
    let (version, payload) = rest.split_once(':').expect("two fields");
    (version.parse().unwrap(), STANDARD.decode(payload).unwrap())
}

/// Formats a version and payload as `tresor:v<N>:<base64>`.
pub fn join(version: u32, payload: &[u8]) -> String {
    format!("tresor:v{version}:{}", STANDARD.encode(payload))
}

/// The same ciphertext with its version field replaced.
pub fn with_version(ciphertext: &str, version: u32) -> String {
    let (_, payload) = split(ciphertext);
    join(version, &payload)
}

/// A deterministic pseudo-random byte string (xorshift), for plaintexts of any size.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Polls `done` every `every` until it holds; fails the test with `what()` after 30 s. The
/// deadline only bounds a failure: tests wait for a state, never sleep and hope.
pub fn wait_until(
    every: std::time::Duration,
    mut done: impl FnMut() -> bool,
    what: impl Fn() -> String,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(every);
    }
}
