//! `keys/:name`: create (POST), read (GET), delete (DELETE); and `keys` LIST.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::params::{self, Flag, Seconds, Text};
use super::reply::{ApiError, Reply};
use super::{KeyCtx, TenantCtx, blocking};
use tresor_core::{KeyInfo, KeySpec};
use tresor_wire::approvals::Dangerous;

/// The only key type: reported as Vault's `aes256-gcm96` (same key and nonce sizes, same
/// interface) because Vault clients refuse unknown type names; the AEAD is AES-256-GCM-SIV.
pub(crate) const KEY_TYPE: &str = "aes256-gcm96";
const ALGORITHM: &str = "aes256-gcm-siv";

#[derive(Deserialize, Default)]
struct CreateBody<'a> {
    #[serde(rename = "type", borrow)]
    key_type: Text<'a>,
    derived: Option<Flag>,
    convergent_encryption: Option<Flag>,
    exportable: Option<Flag>,
    allow_plaintext_backup: Option<Flag>,
    auto_rotate_period: Option<Seconds>,
}

/// POST keys/:name. Creating a key that exists changes nothing and returns it, as in Vault.
pub(crate) fn create(ctx: &KeyCtx<'_>, body: &[u8]) -> Result<Reply, ApiError> {
    let body: CreateBody = params::body(body)?;
    check_key_type(body.key_type.as_deref())?;
    if body.allow_plaintext_backup.is_some_and(|f| f.0) {
        return Err(ApiError::bad_request(
            "allow_plaintext_backup is not supported: Tresor has no plaintext backup endpoint",
        ));
    }
    let spec = KeySpec {
        derived: body.derived.is_some_and(|f| f.0),
        convergent_encryption: body.convergent_encryption.is_some_and(|f| f.0),
        exportable: body.exportable.is_some_and(|f| f.0),
        auto_rotate_period: body.auto_rotate_period.map_or(0, |s| s.0),
    };
    let info = blocking(|| match ctx.vault.create_key(ctx.tenant, ctx.key, spec) {
        Err(tresor_core::Error::KeyExists { .. }) => ctx.vault.key_info(ctx.tenant, ctx.key),
        other => other,
    })?;
    Ok(key_reply(&info))
}

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

/// GET keys/:name.
pub(crate) fn read(ctx: &KeyCtx<'_>) -> Result<Reply, ApiError> {
    let info = blocking(|| ctx.vault.key_info(ctx.tenant, ctx.key)).map_err(ApiError::from_read)?;
    Ok(key_reply(&info))
}

/// DELETE keys/:name: deletes once custodians approve (answers 202 with the approval).
pub(crate) fn delete(ctx: &KeyCtx<'_>) -> Result<Reply, ApiError> {
    let info = blocking(|| ctx.vault.key_info(ctx.tenant, ctx.key)).map_err(|e| match e {
        tresor_core::Error::KeyNotFound { .. } => {
            ApiError::bad_request(format!("error deleting key {}: not found", ctx.key))
        }
        other => other.into(),
    })?;
    if !info.config.deletion_allowed {
        return Err(ApiError::bad_request(format!(
            "error deleting key {}: deletion is not allowed for this key (set deletion_allowed first)",
            ctx.key
        )));
    }
    let request = Dangerous::DeleteKey {
        tenant: ctx.tenant.to_owned(),
        key: ctx.key.to_owned(),
    };
    super::sys_custody::propose(ctx.approvals, ctx.caller, request)
}

/// LIST keys (or GET keys?list=true). No keys is Vault's bare 404.
pub(crate) fn list(ctx: &TenantCtx<'_>) -> Result<Reply, ApiError> {
    let keys = blocking(|| ctx.vault.list_keys(ctx.tenant))?;
    if keys.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(&serde_json::json!({ "keys": keys })))
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
        imported_key: false,
        created_at: info.created_at,
        keys: info
            .versions
            .iter()
            .filter(|(v, _)| **v >= config.min_decryption_version)
            .map(|(v, created)| (v.to_string(), *created))
            .collect(),
    };
    Reply::data(&data).version(info.latest_version)
}
