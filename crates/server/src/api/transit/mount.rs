//! What the transit endpoints share: the mount (`/v1/<tenant>/`, with its tenant and key names
//! checked when routing), the context of a key operation, and the key description Vault's
//! clients read.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use tresor_core::{KeyInfo, Vault, Versioned};
use tresor_wire::api::transit::CiphertextResult;

use crate::api::endpoint::{Call, Mount, Prefix};
use crate::api::reply::{ApiError, Reply};
use crate::api::inputs::InputLog;

/// `/v1/<tenant>/…`: the tenant's transit mount.
pub(crate) const MOUNT: Mount = Mount {
    checks: &[("key", key_name)],
    ..Mount::new(Prefix::Named(tenant_mount), "transit")
};

/// A reserved name is no mount; any other must be a tenant name (the tenant need not exist:
/// that is the vault's answer, after authorization).
pub(crate) fn tenant_mount(name: &str, path: &str) -> Result<(), ApiError> {
    if tresor_core::keys::RESERVED_TENANT_NAMES.contains(&name) {
        return Err(ApiError::unsupported_path());
    }
    tresor_core::keys::validate_tenant_name(name).map_err(|_| {
        ApiError::new(
            hyper::StatusCode::NOT_FOUND,
            format!(
                "no handler for route \"{}\": not a tenant mount",
                path.chars().take(128).collect::<String>()
            ),
        )
    })
}

fn key_name(key: &str) -> Result<(), ApiError> {
    tresor_core::keys::validate_key_name(key).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid key name `{}`",
            key.chars().take(64).collect::<String>()
        ))
    })
}

/// A key operation: the vault, the tenant and key of the path, and the request.
pub(crate) struct KeyCtx<'a> {
    pub(crate) vault: &'a Vault,
    pub(crate) tenant: &'a str,
    pub(crate) key: &'a str,
    /// Where the request's inputs are noted (as audit HMACs).
    pub(crate) inputs: &'a InputLog,
    pub(crate) call: &'a Call<'a>,
}

impl<'a> KeyCtx<'a> {
    pub(crate) fn of(call: &'a Call<'a>) -> Self {
        KeyCtx {
            vault: call.vault(),
            tenant: call.tenant(),
            key: call.key(),
            inputs: call.inputs,
            call,
        }
    }
}

/// The only key type: reported as Vault's `aes256-gcm96` (same key and nonce sizes, same
/// interface) because Vault clients refuse unknown type names; the AEAD is AES-256-GCM-SIV.
pub(crate) const KEY_TYPE: &str = "aes256-gcm96";
const ALGORITHM: &str = "aes256-gcm-siv";

/// Refuses key types Tresor does not have.
pub(crate) fn check_key_type(key_type: Option<&str>) -> Result<(), ApiError> {
    match key_type {
        None | Some("") | Some(KEY_TYPE) | Some(ALGORITHM) => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown key type {}: Tresor keys are {KEY_TYPE} (served with AES-256-GCM-SIV)",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

/// Tresor derives nonces itself (random, or from the message for convergent keys); a caller's
/// nonce is refused rather than ignored.
pub(crate) fn refuse_nonce(nonce: Option<&str>) -> Result<(), ApiError> {
    match nonce {
        Some(n) if !n.is_empty() => Err(ApiError::bad_request(
            "provided nonce not allowed for this key: Tresor chooses nonces itself (convergent keys derive them from the input)",
        )),
        _ => Ok(()),
    }
}

/// A ciphertext (or an item's refusal) as encrypt and rewrap answer it.
pub(crate) fn ciphertext_result(
    outcome: Result<Versioned, ApiError>,
    reference: Cow<'_, str>,
) -> CiphertextResult<'_> {
    match outcome {
        Ok(ciphertext) => CiphertextResult {
            key_version: Some(ciphertext.version),
            ciphertext: Some(ciphertext.text),
            error: None,
            reference,
        },
        Err(e) => CiphertextResult {
            ciphertext: None,
            key_version: None,
            error: Some(e.message),
            reference,
        },
    }
}

/// The read shape Vault clients parse (vaultrs requires every `supports_*` field).
#[derive(Serialize)]
struct KeyData<'a> {
    name: &'a str,
    tenant: &'a str,
    #[serde(rename = "type")]
    key_type: &'static str,
    algorithm: &'static str,
    derived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kdf: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    convergent_encryption: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    convergent_encryption_version: Option<i32>,
    deletion_allowed: bool,
    exportable: bool,
    allow_plaintext_backup: bool,
    min_available_version: u32,
    min_decryption_version: u32,
    min_encryption_version: u32,
    latest_version: u32,
    supports_encryption: bool,
    supports_decryption: bool,
    supports_signing: bool,
    supports_derivation: bool,
    auto_rotate_period: u64,
    imported_key: bool,
    created_at: u64,
    /// Version → creation time (Unix seconds), for versions that still decrypt.
    keys: BTreeMap<String, u64>,
    /// Seconds between an approved deletion and destruction.
    deletion_window: u64,
    /// `active`, or `pending-deletion` while an approved deletion waits for its window to end
    /// (docs/custody.md, "Scheduled deletion").
    state: &'static str,
    /// While pending: when the deletion was approved and when the key is destroyed (Unix seconds
    /// and RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_scheduled_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destroy_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destroy_date: Option<String>,
}

/// A key's description as Vault's read endpoint gives it.
pub(crate) fn key_reply(info: &KeyInfo) -> Reply {
    let config = &info.config;
    let data = KeyData {
        name: &info.name,
        tenant: &info.tenant,
        key_type: KEY_TYPE,
        algorithm: ALGORITHM,
        derived: config.derived,
        kdf: config.derived.then_some("hkdf_sha256"),
        convergent_encryption: config.derived.then_some(config.convergent_encryption),
        convergent_encryption_version: config.convergent_encryption.then_some(-1),
        deletion_allowed: config.deletion_allowed,
        exportable: config.exportable,
        allow_plaintext_backup: false,
        min_available_version: config.min_available_version,
        min_decryption_version: config.min_decryption_version,
        min_encryption_version: config.min_encryption_version,
        latest_version: info.latest_version,
        supports_encryption: true,
        supports_decryption: true,
        supports_signing: false,
        supports_derivation: true,
        auto_rotate_period: config.auto_rotate_period,
        imported_key: !info.imported_versions.is_empty(),
        created_at: info.created_at,
        keys: info
            .versions
            .iter()
            .filter(|(v, _)| **v >= config.min_decryption_version)
            .map(|(v, created)| (v.to_string(), *created))
            .collect(),
        deletion_window: config.deletion_window(),
        state: match info.deletion {
            Some(_) => "pending-deletion",
            None => "active",
        },
        deletion_scheduled_at: info.deletion.map(|d| d.scheduled_at),
        destroy_at: info.deletion.map(|d| d.destroy_at),
        destroy_date: info
            .deletion
            .map(|d| tresor_wire::time::rfc3339(d.destroy_at, 0)),
    };
    Reply::data(&data).version(info.latest_version)
}
