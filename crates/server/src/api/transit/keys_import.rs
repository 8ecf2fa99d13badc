//! POST `{tenant}/keys/{key}/import`: creates a key from material wrapped to the tenant's
//! wrapping key, in Vault's wire format, so `bao/vault transit import` works unchanged
//! (docs/format.md, "Vault and OpenBao"). The key arrives as imported version 1: it decrypts the
//! source's `vault:v1:` ciphertexts and never encrypts. Nothing is ever replaced (an existing
//! name is refused) and `exportable` is refused here (ask for it in `config`, which is
//! dual-controlled), so an import needs no approval; it is audited like every change.

use tresor_core::KeySpec;
use tresor_wire::api::transit;

use super::mount::key_reply;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Import a key (Vault's wire format).
pub(crate) const IMPORT: Operation = Operation::new("import", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::IMPORT_KEY, IMPORT, handle).mutating();

/// The wrapped material of an import body, after the checks both import routes share.
pub(crate) fn wrapped(
    body: &transit::ImportKeyRequest<'_>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ApiError> {
    match body.hash_function.as_deref() {
        None | Some("SHA256") | Some("sha256") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "hash_function `{}` is not supported: Tresor reads RSA-OAEP with SHA256 (the default)",
                other.chars().take(16).collect::<String>()
            )));
        }
    }
    match body.key_type.as_deref() {
        None | Some("aes256-gcm96") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "key type `{}` cannot be imported: Tresor imports aes256-gcm96 keys",
                other.chars().take(32).collect::<String>()
            )));
        }
    }
    if body.allow_plaintext_backup.is_some_and(|f| f.0) {
        return Err(ApiError::bad_request(
            "allow_plaintext_backup is not supported: Tresor has no plaintext backup endpoint",
        ));
    }
    let text = body
        .ciphertext
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing ciphertext: the wrapped key to import"))?;
    params::base64_field("ciphertext", text)
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: transit::ImportKeyRequest = params::body(call.body)?;
    let ciphertext = wrapped(&body)?;
    if body.exportable.is_some_and(|f| f.0) {
        return Err(ApiError::bad_request(
            "exportable cannot be set by an import: import, then ask for it in keys/<key>/config (dual-controlled)",
        ));
    }
    if body.version.is_some() {
        return Err(ApiError::bad_request(
            "version is for import_version: an import creates version 1",
        ));
    }
    let spec = KeySpec {
        derived: body.derived.is_some_and(|f| f.0),
        convergent_encryption: body.convergent_encryption.is_some_and(|f| f.0),
        exportable: false,
        auto_rotate_period: body.auto_rotate_period.map_or(0, |s| s.0),
        deletion_window: None,
    };
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    let info = blocking(|| vault.import_key(tenant, key, spec, &ciphertext)).map_err(|e| {
        match e {
            tresor_core::Error::KeyExists { .. } => ApiError::bad_request(format!(
                "key {key} already exists: an import never replaces a key (use import_version to add a version)"
            )),
            other => other.into(),
        }
    })?;
    Ok(key_reply(&info))
}
