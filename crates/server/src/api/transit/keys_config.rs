//! POST `{tenant}/keys/{key}/config`: change a key's configuration. A change that weakens
//! protection waits for custodian approval (docs/custody.md).

use tresor_wire::api::transit;
use tresor_wire::approvals::Dangerous;
use tresor_wire::keys::KeyConfigUpdate;

use super::mount::key_reply;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, Int, IntField};
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose_to;
use crate::policy::{Operation, Scope};

/// Change a key's configuration.
pub(crate) const CONFIGURE: Operation = Operation::new("config", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::CONFIGURE_KEY, CONFIGURE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: transit::ConfigureKeyRequest = params::body(call.body)?;
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    let mut warnings = Vec::new();
    let min_decryption_version = match body.min_decryption_version {
        Some(Int(v)) if v < 0 => {
            return Err(ApiError::bad_request(
                "min decryption version cannot be negative",
            ));
        }
        Some(Int(0)) => {
            warnings.push(
                "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                    .to_owned(),
            );
            Some(1)
        }
        Some(v) => Some(v.to_u32("min_decryption_version")?),
        None => None,
    };
    let min_encryption_version = match body.min_encryption_version {
        Some(Int(v)) if v < 0 => {
            return Err(ApiError::bad_request(
                "min encryption version cannot be negative",
            ));
        }
        Some(v) => Some(v.to_u32("min_encryption_version")?),
        None => None,
    };
    if body.allow_plaintext_backup.is_some_and(|f| f.0) {
        return Err(ApiError::bad_request(
            "allow_plaintext_backup is not supported: Tresor has no plaintext backup endpoint",
        ));
    }
    let update = KeyConfigUpdate {
        min_decryption_version,
        min_encryption_version,
        deletion_allowed: body.deletion_allowed.map(|f| f.0),
        exportable: body.exportable.map(|f| f.0),
        auto_rotate_period: body.auto_rotate_period.map(|s| s.0),
        deletion_window: body.deletion_window.map(|s| s.0),
    };
    let not_found = |e| match e {
        tresor_core::Error::KeyNotFound { .. } => {
            ApiError::bad_request(format!("no existing key named {key} could be found"))
        }
        other => other.into(),
    };
    let current = blocking(|| vault.key_info(tenant, key)).map_err(not_found)?;
    // Refuse an invalid change now rather than after custodians have signed it.
    current.config.updated(&update, current.latest_version)?;
    if !current.config.weakened_by(&update).is_empty() {
        // Making a level-3 tenant's key exportable hands its material out of the tenant's custody:
        // the tenant's own custodians decide, not the vault's.
        let exporting = update.exportable == Some(true) && !current.config.exportable;
        let tenant_quorum = exporting
            && blocking(|| vault.tenant_info(tenant))
                .map_err(ApiError::from_native)?
                .level
                == 3;
        let request = Dangerous::ConfigureKey {
            tenant: tenant.to_owned(),
            key: key.to_owned(),
            update,
        };
        return propose_to(call, request, tenant_quorum.then_some(tenant));
    }
    let info = blocking(|| vault.configure_key(tenant, key, &update)).map_err(not_found)?;
    let mut reply = key_reply(&info);
    for warning in warnings {
        reply = reply.warn(warning);
    }
    Ok(reply)
}
