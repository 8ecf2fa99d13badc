//! POST `{tenant}/keys/{key}/rotate`: a new version, durable before this answers.

use tresor_wire::api::transit;

use super::mount::key_reply;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Rotate a key (also what auto-rotation is audited as).
pub(crate) const ROTATE: Operation = Operation::new("rotate", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::ROTATE_KEY, ROTATE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let info =
        blocking(|| call.vault().rotate_key(call.tenant(), call.key())).map_err(|e| match e {
            tresor_core::Error::KeyNotFound { .. } => ApiError::bad_request("key not found"),
            other => other.into(),
        })?;
    Ok(key_reply(&info))
}
