//! Named data keys: create, describe, list, configure, rotate, trim, delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Generation, TenantState, Unsealed, Vault, read, write};
use crate::Error;
use crate::keys::config::trim;
use crate::keys::kek::Kek;
use crate::keys::records::{self, KeyRecord, ScheduledDeletion, VersionRecord};
use crate::keys::ring::{KeyIdentity, KeyRing};
use crate::keys::{KeyConfig, KeyConfigUpdate, KeySpec, validate_key_name};
use crate::store::{Batch, StoreError, StoredBytes};
use tresor_crypto::SecretKey;

/// What the vault tells about a key (never its material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Tenant.
    pub tenant: String,
    /// Key name.
    pub name: String,
    /// Creation time (Unix seconds).
    pub created_at: u64,
    /// Configuration.
    pub config: KeyConfig,
    /// Newest version.
    pub latest_version: u32,
    /// When the newest version was made.
    pub rotated_at: u64,
    /// Every version still held, with its creation time.
    pub versions: BTreeMap<u32, u64>,
    /// Set while an approved deletion waits for its window to end (the key is unusable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<ScheduledDeletion>,
    /// Versions imported from Vault/OpenBao: they decrypt `vault:` ciphertexts, never encrypt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imported_versions: Vec<u32>,
}

impl KeyInfo {
    pub(super) fn from_record(tenant: &str, name: &str, record: &KeyRecord) -> Self {
        KeyInfo {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            created_at: record.created_at,
            config: record.config.clone(),
            latest_version: record.latest_version,
            rotated_at: record.rotated_at,
            versions: record
                .versions
                .iter()
                .map(|(v, r)| (*v, r.created_at))
                .collect(),
            deletion: record.deletion,
            imported_versions: record
                .versions
                .iter()
                .filter(|(_, r)| r.imported)
                .map(|(v, _)| *v)
                .collect(),
        }
    }
}

impl Vault {
    /// Creates key `name` in `tenant` with version 1, durable before this returns.
    pub fn create_key(&self, tenant: &str, name: &str, spec: KeySpec) -> Result<KeyInfo, Error> {
        validate_key_name(name)?;
        let config = spec.into_config()?;
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        let kek = state.kek()?;
        let now = self.now();
        let material = SecretKey::random();
        let mut record = KeyRecord {
            created_at: now,
            config,
            latest_version: 1,
            rotated_at: now,
            kek_version: kek.as_ref().map(|k| k.version),
            versions: BTreeMap::new(),
            deletion: None,
        };
        record.versions.insert(
            1,
            stored_version(tenant, name, 1, &material, kek.as_deref(), now),
        );
        self.store_key(&unsealed, &state, name, &record, kek.as_deref(), None)
    }

    /// Writes `record` as key `name` where the store holds `replacing` (`None`: no key, and a
    /// key made meanwhile is [`Error::KeyExists`]), and serves it from the cache at once.
    pub(super) fn store_key(
        &self,
        unsealed: &Unsealed,
        state: &TenantState,
        name: &str,
        record: &KeyRecord,
        kek: Option<&Kek>,
        replacing: Option<Vec<u8>>,
    ) -> Result<KeyInfo, Error> {
        let tenant = state.name.as_str();
        let path = records::key_path(tenant, name);
        let creating = replacing.is_none();
        let batch = Batch::new()
            .expect(path.clone(), replacing)
            .put(path.clone(), unsealed.seal_record(&path, record));
        self.commit(unsealed, batch).map_err(|e| match e {
            Error::Store(StoreError::Conflict { .. }) if creating => Error::KeyExists {
                tenant: tenant.into(),
                key: name.into(),
            },
            other => other,
        })?;
        let ring = self.ring_from_record(unsealed, state, name, record, kek)?;
        state.set_ring(name, Some(Arc::new(ring)));
        Ok(KeyInfo::from_record(tenant, name, record))
    }

    /// A key's description.
    pub fn key_info(&self, tenant: &str, name: &str) -> Result<KeyInfo, Error> {
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        state.kek()?;
        let (record, _) = self.read_key(&unsealed, tenant, name)?;
        Ok(KeyInfo::from_record(tenant, name, &record))
    }

