//! POST `sys/tenants/{tenant}/cancel-shred`: restores a tenant whose approved shred waits for
//! its window to end, once custodians approve (docs/custody.md, "Scheduled deletion").

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;

use super::mount::propose;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Cancel a tenant's scheduled shred (also needs custodian approval).
pub(crate) const CANCEL_SHRED: Operation = Operation::new("tenant-cancel-shred", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::CANCEL_TENANT_SHRED, CANCEL_SHRED, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let tenant = call.tenant();
    let info = blocking(|| call.vault().tenant_info(tenant)).map_err(ApiError::from_native)?;
    if info.destroy_at.is_none() {
        return Err(ApiError::bad_request(format!(
            "tenant {tenant} is not scheduled for shredding: nothing to cancel"
        )));
    }
    propose(
        call,
        Dangerous::CancelTenantShred {
            tenant: tenant.to_owned(),
        },
    )
}
