//! POST `sys/tenants/{tenant}`: create a tenant with a protection level (and, at level 3, its
//! own custodians; docs/custody.md). Unknown fields are refused: this is not a Vault route.

use tresor_core::{ProtectionLevel, TenantSpec};
use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, Int};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Create a tenant.
pub(crate) const CREATE: Operation = Operation::new("tenant-create", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::CREATE_TENANT, CREATE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::CreateTenantRequest = params::body(call.body)?;
    let level = match body.level {
        None => ProtectionLevel::default(),
        Some(Int(level)) => u8::try_from(level)
            .ok()
            .and_then(|l| ProtectionLevel::try_from(l).ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid level: {level} is not 1, 2 or 3"))
            })?,
    };
    let threshold = match body.threshold {
        None => 1,
        Some(Int(t)) => u8::try_from(t)
            .ok()
            .filter(|t| *t >= 1)
            .ok_or_else(|| ApiError::bad_request(format!("invalid threshold: {t}")))?,
    };
    let spec = TenantSpec {
        level,
        custodians: body.custodians,
        threshold,
        deletion_window: body.deletion_window.map(|s| s.0),
    };
    let info = blocking(|| call.vault().create_tenant(call.tenant(), &spec))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&info))
}
