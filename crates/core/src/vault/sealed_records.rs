//! Barrier-sealed storage for the services that keep records of their own next to the key
//! hierarchy (pinning manifests, approvals, the audit HMAC key). They get the same guarantees as
//! keys: every value sealed with its path in the AAD, every commit atomic and durable,
//! everything re-sealed by a root rotation.
//!
//! A service holds a [`SealedStore`]: the one narrow handle it gets on the vault. It cannot
//! reach keys, tenants or the seal, only its own records and the vault's clock.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Inner, Unsealed, Vault};
use crate::Error;
use crate::clock::Clock;
use crate::keys::records;
use crate::store::{Batch, Store};

/// A service's handle on the vault: its sealed records while the vault is unsealed, and the
/// clock. Cheap to clone.
#[derive(Clone)]
pub struct SealedStore {
    inner: Arc<Inner>,
}

impl SealedStore {
    /// The vault this handle is on.
    pub(super) fn vault(&self) -> Vault {
        Vault {
            inner: self.inner.clone(),
        }
    }

    /// The records, readable through the barrier; fails with [`Error::Sealed`] while sealed.
    pub fn records(&self) -> Result<SealedRecords, Error> {
        Vault {
            inner: self.inner.clone(),
        }
        .sealed_records()
    }

    /// The vault's clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.options.clock.as_ref()
    }

    /// The environment the vault serves.
    pub fn environment(&self) -> &str {
        &self.inner.options.environment
    }
}

/// A view of the store through the barrier, valid while the vault stays unsealed.
pub struct SealedRecords {
    unsealed: Arc<Unsealed>,
    store: Arc<dyn Store>,
}

impl Vault {
    /// The handle services keep on this vault.
    pub fn sealed_store(&self) -> SealedStore {
        SealedStore {
            inner: self.inner.clone(),
        }
    }

    fn sealed_records(&self) -> Result<SealedRecords, Error> {
        Ok(SealedRecords {
            unsealed: self.unsealed()?,
            store: self.inner.store.clone(),
        })
    }
}

/// Values services attach to one unseal (keys derived or loaded from sealed records), one per
/// type. They are dropped when the vault seals, with every other unwrapped key.
#[derive(Default)]
pub(crate) struct Session(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl SealedRecords {
    /// A view through `unsealed`'s barrier (for the unseal guard, before the state is public).
    pub(crate) fn over(unsealed: Arc<Unsealed>, store: Arc<dyn Store>) -> Self {
        SealedRecords { unsealed, store }
    }

    /// The record at `path` and its raw stored bytes (for a compare-and-swap commit).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<(T, Vec<u8>)>, Error> {
        let Some((plain, raw)) = self.unsealed.read_opened(self.store.as_ref(), path)? else {
            return Ok(None);
        };
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
    pub fn scan<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, Error> {
        self.store
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(path, raw)| {
                let plain = self.unsealed.open(self.store.as_ref(), &path, &raw)?;
                let value = records::decode(&path, &plain)?;
                Ok((path, value))
            })
            .collect()
    }

    /// The sealed bytes to store for `record` at `path`.
    pub fn seal<T: Serialize>(&self, path: &str, record: &T) -> Vec<u8> {
        self.unsealed.seal_record(path, record)
    }

    /// Applies `batch` atomically and durably (with the ledger's update).
    pub fn commit(&self, batch: Batch) -> Result<(), Error> {
        self.unsealed.commit(self.store.as_ref(), batch)
    }

    /// Rewrites storage so that deleted values leave the data directory.
    pub fn purge_stale(&self) -> Result<(), Error> {
        Ok(self.store.purge_stale()?)
    }

    /// The value of type `T` attached to this unseal, made by `load` on first use. Kept until
    /// the vault seals (or the root key rotates), then dropped with the keys.
    pub fn session<T: Any + Send + Sync>(
        &self,
        load: impl FnOnce(&SealedRecords) -> Result<T, Error>,
    ) -> Result<Arc<T>, Error> {
        let id = TypeId::of::<T>();
        let cached = |map: &HashMap<TypeId, Arc<dyn Any + Send + Sync>>| {
            map.get(&id).and_then(|v| v.clone().downcast::<T>().ok())
        };
        if let Some(value) = cached(&super::lock(&self.unsealed.session.0)) {
            return Ok(value);
        }
        let value = Arc::new(load(self)?);
        let mut map = super::lock(&self.unsealed.session.0);
        if let Some(existing) = cached(&map) {
            return Ok(existing);
        }
        map.insert(id, value.clone());
        Ok(value)
    }

    /// This vault's identifier.
    pub fn vault_id(&self) -> &str {
        &self.unsealed.vault_id
    }
}
