//! DELETE `{tenant}/keys/{key}`: deletes once custodians approve (answers 202 with the
//! approval; docs/custody.md).

use tresor_wire::api::transit;
use tresor_wire::approvals::Dangerous;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose;
use crate::policy::{Operation, Scope};

/// Delete a key (also needs custodian approval).
pub(crate) const DELETE: Operation = Operation::new("delete", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::DELETE_KEY, DELETE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let (tenant, key) = (call.tenant(), call.key());
    let info = blocking(|| call.vault().key_info(tenant, key)).map_err(|e| match e {
        tresor_core::Error::KeyNotFound { .. } => {
            ApiError::bad_request(format!("error deleting key {key}: not found"))
        }
        other => other.into(),
    })?;
    if !info.config.deletion_allowed {
        return Err(ApiError::bad_request(format!(
            "error deleting key {key}: deletion is not allowed for this key (set deletion_allowed first)"
        )));
    }
    let request = Dangerous::DeleteKey {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
    };
    propose(call, request)
}
