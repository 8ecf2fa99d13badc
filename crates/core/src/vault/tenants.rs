//! Tenants: creation at a protection level, KEK rotation, level-3 lock and unlock, shredding.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{Unsealed, Vault, commit, read, write};
use crate::Error;
use crate::keys::kek::{self, Kek};
use crate::keys::records::{self, KekRecord, KeyRecord};
use crate::keys::{ProtectionLevel, validate_tenant_name};
use crate::store::{Batch, StoredBytes};
use tresor_crypto::SecretKey;
use tresor_crypto::identity::CustodianPublicKey;
use tresor_wire::custody::{
    CUSTODY_PURPOSE, TenantCustodyKey, UNLOCK_PURPOSE, custody_context, unlock_context,
};
use tresor_wire::tenants::TenantInfo;

/// How to create a tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantSpec {
    /// Protection level (default 2).
    pub level: ProtectionLevel,
    /// Level 3 only: the tenant's own custodians, any one of whom can unlock it.
    pub custodians: Vec<CustodianPublicKey>,
}

/// A tenant: its protection level and, from level 2, its key-encryption key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantRecord {
    pub(crate) level: ProtectionLevel,
    pub(crate) created_at: u64,
    /// Absent at level 1.
    pub(crate) kek: Option<KekRecord>,
    /// Level 3 only: the custody key sealed to each of the tenant's own custodians.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) custodians: Vec<TenantCustodianRecord>,
}

/// One of a level-3 tenant's custodians and the custody key sealed to them.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantCustodianRecord {
    pub(crate) custodian: CustodianPublicKey,
    pub(crate) sealed_custody_key: StoredBytes,
}

impl Vault {
    /// Creates a tenant. A level-3 tenant starts locked: one of its custodians must unlock it
    /// before first use.
    pub fn create_tenant(&self, name: &str, spec: &TenantSpec) -> Result<TenantInfo, Error> {
        validate_tenant_name(name)?;
        match (spec.level, spec.custodians.len()) {
            (ProtectionLevel::Three, 0) => {
                return Err(Error::invalid(
                    "custodians",
                    "a level-3 tenant needs at least one custodian of its own",
                ));
            }
            (ProtectionLevel::One | ProtectionLevel::Two, n) if n > 0 => {
                return Err(Error::invalid(
                    "custodians",
                    "only level-3 tenants have custodians of their own",
                ));
            }
            _ => {}
        }
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let now = self.now();
        let kek_material = SecretKey::random();
        let (kek, custodians) = match spec.level {
            ProtectionLevel::One => (None, Vec::new()),
            ProtectionLevel::Two => (
                Some(KekRecord {
                    version: 1,
                    created_at: now,
                    material: StoredBytes::new(kek_material.expose().to_vec()),
                }),
                Vec::new(),
            ),
            ProtectionLevel::Three => {
                let custody = SecretKey::random();
                let sealed_kek =
                    kek::seal_under_custody(&custody, name, &Kek::new(1, kek_material));
                let custodians =
                    seal_custody_key(&unsealed.vault_id, name, &custody, &spec.custodians)?;
                (
                    Some(KekRecord {
                        version: 1,
                        created_at: now,
                        material: StoredBytes::new(sealed_kek),
                    }),
                    custodians,
                )
            }
        };
        let record = TenantRecord {
            level: spec.level,
            created_at: now,
            kek,
            custodians,
        };
        let path = records::tenant_path(name);
        let batch = Batch::new()
            .expect(path.clone(), None)
            .put(path.clone(), unsealed.seal_record(&path, &record));
        commit(self.store(), batch).map_err(|e| match e {
            Error::Store(crate::store::StoreError::Conflict { .. }) => {
                Error::TenantExists(name.to_owned())
            }
            other => other,
        })?;
        unsealed.set_tenant(name, None);
        Ok(self.tenant_info_from(&unsealed, name, &record, 0))
    }

    /// Names of all tenants, sorted.
    pub fn list_tenants(&self) -> Result<Vec<String>, Error> {
        self.unsealed()?;
        Ok(self
            .store()
            .scan_prefix(records::TENANTS_PREFIX)?
            .into_iter()
            .map(|(path, _)| path[records::TENANTS_PREFIX.len()..].to_owned())
            .collect())
    }

