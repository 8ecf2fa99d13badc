//! POST `{tenant}/keys/{key}`: create a key. Creating a key that exists changes nothing and
//! returns it, as in Vault.

use tresor_core::KeySpec;
use tresor_wire::api::transit;

use super::mount::{check_key_type, key_reply};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Create a key (also: encrypt on a missing key).
pub(crate) const CREATE: Operation = Operation::new("create", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::CREATE_KEY, CREATE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: transit::CreateKeyRequest = params::body(call.body)?;
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
        deletion_window: body.deletion_window.map(|s| s.0),
    };
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    let info = blocking(|| match vault.create_key(tenant, key, spec) {
        Err(tresor_core::Error::KeyExists { .. }) => vault.key_info(tenant, key),
        other => other,
    })?;
    Ok(key_reply(&info))
}
