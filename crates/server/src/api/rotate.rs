//! POST `keys/:name/rotate`: a new version, durable before this answers.

use super::keys::key_reply;
use super::reply::{ApiError, Reply};
use super::{KeyCtx, blocking};

pub(crate) fn handle(ctx: &KeyCtx<'_>) -> Result<Reply, ApiError> {
    let info = blocking(|| ctx.vault.rotate_key(ctx.tenant, ctx.key)).map_err(|e| match e {
        tresor_core::Error::KeyNotFound { .. } => ApiError::bad_request("key not found"),
        other => other.into(),
    })?;
    Ok(key_reply(&info))
}
