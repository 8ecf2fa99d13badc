//! POST `sys/tenants/{tenant}/custodians`: replace a level-3 tenant's custodians (and
//! threshold); needs the approval of its current custodians, not the vault's (docs/custody.md).

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;

use super::mount::propose_to;
use crate::api::params::Int;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Change a level-3 tenant's custodians (also needs approval).
pub(crate) const CHANGE_CUSTODY: Operation = Operation::new("tenant-custody", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::CHANGE_TENANT_CUSTODIANS, CHANGE_CUSTODY, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::TenantCustodiansRequest = params::body(call.body)?;
    let tenant = call.tenant();
    if body.custodians.is_empty() {
        return Err(ApiError::bad_request(
            "a level-3 tenant needs at least one custodian of its own",
        ));
    }
    let info = blocking(|| call.vault().tenant_info(tenant)).map_err(ApiError::from_native)?;
    if info.level != 3 {
        return Err(ApiError::bad_request(format!(
            "`{tenant}` is not a level-3 tenant: it has no custodians of its own"
        )));
    }
    // The change re-wraps the tenant's KEK, which only an unlocked tenant has: refuse now
    // rather than after custodians have signed something that cannot run.
    if info.locked {
        return Err(tresor_core::Error::TenantLocked(tenant.to_owned()).into());
    }
    let threshold = body
        .threshold
        .map(|Int(t)| {
            u8::try_from(t).map_err(|_| ApiError::bad_request(format!("invalid threshold: {t}")))
        })
        .transpose()?;
    // Only the tenant's own custodians decide who they are.
    propose_to(
        call,
        Dangerous::ChangeTenantCustodians {
            tenant: tenant.to_owned(),
            custodians: body.custodians,
            threshold,
        },
        Some(tenant),
    )
}
