//! GET/HEAD `sys/health`: Vault's shape and status codes, so load balancers and Vault clients
//! read it unchanged. Any authenticated client may read it; it carries no secrets.

use hyper::StatusCode;
use serde::Serialize;
use tresor_core::Vault;
use tresor_core::clock::{Clock, SystemClock};
use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::open(sys::HEALTH, "health", handle).answering_head();

/// The version every status answer reports.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Serialize)]
struct Health<'a> {
    initialized: bool,
    sealed: bool,
    standby: bool,
    performance_standby: bool,
    replication_performance_mode: &'static str,
    replication_dr_mode: &'static str,
    server_time_utc: u64,
    version: &'static str,
    enterprise: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<&'a str>,
    environment: &'a str,
    /// SHA-256 of the policy set this node has loaded: nodes that disagree show different ones.
    policy_set_sha256: &'a str,
    /// On PostgreSQL: this node and where it stands in the change log.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<StorageHealth<'a>>,
}

/// The shared store as this node sees it.
#[derive(Serialize)]
struct StorageHealth<'a> {
    node_id: &'a str,
    change_log_position: i64,
    change_log_age_ms: u64,
    /// The background-job lease's epoch while this node holds it (it runs the jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    job_lease_epoch: Option<i64>,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let storage = call.state.coherence.as_ref().map(|c| StorageHealth {
        node_id: c.node_id(),
        change_log_position: c.status().position(),
        change_log_age_ms: c.status().age().as_millis() as u64,
        job_lease_epoch: c.job_epoch(),
    });
    let policies = call.state.policies.current();
    health(
        call.vault(),
        call.query,
        SystemClock.now(),
        policies.digest(),
        storage,
    )
}

/// Query parameters `activecode`, `sealedcode`, `uninitcode` (and the standby ones, accepted
/// for compatibility) override the status codes, as in Vault.
fn health(
    vault: &Vault,
    query: Option<&str>,
    now: u64,
    policy_set_sha256: &str,
    storage: Option<StorageHealth<'_>>,
) -> Result<Reply, ApiError> {
    let mut codes = (
        StatusCode::OK,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::NOT_IMPLEMENTED,
    );
    for (name, value) in query_pairs(query) {
        let target = match name {
            "activecode" => &mut codes.0,
            "sealedcode" => &mut codes.1,
            "uninitcode" => &mut codes.2,
            "standbyok" | "perfstandbyok" => {
                if !matches!(value, "" | "true" | "false" | "1" | "0" | "t" | "f") {
                    return Err(ApiError::new(StatusCode::BAD_REQUEST, ""));
                }
                continue;
            }
            "standbycode"
            | "drsecondarycode"
            | "performancestandbycode"
            | "removedcode"
            | "haunhealthycode" => {
                value
                    .parse::<u16>()
                    .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, ""))?;
                continue;
            }
            _ => continue,
        };
        // Only final answers: a 1xx is not a response (HTTP/1.1 loses the connection's framing,
        // HTTP/2 tears the whole connection down with a protocol error).
        *target = value
            .parse::<u16>()
            .ok()
            .filter(|c| (200..=599).contains(c))
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, ""))?;
    }
    let status = blocking(|| vault.seal_status())?;
    let code = match (status.initialized, status.sealed) {
        (false, _) => codes.2,
        (true, true) => codes.1,
        (true, false) => codes.0,
    };
    let body = Health {
        initialized: status.initialized,
        sealed: status.sealed,
        standby: false,
        performance_standby: false,
        replication_performance_mode: "disabled",
        replication_dr_mode: "disabled",
        server_time_utc: now,
        version: VERSION,
        enterprise: false,
        cluster_name: (!status.sealed).then_some("tresor"),
        cluster_id: (!status.sealed).then_some(status.vault_id.as_str()),
        environment: &status.environment,
        policy_set_sha256,
        storage,
    };
    if matches!(
        code,
        StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        // These statuses carry no body; sending one breaks the connection's framing.
        let mut reply = Reply::no_content();
        reply.status = code;
        return Ok(reply);
    }
    Ok(Reply::bare(code, &body))
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::api::testing::TestApi;

    #[tokio::test]
    async fn status_codes_follow_the_query_as_in_vault() {
        let api = TestApi::new();
        let (status, answer) = api.call("GET", "sys/health", Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["sealed"], false);
        assert_eq!(
            answer["policy_set_sha256"],
            api.state().policies.current().digest()
        );
        assert_eq!(answer["policy_set_sha256"].as_str().unwrap().len(), 64);
        let (status, _) = api
            .call("GET", "sys/health?activecode=299", Value::Null)
            .await;
        assert_eq!(status.as_u16(), 299);
        // Not a final answer, and no body where a body is expected: refused.
        for query in ["activecode=101", "standbyok=maybe"] {
            let (status, _) = api
                .call("GET", &format!("sys/health?{query}"), Value::Null)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        }
        let (status, body) = api.call("HEAD", "sys/health", Value::Null).await;
        assert_eq!((status, body), (StatusCode::OK, Value::Null));
    }
}