    /// A tenant's description.
    pub fn tenant_info(&self, name: &str) -> Result<TenantInfo, Error> {
        let unsealed = self.unsealed()?;
        let (record, _) = unsealed
            .read_record::<TenantRecord>(self.store(), &records::tenant_path(name))?
            .ok_or_else(|| Error::TenantNotFound(name.to_owned()))?;
        let keys = self.store().scan_prefix(&records::keys_prefix(name))?.len();
        Ok(self.tenant_info_from(&unsealed, name, &record, keys))
    }

    fn tenant_info_from(
        &self,
        unsealed: &Unsealed,
        name: &str,
        record: &TenantRecord,
        keys: usize,
    ) -> TenantInfo {
        let locked = record.level == ProtectionLevel::Three
            && read(&unsealed.tenants)
                .get(name)
                .is_none_or(|t| read(&t.kek).is_none());
        TenantInfo {
            name: name.to_owned(),
            level: record.level.into(),
            created_at: record.created_at,
            kek_version: record.kek.as_ref().map_or(0, |k| k.version),
            locked,
            custodians: record
                .custodians
                .iter()
                .map(|c| c.custodian.name().to_owned())
                .collect(),
            keys,
        }
    }

    /// The custody key of level-3 tenant `tenant`, sealed to its custodian `custodian`.
    pub fn tenant_custody_box(&self, tenant: &str, custodian: &str) -> Result<String, Error> {
        let unsealed = self.unsealed()?;
        let (record, _) = unsealed
            .read_record::<TenantRecord>(self.store(), &records::tenant_path(tenant))?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        if record.level != ProtectionLevel::Three {
            return Err(Error::invalid(
                "tenant",
                format!(
                    "`{tenant}` is level {}: only level-3 tenants have custody keys",
                    u8::from(record.level)
                ),
            ));
        }
        let entry = record
            .custodians
            .iter()
            .find(|c| c.custodian.name() == custodian)
            .ok_or_else(|| {
                Error::invalid(
                    "custodian",
                    format!("`{custodian}` is not a custodian of tenant `{tenant}`"),
                )
            })?;
        Ok(STANDARD.encode(&entry.sealed_custody_key.0))
    }

    /// Unlocks a level-3 tenant with its custody key. A key that is not this tenant's is
    /// refused and the tenant stays locked.
    pub fn unlock_tenant(
        &self,
        tenant: &str,
        custody: &TenantCustodyKey,
    ) -> Result<TenantInfo, Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let path = records::tenant_path(tenant);
        let (record, _) = unsealed
            .read_record::<TenantRecord>(self.store(), &path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        if record.level != ProtectionLevel::Three {
            return Err(Error::invalid(
                "tenant",
                format!("`{tenant}` is not a level-3 tenant: there is nothing to unlock"),
            ));
        }
        let stored = record
            .kek
            .as_ref()
            .ok_or(Error::Integrity { path: path.clone() })?;
        let kek =
            kek::open_under_custody(custody.secret(), tenant, stored.version, &stored.material.0)
                .ok_or_else(|| {
                Error::NotPermitted(format!(
                    "this custody key does not unlock tenant `{tenant}`"
                ))
            })?;
        let state = unsealed.tenant(self.store(), tenant)?;
        *write(&state.custody) = Some(Arc::new(custody.secret().clone()));
        *write(&state.kek) = Some(Arc::new(kek));
        let keys = self
            .store()
            .scan_prefix(&records::keys_prefix(tenant))?
            .len();
        Ok(self.tenant_info_from(&unsealed, tenant, &record, keys))
    }

