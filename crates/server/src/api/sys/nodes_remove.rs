//! DELETE `sys/nodes/{fingerprint}`: remove a node from peer unseal, once custodians approve
//! (docs/custody.md, dual control).

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;
use tresor_wire::peers::check_fingerprint;

use super::mount::propose;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Remove a node's enrolment (also needs approval).
pub(crate) const REMOVE: Operation = Operation::new("node-remove", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::REMOVE_NODE, REMOVE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let fingerprint = check_fingerprint(call.path("fingerprint"))
        .map_err(|e| ApiError::bad_request(format!("invalid fingerprint: {e}")))?;
    let nodes = &call.state.services.nodes;
    if blocking(|| nodes.enrolled(&fingerprint))
        .map_err(ApiError::from_native)?
        .is_none()
    {
        return Err(ApiError::bad_request(format!(
            "node {fingerprint} is not enrolled"
        )));
    }
    propose(call, Dangerous::RemoveNode { fingerprint })
}
