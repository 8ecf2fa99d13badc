//! The audit HMAC key: random, made on first use, stored under the barrier at
//! `core/audit-hmac-key`. Kept rather than derived from the root key so that it survives root
//! rotations: a value hashed today still matches lines written last year.

use std::sync::Arc;

use tresor_core::store::{Batch, StoreError, StoredBytes};
use tresor_core::{Error, SealedRecords, SealedStore};
use tresor_crypto::SecretKey;

use super::AuditHasher;

const PATH: &str = "core/audit-hmac-key";

/// Loads the audit hasher for each unseal; holds nothing itself.
#[derive(Clone)]
pub struct AuditKey {
    store: SealedStore,
}

impl AuditKey {
    /// The audit key of the vault behind `store`.
    pub fn new(store: SealedStore) -> Self {
        AuditKey { store }
    }

    /// The audit hasher: `Ok(None)` while the vault is sealed (no key operation runs then
    /// either); an error if the key cannot be loaded or made.
    pub fn hasher(&self) -> Result<Option<Arc<AuditHasher>>, Error> {
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
