//! The audit HMAC key: random, made on first use, stored under the barrier at
//! `core/audit-hmac-key`. Kept rather than derived from the root key so that it survives root
//! rotations: a value hashed today still matches lines written last year.

use std::sync::Arc;

use super::Vault;
use crate::Error;
use crate::audit::AuditHasher;
use crate::crypto::SecretKey;
use crate::keys::records::StoredBytes;
use crate::store::{Batch, StoreError};

const PATH: &str = "core/audit-hmac-key";

impl Vault {
    /// The audit hasher, or `None` while sealed (no key operation runs then either).
    pub fn audit_hasher(&self) -> Option<Arc<AuditHasher>> {
        let unsealed = self.unsealed().ok()?;
        if let Some(hasher) = unsealed.audit_hasher.get() {
            return Some(hasher.clone());
        }
        match self.load_or_create_audit_key() {
            Ok(key) => Some(
                unsealed
                    .audit_hasher
                    .get_or_init(|| Arc::new(AuditHasher::new(&key)))
                    .clone(),
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot load the audit HMAC key");
                None
            }
        }
    }

    fn load_or_create_audit_key(&self) -> Result<SecretKey, Error> {
        let records = self.sealed_records()?;
        loop {
            if let Some((stored, _)) = records.get::<StoredBytes>(PATH)? {
                return SecretKey::from_slice(&stored.0)
                    .ok_or(Error::Integrity { path: PATH.into() });
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
}
