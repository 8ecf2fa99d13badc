//! Barrier-sealed storage for the modules that keep records of their own next to the key
//! hierarchy (pinning manifests, approvals, audit and manifest signing keys). They get the same
//! guarantees as keys: every value sealed with its path in the AAD, every commit atomic and
//! durable, everything re-sealed by a root rotation.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Unsealed, Vault};
use crate::Error;
use crate::crypto::{LengthPrefixed, SecretKey, derive_key};
use crate::keys::records;
use crate::store::{Batch, Store};

/// A view of the store through the barrier, valid while the vault stays unsealed.
pub(crate) struct SealedRecords {
    unsealed: Arc<Unsealed>,
    store: Arc<dyn Store>,
}

impl Vault {
    /// Sealed storage for another module; fails with [`Error::Sealed`] while sealed.
    pub(crate) fn sealed_records(&self) -> Result<SealedRecords, Error> {
        Ok(SealedRecords {
            unsealed: self.unsealed()?,
            store: self.inner.store.clone(),
        })
    }

    /// The vault's clock, for modules that keep time-dependent records.
    pub(crate) fn clock(&self) -> &dyn crate::Clock {
        self.inner.options.clock.as_ref()
    }
}

impl SealedRecords {
    /// The record at `path` and its raw stored bytes (for a compare-and-swap commit).
    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<(T, Vec<u8>)>, Error> {
        let Some(raw) = self.store.get(path)? else {
            return Ok(None);
        };
        let plain = self.unsealed.barrier.open(path, &raw)?;
        let value = serde_json::from_slice(&plain).map_err(|e| Error::RecordFormat {
            path: path.to_owned(),
            reason: format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ),
        })?;
        Ok(Some((value, raw)))
    }

    /// Every record under `prefix`, in path order.
    pub(crate) fn scan<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, Error> {
        self.store
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(path, raw)| {
                let plain = self.unsealed.barrier.open(&path, &raw)?;
                let value = records::decode(&path, &plain)?;
                Ok((path, value))
            })
            .collect()
    }

    /// The sealed bytes to store for `record` at `path`.
    pub(crate) fn seal<T: Serialize>(&self, path: &str, record: &T) -> Vec<u8> {
        self.unsealed.seal_record(path, record)
    }

    /// Applies `batch` atomically and durably.
    pub(crate) fn commit(&self, batch: Batch) -> Result<(), Error> {
        Ok(self.store.commit(batch)?)
    }

    /// Rewrites storage so that deleted values leave the data directory.
    pub(crate) fn purge_stale(&self) -> Result<(), Error> {
        Ok(self.store.purge_stale()?)
    }

    /// A key derived from the root key for `purpose` (HKDF, label-separated). It changes with
    /// every root rotation, so use it only for keys that may change then (the audit HMAC key);
    /// long-lived signing keys are generated and stored instead.
    pub(crate) fn derive_from_root(&self, purpose: &str) -> SecretKey {
        let info = LengthPrefixed::new()
            .bytes(b"tresor-root-derived-v1")
            .bytes(self.unsealed.vault_id.as_bytes())
            .bytes(purpose.as_bytes());
        derive_key(&self.unsealed.root, info.as_slice())
    }

    /// This vault's identifier.
    pub(crate) fn vault_id(&self) -> &str {
        &self.unsealed.vault_id
    }
}
