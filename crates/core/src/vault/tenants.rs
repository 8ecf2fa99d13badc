//! Tenants: creation at a protection level, KEK rotation, level-3 lock and unlock, shredding.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{TenantState, Unsealed, Vault, read, write};
use crate::Error;
use crate::keys::kek::{self, Kek};
use crate::keys::records::{self, KekRecord, KeyRecord};
use crate::keys::{ProtectionLevel, validate_tenant_name};
use crate::store::{Batch, StoredBytes};
use tresor_crypto::identity::CustodianPublicKey;
use tresor_crypto::shamir::{self, Share};
use tresor_crypto::{LengthPrefixed, SecretKey, derive_key, hmac_sha256};
use tresor_wire::custody::{
    CUSTODY_SHARE_PURPOSE, RootShare, TenantCustodyKey, UNLOCK_PURPOSE, custody_context,
    unlock_context,
};
use tresor_wire::tenants::TenantInfo;

const CUSTODIANS_MAC_LABEL: &[u8] = b"tresor-tenant-custodians-v1";

/// How to create a tenant.
#[derive(Debug, Clone, Default)]
pub struct TenantSpec {
    /// Protection level (default 2).
    pub level: ProtectionLevel,
    /// Level 3 only: the tenant's own custodians.
    pub custodians: Vec<CustodianPublicKey>,
    /// Level 3 only: how many of them unlock it and approve what only they may (k of n;
    /// 0 means 1).
    pub threshold: u8,
    /// Seconds between an approved shred and destruction (absent: 7 days; at most 30 days).
    pub deletion_window: Option<u64>,
}

/// A tenant: its protection level and, from level 2, its key-encryption key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantRecord {
    pub(crate) level: ProtectionLevel,
    pub(crate) created_at: u64,
    /// Absent at level 1.
    pub(crate) kek: Option<KekRecord>,
    /// Level 3 only: the custody key (or one share of it) sealed to each of the tenant's own
    /// custodians.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) custodians: Vec<TenantCustodianRecord>,
    /// Level 3: shares that unlock (k). Absent in tenants made by release 0.1, where each
    /// custodian holds the whole custody key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) threshold: Option<u8>,
    /// Level 3: HMAC-SHA256, under a key derived from the custody key, of the threshold and the
    /// custodians (see [`custodians_mac`]): who can change them needs the custody key, which the
    /// vault's own custodians do not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) custodians_mac: Option<StoredBytes>,
    /// Seconds between an approved shred and destruction (absent: the default, 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deletion_window: Option<u64>,
    /// Set while an approved shred waits for its window to end: the tenant is unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deletion: Option<crate::keys::records::ScheduledDeletion>,
}

