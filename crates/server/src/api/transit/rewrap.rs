//! POST `{tenant}/rewrap/{key}`: decrypt and encrypt again with the latest (or a chosen)
//! version, without the plaintext leaving the vault. Batches always answer 200 with per-item
//! errors, as in Vault.

use std::borrow::Cow;

use tresor_core::{DecryptRequest, Versioned};
use tresor_wire::api::transit::{self, CiphertextResult};

use super::decrypt::Input;
use super::mount::{KeyCtx, ciphertext_result};
use crate::api::batch::{self, BatchStatus};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params::{self, IntField};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Rewrap a ciphertext to a newer version.
pub(crate) const REWRAP: Operation = Operation::new("rewrap", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::REWRAP, REWRAP, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let body: transit::RewrapRequest = params::body(call.body)?;
    let key_version = body
        .key_version
        .map(|v| v.to_u32("key_version"))
        .transpose()?;
    let Some(items) = body.batch_input else {
        let input = Input::decode(
            ctx,
            body.ciphertext.as_deref(),
            body.context.as_deref(),
            body.associated_data.as_deref(),
            body.nonce.as_deref(),
        )?;
        let ciphertext = ctx
            .vault
            .rewrap(ctx.tenant, ctx.key, &input.request(), key_version)?;
        let result = result(ctx, Ok(ciphertext), Cow::Borrowed(""));
        let version = result.key_version.unwrap_or_default();
        return Ok(Reply::data(&result).version(version));
    };
    batch::run(
        &call.state.limits,
        &items,
        BatchStatus::AlwaysOk,
        |item| Input::of_item(ctx, item),
        |valid| {
            let requests: Vec<DecryptRequest<'_>> = valid.iter().map(|i| i.request()).collect();
            Ok(ctx
                .vault
                .rewrap_batch(ctx.tenant, ctx.key, &requests, key_version)?)
        },
        |outcome, reference| result(ctx, outcome, reference),
    )
}

/// A new ciphertext, noted for the audit line, or an item's refusal.
fn result<'a>(
    ctx: &KeyCtx<'_>,
    outcome: Result<Versioned, ApiError>,
    reference: Cow<'a, str>,
) -> CiphertextResult<'a> {
    if let Ok(ciphertext) = &outcome {
        ctx.inputs.note(ciphertext.text.as_bytes());
    }
    ciphertext_result(outcome, reference)
}
