//! Moving one key to another vault without it ever being in the clear outside a vault
//! (docs/recovery.md, "One key to another vault"): the receiving vault publishes a transfer key
//! (X25519, barrier-sealed here, signed by its node identity), the sending vault seals the
//! key's configuration and every version to it, and the receiving vault opens the package and
//! stores the key under its own tenant KEK. The API puts both ends behind custodian approval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tresor_crypto::sealed_box::{self, BoxPublicKey, BoxSecretKey};
use tresor_crypto::{LengthPrefixed, SecretKey};

use super::Vault;
use super::keys::{KeyInfo, stored_version};
use crate::Error;
use crate::keys::records::{self, KeyRecord};
use crate::keys::{KeyConfig, validate_key_name};
use crate::store::{Batch, StoreError, StoredBytes};

/// Where the vault keeps its transfer key (barrier-sealed).
const TRANSFER_KEY_PATH: &str = "core/transfer-key";
/// The sealed box's purpose label.
const PURPOSE: &str = "tresor-key-transfer-v1";

/// What travels, sealed: everything a key is, its versions unwrapped.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPackage {
    created_at: u64,
    config: KeyConfig,
    latest_version: u32,
    rotated_at: u64,
    versions: BTreeMap<u32, PackagedVersion>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackagedVersion {
    created_at: u64,
    material: StoredBytes,
    /// Imported from Vault or OpenBao: decrypts their ciphertexts, never encrypts.
    #[serde(default)]
    imported: bool,
}

/// Binds a package to its environment, both vaults and the key's name (ciphertexts bind the
/// environment, tenant and key name, so the key keeps them).
fn context(environment: &str, from: &str, to: &str, tenant: &str, key: &str) -> Vec<u8> {
    LengthPrefixed::new()
        .bytes(environment.as_bytes())
        .bytes(from.as_bytes())
        .bytes(to.as_bytes())
        .bytes(tenant.as_bytes())
        .bytes(key.as_bytes())
        .into_vec()
}

impl Vault {
    /// This vault's transfer key (public half), made on first use.
    pub fn transfer_public_key(&self) -> Result<[u8; 32], Error> {
        Ok(self.transfer_secret()?.public().to_bytes())
    }

    fn transfer_secret(&self) -> Result<BoxSecretKey, Error> {
        let records = self.sealed_store().records()?;
        loop {
            if let Some((stored, _)) = records.get::<StoredBytes>(TRANSFER_KEY_PATH)? {
                let bytes: [u8; 32] =
                    stored
                        .0
                        .as_slice()
                        .try_into()
                        .map_err(|_| Error::Integrity {
                            path: TRANSFER_KEY_PATH.into(),
                        })?;
                return Ok(BoxSecretKey::from_bytes(&bytes));
            }
            let secret = BoxSecretKey::generate();
            let record = StoredBytes::new(secret.expose_bytes().to_vec());
            match records.commit(
                Batch::new()
                    .expect(TRANSFER_KEY_PATH, None)
                    .put(TRANSFER_KEY_PATH, records.seal(TRANSFER_KEY_PATH, &record)),
            ) {
                Ok(()) => return Ok(secret),
                Err(Error::Store(StoreError::Conflict { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Key `tenant`/`key` — configuration and every version — sealed to vault `to`'s transfer
    /// key `recipient`. Callers must have custodian approval (the API enforces it).
    pub fn export_key_sealed(
        &self,
        tenant: &str,
        key: &str,
        to: &str,
        recipient: &[u8; 32],
    ) -> Result<Vec<u8>, Error> {
        let recipient = BoxPublicKey::from_bytes(*recipient)
            .map_err(|e| Error::invalid("recipient", e.to_string()))?;
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        let kek = state.kek()?;
        let (record, _) = self.read_key(&unsealed, tenant, key)?;
        if record.deletion.is_some() {
            return Err(Error::NotPermitted(format!(
                "key `{key}` is scheduled for deletion: cancel the deletion before moving it"
            )));
        }
        let ring = self.ring_from_record(&unsealed, &state, key, &record, kek.as_deref())?;
        let package = KeyPackage {
            created_at: record.created_at,
            config: record.config.clone(),
            latest_version: record.latest_version,
            rotated_at: record.rotated_at,
            versions: ring
                .materials()
                .map(|(version, material)| {
                    let stored = record.versions.get(&version);
                    let packaged = PackagedVersion {
                        created_at: stored.map_or(0, |v| v.created_at),
                        material: StoredBytes::new(material.expose().to_vec()),
                        imported: stored.is_some_and(|v| v.imported),
                    };
                    (version, packaged)
                })
                .collect(),
        };
        let from = unsealed.vault_id.clone();
        sealed_box::seal(
            &recipient,
            PURPOSE,
            &context(self.environment(), &from, to, tenant, key),
            &records::encode(&package),
        )
        .map_err(|e| Error::invalid("recipient", e.to_string()))
    }

    /// Opens `package`, sealed to this vault by vault `from`, and stores it as key
    /// `tenant`/`key` under this tenant's KEK: refused if the key exists unless `replace`.
    /// Callers must have custodian approval (the API enforces it).
    pub fn import_key_sealed(
        &self,
        tenant: &str,
        key: &str,
        from: &str,
        package: &[u8],
        replace: bool,
    ) -> Result<KeyInfo, Error> {
        validate_key_name(key)?;
        let secret = self.transfer_secret()?;
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let opened = secret
            .open(
                PURPOSE,
                &context(self.environment(), from, &unsealed.vault_id, tenant, key),
                package,
            )
            .map_err(|_| {
                Error::invalid(
                    "package",
                    format!(
                        "it does not open: it was not sealed to this vault's transfer key by vault `{from}` for {tenant}/{key} in environment `{}`, or it was altered",
                        self.environment()
                    ),
                )
            })?;
        let package: KeyPackage = records::decode("package", &opened)?;
        let state = unsealed.tenant(self.store(), tenant)?;
        let kek = state.kek()?;
        let mut record = KeyRecord {
            created_at: package.created_at,
            config: package.config,
            latest_version: package.latest_version,
            rotated_at: package.rotated_at,
            kek_version: kek.as_ref().map(|k| k.version),
            versions: BTreeMap::new(),
            deletion: None,
        };
        for (version, packaged) in &package.versions {
            let material = SecretKey::from_slice(&packaged.material.0)
                .ok_or_else(|| Error::invalid("package", "a version's material is malformed"))?;
            let mut stored = stored_version(
                tenant,
                key,
                *version,
                &material,
                kek.as_deref(),
                packaged.created_at,
            );
            stored.imported = packaged.imported;
            record.versions.insert(*version, stored);
        }
        let path = records::key_path(tenant, key);
        let existing = self.store().get(&path)?;
        if existing.is_some() && !replace {
            return Err(Error::KeyExists {
                tenant: tenant.into(),
                key: key.into(),
            });
        }
        if let Some(raw) = &existing {
            unsealed.open(self.store(), &path, raw)?;
        }
        self.store_key(&unsealed, &state, key, &record, kek.as_deref(), existing)
    }
}