    /// Names of a tenant's keys, sorted.
    pub fn list_keys(&self, tenant: &str) -> Result<Vec<String>, Error> {
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        state.kek()?;
        let prefix = records::keys_prefix(tenant);
        Ok(self
            .store()
            .scan_prefix(&prefix)?
            .into_iter()
            .map(|(path, _)| path[prefix.len()..].to_owned())
            .collect())
    }

    /// Changes a key's configuration (Vault's `keys/:name/config` rules).
    pub fn configure_key(
        &self,
        tenant: &str,
        name: &str,
        update: &KeyConfigUpdate,
    ) -> Result<KeyInfo, Error> {
        self.update_key(tenant, name, |record, _| {
            record.config = record.config.updated(update, record.latest_version)?;
            Ok(false)
        })
    }

    /// Adds a new version and makes it the one new ciphertexts use. The version is on disk
    /// before this returns, so no ciphertext can use a key that could be lost.
    pub fn rotate_key(&self, tenant: &str, name: &str) -> Result<KeyInfo, Error> {
        let now = self.now();
        self.update_key(tenant, name, |record, kek| {
            add_version(tenant, name, record, kek, now)?;
            Ok(false)
        })
    }

    /// Destroys every version below `min_available_version` (Vault's `keys/:name/trim`), then
    /// purges storage so their bytes are gone from the data directory.
    pub fn trim_key(
        &self,
        tenant: &str,
        name: &str,
        min_available_version: u32,
    ) -> Result<KeyInfo, Error> {
        self.update_key(tenant, name, |record, _| {
            record.config = trim(&record.config, min_available_version)?;
            let before = record.versions.len();
            record.versions.retain(|v, _| *v >= min_available_version);
            Ok(record.versions.len() != before)
        })
    }

    /// Destroys a key at once (only if `deletion_allowed`), then purges storage. Irreversible:
    /// its ciphertexts can never be decrypted again. The server calls this only for an approved
    /// deletion with a window of 0 or when a window ends; otherwise it schedules the deletion
    /// ([`Vault::schedule_key_deletion`]).
    pub fn delete_key(&self, tenant: &str, name: &str) -> Result<(), Error> {
        self.destroy_key(tenant, name, true, |_| Ok(()))
    }

