//! `sys/approvals`: custodians list pending dangerous operations and sign them; the last
//! signature runs the operation.

use serde::Deserialize;

use super::Caller;
use super::blocking;
use super::params;
use super::reply::{ApiError, Reply};
use crate::approvals::{Approvals, Signer};
use crate::services::Services;
use tresor_wire::approvals::Decision;

/// LIST `sys/approvals`: approvals that have not run, pending or expired (marked so).
pub(crate) fn list(approvals: &Approvals) -> Result<Reply, ApiError> {
    let approvals = blocking(|| approvals.open_approvals()).map_err(ApiError::from_native)?;
    Ok(Reply::data(&serde_json::json!({ "approvals": approvals })))
}

/// GET `sys/approvals/:id`.
pub(crate) fn read(approvals: &Approvals, id: &str) -> Result<Reply, ApiError> {
    let approval = blocking(|| approvals.approval(id)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&approval))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    custodian: String,
    /// Ed25519 signature over the approval's signed message, base64.
    signature: String,
}

/// POST `sys/approvals/:id/approve`.
pub(crate) fn approve(
    services: &Services,
    caller: &Caller,
    id: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: ApproveBody = params::body(body)?;
    let signer = Signer {
        custodian: &body.custodian,
        signature: &body.signature,
        principal: &caller.principal,
    };
    let outcome = blocking(|| services.decide(id, Decision::Approve, signer))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&outcome))
}
