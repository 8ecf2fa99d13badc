//! GET `sys/seal-status`: Vault's fields plus who the custodians are, who has submitted a share,
//! and the keys custodians seal to and audit checkpoints are signed with. Any authenticated
//! client may read it.

use hyper::StatusCode;
use serde::Serialize;
use tresor_wire::api::sys;

use super::health::VERSION;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::audit::AuditLog;

pub(crate) const ENDPOINT: Endpoint = Endpoint::open(sys::SEAL_STATUS, "seal-status", handle);

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
    /// This node's identity key (base64 Ed25519) and its signature over the unseal key, which
    /// custodians check against the node they pinned before sealing a share to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unseal_key_signature: Option<&'a str>,
    /// The custodians' key fingerprints, in share order.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    custodian_fingerprints: &'a [String],
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let audit: Option<&AuditLog> = call.state.audit.as_deref();
    let status = blocking(|| call.vault().seal_status())?;
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
