//! GET `sys/approvals/{id}`: one approval, as custodians sign it.

use tresor_wire::api::sys;

use super::approvals_list::LIST;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::READ_APPROVAL, LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let approvals = &call.state.services.approvals;
    let approval = blocking(|| approvals.approval(call.path("id"))).map_err(ApiError::from_native)?;
    Ok(Reply::data(&approval))
}
