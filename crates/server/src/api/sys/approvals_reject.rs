//! POST `sys/approvals/{id}/reject`: a custodian's signed rejection. The approval ends, and its
//! operation never runs, once rejections leave too few custodians to reach the threshold
//! (docs/custody.md).

use tresor_wire::api::sys;
use tresor_wire::approvals::Decision;

use crate::api::acts;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::approvals::Signer;
use crate::policy::{Operation, Scope};

/// Reject a pending operation (also needs the custodian's identity).
pub(crate) const REJECT: Operation = Operation::new("approval-reject", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::REJECT, REJECT, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::ApproveRequest = params::body(call.body)?;
    let signer = Signer {
        custodian: &body.custodian,
        signature: &body.signature,
        principal: &call.caller.principal,
    };
    let services = &call.state.services;
    let outcome = blocking(|| services.decide(call.path("id"), Decision::Reject, signer))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&outcome)
        .acted_by(acts::signer(&outcome.approval, &body.custodian))
        .settles(acts::settled(&outcome.approval)))
}