    /// Destroys the key if `check` accepts its record, deciding on the record it commits against.
    /// A window that ends destroys the key also in a locked level-3 tenant (`need_unlocked`
    /// false): its record goes, no KEK is needed for that.
    pub(super) fn destroy_key(
        &self,
        tenant: &str,
        name: &str,
        need_unlocked: bool,
        check: impl FnOnce(&KeyRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        if need_unlocked {
            state.kek()?;
        }
        let (record, raw) = self.read_key(&unsealed, tenant, name)?;
        check(&record)?;
        if !record.config.deletion_allowed {
            return Err(Error::NotPermitted(format!(
                "key `{name}` cannot be deleted: set deletion_allowed to true first"
            )));
        }
        let path = records::key_path(tenant, name);
        self.commit(
            &unsealed,
            Batch::new().expect(path.clone(), Some(raw)).delete(path),
        )?;
        state.set_ring(name, None);
        self.store().purge_stale()?;
        Ok(())
    }

    /// Rotates every key whose `auto_rotate_period` has passed since its last rotation.
    /// Locked tenants are skipped (their keys rotate after unlock). Returns what was rotated.
    pub fn rotate_due_keys(&self) -> Result<Vec<KeyInfo>, Error> {
        let mut rotated = Vec::new();
        for (tenant, name) in self.due_keys()? {
            rotated.extend(self.rotate_key_if_due(&tenant, &name)?);
        }
        Ok(rotated)
    }

    /// Rotates `tenant`/`name` if its `auto_rotate_period` has passed, deciding on the record it
    /// commits against: a manual rotation between [`Vault::due_keys`] and this call makes the key
    /// no longer due, instead of rotating it twice. `None` when it was not due.
    pub fn rotate_key_if_due(&self, tenant: &str, name: &str) -> Result<Option<KeyInfo>, Error> {
        let now = self.now();
        let mut rotated = false;
        let info = self.update_key(tenant, name, |record, kek| {
            let period = record.config.auto_rotate_period;
            if period > 0 && now >= record.rotated_at.saturating_add(period) {
                add_version(tenant, name, record, kek, now)?;
                rotated = true;
            }
            Ok(false)
        })?;
        Ok(rotated.then_some(info))
    }

    /// The keys, as `(tenant, name)`, whose `auto_rotate_period` has passed since their last
    /// rotation, in unlocked tenants. The server rotates them one by one, auditing each.
    pub fn due_keys(&self) -> Result<Vec<(String, String)>, Error> {
        let now = self.now();
        let mut due = Vec::new();
        for tenant in self.list_tenants()? {
            let unsealed = self.unsealed()?;
            let state = match unsealed.tenant(self.store(), &tenant) {
                Err(Error::PendingDeletion { .. }) => continue,
                other => other?,
            };
            if state.kek().is_err() {
                continue;
            }
            let prefix = records::keys_prefix(&tenant);
            for (path, raw) in self.store().scan_prefix(&prefix)? {
                let record: KeyRecord =
                    records::decode(&path, &unsealed.open(self.store(), &path, &raw)?)?;
                let period = record.config.auto_rotate_period;
                if period > 0
                    && record.deletion.is_none()
                    && now >= record.rotated_at.saturating_add(period)
                {
                    due.push((tenant.clone(), path[prefix.len()..].to_owned()));
                }
            }
        }
        Ok(due)
    }

    /// Reads a key record, modifies it with `change`, commits it if unchanged meanwhile, and
    /// refreshes the cached ring. `change` returns true when versions were destroyed, which
    /// calls for a purge.
    pub(super) fn update_key(
        &self,
        tenant: &str,
        name: &str,
        change: impl FnOnce(&mut KeyRecord, Option<&Kek>) -> Result<bool, Error>,
    ) -> Result<KeyInfo, Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        let kek = state.kek()?;
        let (mut record, raw) = self.read_key(&unsealed, tenant, name)?;
        usable(tenant, name, &record)?;
        let destroyed = change(&mut record, kek.as_deref())?;
        let path = records::key_path(tenant, name);
        let batch = Batch::new()
            .expect(path.clone(), Some(raw))
            .put(path.clone(), unsealed.seal_record(&path, &record));
        self.commit(&unsealed, batch)?;
        let ring = self.ring_from_record(&unsealed, &state, name, &record, kek.as_deref())?;
        state.set_ring(name, Some(Arc::new(ring)));
        if destroyed {
            self.store().purge_stale()?;
        }
        Ok(KeyInfo::from_record(tenant, name, &record))
    }

    pub(super) fn read_key(
        &self,
        unsealed: &Unsealed,
        tenant: &str,
        name: &str,
    ) -> Result<(KeyRecord, Vec<u8>), Error> {
        unsealed
            .read_record::<KeyRecord>(self.store(), &records::key_path(tenant, name))?
            .ok_or_else(|| Error::KeyNotFound {
                tenant: tenant.to_owned(),
                key: name.to_owned(),
            })
    }

    /// The ring of `tenant`/`name`, from the cache or loaded and unwrapped on first use.
    pub(super) fn ring(&self, tenant: &str, name: &str) -> Result<Arc<KeyRing>, Error> {
        match self.load_ring(tenant, name) {
            // A root rotation may have re-sealed the records between taking the unsealed state
            // and reading them; the second attempt sees the new barrier. Real damage fails again.
            Err(Error::Integrity { .. }) => self.load_ring(tenant, name),
            other => other,
        }
    }

    /// The key's ring read afresh from the store (the cached one dropped first).
    pub(super) fn reloaded_ring(&self, tenant: &str, name: &str) -> Result<Arc<KeyRing>, Error> {
        let unsealed = self.unsealed()?;
        unsealed.tenant(self.store(), tenant)?.set_ring(name, None);
        self.ring(tenant, name)
    }

    /// The ring to encrypt with: if the newest version was imported (it never encrypts), a
    /// Tresor version is added after it first (docs/format.md, "Vault and OpenBao").
    /// `at_least`: a version the request names, which a ring cached before another node made
    /// it would not hold (it is then read afresh).
    pub(super) fn encrypting_ring(
        &self,
        tenant: &str,
        name: &str,
        at_least: Option<u32>,
    ) -> Result<Arc<KeyRing>, Error> {
        let ring = self.ring_at_least(tenant, name, at_least)?;
        if !ring.latest_is_imported() {
            return Ok(ring);
        }
        let now = self.now();
        self.update_key(tenant, name, |record, kek| {
            // Decided on the record committed against: a concurrent request may have added it.
            if record
                .versions
                .get(&record.latest_version)
                .is_some_and(|v| v.imported)
            {
                add_version(tenant, name, record, kek, now)?;
            }
            Ok(false)
        })?;
        self.ring(tenant, name)
    }

