//! Scheduled deletion (docs/custody.md, "Scheduled deletion"): an approved key deletion or tenant
//! shred first starts a deletion window. Meanwhile the key or tenant is unusable but whole, and
//! cancelling restores it with every version; when the window ends the server's background job
//! destroys it ([`Vault::destroy_if_due`]). The schedule lives in the barrier-sealed records, so a
//! restart keeps it. A window of 0 destroys at once.

use std::sync::Arc;

use super::Vault;
use super::tenants::TenantRecord;
use crate::Error;
use crate::keys::config::{DEFAULT_DELETION_WINDOW, check_deletion_window};
use crate::keys::records::{self, KeyRecord, ScheduledDeletion};
use crate::store::Batch;
use tresor_wire::tenants::TenantInfo;

use super::KeyInfo;

/// What an approved deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Destroyed at once (a window of 0).
    Destroyed,
    /// Unusable until the window ends, then destroyed.
    Scheduled(ScheduledDeletion),
}

/// A deletion whose window has ended, for the background job to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueDeletion {
    /// A key.
    Key {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
    },
    /// A whole tenant.
    Tenant {
        /// Tenant.
        tenant: String,
    },
}

fn already(what: String, deletion: ScheduledDeletion) -> Error {
    Error::NotPermitted(format!(
        "{what} is already scheduled for destruction at {}",
        tresor_wire::time::rfc3339(deletion.destroy_at, 0)
    ))
}

impl Vault {
    /// Carries out an approved deletion of `tenant`/`name` (only if `deletion_allowed`): with a
    /// window (`window`, else the key's `deletion_window`) the key becomes unusable until
    /// [`Vault::cancel_key_deletion`] or its destruction; a window of 0 destroys it at once.
    pub fn schedule_key_deletion(
        &self,
        tenant: &str,
        name: &str,
        window: Option<u64>,
    ) -> Result<Deletion, Error> {
        if let Some(window) = window {
            check_deletion_window(window)?;
        }
        let what = || format!("key `{name}` in tenant `{tenant}`");
        let scheduled = {
            let _writer = self.writer();
            let unsealed = self.unsealed()?;
            let state = unsealed.tenant(self.store(), tenant)?;
            state.kek()?;
            let (mut record, raw) = self.read_key(&unsealed, tenant, name)?;
            if let Some(deletion) = record.deletion {
                return Err(already(what(), deletion));
            }
            check_allowed(name, &record)?;
            let window = window.unwrap_or(record.config.deletion_window());
            if window == 0 {
                None
            } else {
                let now = self.now();
                let deletion = ScheduledDeletion {
                    scheduled_at: now,
                    destroy_at: now.saturating_add(window),
                };
                record.deletion = Some(deletion);
                let path = records::key_path(tenant, name);
                let batch = Batch::new()
                    .expect(path.clone(), Some(raw))
                    .put(path.clone(), unsealed.seal_record(&path, &record));
                self.commit(&unsealed, batch)?;
                state.set_ring(name, None);
                Some(deletion)
            }
        };
        match scheduled {
            Some(deletion) => Ok(Deletion::Scheduled(deletion)),
            None => {
                self.destroy_key(tenant, name, true, |record| match record.deletion {
                    Some(deletion) => Err(already(what(), deletion)),
                    None => Ok(()),
                })?;
                Ok(Deletion::Destroyed)
            }
        }
    }

