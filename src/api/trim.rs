//! POST `keys/:name/trim`: destroy versions below `min_available_version`.

use serde::Deserialize;

use super::keys::key_reply;
use super::params::{self, Int};
use super::reply::{ApiError, Reply};
use super::{KeyCtx, blocking};

#[derive(Deserialize, Default)]
struct Body {
    min_available_version: Option<Int>,
}

pub(crate) fn handle(ctx: &KeyCtx<'_>, body: &[u8]) -> Result<Reply, ApiError> {
    let body: Body = params::body(body)?;
    let version = match body.min_available_version {
        None => return Err(ApiError::bad_request("missing min_available_version")),
        Some(Int(v)) if v < 0 => {
            return Err(ApiError::bad_request(
                "minimum available version cannot be negative",
            ));
        }
        Some(v) => v.to_u32("min_available_version")?,
    };
    let info =
        blocking(|| ctx.vault.trim_key(ctx.tenant, ctx.key, version)).map_err(|e| match e {
            crate::Error::KeyNotFound { .. } => ApiError::bad_request("invalid key name"),
            other => other.into(),
        })?;
    Ok(key_reply(&info))
}
