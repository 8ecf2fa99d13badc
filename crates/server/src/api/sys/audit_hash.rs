//! POST `sys/audit/hash`: the HMAC under which a known value would appear in audit lines, for
//! investigators searching the log (docs/audit.md).

use serde::Deserialize;
use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint};
use crate::api::params::{self, Text};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Compute audit hashes of known values.
pub(crate) const AUDIT_HASH: Operation = Operation::new("audit-hash", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::AUDIT_HASH, AUDIT_HASH, handle);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashBody<'a> {
    /// The value, base64.
    #[serde(borrow)]
    input: Text<'a>,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: HashBody = params::body(call.body)?;
    let input = params::base64_field(
        "input",
        body.input
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing input"))?,
    )?;
    if call.state.audit.is_none() {
        return Err(ApiError::bad_request(
            "the audit trail is disabled on this server",
        ));
    }
    let hasher = call.state.audit_hasher().ok_or_else(ApiError::sealed)?;
    Ok(Reply::data(
        &serde_json::json!({ "hmac": hasher.hash(&input) }),
    ))
}
