//! Tenant key-encryption keys (levels 2 and 3) and the level-3 custody wrapping around them.
//!
//! ```text
//! wrapped data key = AES-256-GCM-SIV(KEK, material,
//!                      aad = LP("tresor-dk-wrap-v1") ‖ LP(tenant) ‖ LP(key) ‖ u32(version) ‖ u32(kek version))
//! level-3 KEK      = AES-256-GCM-SIV(custody key, KEK,
//!                      aad = LP("tresor-kek-custody-v1") ‖ LP(tenant) ‖ u32(kek version))
//! ```

use crate::Error;
use tresor_crypto::{AeadKey, LengthPrefixed, SecretKey};

const WRAP_LABEL: &[u8] = b"tresor-dk-wrap-v1";
const CUSTODY_LABEL: &[u8] = b"tresor-kek-custody-v1";

/// An unwrapped tenant KEK.
pub(crate) struct Kek {
    pub(crate) version: u32,
    material: SecretKey,
    cipher: AeadKey,
}

impl Kek {
    pub(crate) fn new(version: u32, material: SecretKey) -> Self {
        let cipher = AeadKey::new(&material);
        Kek {
            version,
            material,
            cipher,
        }
    }

    pub(crate) fn material(&self) -> &SecretKey {
        &self.material
    }

    /// Wraps one data key version.
    pub(crate) fn wrap(
        &self,
        tenant: &str,
        key: &str,
        version: u32,
        material: &SecretKey,
    ) -> Vec<u8> {
        self.cipher.seal(
            wrap_aad(tenant, key, version, self.version).as_slice(),
            material.expose(),
        )
    }

    /// Unwraps one data key version; a failure means the record was tampered with or moved.
    pub(crate) fn unwrap(
        &self,
        tenant: &str,
        key: &str,
        version: u32,
        wrapped: &[u8],
    ) -> Result<SecretKey, Error> {
        let material = self
            .cipher
            .open(
                wrap_aad(tenant, key, version, self.version).as_slice(),
                wrapped,
            )
            .map_err(|_| integrity(super::records::key_path(tenant, key)))?;
        SecretKey::from_slice(&material)
            .ok_or_else(|| integrity(super::records::key_path(tenant, key)))
    }
}

fn wrap_aad(tenant: &str, key: &str, version: u32, kek_version: u32) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(WRAP_LABEL)
        .bytes(tenant.as_bytes())
        .bytes(key.as_bytes())
        .u32(version)
        .u32(kek_version)
}

/// Encrypts a level-3 tenant's KEK under its custody key.
pub(crate) fn seal_under_custody(custody: &SecretKey, tenant: &str, kek: &Kek) -> Vec<u8> {
    AeadKey::new(custody).seal(
        custody_aad(tenant, kek.version).as_slice(),
        kek.material.expose(),
    )
}

/// Opens a level-3 tenant's KEK; fails if `custody` is not the tenant's custody key.
pub(crate) fn open_under_custody(
    custody: &SecretKey,
    tenant: &str,
    kek_version: u32,
    sealed: &[u8],
) -> Option<Kek> {
    let material = AeadKey::new(custody)
        .open(custody_aad(tenant, kek_version).as_slice(), sealed)
        .ok()?;
    Some(Kek::new(kek_version, SecretKey::from_slice(&material)?))
}

fn custody_aad(tenant: &str, kek_version: u32) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(CUSTODY_LABEL)
        .bytes(tenant.as_bytes())
        .u32(kek_version)
}

fn integrity(path: String) -> Error {
    Error::Integrity { path }
}