    /// Unlocks a level-3 tenant with a custody key sealed by its custodian `custodian` with
    /// [`TenantCustodyKey::seal_for_unlock`]. The unseal key is renewed afterwards, so the same
    /// submission cannot unlock the tenant again after a lock.
    ///
    /// `principal` is the caller's: a tenant custodian bound to a principal unlocks only from a
    /// connection authenticated as that principal.
    pub fn unlock_tenant_sealed(
        &self,
        tenant: &str,
        custodian: &str,
        principal: &str,
        sealed: &[u8],
    ) -> Result<TenantInfo, Error> {
        let unsealed = self.unsealed()?;
        let (record, _) = unsealed
            .read_record::<TenantRecord>(self.store(), &records::tenant_path(tenant))?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        let entry = record
            .custodians
            .iter()
            .find(|c| c.custodian.name() == custodian)
            .ok_or_else(|| {
                Error::invalid(
                    "custodian",
                    format!("`{custodian}` is not a custodian of tenant `{tenant}`"),
                )
            })?;
        super::seal::check_principal(&entry.custodian, principal)?;
        let context = unlock_context(
            &unsealed.vault_id,
            &self.unseal_public_key(),
            tenant,
            custodian,
        );
        let plain = self.open_submission(UNLOCK_PURPOSE, context.as_slice(), sealed)?;
        let custody = TenantCustodyKey::from_slice(&plain)
            .ok_or_else(|| Error::invalid("sealed_custody_key", "wrong length"))?;
        let info = self.unlock_tenant(tenant, &custody)?;
        self.renew_unseal_key();
        Ok(info)
    }

