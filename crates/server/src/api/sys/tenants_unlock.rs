//! POST `sys/tenants/{tenant}/unlock`: a level-3 tenant's custody key, sealed to the vault's
//! current unseal key (docs/custody.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_wire::api::sys;

use crate::api::acts;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Unlock a level-3 tenant (also needs the tenant custodian's identity).
pub(crate) const UNLOCK: Operation = Operation::new("tenant-unlock", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::UNLOCK_TENANT, UNLOCK, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::UnlockTenantRequest = params::body(call.body)?;
    let sealed = STANDARD
        .decode(&body.sealed_custody_key)
        .map_err(|_| ApiError::bad_request("invalid sealed_custody_key: not base64"))?;
    let tenant = call.tenant();
    let vault = call.vault();
    let (info, custodians) = blocking(|| {
        let info =
            vault.unlock_tenant_sealed(tenant, &body.custodian, &call.caller.principal, &sealed)?;
        // Authentic only once the tenant is open; a partial unlock names no fingerprint.
        let custodians = vault.sealed_store().tenant_custodians(tenant).ok();
        Ok::<_, tresor_core::Error>((info, custodians))
    })
    .map_err(ApiError::from_native)?;
    let reply = Reply::data(&info).acted_by(
        custodians
            .as_ref()
            .and_then(|c| c.get(&body.custodian))
            .map(acts::custodian),
    );
    Ok(if info.locked {
        reply
    } else {
        reply.seal_change("tenant-unlocked")
    })
}
