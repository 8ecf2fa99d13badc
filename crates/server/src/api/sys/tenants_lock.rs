//! POST `sys/tenants/{tenant}/lock`: lock a level-3 tenant at once (docs/custody.md).

use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Lock a level-3 tenant.
pub(crate) const LOCK: Operation = Operation::new("tenant-lock", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::LOCK_TENANT, LOCK, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    blocking(|| call.vault().lock_tenant(call.tenant())).map_err(ApiError::from_native)?;
    Ok(Reply::no_content().seal_change("tenant-locked"))
}
