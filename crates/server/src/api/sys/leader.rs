//! GET `sys/leader`: Vault's HA leader status, so `bao status` / `vault status` work. A Tresor
//! server is one node serving its store alone: HA is not enabled, and the answer is Vault's for a
//! server without HA. Any authenticated client may read it; it carries no secrets.

use hyper::StatusCode;
use serde::Serialize;
use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::open(sys::LEADER, "leader", handle);

/// Vault's fields, with the values Vault gives when HA is disabled.
#[derive(Serialize)]
struct Leader {
    ha_enabled: bool,
    is_self: bool,
    active_time: &'static str,
    leader_address: &'static str,
    leader_cluster_address: &'static str,
    performance_standby: bool,
    performance_standby_last_remote_wal: u64,
    raft_committed_index: u64,
    raft_applied_index: u64,
}

fn handle(_call: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::bare(
        StatusCode::OK,
        &Leader {
            ha_enabled: false,
            is_self: false,
            active_time: "0001-01-01T00:00:00Z",
            leader_address: "",
            leader_cluster_address: "",
            performance_standby: false,
            performance_standby_last_remote_wal: 0,
            raft_committed_index: 0,
            raft_applied_index: 0,
        },
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::api::testing::{APP, TestApi};

    #[tokio::test]
    async fn vault_shape_without_ha_for_any_client() {
        let api = TestApi::new();
        let (status, answer) = api.call_as(APP, "GET", "sys/leader", Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["ha_enabled"], false, "{answer}");
        assert_eq!(answer["is_self"], false, "{answer}");
        assert_eq!(answer["leader_address"], "", "{answer}");
        let (status, _) = api.call_as(APP, "POST", "sys/leader", Value::Null).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
