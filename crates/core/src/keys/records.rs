//! What the vault stores for keys and tenant KEKs, as JSON inside barrier-sealed records. Byte
//! fields are [`StoredBytes`]. The tenant record, which names a level-3 tenant's custodians, is
//! the tenants' own (`vault/tenants.rs`): keys know no custodians.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::KeyConfig;
use crate::Error;
use crate::store::StoredBytes;

/// The seal configuration: public, outside the barrier (authenticated by the root check).
pub(crate) const SEAL_CONFIG_PATH: &str = "core/seal";
/// The barrier record whose opening proves a reconstructed root key.
pub(crate) const ROOT_CHECK_PATH: &str = "core/root-check";
/// Where the store's format is recorded (absent in stores written by release 0.1).
pub(crate) const STORE_FORMAT_PATH: &str = "core/format";

/// Tenants a restore found shredded after its backup was taken: shredded again at the next
/// unseal (docs/recovery.md). Not a barrier record: the restore writes it without the root key.
pub(crate) const SHRED_ON_UNSEAL_PATH: &str = "core/shred-on-unseal";

/// Storage path of a tenant record.
pub(crate) fn tenant_path(tenant: &str) -> String {
    format!("tenants/{tenant}")
}

/// Prefix under which all tenant records live.
pub(crate) const TENANTS_PREFIX: &str = "tenants/";

/// Storage path of a key record.
pub(crate) fn key_path(tenant: &str, key: &str) -> String {
    format!("keys/{tenant}/{key}")
}

/// Prefix under which every key record lives (`keys/<tenant>/<key>`).
pub(crate) const KEYS_PREFIX: &str = "keys/";

/// Prefix under which a tenant's key records live.
pub(crate) fn keys_prefix(tenant: &str) -> String {
    format!("keys/{tenant}/")
}

/// The tenant key-encryption key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KekRecord {
    pub(crate) version: u32,
    pub(crate) created_at: u64,
    /// Level 2: the KEK itself (the barrier protects it). Level 3: the KEK encrypted under the
    /// tenant custody key, which is never stored in the clear.
    pub(crate) material: StoredBytes,
}

/// A named data key: configuration and every version still held.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecord {
    pub(crate) created_at: u64,
    pub(crate) config: KeyConfig,
    pub(crate) latest_version: u32,
    /// When the latest version was created; drives `auto_rotate_period`.
    pub(crate) rotated_at: u64,
    /// The KEK version the materials are wrapped under (absent at level 1).
    pub(crate) kek_version: Option<u32>,
    pub(crate) versions: BTreeMap<u32, VersionRecord>,
    /// Set while an approved deletion waits for its window to end: the key is unusable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deletion: Option<ScheduledDeletion>,
}

/// A deletion approved and waiting for its window to end (docs/custody.md, "Scheduled
/// deletion"). Until then it can be cancelled and nothing is destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledDeletion {
    /// When the deletion was approved (Unix seconds).
    pub scheduled_at: u64,
    /// When the background job destroys it (Unix seconds).
    pub destroy_at: u64,
}

/// One version of a data key.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionRecord {
    pub(crate) created_at: u64,
    /// Level 1: the key material. Level ≥ 2: the material wrapped under the tenant KEK.
    pub(crate) material: StoredBytes,
    /// Imported from Vault/OpenBao (an `aes256-gcm96` key): decrypts `vault:` ciphertexts only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) imported: bool,
}

/// Storage path of a tenant's BYOK wrapping key (docs/format.md, "Vault and OpenBao").
pub(crate) fn wrapping_key_path(tenant: &str) -> String {
    format!("wrapping/{tenant}")
}

/// A tenant's RSA-4096 wrapping key for imports, behind the barrier.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WrappingKeyRecord {
    pub(crate) version: u32,
    pub(crate) created_at: u64,
    /// PKCS#8 DER of the private key.
    pub(crate) private_key: StoredBytes,
}

/// Serializes a record into a zeroizing buffer.
pub(crate) fn encode<T: Serialize>(record: &T) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(record).expect("records serialize"))
}

/// Deserializes a record read from `path`.
pub(crate) fn decode<'a, T: Deserialize<'a>>(path: &str, bytes: &'a [u8]) -> Result<T, Error> {
    // serde_json's own message can quote the offending value, which may be key material: report
    // only the category and position.
    serde_json::from_slice(bytes).map_err(|e| Error::RecordFormat {
        path: path.to_owned(),
        reason: format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}
