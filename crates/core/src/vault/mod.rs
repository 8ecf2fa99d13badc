//! The vault: its state (sealed or unsealed) and the facade every caller uses.
//!
//! Unwrapped keys live only inside [`Unsealed`], which is reachable only while the vault is
//! unsealed. Sealing drops it; the last in-flight request holding it drops the keys, which
//! zeroize themselves.

mod backup;
mod deletion;
mod import;
mod keys;
mod ledger;
mod ops;
mod peer;
mod seal;
mod sealed_records;
mod tenants;
mod transfer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use backup::{Snapshot, restore_into};
pub use deletion::{Deletion, DueDeletion};
pub use keys::KeyInfo;
pub use ops::{BatchResult, DataKey};
pub use seal::{Custodians, UnsealGuard};
pub use seal::{check_principal, validate_custody};
pub use sealed_records::{SealedRecords, SealedStore};
pub use tenants::TenantSpec;

use crate::Error;
use crate::barrier::Barrier;
use crate::clock::{Clock, SystemClock};
use crate::keys::kek::Kek;
use crate::keys::records::{self, KeyRecord};
use crate::keys::ring::KeyRing;
use crate::keys::{ProtectionLevel, validate_environment_name};
use crate::store::{Batch, Store};
use tenants::TenantRecord;
use tresor_crypto::SecretKey;

/// How to open a vault.
#[derive(Clone)]
pub struct VaultOptions {
    /// The environment name bound into every ciphertext (`production`, `test`, …). A data
    /// directory initialised for one environment refuses to open as another.
    pub environment: String,
    /// The clock for creation times, rotation schedules and expiries.
    pub clock: Arc<dyn Clock>,
    /// Unseal progress older than this many seconds is discarded.
    pub unseal_timeout: u64,
    /// This node's identity key: it signs the per-boot unseal key in the seal status, so
    /// custodians seal their shares only to this vault (see `SealStatus::verified_unseal_key`).
    /// It lives outside the store (the server keeps it in an owner-only file).
    pub node_identity: Option<Arc<tresor_crypto::sign::SigningKey>>,
}

impl VaultOptions {
    /// Options for `environment` with the system clock and a ten-minute unseal timeout.
    pub fn new(environment: impl Into<String>) -> Self {
        VaultOptions {
            environment: environment.into(),
            clock: Arc::new(SystemClock),
            unseal_timeout: 600,
            node_identity: None,
        }
    }

    /// The same options with this node's identity key.
    pub fn with_node_identity(mut self, key: Arc<tresor_crypto::sign::SigningKey>) -> Self {
        self.node_identity = Some(key);
        self
    }

