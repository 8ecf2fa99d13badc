//! POST `{tenant}/keys/{key}/import_version`: adds an imported version to a key made by
//! `import` (Vault's wire format; `bao/vault transit import-version`), numbered `version` or the
//! next one, so that the source's `vault:v<N>:` ciphertexts keep their numbers. Refused once the
//! key has a Tresor version, and for a number it holds: nothing is replaced, so no approval is
//! needed; it is audited like every change.

use tresor_wire::api::transit;

use super::keys_import::wrapped;
use super::mount::key_reply;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, IntField};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Import another version of an imported key.
pub(crate) const IMPORT_VERSION: Operation = Operation::new("import-version", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::IMPORT_KEY_VERSION, IMPORT_VERSION, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: transit::ImportKeyRequest = params::body(call.body)?;
    let ciphertext = wrapped(&body)?;
    if body.exportable.is_some() || body.derived.is_some() || body.convergent_encryption.is_some()
    {
        return Err(ApiError::bad_request(
            "import_version takes ciphertext, hash_function and version: the key's settings come from its import",
        ));
    }
    let version = body
        .version
        .map(|v| v.to_u32("version"))
        .transpose()?;
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    let info = blocking(|| vault.import_key_version(tenant, key, version, &ciphertext))
        .map_err(|e| match e {
            tresor_core::Error::KeyNotFound { .. } => ApiError::bad_request(format!(
                "no existing key named {key} could be found: import it first"
            )),
            other => other.into(),
        })?;
    Ok(key_reply(&info))
}
