//! GET `sys/tenants/{tenant}`: a tenant's level, KEK version, custodians and key count.

use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Read a tenant's description.
pub(crate) const READ: Operation = Operation::new("tenant-read", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::READ_TENANT, READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let info = blocking(|| call.vault().tenant_info(call.tenant())).map_err(ApiError::from_native)?;
    Ok(Reply::data(&info))
}
