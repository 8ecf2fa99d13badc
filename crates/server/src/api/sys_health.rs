//! GET/HEAD `sys/health`, GET `sys/seal-status` and GET `sys/init`: Vault's shapes and status
//! codes, so load balancers and Vault clients read them unchanged. Any authenticated client may
//! read them; they carry no secrets.

use hyper::StatusCode;
use serde::Serialize;

use super::blocking;
use super::reply::{ApiError, Reply};
use crate::audit::AuditLog;
use tresor_core::Vault;

const VERSION: &str = env!("CARGO_PKG_VERSION");

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
}

/// `sys/health`. Query parameters `activecode`, `sealedcode`, `uninitcode` (and the standby
/// ones, accepted for compatibility) override the status codes, as in Vault.
pub(crate) fn health(vault: &Vault, query: Option<&str>, now: u64) -> Result<Reply, ApiError> {
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

#[derive(Serialize)]
struct SealStatus<'a> {
    #[serde(rename = "type")]
    seal_type: &'static str,
    initialized: bool,
    sealed: bool,
    t: u8,
    n: u8,
    progress: usize,
    nonce: &'static str,
    version: &'static str,
    build_date: &'static str,
    migration: bool,
    recovery_seal: bool,
    storage_type: &'static str,
    cluster_name: &'static str,
    cluster_id: &'a str,
    environment: &'a str,
    root_generation: u32,
    custodians: &'a [String],
    submitted: &'a [String],
    /// The X25519 key (base64) custodians seal their submissions to; it changes every round.
    unseal_key: &'a str,
    /// The Ed25519 key (base64) audit checkpoints are signed with; absent if auditing is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_key: Option<String>,
    /// This node's identity key (base64 Ed25519) and its signature over the unseal key.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unseal_key_signature: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    custodian_fingerprints: &'a [String],
}

/// `sys/seal-status`: Vault's fields plus who the custodians are and who has submitted.
pub(crate) fn seal_status(vault: &Vault, audit: Option<&AuditLog>) -> Result<Reply, ApiError> {
    let status = blocking(|| vault.seal_status())?;
    let body = SealStatus {
        seal_type: "shamir",
        initialized: status.initialized,
        sealed: status.sealed,
        t: status.threshold,
        n: status.shares,
        progress: status.submitted.len(),
        nonce: "",
        version: VERSION,
        build_date: "",
        migration: false,
        recovery_seal: false,
        storage_type: "sled",
        cluster_name: "tresor",
        cluster_id: &status.vault_id,
        environment: &status.environment,
        root_generation: status.root_generation,
        custodians: &status.custodians,
        submitted: &status.submitted,
        unseal_key: &status.unseal_key,
        audit_key: audit.map(AuditLog::public_key),
        node_key: status.node_key.as_deref(),
        unseal_key_signature: status.unseal_key_signature.as_deref(),
        custodian_fingerprints: &status.custodian_fingerprints,
    };
    Ok(Reply::bare(StatusCode::OK, &body))
}

/// GET `sys/init`.
pub(crate) fn init_status(vault: &Vault) -> Result<Reply, ApiError> {
    let status = blocking(|| vault.seal_status())?;
    Ok(Reply::bare(
        StatusCode::OK,
        &serde_json::json!({ "initialized": status.initialized }),
    ))
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}
