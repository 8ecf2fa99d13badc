//! Bring your own key, in Vault's wire format (issue 17; docs/format.md, "Vault and OpenBao"):
//! each tenant has an RSA-4096 wrapping key behind the barrier (made on first use, rotatable);
//! `bao/vault transit import` wraps a key to it, and the key arrives as imported versions that
//! decrypt `vault:v<N>:` ciphertexts under their source numbers and never encrypt. The first
//! encryption afterwards adds a Tresor version after the highest imported one.

use std::collections::BTreeMap;

use super::keys::stored_version;
use super::{KeyInfo, Vault};
use crate::Error;
use crate::keys::records::{self, KeyRecord, WrappingKeyRecord};
use crate::keys::{KeySpec, validate_key_name};
use crate::store::{Batch, StoredBytes};
use tresor_crypto::SecretKey;
use tresor_crypto::byok::{ByokError, WrappingKey};

fn import_error(e: ByokError) -> Error {
    match e {
        ByokError::WrappingKey(reason) => Error::NotPermitted(format!("wrapping key: {reason}")),
        other => Error::invalid("ciphertext", other.to_string()),
    }
}

impl Vault {
    /// The tenant's wrapping key as Vault serves it (SubjectPublicKeyInfo PEM), made on first
    /// use.
    pub fn wrapping_key_pem(&self, tenant: &str) -> Result<String, Error> {
        self.wrapping_key(tenant, false)?
            .public_pem()
            .map_err(import_error)
    }

    /// Replaces the tenant's wrapping key: imports wrapped to the old one are refused from now.
    pub fn rotate_wrapping_key(&self, tenant: &str) -> Result<String, Error> {
        self.wrapping_key(tenant, true)?
            .public_pem()
            .map_err(import_error)
    }

    fn wrapping_key(&self, tenant: &str, rotate: bool) -> Result<WrappingKey, Error> {
        let unsealed = self.unsealed()?;
        unsealed.tenant(self.store(), tenant)?;
        let path = records::wrapping_key_path(tenant);
        if !rotate {
            if let Some((record, _)) =
                unsealed.read_record::<WrappingKeyRecord>(self.store(), &path)?
            {
                return WrappingKey::from_pkcs8_der(&record.private_key.0).map_err(import_error);
            }
        }
        // RSA-4096 generation takes a while: outside the writer lock, then compare-and-swap.
        let key = WrappingKey::generate().map_err(import_error)?;
        let der = key.to_pkcs8_der().map_err(import_error)?;
        let _writer = self.writer();
        let current = unsealed.read_record::<WrappingKeyRecord>(self.store(), &path)?;
        if let (false, Some((record, _))) = (rotate, &current) {
            // Made meanwhile by another request: that one stands.
            return WrappingKey::from_pkcs8_der(&record.private_key.0).map_err(import_error);
        }
        let record = WrappingKeyRecord {
            version: current.as_ref().map_or(1, |(r, _)| r.version + 1),
            created_at: self.now(),
            private_key: StoredBytes::new(der.to_vec()),
        };
        let batch = Batch::new()
            .expect(path.clone(), current.map(|(_, raw)| raw))
            .put(path.clone(), unsealed.seal_record(&path, &record));
        self.commit(&unsealed, batch)?;
        Ok(key)
    }

    /// Creates key `name` from a Vault-format import `ciphertext` as imported version 1 (an
    /// `aes256-gcm96` key with `spec`'s derivation). A key of that name is never replaced.
    pub fn import_key(
        &self,
        tenant: &str,
        name: &str,
        spec: KeySpec,
        ciphertext: &[u8],
    ) -> Result<KeyInfo, Error> {
        validate_key_name(name)?;
        if spec.exportable {
            return Err(Error::invalid(
                "exportable",
                "an import cannot make the key exportable: import, then ask for it in keys/<key>/config (dual-controlled)",
            ));
        }
        let config = spec.into_config()?;
        // Refuse an existing name before the (slow) unwrap; the commit checks again.
        match self.key_info(tenant, name) {
            Err(Error::KeyNotFound { .. }) => {}
            Err(e) => return Err(e),
            Ok(_) => {
                return Err(Error::KeyExists {
                    tenant: tenant.into(),
                    key: name.into(),
                });
            }
        }
        let material = self.wrapping_key(tenant, false)?.unwrap_import(ciphertext);
        let material = material.map_err(import_error)?;
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let state = unsealed.tenant(self.store(), tenant)?;
        let kek = state.kek()?;
        let now = self.now();
        let mut record = KeyRecord {
            created_at: now,
            config,
            latest_version: 1,
            rotated_at: now,
            kek_version: kek.as_ref().map(|k| k.version),
            versions: BTreeMap::new(),
            deletion: None,
        };
        let mut version = stored_version(tenant, name, 1, &material, kek.as_deref(), now);
        version.imported = true;
        record.versions.insert(1, version);
        self.store_key(&unsealed, &state, name, &record, kek.as_deref(), None)
    }

    /// Adds an imported version to a key made by [`Vault::import_key`]: number `version`, or the
    /// next one. Refused once the key has a Tresor version (numbers would collide with the
    /// source's) and for a number it holds already.
    pub fn import_key_version(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
        ciphertext: &[u8],
    ) -> Result<KeyInfo, Error> {
        // Refuse before the (slow) unwrap what the commit would refuse; it checks again.
        self.update_key_check(tenant, name, version)?;
        let material: SecretKey = self
            .wrapping_key(tenant, false)?
            .unwrap_import(ciphertext)
            .map_err(import_error)?;
        let now = self.now();
        self.update_key(tenant, name, |record, kek| {
            let number = next_import(name, record, version)?;
            let mut stored = stored_version(tenant, name, number, &material, kek, now);
            stored.imported = true;
            record.versions.insert(number, stored);
            record.latest_version = record.latest_version.max(number);
            Ok(false)
        })
    }

    fn update_key_check(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<(), Error> {
        let unsealed = self.unsealed()?;
        unsealed.tenant(self.store(), tenant)?.kek()?;
        let (record, _) = self.read_key(&unsealed, tenant, name)?;
        next_import(name, &record, version).map(|_| ())
    }
}

/// The number an `import_version` gets, or why it is refused.
fn next_import(name: &str, record: &KeyRecord, version: Option<u32>) -> Result<u32, Error> {
    if let Some(deletion) = record.deletion {
        return Err(Error::PendingDeletion {
            what: format!("key `{name}`"),
            scheduled_at: deletion.scheduled_at,
            destroy_at: deletion.destroy_at,
        });
    }
    if let Some(native) = record.versions.iter().find(|(_, r)| !r.imported) {
        return Err(Error::NotPermitted(format!(
            "key `{name}` has Tresor version {} already: import_version works only before a key's first Tresor version, so that imported numbers never collide",
            native.0
        )));
    }
    let number = match version {
        Some(0) => return Err(Error::invalid("version", "must be at least 1")),
        Some(v) => v,
        None => record.latest_version.checked_add(1).ok_or_else(|| {
            Error::invalid("version", "the key has reached the last version number")
        })?,
    };
    if record.versions.contains_key(&number) || number < record.config.min_available_version {
        return Err(Error::invalid(
            "version",
            format!(
                "key `{name}` has (or had) version {number}: an import never replaces a version"
            ),
        ));
    }
    Ok(number)
}
