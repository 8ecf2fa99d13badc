//! POST `sys/approvals/{id}/approve`: a custodian's signature; the last one needed runs the
//! operation (docs/custody.md).

use serde::Deserialize;
use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Approve a pending operation (also needs the custodian's identity).
pub(crate) const APPROVE: Operation = Operation::new("approval-approve", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::APPROVE, APPROVE, handle).mutating();

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    custodian: String,
    /// Ed25519 signature over the approval's signed message, base64.
    signature: String,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: ApproveBody = params::body(call.body)?;
    let id = call.path("id");
    let services = &call.state.services;
    let outcome = blocking(|| services.approve(id, &body.custodian, &body.signature))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&outcome))
}
