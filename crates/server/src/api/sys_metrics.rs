//! GET `sys/metrics` (Prometheus text) and POST `sys/audit/hash` (the audit form of a known
//! value, for investigators searching the log).

use hyper::StatusCode;
use serde::Deserialize;

use super::ApiState;
use super::params::{self, Text};
use super::reply::{ApiError, Reply};
use crate::metrics::Gauges;

/// GET `sys/metrics`.
pub(crate) fn metrics(state: &ApiState) -> Result<Reply, ApiError> {
    let gauges = Gauges {
        sealed: state.services.vault.is_sealed(),
        cache: state.services.vault.key_cache_stats(),
        audit_write_failures: state.audit.as_ref().map_or(0, |a| a.write_failures()),
    };
    Ok(Reply::text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        state.metrics.render(&gauges),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashBody<'a> {
    /// The value, base64.
    #[serde(borrow)]
    input: Text<'a>,
}

/// POST `sys/audit/hash`: the HMAC under which `input` would appear in audit lines.
pub(crate) fn audit_hash(state: &ApiState, body: &[u8]) -> Result<Reply, ApiError> {
    let body: HashBody = params::body(body)?;
    let input = params::base64_field(
        "input",
        body.input
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing input"))?,
    )?;
    if state.audit.is_none() {
        return Err(ApiError::bad_request(
            "the audit trail is disabled on this server",
        ));
    }
    let hasher = state.audit_hasher().ok_or_else(ApiError::sealed)?;
    Ok(Reply::data(
        &serde_json::json!({ "hmac": hasher.hash(&input) }),
    ))
}
