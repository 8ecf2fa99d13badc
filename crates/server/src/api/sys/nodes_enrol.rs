//! POST `sys/nodes/{fingerprint}`: enrol a node's identity key for peer unseal, once custodians
//! approve (docs/custody.md, dual control).

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;
use tresor_wire::peers::{EnrolRequest, check_fingerprint};

use super::mount::propose;
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Enrol a node (also needs approval).
pub(crate) const ENROL: Operation = Operation::new("node-enrol", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::ENROL_NODE, ENROL, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let fingerprint = check_fingerprint(call.path("fingerprint"))
        .map_err(|e| ApiError::bad_request(format!("invalid fingerprint: {e}")))?;
    let body: EnrolRequest = params::body(call.body)?;
    if !body.address.starts_with("https://") || body.address.len() > 256 {
        return Err(ApiError::bad_request(format!(
            "invalid address `{}`: an https:// URL of at most 256 bytes, where the node serves",
            body.address
        )));
    }
    propose(
        call,
        Dangerous::EnrolNode {
            fingerprint,
            address: body.address,
        },
    )
}