    /// The same options with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// A key vault over a [`Store`]. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    options: VaultOptions,
    state: RwLock<Option<Arc<Unsealed>>>,
    /// Serialises changes to storage within this process (the store's compare-and-swap guards
    /// against other processes).
    writer: Mutex<()>,
    unseal_round: Mutex<seal::UnsealRound>,
    /// Unlocks of level-3 tenants in progress, by tenant.
    tenant_rounds: Mutex<HashMap<String, tenants::TenantRound>>,
    /// The X25519 key custodians seal submissions to (shares, tenant custody keys). Made at
    /// open and replaced after every unseal, seal, tenant unlock and lock, so a captured
    /// submission cannot be replayed into a later round.
    unseal_key: Mutex<seal::UnsealKey>,
    /// Checked before an unseal takes effect (see [`UnsealGuard`]). Weak: the guard's owner
    /// (the server) keeps it alive, and a guard may hold a handle on this vault.
    unseal_guard: Mutex<Option<std::sync::Weak<dyn UnsealGuard>>>,
    /// Key ring lookups served from memory, and those that loaded from storage.
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

/// Everything that exists only while unsealed.
pub(crate) struct Unsealed {
    vault_id: String,
    /// The generation of the root key in memory.
    root_generation: u32,
    /// The root key itself: kept only so that this node can hand it to an enrolled peer,
    /// sealed to that peer's per-boot key (peer.rs).
    root: tresor_crypto::SecretKey,
    barrier: Barrier,
    tenants: RwLock<HashMap<String, Arc<TenantState>>>,
    /// Bumped under the `tenants` write lock whenever the map changes; see [`Generation`].
    tenants_generation: AtomicU64,
    /// State that services keep for as long as this unseal lasts (see
    /// [`SealedRecords::session`]); dropped with the keys on seal.
    session: sealed_records::Session,
    /// Which copy of each record is current (see [`ledger`]).
    ledger: Mutex<ledger::Ledger>,
    /// The vault's clock, for the ledger's time of last write.
    clock: Arc<dyn Clock>,
}

/// A loaded tenant: its KEK (if unwrapped) and the key rings used so far.
pub(crate) struct TenantState {
    name: String,
    level: ProtectionLevel,
    /// The current KEK; `None` at level 1 and while a level-3 tenant is locked.
    kek: RwLock<Option<Arc<Kek>>>,
    /// Level 3 while unlocked: the custody key its custodian gave, needed to rotate the KEK.
    custody: RwLock<Option<Arc<SecretKey>>>,
    /// During a KEK rotation (or a level-3 custodian change, which makes a new KEK), the new
    /// KEK: set before its commit and cleared once it is `kek`, so a ring loaded from a record
    /// the commit already re-wrapped is unwrapped at once instead of failing (see
    /// [`TenantState::kek_for`]).
    rotating_kek: RwLock<Option<Arc<Kek>>>,
    rings: RwLock<HashMap<String, Arc<KeyRing>>>,
    rings_generation: AtomicU64,
}

impl Vault {
    /// Opens the vault stored in `store`. It starts sealed.
    pub fn open(store: Arc<dyn Store>, options: VaultOptions) -> Result<Vault, Error> {
        validate_environment_name(&options.environment)?;
        seal::check_store_format(store.as_ref())?;
        if let Some(config) = seal::SealConfig::load(store.as_ref())? {
            if config.environment != options.environment {
                return Err(Error::invalid(
                    "environment",
                    format!(
                        "this data belongs to environment `{}`, not `{}`: test and production data never mix",
                        config.environment, options.environment
                    ),
                ));
            }
        }
        Ok(Vault {
            inner: Arc::new(Inner {
                store,
                options,
                state: RwLock::new(None),
                writer: Mutex::new(()),
                unseal_round: Mutex::new(seal::UnsealRound::default()),
                tenant_rounds: Mutex::new(HashMap::new()),
                unseal_key: Mutex::new(seal::UnsealKey::generate()),
                unseal_guard: Mutex::new(None),
                cache_hits: AtomicU64::new(0),
                cache_misses: AtomicU64::new(0),
            }),
        })
    }

    /// The environment this vault serves.
    pub fn environment(&self) -> &str {
        &self.inner.options.environment
    }

    /// Key ring lookups served from memory and those that loaded from storage, since open.
    pub fn key_cache_stats(&self) -> (u64, u64) {
        (
            self.inner.cache_hits.load(Ordering::Relaxed),
            self.inner.cache_misses.load(Ordering::Relaxed),
        )
    }

    /// The fingerprint of this node's identity key, if it has one.
    pub fn node_fingerprint(&self) -> Option<String> {
        self.inner
            .options
            .node_identity
            .as_ref()
            .map(|key| key.verifying_key().fingerprint())
    }

    /// This node's identity key, if it has one: the server signs its peer-unseal requests and
    /// grants with it (tresor_wire::peers), as the vault signs its unseal key with it.
    pub fn node_identity(&self) -> Option<Arc<tresor_crypto::sign::SigningKey>> {
        self.inner.options.node_identity.clone()
    }

