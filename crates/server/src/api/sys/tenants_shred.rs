//! DELETE `sys/tenants/{tenant}`: crypto-shred the tenant, once custodians approve
//! (docs/custody.md).

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;

use super::mount::propose;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Shred a tenant (also needs custodian approval).
pub(crate) const SHRED: Operation = Operation::new("tenant-shred", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::SHRED_TENANT, SHRED, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let tenant = call.tenant();
    blocking(|| call.vault().tenant_info(tenant)).map_err(ApiError::from_native)?;
    propose(
        call,
        Dangerous::ShredTenant {
            tenant: tenant.to_owned(),
        },
    )
}
