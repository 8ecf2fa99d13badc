//! What the `sys/` endpoints share: the mount, and proposing a dangerous operation for
//! custodians to approve (docs/custody.md).

use hyper::StatusCode;
use tresor_wire::approvals::Dangerous;

use crate::api::endpoint::{Call, Mount, Prefix, blocking};
use crate::api::reply::{ApiError, Reply};

/// `/v1/sys/…`. Below one of its resources (`sys/tenants/…`), a path no endpoint serves is an
/// operation the resource does not have: 405.
pub(crate) const MOUNT: Mount = Mount {
    resources_answer_405: true,
    ..Mount::new(Prefix::Literal("sys"), "system")
};

/// Records a dangerous operation as pending approval by the vault's custodians and answers
/// 202 with the approval.
pub(crate) fn propose(call: &Call<'_>, request: Dangerous) -> Result<Reply, ApiError> {
    propose_to(call, request, None)
}

/// As [`propose`], for the custodians of level-3 tenant `tenant` (`None`: the vault's): what
/// touches a tenant's custody is decided by its own custodians.
pub(crate) fn propose_to(
    call: &Call<'_>,
    request: Dangerous,
    tenant: Option<&str>,
) -> Result<Reply, ApiError> {
    let approvals = &call.state.services.approvals;
    let approval = blocking(|| approvals.propose_to(request, &call.caller.principal, tenant))
        .map_err(ApiError::from_native)?;
    let message = format!(
        "needs approval by {} custodian(s) before it runs: tresor approval approve {} --identity CUSTODIAN.key",
        approval.required, approval.id
    );
    Ok(Reply::with_status(StatusCode::ACCEPTED, &approval).warn(message))
}
