//! POST `{tenant}/hmac/{key}[/{algorithm}]`: keyed, stable, irreversible tokens (the
//! pseudonymisation primitive). Batches always answer 200 with per-item errors, as in Vault.

use std::borrow::Cow;

use tresor_core::{HmacAlgorithm, Versioned};
use tresor_wire::api::transit::{self, HmacResult};
use zeroize::Zeroizing;

use super::mount::KeyCtx;
use crate::api::batch::{self, BatchStatus};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params::{self, IntField};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Compute HMAC tokens.
pub(crate) const HMAC: Operation = Operation::new("hmac", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::HMAC, HMAC, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let body: transit::HmacRequest = params::body(call.body)?;
    let algorithm = algorithm(call.param("algorithm"), body.algorithm.as_deref())?;
    let key_version = body
        .key_version
        .map(|v| v.to_u32("key_version"))
        .transpose()?;
    let Some(items) = body.batch_input else {
        let input = decode_input(ctx, body.input.as_deref())?;
        let token = ctx
            .vault
            .hmac(ctx.tenant, ctx.key, &input, algorithm, key_version)?;
        let version = token.version;
        return Ok(Reply::data(&result(Ok(token), Cow::Borrowed(""))).version(version));
    };
    batch::run(
        &call.state.limits,
        &items,
        BatchStatus::AlwaysOk,
        |item| decode_input(ctx, item.input.as_deref()),
        |valid| {
            let inputs: Vec<&[u8]> = valid.iter().map(|i| i.as_slice()).collect();
            Ok(ctx
                .vault
                .hmac_batch(ctx.tenant, ctx.key, &inputs, algorithm, key_version)?)
        },
        result,
    )
}

/// A token or an item's refusal.
fn result(outcome: Result<Versioned, ApiError>, reference: Cow<'_, str>) -> HmacResult<'_> {
    match outcome {
        Ok(token) => HmacResult {
            hmac: Some(token.text),
            error: None,
            reference,
        },
        Err(e) => HmacResult {
            hmac: None,
            error: Some(e.message),
            reference,
        },
    }
}

/// The algorithm named in the path, else in the body, else the default.
pub(crate) fn algorithm(path: Option<&str>, body: Option<&str>) -> Result<HmacAlgorithm, ApiError> {
    match path.or(body).filter(|a| !a.is_empty()) {
        None => Ok(HmacAlgorithm::default()),
        Some(name) => name.parse().map_err(ApiError::from),
    }
}

/// Decodes an HMAC input and notes it for the audit line.
pub(crate) fn decode_input(ctx: &KeyCtx<'_>, input: Option<&str>) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let input = input.ok_or_else(|| ApiError::bad_request("missing input for HMAC"))?;
    let decoded = params::base64_field("input", input)?;
    ctx.inputs.note(&decoded);
    Ok(decoded)
}
