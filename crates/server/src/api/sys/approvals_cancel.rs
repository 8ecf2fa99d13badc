//! POST `sys/approvals/{id}/cancel`: the principal that asked for a dangerous operation
//! withdraws it before it runs; nobody else may (docs/custody.md).

use tresor_wire::api::sys;

use crate::api::acts;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Withdraw one's own pending request.
pub(crate) const CANCEL: Operation = Operation::new("approval-cancel", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::CANCEL, CANCEL, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let approvals = &call.state.services.approvals;
    let approval = blocking(|| approvals.cancel(call.path("id"), &call.caller.principal))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&approval).settles(acts::settled(&approval)))
}
