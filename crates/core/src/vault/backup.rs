//! A consistent copy of the whole store, and writing one into an empty store (docs/recovery.md).
//! The records are copied as they are stored: barrier-sealed, so a copy is useless without k
//! custodians of its custodian set.

use super::ledger::ROOT_PATH;
use super::seal::SealConfig;
use super::{Vault, lock};
use serde::{Deserialize, Serialize};

use crate::keys::records::{SHRED_ON_UNSEAL_PATH, TENANTS_PREFIX};
use crate::store::{Batch, Store, StoreError};
use crate::{Error, StoreGeneration};

/// How many times a snapshot is taken again when commits kept landing while it was read.
const ATTEMPTS: usize = 20;

/// The whole store at one moment, with what a backup's header says about it.
pub struct Snapshot {
    /// The vault's id.
    pub vault_id: String,
    /// The environment it serves.
    pub environment: String,
    /// The store format of the records.
    pub store_format: u32,
    /// The store's generation and last write at that moment.
    pub store: StoreGeneration,
    /// The custodians whose shares open this root key, as `name (fingerprint)`.
    pub custodians: Vec<String>,
    /// Shares needed (k).
    pub threshold: u8,
    /// The tenants in it.
    pub tenants: Vec<String>,
    /// Every stored record (path, bytes), in path order.
    pub records: Vec<(String, Vec<u8>)>,
}

impl Vault {
    /// A consistent copy of the whole store, taken while the vault serves: the store is read
    /// between two reads of the ledger's root, and read again if a commit landed in between
    /// (every commit moves the root). Every record is checked against the ledger, so a copy
    /// never carries a record that was put back behind the vault's back.
    pub fn snapshot(&self) -> Result<Snapshot, Error> {
        let unsealed = self.unsealed()?;
        let store = self.store();
        for _ in 0..ATTEMPTS {
            let before = store.get(ROOT_PATH)?;
            let records = store.scan_prefix("")?;
            if store.get(ROOT_PATH)? != before {
                continue;
            }
            for (path, raw) in &records {
                lock(&unsealed.ledger).check(store, &unsealed.barrier, path, Some(raw))?;
            }
            let generation = lock(&unsealed.ledger).current(store, &unsealed.barrier)?;
            let config = SealConfig::load(store)?.ok_or(Error::NotInitialized)?;
            return Ok(Snapshot {
                vault_id: config.vault_id.clone(),
                environment: config.environment.clone(),
                store_format: super::seal::STORE_FORMAT,
                store: generation,
                custodians: config
                    .custodians
                    .iter()
                    .map(|c| format!("{} ({})", c.custodian.name(), c.custodian.fingerprint()))
                    .collect(),
                threshold: config.threshold,
                tenants: records
                    .iter()
                    .filter_map(|(path, _)| path.strip_prefix(TENANTS_PREFIX))
                    .map(str::to_owned)
                    .collect(),
                records,
            });
        }
        Err(Error::Store(StoreError::Conflict {
            key: ROOT_PATH.to_owned(),
        }))
    }

    /// The node identity key (base64) and its signature over `message`, if this node has one
    /// (a backup file is signed this way; see `tresor_wire::backup::signed_message`).
    pub fn node_signature(&self, message: &[u8]) -> Option<(String, [u8; 64])> {
        use base64::Engine;
        let node = self.inner.options.node_identity.as_ref()?;
        Some((
            base64::engine::general_purpose::STANDARD.encode(node.verifying_key().as_bytes()),
            node.sign(message),
        ))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShredOnUnseal {
    tenants: Vec<String>,
}

/// Writes `records` (a backup's) into `store`, which must hold nothing: one atomic batch, each
/// record expected absent, so nothing is overwritten even by a writer racing the restore.
/// `shredded_since` are tenants shredded after the backup was taken: the next unseal shreds
/// them again ([`Vault::shred_after_restore`]).
pub fn restore_into(
    store: &dyn Store,
    records: &[(String, Vec<u8>)],
    shredded_since: &[String],
) -> Result<(), Error> {
    if let Some((path, _)) = store.scan_prefix("")?.first() {
        return Err(Error::NotPermitted(format!(
            "the store is not empty (it holds `{path}`, among others): a backup is restored only into an empty store"
        )));
    }
    let mut batch = Batch::new();
    for (path, value) in records {
        batch.push_expect(path.clone(), None);
        batch.push_put(path.clone(), value.clone());
    }
    if !shredded_since.is_empty() {
        let marker = ShredOnUnseal {
            tenants: shredded_since.to_vec(),
        };
        batch.push_put(
            SHRED_ON_UNSEAL_PATH,
            serde_json::to_vec(&marker).expect("serializes"),
        );
    }
    store.commit(batch)?;
    Ok(())
}

impl Vault {
    /// At unseal: shreds again the tenants a restore found shredded after its backup was
    /// taken, and forgets the list. Returns the tenants shredded.
    pub(crate) fn shred_after_restore(&self) -> Result<Vec<String>, Error> {
        let Some(raw) = self.store().get(SHRED_ON_UNSEAL_PATH)? else {
            return Ok(Vec::new());
        };
        let marker: ShredOnUnseal = crate::keys::records::decode(SHRED_ON_UNSEAL_PATH, &raw)?;
        let mut shredded = Vec::new();
        for tenant in marker.tenants {
            match self.shred_tenant(&tenant) {
                Ok(()) => shredded.push(tenant),
                Err(Error::TenantNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.store().commit(
            Batch::new()
                .expect(SHRED_ON_UNSEAL_PATH, Some(raw))
                .delete(SHRED_ON_UNSEAL_PATH),
        )?;
        tracing::warn!(tenants = %shredded.join(", "), "shredded again after a restore: they were shredded after the backup was taken");
        Ok(shredded)
    }
}
