//! POST `sys/peer-unseal`: a sealed node of this vault asks for the root key; it gets it sealed
//! to its per-boot unseal key if custodians enrolled its identity key (docs/deployment.md,
//! "Unsealing"; the checks are `peers::Nodes::grant`).

use tresor_wire::api::sys;
use tresor_wire::peers::PeerUnsealRequest;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Hand the root key to an enrolled node (the policy names the nodes' client certificates).
pub(crate) const PEER_UNSEAL: Operation = Operation::new("peer-unseal", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::PEER_UNSEAL, PEER_UNSEAL, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let request: PeerUnsealRequest = params::body(call.body)?;
    let nodes = &call.state.services.nodes;
    let granted = blocking(|| nodes.grant(call.vault(), &request)).map_err(ApiError::from_native)?;
    let event = crate::audit::AuditEvent {
        reason: format!(
            "root key (generation {}) handed to enrolled node {}, sealed to its unseal key",
            granted.grant.root_generation, granted.node
        ),
        ..crate::api::server_line("peer-unseal-granted", &call.caller.source)
    };
    crate::api::record_server_line(call.state, &event);
    Ok(Reply::data(&granted.grant))
}
