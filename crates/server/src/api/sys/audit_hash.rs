//! POST `sys/audit/hash`: the HMAC under which a known value would appear in audit lines, for
//! investigators searching the log (docs/audit.md).

use tresor_wire::api::sys::{self, AuditHash};

use crate::api::endpoint::{Call, Endpoint};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Compute audit hashes of known values.
pub(crate) const AUDIT_HASH: Operation = Operation::new("audit-hash", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::AUDIT_HASH, AUDIT_HASH, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::AuditHashRequest = params::body(call.body)?;
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
    let hasher = call
        .state
        .audit_hasher()
        .map_err(ApiError::from)?
        .ok_or_else(ApiError::sealed)?;
    Ok(Reply::data(&AuditHash {
        hmac: hasher.hash(&input),
    }))
}