    /// Forgets what this node cached from storage `paths` that changed elsewhere (another node
    /// sharing the store, docs/deployment.md): a changed tenant record drops the tenant's state
    /// (its KEK and key rings; a level-3 tenant is locked again here), a changed key record drops
    /// that key's ring. The next use reads them afresh. Other paths hold nothing cached.
    /// Touches memory only, never the store.
    pub fn invalidate<'a>(&self, paths: impl IntoIterator<Item = &'a str>) {
        let Some(unsealed) = read(&self.inner.state).clone() else {
            return;
        };
        for path in paths {
            if path == records::SEAL_CONFIG_PATH {
                // Only a root rotation or rekey changes the seal configuration of an initialised
                // vault, so there is nothing to read: and this runs on the follower, which must
                // not call the store (a read there waits on the runtime it is blocking).
                tracing::warn!(
                    "the root key was rotated on another node: sealed; custodians unseal this node with the new shares (or, if it is enrolled, a peer hands it the new root)"
                );
                self.seal_if_still(&unsealed);
                return;
            } else if let Some(tenant) = path.strip_prefix(records::TENANTS_PREFIX) {
                unsealed.set_tenant(tenant, None);
            } else if let Some((tenant, key)) = path
                .strip_prefix(records::KEYS_PREFIX)
                .and_then(|rest| rest.split_once('/'))
            {
                let state = read(&unsealed.tenants).get(tenant).cloned();
                if let Some(state) = state {
                    state.set_ring(key, None);
                }
            }
        }
    }

    /// Forgets every tenant and key ring cached from storage (when the changes since the last
    /// known position can no longer be listed).
    pub fn invalidate_all(&self) {
        let Some(unsealed) = read(&self.inner.state).clone() else {
            return;
        };
        // What changed cannot be listed, so the root may have been rotated too: checked on a
        // thread of its own, as this runs on the follower, which must not call the store.
        let vault = self.clone();
        let checked = unsealed.clone();
        std::thread::spawn(move || vault.seal_if_root_replaced(&checked));
        let mut tenants = write(&unsealed.tenants);
        tenants.clear();
        unsealed.tenants_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Seals this node when another node rotated the root key (rotate-root, rekey): its barrier
    /// key opens nothing the store now holds, and the new root is never handed over through the
    /// store (docs/deployment.md: custodians unseal each node with the new shares).
    fn seal_if_root_replaced(&self, unsealed: &Arc<Unsealed>) {
        let stored = seal::SealConfig::load(self.store()).ok().flatten();
        if stored.is_some_and(|config| config.root_generation != unsealed.root_generation) {
            tracing::warn!(
                "the root key was rotated on another node: sealed; custodians unseal this node with the new shares (or, if it is enrolled, a peer hands it the new root)"
            );
            self.seal_if_still(unsealed);
        }
    }

    /// Seals, unless the root in memory is no longer `unsealed` (the node was unsealed again
    /// with the new root meanwhile: that one stays).
    fn seal_if_still(&self, unsealed: &Arc<Unsealed>) {
        {
            let mut state = write(&self.inner.state);
            if !state.as_ref().is_some_and(|now| Arc::ptr_eq(now, unsealed)) {
                return;
            }
            *state = None;
        }
        lock(&self.inner.unseal_round).reset();
        lock(&self.inner.tenant_rounds).clear();
        self.renew_unseal_key();
    }

    /// Installs `guard`: every later unseal is checked by it before any key is usable, for as
    /// long as the caller keeps `guard` alive.
    pub fn set_unseal_guard(&self, guard: &Arc<dyn UnsealGuard>) {
        *lock(&self.inner.unseal_guard) = Some(Arc::downgrade(guard));
    }

    /// True while the root key is not in memory.
    pub fn is_sealed(&self) -> bool {
        read(&self.inner.state).is_none()
    }

    /// Drops every unwrapped key from memory. Requests already running finish with the keys
    /// they hold; nothing new starts.
    pub fn seal(&self) {
        *write(&self.inner.state) = None;
        lock(&self.inner.unseal_round).reset();
        lock(&self.inner.tenant_rounds).clear();
        self.renew_unseal_key();
    }

    fn now(&self) -> u64 {
        self.inner.options.clock.now()
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    fn unsealed(&self) -> Result<Arc<Unsealed>, Error> {
        read(&self.inner.state).clone().ok_or(Error::Sealed)
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        lock(&self.inner.writer)
    }
}

/// A record's plaintext and its stored (sealed) bytes.
type Opened = (zeroize::Zeroizing<Vec<u8>>, Vec<u8>);

/// How often a read is retried when the record changes under it.
const READ_ATTEMPTS: usize = 8;

impl Unsealed {
    /// Reads and opens a barrier record.
    fn read_record<T: for<'a> serde::Deserialize<'a>>(
        &self,
        store: &dyn Store,
        path: &str,
    ) -> Result<Option<(T, Vec<u8>)>, Error> {
        match self.read_opened(store, path)? {
            None => Ok(None),
            Some((plain, raw)) => Ok(Some((records::decode(path, &plain)?, raw))),
        }
    }

    /// Reads the record at `path` and opens it (checked against the ledger): its plaintext and
    /// its stored bytes, or `None` if the vault holds none there. A record another writer
    /// changes between the read and the ledger's check is read again.
    fn read_opened(&self, store: &dyn Store, path: &str) -> Result<Option<Opened>, Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let found = store.get(path)?;
            let checked = match &found {
                None => self.check_absent(store, path).map(|()| None),
                Some(raw) => self.open(store, path, raw).map(Some),
            };
            match checked {
                Err(Error::Store(crate::store::StoreError::Conflict { .. }))
                    if attempts < READ_ATTEMPTS =>
                {
                    continue;
                }
                Err(e) => return Err(e),
                Ok(opened) => return Ok(opened.map(|plain| (plain, found.expect("opened")))),
            }
        }
    }

