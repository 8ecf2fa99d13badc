//! POST `{tenant}/keys/{key}/trim`: destroy versions below `min_available_version`. Destroying
//! key material is dual-controlled (docs/custody.md): a trim that would destroy a version
//! answers 202 with a pending approval and runs once custodians sign it; one that destroys no
//! version runs at once.

use tresor_wire::api::transit;
use tresor_wire::approvals::Dangerous;

use super::mount::key_reply;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, Int, IntField};
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose;
use crate::policy::{Operation, Scope};

/// Destroy old key versions.
pub(crate) const TRIM: Operation = Operation::new("trim", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::TRIM_KEY, TRIM, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: transit::TrimKeyRequest = params::body(call.body)?;
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    let version = match body.min_available_version {
        None => return Err(ApiError::bad_request("missing min_available_version")),
        Some(Int(v)) if v < 0 => {
            return Err(ApiError::bad_request(
                "minimum available version cannot be negative",
            ));
        }
        Some(v) => v.to_u32("min_available_version")?,
    };
    let not_found = |e| match e {
        tresor_core::Error::KeyNotFound { .. } => ApiError::bad_request("invalid key name"),
        other => other.into(),
    };
    let current = blocking(|| vault.key_info(tenant, key)).map_err(not_found)?;
    // Refuse what cannot be done now rather than after custodians have signed it.
    tresor_core::keys::config::trim(&current.config, version).map_err(ApiError::from)?;
    if current.versions.keys().all(|v| *v >= version) {
        let info = blocking(|| vault.trim_key(tenant, key, version)).map_err(not_found)?;
        return Ok(key_reply(&info));
    }
    let request = Dangerous::TrimKey {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
        min_available_version: version,
    };
    propose(call, request)
}
