//! POST `sys/approvals/{id}/approve`: a custodian's signature; the last one needed runs the
//! operation (docs/custody.md).

use tresor_wire::api::sys;
use tresor_wire::approvals::Decision;

use crate::api::acts;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::approvals::Signer;
use crate::policy::{Operation, Scope};

/// Approve a pending operation (also needs the custodian's identity).
pub(crate) const APPROVE: Operation = Operation::new("approval-approve", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::APPROVE, APPROVE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::ApproveRequest = params::body(call.body)?;
    let id = call.path("id");
    let services = &call.state.services;
    let signer = Signer {
        custodian: &body.custodian,
        signature: &body.signature,
        principal: &call.caller.principal,
    };
    let outcome = blocking(|| services.decide(id, Decision::Approve, signer))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&outcome)
        .acted_by(acts::signer(&outcome.approval, &body.custodian))
        .settles(acts::settled(&outcome.approval)))
}