    /// Opens `raw`, read from `path`: it must be sealed by this barrier for this path, and be
    /// the copy the ledger holds (not an older one put back).
    fn open(
        &self,
        store: &dyn Store,
        path: &str,
        raw: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        let plain = self.barrier.open(path, raw)?;
        lock(&self.ledger).check(store, &self.barrier, path, Some(raw))?;
        Ok(plain)
    }

    /// Checks that `path` is absent because the vault deleted it (or never wrote it).
    fn check_absent(&self, store: &dyn Store, path: &str) -> Result<(), Error> {
        lock(&self.ledger).check(store, &self.barrier, path, None)
    }

    /// Applies `batch` atomically and durably, with the ledger's update for its writes.
    fn commit(&self, store: &dyn Store, batch: Batch) -> Result<(), Error> {
        ledger::commit(&self.ledger, store, &self.barrier, batch, self.clock.now())
    }

    fn seal_record<T: serde::Serialize>(&self, path: &str, record: &T) -> Vec<u8> {
        self.barrier.seal(path, &records::encode(record))
    }

    /// The loaded state of `tenant`, loading it on first use.
    fn tenant(&self, store: &dyn Store, tenant: &str) -> Result<Arc<TenantState>, Error> {
        if let Some(state) = read(&self.tenants).get(tenant) {
            return Ok(state.clone());
        }
        let generation = Generation::start(&self.tenants_generation);
        let path = records::tenant_path(tenant);
        let (record, _) = self
            .read_record::<TenantRecord>(store, &path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        if let Some(deletion) = record.deletion {
            return Err(keys::pending(format!("tenant `{tenant}`"), deletion));
        }
        let kek = match (record.level, &record.kek) {
            (ProtectionLevel::Two, Some(kek)) => Some(Arc::new(Kek::new(
                kek.version,
                SecretKey::from_slice(&kek.material.0)
                    .ok_or_else(|| Error::Integrity { path: path.clone() })?,
            ))),
            (ProtectionLevel::Two, None) => return Err(Error::Integrity { path }),
            // Level 3 starts locked; level 1 has no KEK.
            _ => None,
        };
        let state = Arc::new(TenantState::new(tenant, record.level, kek, None));
        let mut tenants = write(&self.tenants);
        if let Some(existing) = tenants.get(tenant) {
            return Ok(existing.clone());
        }
        if generation.unchanged(&self.tenants_generation) {
            tenants.insert(tenant.to_owned(), state.clone());
        }
        Ok(state)
    }

    /// Replaces or removes a tenant's cached state after a committed change.
    fn set_tenant(&self, tenant: &str, state: Option<Arc<TenantState>>) {
        let mut tenants = write(&self.tenants);
        match state {
            Some(state) => tenants.insert(tenant.to_owned(), state),
            None => tenants.remove(tenant),
        };
        self.tenants_generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl TenantState {
    /// A tenant's state with no key ring loaded yet.
    fn new(
        name: &str,
        level: ProtectionLevel,
        kek: Option<Arc<Kek>>,
        custody: Option<Arc<SecretKey>>,
    ) -> TenantState {
        TenantState {
            name: name.to_owned(),
            level,
            kek: RwLock::new(kek),
            custody: RwLock::new(custody),
            rotating_kek: RwLock::new(None),
            rings: RwLock::new(HashMap::new()),
            rings_generation: AtomicU64::new(0),
        }
    }

    /// The KEK, or why there is none to use.
    fn kek(&self) -> Result<Option<Arc<Kek>>, Error> {
        let kek = read(&self.kek).clone();
        match (self.level, &kek) {
            (ProtectionLevel::One, _) => Ok(None),
            (_, Some(_)) => Ok(kek),
            (ProtectionLevel::Three, None) => Err(Error::TenantLocked(self.name.clone())),
            (ProtectionLevel::Two, None) => {
                unreachable!("level-2 tenants are loaded with their KEK")
            }
        }
    }

    /// The KEK that wrapped a key record stored with `kek_version`, read *after* the record:
    /// the current KEK, or, while a rotation commits, the KEK it rotates to.
    /// [`TenantState::switch_kek`] sets `rotating_kek` before the commit and clears it only
    /// after `kek` holds the new KEK, so reading `rotating_kek` before `kek` never misses both. Anything else is the current KEK,
    /// which [`super::Vault::ring_from_record`] then refuses as the mismatch it is.
    fn kek_for(&self, kek_version: Option<u32>) -> Result<Option<Arc<Kek>>, Error> {
        let rotating = read(&self.rotating_kek).clone();
        let kek = self.kek()?;
        if kek.as_ref().map(|k| k.version) == kek_version {
            return Ok(kek);
        }
        match rotating {
            Some(next) if Some(next.version) == kek_version => Ok(Some(next)),
            _ => Ok(kek),
        }
    }

    /// Runs `commit`, which re-wraps the tenant's key records under `new`, while requests go
    /// on: a ring loaded from a record the commit has already re-wrapped finds `new` (see
    /// [`TenantState::kek_for`], which relies on this order). Once committed, `new` is the KEK.
    fn switch_kek(
        &self,
        new: Arc<Kek>,
        commit: impl FnOnce() -> Result<(), Error>,
    ) -> Result<(), Error> {
        *write(&self.rotating_kek) = Some(new.clone());
        let committed = commit();
        if committed.is_ok() {
            *write(&self.kek) = Some(new);
        }
        *write(&self.rotating_kek) = None;
        committed
    }

    fn set_ring(&self, key: &str, ring: Option<Arc<KeyRing>>) {
        let mut rings = write(&self.rings);
        match ring {
            Some(ring) => rings.insert(key.to_owned(), ring),
            None => rings.remove(key),
        };
        self.rings_generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Guards a cache fill against a concurrent change: read the generation, load from storage
/// without locks, then insert only if no change was published meanwhile (changes bump the
/// generation under the same write lock the insert takes).
struct Generation(u64);

impl Generation {
    fn start(counter: &AtomicU64) -> Self {
        Generation(counter.load(Ordering::SeqCst))
    }

    fn unchanged(&self, counter: &AtomicU64) -> bool {
        counter.load(Ordering::SeqCst) == self.0
    }
}

/// A commit outside the barrier (the seal configuration, the root check, the format):
/// storage errors pass through, conflicts name the object.
fn commit(store: &dyn Store, batch: Batch) -> Result<(), Error> {
    store.commit(batch).map_err(Error::from)
}

impl Vault {
    /// Commits `batch` through `unsealed`'s barrier and ledger.
    fn commit(&self, unsealed: &Unsealed, batch: Batch) -> Result<(), Error> {
        unsealed.commit(self.store(), batch)
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[allow(unused)]
fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Vault>();
    check::<KeyRecord>();
}