    /// Locks a level-3 tenant again at once: its KEK and data keys leave memory, and the unseal
    /// key is renewed so no earlier unlock submission works again.
    pub fn lock_tenant(&self, tenant: &str) -> Result<(), Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        if state.level != ProtectionLevel::Three {
            return Err(Error::invalid(
                "tenant",
                format!("`{tenant}` is not a level-3 tenant: it cannot be locked"),
            ));
        }
        unsealed.set_tenant(tenant, None);
        self.renew_unseal_key();
        Ok(())
    }

    /// Replaces a level-3 tenant's custodians: a fresh custody key wraps the KEK and is sealed
    /// to the new custodians only, so a removed custodian's copy opens nothing that remains
    /// (storage is purged). The tenant must be unlocked. Callers must have custodian approval
    /// (the API enforces it).
    pub fn change_tenant_custodians(
        &self,
        tenant: &str,
        custodians: &[CustodianPublicKey],
    ) -> Result<TenantInfo, Error> {
        if custodians.is_empty() {
            return Err(Error::invalid(
                "custodians",
                "a level-3 tenant needs at least one custodian of its own",
            ));
        }
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        if state.level != ProtectionLevel::Three {
            return Err(Error::invalid(
                "tenant",
                format!("`{tenant}` is not a level-3 tenant: it has no custodians of its own"),
            ));
        }
        let kek = state
            .kek()?
            .ok_or_else(|| Error::TenantLocked(tenant.to_owned()))?;
        let path = records::tenant_path(tenant);
        let (mut record, raw) = unsealed
            .read_record::<TenantRecord>(self.store(), &path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        let custody = SecretKey::random();
        record.custodians = seal_custody_key(&unsealed.vault_id, tenant, &custody, custodians)?;
        let stored = record
            .kek
            .as_mut()
            .ok_or(Error::Integrity { path: path.clone() })?;
        stored.material = StoredBytes::new(kek::seal_under_custody(&custody, tenant, &kek));
        let batch = Batch::new()
            .expect(path.clone(), Some(raw))
            .put(path.clone(), unsealed.seal_record(&path, &record));
        commit(self.store(), batch)?;
        *write(&state.custody) = Some(Arc::new(custody));
        self.store().purge_stale()?;
        let keys = self
            .store()
            .scan_prefix(&records::keys_prefix(tenant))?
            .len();
        Ok(self.tenant_info_from(&unsealed, tenant, &record, keys))
    }

    /// Makes a new KEK version and re-wraps every data key of the tenant under it, in one
    /// atomic commit. No caller ciphertext changes.
    pub fn rotate_tenant_kek(&self, tenant: &str) -> Result<TenantInfo, Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        let old = state.kek()?.ok_or_else(|| {
            Error::invalid(
                "tenant",
                format!("`{tenant}` is level 1: it has no KEK to rotate"),
            )
        })?;
        let tenant_path = records::tenant_path(tenant);
        let (mut record, raw_tenant) = unsealed
            .read_record::<TenantRecord>(self.store(), &tenant_path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        let new = Kek::new(old.version + 1, SecretKey::random());
        let now = self.now();
        let material = match record.level {
            // Unlocked, so the custody key its custodian gave is in memory.
            ProtectionLevel::Three => {
                let custody = read(&state.custody)
                    .clone()
                    .ok_or_else(|| Error::TenantLocked(tenant.to_owned()))?;
                StoredBytes::new(kek::seal_under_custody(&custody, tenant, &new))
            }
            _ => StoredBytes::new(new.material().expose().to_vec()),
        };
        record.kek = Some(KekRecord {
            version: new.version,
            created_at: now,
            material,
        });
        let mut batch = Batch::new().expect(tenant_path.clone(), Some(raw_tenant));
        batch.push_put(
            tenant_path.clone(),
            unsealed.seal_record(&tenant_path, &record),
        );
        self.rewrap_keys(&unsealed, tenant, &old, &new, &mut batch)?;
        commit(self.store(), batch)?;
        *write(&state.kek) = Some(Arc::new(new));
        let keys = self
            .store()
            .scan_prefix(&records::keys_prefix(tenant))?
            .len();
        Ok(self.tenant_info_from(&unsealed, tenant, &record, keys))
    }

    /// Adds to `batch` every key record of `tenant` re-wrapped from `old` to `new`.
    fn rewrap_keys(
        &self,
        unsealed: &Unsealed,
        tenant: &str,
        old: &Kek,
        new: &Kek,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        for (path, raw) in self.store().scan_prefix(&records::keys_prefix(tenant))? {
            let plain = unsealed.barrier.open(&path, &raw)?;
            let mut record: KeyRecord = records::decode(&path, &plain)?;
            let key_name = &path[records::keys_prefix(tenant).len()..];
            if record.kek_version != Some(old.version) {
                return Err(Error::Integrity { path });
            }
            for (version, stored) in record.versions.iter_mut() {
                let material = old.unwrap(tenant, key_name, *version, &stored.material.0)?;
                stored.material = StoredBytes::new(new.wrap(tenant, key_name, *version, &material));
            }
            record.kek_version = Some(new.version);
            *batch = std::mem::take(batch).expect(path.clone(), Some(raw));
            batch.push_put(path.clone(), unsealed.seal_record(&path, &record));
        }
        Ok(())
    }

    /// Destroys a tenant: its record and every key, then purges storage so no copy of the old
    /// records survives in the data directory. Irreversible.
    pub fn shred_tenant(&self, tenant: &str) -> Result<(), Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let path = records::tenant_path(tenant);
        let raw = self
            .store()
            .get(&path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        let mut batch = Batch::new().expect(path.clone(), Some(raw)).delete(path);
        for (key_path, _) in self.store().scan_prefix(&records::keys_prefix(tenant))? {
            batch.push_delete(key_path);
        }
        commit(self.store(), batch)?;
        unsealed.set_tenant(tenant, None);
        self.store().purge_stale()?;
        Ok(())
    }
}

fn seal_custody_key(
    vault_id: &str,
    tenant: &str,
    custody: &SecretKey,
    custodians: &[CustodianPublicKey],
) -> Result<Vec<TenantCustodianRecord>, Error> {
    for (i, c) in custodians.iter().enumerate() {
        if custodians[..i].iter().any(|o| o.name() == c.name()) {
            return Err(Error::invalid(
                "custodians",
                format!("name `{}` appears twice", c.name()),
            ));
        }
    }
    custodians
        .iter()
        .map(|custodian| {
            let sealed = custodian
                .seal(
                    CUSTODY_PURPOSE,
                    custody_context(vault_id, tenant).as_slice(),
                    custody.expose(),
                )
                .map_err(|e| Error::invalid("custodians", format!("{}: {e}", custodian.name())))?;
            Ok(TenantCustodianRecord {
                custodian: custodian.clone(),
                sealed_custody_key: StoredBytes::new(sealed),
            })
        })
        .collect()
}
