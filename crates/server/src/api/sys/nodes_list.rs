//! LIST `sys/nodes`: the nodes custodians enrolled for peer unseal (docs/custody.md).

use tresor_wire::api::sys;
use tresor_wire::peers::NodeList;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// List the enrolled nodes.
pub(crate) const LIST: Operation = Operation::new("node-list", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::LIST_NODES, LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let nodes = &call.state.services.nodes;
    let nodes = blocking(|| nodes.list()).map_err(ApiError::from_native)?;
    Ok(Reply::data(&NodeList { nodes }))
}