    fn load_ring(&self, tenant: &str, name: &str) -> Result<Arc<KeyRing>, Error> {
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        if let Some(ring) = read(&state.rings).get(name) {
            self.inner
                .cache_hits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(ring.clone());
        }
        self.inner
            .cache_misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A locked tenant is refused before its key records are looked at.
        state.kek()?;
        let generation = Generation::start(&state.rings_generation);
        let (record, _) = self.read_key(&unsealed, tenant, name)?;
        usable(tenant, name, &record)?;
        // After the record: a KEK rotation committing meanwhile may have re-wrapped it.
        let kek = state.kek_for(record.kek_version)?;
        let ring =
            Arc::new(self.ring_from_record(&unsealed, &state, name, &record, kek.as_deref())?);
        let mut rings = write(&state.rings);
        if let Some(existing) = rings.get(name) {
            return Ok(existing.clone());
        }
        if generation.unchanged(&state.rings_generation) {
            rings.insert(name.to_owned(), ring.clone());
        }
        Ok(ring)
    }

    pub(super) fn ring_from_record(
        &self,
        _unsealed: &Unsealed,
        state: &TenantState,
        name: &str,
        record: &KeyRecord,
        kek: Option<&Kek>,
    ) -> Result<KeyRing, Error> {
        let tenant = state.name.as_str();
        let path = || records::key_path(tenant, name);
        if record.kek_version != kek.map(|k| k.version) {
            return Err(Error::Integrity { path: path() });
        }
        let materials = record
            .versions
            .iter()
            .map(|(version, stored)| {
                let material = match kek {
                    Some(kek) => kek.unwrap(tenant, name, *version, &stored.material.0)?,
                    None => SecretKey::from_slice(&stored.material.0)
                        .ok_or_else(|| Error::Integrity { path: path() })?,
                };
                Ok((*version, material))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let identity = KeyIdentity {
            environment: self.environment().to_owned(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        };
        let imported = record
            .versions
            .iter()
            .filter(|(_, r)| r.imported)
            .map(|(v, _)| *v)
            .collect();
        Ok(KeyRing::new(
            identity,
            record.config.clone(),
            record.latest_version,
            materials,
            &imported,
        ))
    }
}

/// The refusal of using a key or tenant that waits for destruction (see `vault::deletion`).
pub(super) fn pending(what: String, deletion: ScheduledDeletion) -> Error {
    Error::PendingDeletion {
        what,
        scheduled_at: deletion.scheduled_at,
        destroy_at: deletion.destroy_at,
    }
}

/// Refuses a key waiting for destruction.
fn usable(tenant: &str, name: &str, record: &KeyRecord) -> Result<(), Error> {
    match record.deletion {
        Some(deletion) => Err(pending(
            format!("key `{name}` in tenant `{tenant}`"),
            deletion,
        )),
        None => Ok(()),
    }
}

pub(super) fn add_version(
    tenant: &str,
    name: &str,
    record: &mut KeyRecord,
    kek: Option<&Kek>,
    now: u64,
) -> Result<(), Error> {
    let version = record.latest_version.checked_add(1).ok_or_else(|| {
        Error::NotPermitted(format!("key `{name}` has reached the last version number"))
    })?;
    let material = SecretKey::random();
    record.versions.insert(
        version,
        stored_version(tenant, name, version, &material, kek, now),
    );
    record.latest_version = version;
    record.rotated_at = now;
    Ok(())
}

pub(super) fn stored_version(
    tenant: &str,
    name: &str,
    version: u32,
    material: &SecretKey,
    kek: Option<&Kek>,
    now: u64,
) -> VersionRecord {
    let stored = match kek {
        Some(kek) => kek.wrap(tenant, name, version, material),
        None => material.expose().to_vec(),
    };
    VersionRecord {
        created_at: now,
        material: StoredBytes::new(stored),
        imported: false,
    }
}
