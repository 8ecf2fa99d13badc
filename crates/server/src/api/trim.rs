//! POST `keys/:name/trim`: destroy versions below `min_available_version`. Destroying key
//! material is dual-controlled (DESIGN §4): a trim that would destroy a version answers 202 with
//! a pending approval and runs once custodians sign it; one that destroys no version runs at once.

use serde::Deserialize;

use super::keys::key_reply;
use super::params::{self, Int, IntField};
use super::reply::{ApiError, Reply};
use super::{KeyCtx, blocking};
use tresor_wire::approvals::Dangerous;

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
    let not_found = |e| match e {
        tresor_core::Error::KeyNotFound { .. } => ApiError::bad_request("invalid key name"),
        other => other.into(),
    };
    let current = blocking(|| ctx.vault.key_info(ctx.tenant, ctx.key)).map_err(not_found)?;
    // Refuse what cannot be done now rather than after custodians have signed it.
    tresor_core::keys::config::trim(&current.config, version).map_err(ApiError::from)?;
    if current.versions.keys().all(|v| *v >= version) {
        let info =
            blocking(|| ctx.vault.trim_key(ctx.tenant, ctx.key, version)).map_err(not_found)?;
        return Ok(key_reply(&info));
    }
    let request = Dangerous::TrimKey {
        tenant: ctx.tenant.to_owned(),
        key: ctx.key.to_owned(),
        min_available_version: version,
    };
    super::sys_custody::propose(ctx.approvals, ctx.caller, request)
}
