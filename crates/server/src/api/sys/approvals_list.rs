//! LIST `sys/approvals`: dangerous operations waiting for custodians, pending or expired
//! (marked so); docs/custody.md.

use tresor_wire::api::sys::{self, ApprovalList};

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// List (and read) pending approvals.
pub(crate) const LIST: Operation = Operation::new("approval-list", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::LIST_APPROVALS, LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let approvals = &call.state.services.approvals;
    let approvals = blocking(|| approvals.open_approvals()).map_err(ApiError::from_native)?;
    Ok(Reply::data(&ApprovalList { approvals }))
}
