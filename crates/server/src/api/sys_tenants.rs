//! Tresor's own tenant routes under `sys/tenants`: create with a protection level, list, read,
//! rotate the KEK, shred. Unknown fields are refused here (these are not Vault routes).

use serde::Deserialize;

use super::params::{self, Int};
use super::reply::{ApiError, Reply};
use super::{Caller, blocking};
use crate::approvals::Approvals;
use tresor_core::{ProtectionLevel, TenantSpec, Vault};
use tresor_crypto::identity::CustodianPublicKey;
use tresor_wire::approvals::Dangerous;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    level: Option<Int>,
    #[serde(default)]
    custodians: Vec<CustodianPublicKey>,
    /// Level 3: custodians needed to unlock (default 1).
    #[serde(default)]
    threshold: Option<Int>,
}

/// POST `sys/tenants/:name`.
pub(crate) fn create(vault: &Vault, name: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let body: CreateBody = params::body(body)?;
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
    };
    let info = blocking(|| vault.create_tenant(name, &spec)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&info))
}

/// LIST `sys/tenants`.
pub(crate) fn list(vault: &Vault) -> Result<Reply, ApiError> {
    let tenants = blocking(|| vault.list_tenants()).map_err(ApiError::from_native)?;
    Ok(Reply::data(&serde_json::json!({ "keys": tenants })))
}

/// GET `sys/tenants/:name`.
pub(crate) fn read(vault: &Vault, name: &str) -> Result<Reply, ApiError> {
    let info = blocking(|| vault.tenant_info(name)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&info))
}

/// POST `sys/tenants/:name/rotate-kek`.
pub(crate) fn rotate_kek(vault: &Vault, name: &str) -> Result<Reply, ApiError> {
    let info = blocking(|| vault.rotate_tenant_kek(name)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&info))
}

/// DELETE `sys/tenants/:name`: crypto-shred the tenant, once custodians approve.
pub(crate) fn shred(
    vault: &Vault,
    approvals: &Approvals,
    caller: &Caller,
    name: &str,
) -> Result<Reply, ApiError> {
    blocking(|| vault.tenant_info(name)).map_err(ApiError::from_native)?;
    super::sys_custody::propose(
        approvals,
        caller,
        Dangerous::ShredTenant {
            tenant: name.to_owned(),
        },
    )
}
