//! POST `sys/tenants/{tenant}/rotate-kek`: a new key-encryption key for the tenant.

use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Rotate a tenant's KEK.
pub(crate) const ROTATE_KEK: Operation = Operation::new("tenant-rotate-kek", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::ROTATE_TENANT_KEK, ROTATE_KEK, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let info = blocking(|| call.vault().rotate_tenant_kek(call.tenant()))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&info))
}
