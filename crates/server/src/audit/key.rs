//! The audit HMAC key: random, made on first use, stored under the barrier at
//! `core/audit-hmac-key`. Kept rather than derived from the root key so that it survives root
//! rotations: a value hashed today still matches lines written last year.

use std::sync::{Arc, RwLock, Weak};

use tresor_core::store::{Batch, StoreError, StoredBytes};
use tresor_core::{Error, SealedRecords, SealedStore};
use tresor_crypto::SecretKey;

use super::AuditHasher;

const PATH: &str = "core/audit-hmac-key";

/// Loads the audit hasher for each unseal. The unseal's session owns it (dropped when the
/// vault seals); this handle only keeps a weak reference, so it holds no key of its own.
#[derive(Clone)]
pub struct AuditKey {
    store: SealedStore,
    /// The current unseal's hasher, while that unseal lasts: every request asks for it, and
    /// reaching it through the sealed records takes the session's lock each time.
    current: Arc<RwLock<Weak<AuditHasher>>>,
}

impl AuditKey {
    /// The audit key of the vault behind `store`.
    pub fn new(store: SealedStore) -> Self {
        AuditKey {
            store,
            current: Arc::default(),
        }
    }

    /// The audit hasher: `Ok(None)` while the vault is sealed (no key operation runs then
    /// either); an error if the key cannot be loaded or made.
    ///
    /// Right after a seal, a request still in flight may keep the last unseal's hasher alive
    /// and a new request may get it too: harmless, as the key is the same stored key (it
    /// survives root rotations) and a sealed vault runs no key operation to record.
    pub fn hasher(&self) -> Result<Option<Arc<AuditHasher>>, Error> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        if current.is_some() {
            return Ok(current);
        }
        let hasher = self.load()?;
        if let Some(hasher) = &hasher {
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(hasher);
        }
        Ok(hasher)
    }

    fn load(&self) -> Result<Option<Arc<AuditHasher>>, Error> {
        let records = match self.store.records() {
            Ok(records) => records,
            Err(Error::Sealed) => return Ok(None),
            Err(e) => return Err(e),
        };
        records
            .session(|records| Ok(AuditHasher::new(&load_or_create(records)?)))
            .map(Some)
    }
}

fn load_or_create(records: &SealedRecords) -> Result<SecretKey, Error> {
    loop {
        if let Some((stored, _)) = records.get::<StoredBytes>(PATH)? {
            return SecretKey::from_slice(&stored.0).ok_or(Error::Integrity { path: PATH.into() });
        }
        let key = SecretKey::random();
        let record = StoredBytes::new(key.expose().to_vec());
        match records.commit(
            Batch::new()
                .expect(PATH, None)
                .put(PATH, records.seal(PATH, &record)),
        ) {
            Ok(()) => return Ok(key),
            // Someone else made it first: use theirs.
            Err(Error::Store(StoreError::Conflict { .. })) => continue,
            Err(e) => return Err(e),
        }
    }
}