    /// Cancels a scheduled deletion: the key is usable again with every version it had.
    pub fn cancel_key_deletion(&self, tenant: &str, name: &str) -> Result<KeyInfo, Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        let kek = state.kek()?;
        let (mut record, raw) = self.read_key(&unsealed, tenant, name)?;
        if record.deletion.take().is_none() {
            return Err(Error::NotPermitted(format!(
                "key `{name}` in tenant `{tenant}` is not scheduled for deletion"
            )));
        }
        let path = records::key_path(tenant, name);
        let batch = Batch::new()
            .expect(path.clone(), Some(raw))
            .put(path.clone(), unsealed.seal_record(&path, &record));
        self.commit(&unsealed, batch)?;
        let ring = self.ring_from_record(&unsealed, &state, name, &record, kek.as_deref())?;
        state.set_ring(name, Some(Arc::new(ring)));
        Ok(KeyInfo::from_record(tenant, name, &record))
    }

    /// Carries out an approved shred of `tenant`: with a window (`window`, else the tenant's
    /// `deletion_window`) the tenant becomes unusable until [`Vault::cancel_tenant_shred`] or its
    /// destruction; a window of 0 shreds it at once.
    pub fn schedule_tenant_shred(
        &self,
        tenant: &str,
        window: Option<u64>,
    ) -> Result<Deletion, Error> {
        if let Some(window) = window {
            check_deletion_window(window)?;
        }
        let what = || format!("tenant `{tenant}`");
        let scheduled = {
            let _writer = self.writer();
            let unsealed = self.unsealed()?;
            let path = records::tenant_path(tenant);
            let (mut record, raw) = unsealed
                .read_record::<TenantRecord>(self.store(), &path)?
                .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
            if let Some(deletion) = record.deletion {
                return Err(already(what(), deletion));
            }
            let window =
                window.unwrap_or(record.deletion_window.unwrap_or(DEFAULT_DELETION_WINDOW));
            if window == 0 {
                None
            } else {
                let now = self.now();
                let deletion = ScheduledDeletion {
                    scheduled_at: now,
                    destroy_at: now.saturating_add(window),
                };
                record.deletion = Some(deletion);
                let batch = Batch::new()
                    .expect(path.clone(), Some(raw))
                    .put(path.clone(), unsealed.seal_record(&path, &record));
                self.commit(&unsealed, batch)?;
                unsealed.set_tenant(tenant, None);
                Some(deletion)
            }
        };
        match scheduled {
            Some(deletion) => Ok(Deletion::Scheduled(deletion)),
            None => {
                self.destroy_tenant(tenant, |record| match record.deletion {
                    Some(deletion) => Err(already(what(), deletion)),
                    None => Ok(()),
                })?;
                Ok(Deletion::Destroyed)
            }
        }
    }

    /// Cancels a scheduled shred: the tenant and all its keys are usable again (a level-3 tenant
    /// is locked, as after a restart).
    pub fn cancel_tenant_shred(&self, tenant: &str) -> Result<TenantInfo, Error> {
        {
            let _writer = self.writer();
            let unsealed = self.unsealed()?;
            let path = records::tenant_path(tenant);
            let (mut record, raw) = unsealed
                .read_record::<TenantRecord>(self.store(), &path)?
                .ok_or_else(|| Error::TenantNotFound(tenant.to_owned()))?;
            if record.deletion.take().is_none() {
                return Err(Error::NotPermitted(format!(
                    "tenant `{tenant}` is not scheduled for shredding"
                )));
            }
            let batch = Batch::new()
                .expect(path.clone(), Some(raw))
                .put(path.clone(), unsealed.seal_record(&path, &record));
            self.commit(&unsealed, batch)?;
            unsealed.set_tenant(tenant, None);
        }
        self.tenant_info(tenant)
    }

    /// The deletions whose window has ended: tenants, and keys in tenants not themselves
    /// waiting. Locked level-3 tenants are included (their keys' records need no KEK to go).
    pub fn due_deletions(&self) -> Result<Vec<DueDeletion>, Error> {
        let now = self.now();
        let unsealed = self.unsealed()?;
        let mut due = Vec::new();
        for tenant in self.list_tenants()? {
            let path = records::tenant_path(&tenant);
            let Some((record, _)) = unsealed.read_record::<TenantRecord>(self.store(), &path)?
            else {
                continue;
            };
            if let Some(deletion) = record.deletion {
                if now >= deletion.destroy_at {
                    due.push(DueDeletion::Tenant { tenant });
                }
                continue;
            }
            let prefix = records::keys_prefix(&tenant);
            for (path, raw) in self.store().scan_prefix(&prefix)? {
                let record: KeyRecord =
                    records::decode(&path, &unsealed.open(self.store(), &path, &raw)?)?;
                if record.deletion.is_some_and(|d| now >= d.destroy_at) {
                    due.push(DueDeletion::Key {
                        tenant: tenant.clone(),
                        key: path[prefix.len()..].to_owned(),
                    });
                }
            }
        }
        Ok(due)
    }

    /// Destroys what `due` names if its window has ended, deciding on the record it commits
    /// against (a cancellation in between wins). False when it was no longer due.
    pub fn destroy_if_due(&self, due: &DueDeletion) -> Result<bool, Error> {
        let now = self.now();
        let mut is_due = false;
        let mut check = |deletion: Option<ScheduledDeletion>| {
            is_due = deletion.is_some_and(|d| now >= d.destroy_at);
            match is_due {
                true => Ok(()),
                false => Err(Error::NotPermitted("not due".to_owned())),
            }
        };
        let result = match due {
            DueDeletion::Key { tenant, key } => {
                self.destroy_key(tenant, key, false, |record| check(record.deletion))
            }
            DueDeletion::Tenant { tenant } => {
                self.destroy_tenant(tenant, |record| check(record.deletion))
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(Error::NotPermitted(_)) if !is_due => Ok(false),
            Err(Error::KeyNotFound { .. } | Error::TenantNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn check_allowed(name: &str, record: &KeyRecord) -> Result<(), Error> {
    if record.config.deletion_allowed {
        Ok(())
    } else {
        Err(Error::NotPermitted(format!(
            "key `{name}` cannot be deleted: set deletion_allowed to true first"
        )))
    }
}
