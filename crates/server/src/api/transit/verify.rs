//! POST `{tenant}/verify/{key}[/{algorithm}]`: whether HMAC tokens match their inputs. Batches
//! always answer 200 with per-item errors, as in Vault.

use std::borrow::Cow;

use tresor_wire::api::transit::{self, VerifyResult};
use zeroize::Zeroizing;

use super::hmac::{algorithm, decode_input};
use super::mount::KeyCtx;
use crate::api::batch::{self, BatchStatus};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Verify HMAC tokens.
pub(crate) const VERIFY: Operation = Operation::new("verify", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::VERIFY, VERIFY, handle);

/// A verdict or an item's refusal.
fn result(outcome: Result<bool, ApiError>, reference: Cow<'_, str>) -> VerifyResult<'_> {
    match outcome {
        Ok(valid) => VerifyResult {
            valid: Some(valid),
            error: None,
            reference,
        },
        Err(e) => VerifyResult {
            valid: None,
            error: Some(e.message),
            reference,
        },
    }
}

/// A decoded input and the token to check against it.
type VerifyInput<'a> = (Zeroizing<Vec<u8>>, &'a str);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let body: transit::VerifyRequest = params::body(call.body)?;
    let algorithm = algorithm(
        call.param("algorithm"),
        body.algorithm.as_deref().or(body.hash_algorithm.as_deref()),
    )?;
    let Some(items) = body.batch_input else {
        let (input, token) = decode_verify(
            ctx,
            body.input.as_deref(),
            body.hmac.as_deref(),
            body.signature.as_deref(),
        )?;
        let valid = ctx
            .vault
            .verify_hmac(ctx.tenant, ctx.key, &input, token, algorithm)?;
        return Ok(Reply::data(&result(
            Ok(valid),
            Cow::Borrowed(""),
        )));
    };
    batch::run(
        &call.state.limits,
        &items,
        BatchStatus::AlwaysOk,
        |item| {
            decode_verify(
                ctx,
                item.input.as_deref(),
                item.hmac.as_deref(),
                item.signature.as_deref(),
            )
        },
        |valid| {
            let pairs: Vec<(&[u8], &str)> = valid
                .iter()
                .map(|(input, token)| (input.as_slice(), *token))
                .collect();
            Ok(ctx
                .vault
                .verify_hmac_batch(ctx.tenant, ctx.key, &pairs, algorithm)?)
        },
        result,
    )
}

fn decode_verify<'a>(
    ctx: &KeyCtx<'_>,
    input: Option<&str>,
    hmac: Option<&'a str>,
    signature: Option<&str>,
) -> Result<VerifyInput<'a>, ApiError> {
    if signature.is_some_and(|s| !s.is_empty()) {
        return Err(super::sign::no_signing());
    }
    let token = hmac
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing hmac to verify"))?;
    Ok((decode_input(ctx, input)?, token))
}
