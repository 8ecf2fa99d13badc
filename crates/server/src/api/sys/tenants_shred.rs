//! DELETE `sys/tenants/{tenant}`: crypto-shred the tenant, once custodians approve
//! (docs/custody.md). The approved shred starts the tenant's deletion window (or the one
//! `?deletion_window=` asks for; 0 shreds at once, and custodians see that in what they sign).

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;

use super::mount::propose;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::api::transit::keys_delete::deletion_window;
use crate::policy::{Operation, Scope};

/// Shred a tenant (also needs custodian approval).
pub(crate) const SHRED: Operation = Operation::new("tenant-shred", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::SHRED_TENANT, SHRED, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let deletion_window = deletion_window(call.query)?;
    let tenant = call.tenant();
    let info = blocking(|| call.vault().tenant_info(tenant)).map_err(ApiError::from_native)?;
    if let Some(destroy_at) = info.destroy_at {
        return Err(ApiError::bad_request(format!(
            "tenant {tenant} is already scheduled for shredding at {}",
            tresor_wire::time::rfc3339(destroy_at, 0)
        )));
    }
    propose(
        call,
        Dangerous::ShredTenant {
            tenant: tenant.to_owned(),
            deletion_window,
        },
    )
}