/// An unlock in progress: the shares of a level-3 tenant's custody key given so far.
#[derive(Default)]
pub(crate) struct TenantRound {
    shares: Vec<Share>,
    custodians: Vec<String>,
    started_at: u64,
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
        if let Some(window) = spec.deletion_window {
            crate::keys::config::check_deletion_window(window)?;
        }
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let now = self.now();
        let kek_material = SecretKey::random();
        let mut record = TenantRecord {
            level: spec.level,
            created_at: now,
            kek: None,
            custodians: Vec::new(),
            threshold: None,
            custodians_mac: None,
            deletion_window: spec.deletion_window,
            deletion: None,
        };
        match spec.level {
            ProtectionLevel::One => {}
            ProtectionLevel::Two => {
                record.kek = Some(KekRecord {
                    version: 1,
                    created_at: now,
                    material: StoredBytes::new(kek_material.expose().to_vec()),
                });
            }
            ProtectionLevel::Three => {
                let custody = SecretKey::random();
                let sealed_kek =
                    kek::seal_under_custody(&custody, name, &Kek::new(1, kek_material));
                record.kek = Some(KekRecord {
                    version: 1,
                    created_at: now,
                    material: StoredBytes::new(sealed_kek),
                });
                entrust_custody(
                    &mut record,
                    &unsealed.vault_id,
                    name,
                    &custody,
                    &spec.custodians,
                    spec.threshold.max(1),
                )?;
            }
        }
        let path = records::tenant_path(name);
        let batch = Batch::new()
            .expect(path.clone(), None)
            .put(path.clone(), unsealed.seal_record(&path, &record));
        self.commit(&unsealed, batch).map_err(|e| match e {
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
            threshold: match record.level {
                ProtectionLevel::Three => record.threshold.unwrap_or(1),
                _ => 0,
            },
            submitted: if locked {
                super::lock(&self.inner.tenant_rounds)
                    .get(name)
                    .map(|round| round.custodians.clone())
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
            keys,
            deletion_window: record
                .deletion_window
                .unwrap_or(crate::keys::config::DEFAULT_DELETION_WINDOW),
            deletion_scheduled_at: record.deletion.map(|d| d.scheduled_at),
            destroy_at: record.deletion.map(|d| d.destroy_at),
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

    /// Unlocks a level-3 tenant with its whole custody key, or with one custodian's share of
    /// it when its threshold is 1 (the share is then the key). A tenant whose threshold is
    /// k > 1 is unlocked with k shares through [`Vault::unlock_tenant_sealed`]. A key that is
    /// not this tenant's is refused and the tenant stays locked.
    pub fn unlock_tenant(
        &self,
        tenant: &str,
        custody: &TenantCustodyKey,
    ) -> Result<TenantInfo, Error> {
        match (custody.secret(), custody.share()) {
            (Some(key), _) => self.unlock_tenant_with(tenant, key, None),
            (None, Some(share)) => {
                let key = shamir::combine(&[share])
                    .map_err(|e| Error::invalid("sealed_custody_key", e.to_string()))?;
                self.unlock_tenant_with(tenant, key, Some(1))
            }
            (None, None) => Err(Error::invalid("sealed_custody_key", "wrong length")),
        }
    }

    /// Unlocks `tenant` with its custody key `custody`, rebuilt from `shares` shares (`None`:
    /// given whole).
    fn unlock_tenant_with(
        &self,
        tenant: &str,
        custody: SecretKey,
        shares: Option<usize>,
    ) -> Result<TenantInfo, Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let path = records::tenant_path(tenant);
        let (mut record, raw) = unsealed
            .read_record::<TenantRecord>(self.store(), &path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        let threshold = usize::from(record.threshold.unwrap_or(1));
        if shares.is_some_and(|shares| shares < threshold) {
            return Err(Error::NotPermitted(format!(
                "tenant `{tenant}` needs {threshold} of its custodians to unlock it: each submits their share (tresor tenant unlock)"
            )));
        }
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
        let kek = kek::open_under_custody(&custody, tenant, stored.version, &stored.material.0)
            .ok_or_else(|| {
                Error::NotPermitted(format!(
                    "this custody key does not unlock tenant `{tenant}`"
                ))
            })?;
        // Who may act for the tenant is what its custody key vouched for. A tenant made by
        // release 0.1 has no such check yet: it is bound now (trust on first use).
        let expected = custodians_mac(&custody, tenant, &record);
        match &record.custodians_mac {
            Some(mac) if tresor_crypto::mac::ct_eq(&mac.0, &expected) => {}
            Some(_) => return Err(Error::TenantCustodiansTampered(tenant.to_owned())),
            None => {
                record.custodians_mac = Some(StoredBytes::new(expected.to_vec()));
                self.commit(
                    &unsealed,
                    Batch::new()
                        .expect(path.clone(), Some(raw))
                        .put(path.clone(), unsealed.seal_record(&path, &record)),
                )?;
            }
        }
        let state = unsealed.tenant(self.store(), tenant)?;
        *write(&state.custody) = Some(Arc::new(custody));
        *write(&state.kek) = Some(Arc::new(kek));
        super::lock(&self.inner.tenant_rounds).remove(tenant);
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
        let Some(threshold) = record.threshold else {
            // Release 0.1: the whole key.
            let info = self.unlock_tenant(tenant, &custody)?;
            self.renew_unseal_key();
            return Ok(info);
        };
        let share = custody
            .share()
            .ok_or_else(|| Error::invalid("sealed_custody_key", "not a share of this tenant"))?;
        let position = record
            .custodians
            .iter()
            .position(|c| c.custodian.name() == custodian)
            .expect("found above");
        if usize::from(share.index) != position + 1 {
            return Err(Error::NotPermitted(format!(
                "this is not `{custodian}`'s share of tenant `{tenant}`"
            )));
        }
        let ready = {
            let mut rounds = super::lock(&self.inner.tenant_rounds);
            let now = self.now();
            let round = rounds.entry(tenant.to_owned()).or_default();
            if now.saturating_sub(round.started_at) > self.inner.options.unseal_timeout {
                *round = TenantRound::default();
            }
            if round.custodians.iter().any(|c| c == custodian) {
                return Err(Error::invalid(
                    "custodian",
                    format!("`{custodian}`'s share was already given in this unlock"),
                ));
            }
            if round.shares.is_empty() {
                round.started_at = now;
            }
            round.shares.push(share);
            round.custodians.push(custodian.to_owned());
            if round.shares.len() >= usize::from(threshold) {
                let round = rounds.remove(tenant).expect("present");
                Some((
                    shamir::combine(&round.shares)
                        .map_err(|e| Error::invalid("sealed_custody_key", e.to_string()))?,
                    round.shares.len(),
                ))
            } else {
                None
            }
        };
        self.renew_unseal_key();
        match ready {
            Some((key, shares)) => self.unlock_tenant_with(tenant, key, Some(shares)),
            None => self.tenant_info(tenant),
        }
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
        super::lock(&self.inner.tenant_rounds).remove(tenant);
        self.renew_unseal_key();
        Ok(())
    }

    /// Replaces a level-3 tenant's custodians (and threshold, if given). Everything the old
    /// custodians could reach is replaced: a fresh custody key, split among the new custodians
    /// only; a fresh KEK wrapped under it, every data key version re-wrapped under that; and a
    /// new version of every key, which new data then uses. So a removed custodian's custody key,
    /// even with a copy of the store from before the change, opens nothing written after it.
    /// One atomic commit, then storage is purged. The tenant must be unlocked. Callers must
    /// have the approval of the tenant's own custodians (the API enforces it).
    pub fn change_tenant_custodians(
        &self,
        tenant: &str,
        custodians: &[CustodianPublicKey],
        threshold: Option<u8>,
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
        let old_kek = state
            .kek()?
            .ok_or_else(|| Error::TenantLocked(tenant.to_owned()))?;
        let path = records::tenant_path(tenant);
        let (mut record, raw) = unsealed
            .read_record::<TenantRecord>(self.store(), &path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        let threshold = threshold.or(record.threshold).unwrap_or(1);
        let now = self.now();
        let custody = SecretKey::random();
        let new_kek = Kek::new(old_kek.version + 1, SecretKey::random());
        record.kek = Some(KekRecord {
            version: new_kek.version,
            created_at: now,
            material: StoredBytes::new(kek::seal_under_custody(&custody, tenant, &new_kek)),
        });
        entrust_custody(
            &mut record,
            &unsealed.vault_id,
            tenant,
            &custody,
            custodians,
            threshold,
        )?;
        let mut batch = Batch::new().expect(path.clone(), Some(raw));
        batch.push_put(path.clone(), unsealed.seal_record(&path, &record));
        self.rewrap_keys(&unsealed, tenant, &old_kek, &new_kek, &mut batch, Some(now))?;
        let new_kek = Arc::new(new_kek);
        state.switch_kek(new_kek.clone(), || self.commit(&unsealed, batch))?;
        // Requests that still hold the old state keep working with the new KEK; the new state,
        // unlocked with the new custody key and without the old rings (every key has a new
        // version), replaces it whole, so no request sees the tenant locked.
        unsealed.set_tenant(
            tenant,
            Some(Arc::new(TenantState::new(
                tenant,
                ProtectionLevel::Three,
                Some(new_kek),
                Some(Arc::new(custody)),
            ))),
        );
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
        self.rewrap_keys(&unsealed, tenant, &old, &new, &mut batch, None)?;
        state.switch_kek(Arc::new(new), || self.commit(&unsealed, batch))?;
        let keys = self
            .store()
            .scan_prefix(&records::keys_prefix(tenant))?
            .len();
        Ok(self.tenant_info_from(&unsealed, tenant, &record, keys))
    }

    /// Adds to `batch` every key record of `tenant` re-wrapped from `old` to `new`, and, with
    /// `new_version_at`, a new version of every key made at that time.
    fn rewrap_keys(
        &self,
        unsealed: &Unsealed,
        tenant: &str,
        old: &Kek,
        new: &Kek,
        batch: &mut Batch,
        new_version_at: Option<u64>,
    ) -> Result<(), Error> {
        for (path, raw) in self.store().scan_prefix(&records::keys_prefix(tenant))? {
            let plain = unsealed.open(self.store(), &path, &raw)?;
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
            if let Some(now) = new_version_at {
                super::keys::add_version(tenant, key_name, &mut record, Some(new), now)?;
            }
            *batch = std::mem::take(batch).expect(path.clone(), Some(raw));
            batch.push_put(path.clone(), unsealed.seal_record(&path, &record));
        }
        Ok(())
    }

    /// Destroys a tenant: its record and every key, then purges storage so no copy of the old
    /// records survives in the data directory. Irreversible.
    pub fn shred_tenant(&self, tenant: &str) -> Result<(), Error> {
        self.destroy_tenant(tenant, |_| Ok(()))
    }

    /// Shreds the tenant if `check` accepts its record, deciding on the record it commits
    /// against.
    pub(super) fn destroy_tenant(
        &self,
        tenant: &str,
        check: impl FnOnce(&TenantRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let path = records::tenant_path(tenant);
        let (record, raw) = unsealed
            .read_record::<TenantRecord>(self.store(), &path)?
            .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
        check(&record)?;
        let mut batch = Batch::new().expect(path.clone(), Some(raw)).delete(path);
        for (key_path, _) in self.store().scan_prefix(&records::keys_prefix(tenant))? {
            batch.push_delete(key_path);
        }
        let wrapping = records::wrapping_key_path(tenant);
        if self.store().get(&wrapping)?.is_some() {
            batch.push_delete(wrapping);
        }
        self.commit(&unsealed, batch)?;
        unsealed.set_tenant(tenant, None);
        self.store().purge_stale()?;
        Ok(())
    }
}

/// Splits `custody` `threshold`-of-n among `custodians`, seals each share to its custodian and
/// authenticates the set under the custody key, in `record`.
fn entrust_custody(
    record: &mut TenantRecord,
    vault_id: &str,
    tenant: &str,
    custody: &SecretKey,
    custodians: &[CustodianPublicKey],
    threshold: u8,
) -> Result<(), Error> {
    for (i, c) in custodians.iter().enumerate() {
        if custodians[..i].iter().any(|o| o.name() == c.name()) {
            return Err(Error::invalid(
                "custodians",
                format!("name `{}` appears twice", c.name()),
            ));
        }
    }
    let n = custodians.len();
    if threshold == 0 || usize::from(threshold) > n {
        return Err(Error::invalid(
            "threshold",
            format!("{threshold} is invalid for {n} tenant custodian(s): need 1 ≤ threshold ≤ {n}"),
        ));
    }
    let shares = shamir::split(custody, threshold, n as u8)
        .map_err(|e| Error::invalid("threshold", e.to_string()))?;
    record.custodians = custodians
        .iter()
        .zip(shares)
        .map(|(custodian, share)| {
            let share = RootShare::new(share);
            let sealed = custodian
                .seal(
                    CUSTODY_SHARE_PURPOSE,
                    custody_context(vault_id, tenant).as_slice(),
                    &share.to_bytes(),
                )
                .map_err(|e| Error::invalid("custodians", format!("{}: {e}", custodian.name())))?;
            Ok(TenantCustodianRecord {
                custodian: custodian.clone(),
                sealed_custody_key: StoredBytes::new(sealed),
            })
        })
        .collect::<Result<_, Error>>()?;
    record.threshold = Some(threshold);
    record.custodians_mac = Some(StoredBytes::new(
        custodians_mac(custody, tenant, record).to_vec(),
    ));
    Ok(())
}

/// HMAC-SHA256 under HKDF(custody key, LP("tresor-tenant-custodians-v1") ‖ LP(tenant)) over
/// u32 threshold and, per custodian, LP(name) ‖ LP(x25519) ‖ LP(ed25519) ‖ LP(principal).
pub(crate) fn custodians_mac(custody: &SecretKey, tenant: &str, record: &TenantRecord) -> [u8; 32] {
    let key = derive_key(
        custody,
        LengthPrefixed::new()
            .bytes(CUSTODIANS_MAC_LABEL)
            .bytes(tenant.as_bytes())
            .as_slice(),
    );
    let mut set = LengthPrefixed::new().u32(u32::from(record.threshold.unwrap_or(1)));
    for entry in &record.custodians {
        let c = &entry.custodian;
        set.push_bytes(c.name().as_bytes());
        set.push_bytes(c.box_key().as_bytes());
        set.push_bytes(c.verifying_key().as_bytes());
        set.push_bytes(c.principal().unwrap_or_default().as_bytes());
    }
    hmac_sha256(key.expose(), &[set.as_slice()])
}

impl super::SealedStore {
    /// A level-3 tenant's custodians and threshold, checked against what its custody key vouched
    /// for (the tenant must be unlocked): approvals only its custodians may give count these.
    pub fn tenant_custodians(&self, tenant: &str) -> Result<super::Custodians, Error> {
        authentic_tenant_custodians(&self.vault(), tenant)
    }
}

/// A level-3 tenant's custodians as its custody key vouches for them (the tenant must be
/// unlocked), for approvals only they may give.
fn authentic_tenant_custodians(vault: &Vault, tenant: &str) -> Result<super::Custodians, Error> {
    let unsealed = vault.unsealed()?;
    let state = unsealed.tenant(vault.store(), tenant)?;
    if state.level != ProtectionLevel::Three {
        return Err(Error::invalid(
            "tenant",
            format!("`{tenant}` is not a level-3 tenant: it has no custodians of its own"),
        ));
    }
    let custody = read(&state.custody)
        .clone()
        .ok_or_else(|| Error::TenantLocked(tenant.to_owned()))?;
    let path = records::tenant_path(tenant);
    let (record, _) = unsealed
        .read_record::<TenantRecord>(vault.store(), &path)?
        .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
    let expected = custodians_mac(&custody, tenant, &record);
    if !record
        .custodians_mac
        .as_ref()
        .is_some_and(|mac| tresor_crypto::mac::ct_eq(&mac.0, &expected))
    {
        return Err(Error::TenantCustodiansTampered(tenant.to_owned()));
    }
    let threshold = record.threshold.unwrap_or(1);
    let members: Vec<CustodianPublicKey> =
        record.custodians.into_iter().map(|c| c.custodian).collect();
    let four_eyes = members.len() > usize::from(threshold);
    Ok(super::Custodians {
        threshold,
        four_eyes,
        set_hash: format!("tenant:{tenant}:{}", tresor_crypto::hex(&expected)),
        members,
    })
}
