//! POST `{tenant}/rewrap/{key}`: decrypt and encrypt again with the latest (or a chosen)
//! version, without the plaintext leaving the vault. Batches always answer 200 with per-item
//! errors, as in Vault.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tresor_core::{DecryptRequest, Versioned};
use tresor_wire::api::transit;

use super::decrypt::{Input, Item};
use super::mount::KeyCtx;
use crate::api::batch::{BatchResults, check_batch, merge_batch};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params::{self, Int, IntField, Text};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Rewrap a ciphertext to a newer version.
pub(crate) const REWRAP: Operation = Operation::new("rewrap", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::REWRAP, REWRAP, handle);

#[derive(Deserialize, Default)]
struct Body<'a> {
    #[serde(borrow)]
    ciphertext: Text<'a>,
    #[serde(borrow)]
    context: Text<'a>,
    #[serde(borrow)]
    associated_data: Text<'a>,
    #[serde(borrow)]
    nonce: Text<'a>,
    key_version: Option<Int>,
    #[serde(borrow)]
    batch_input: Option<Vec<Item<'a>>>,
}

#[derive(Serialize)]
struct ItemResult<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    reference: Cow<'a, str>,
}

impl<'a> ItemResult<'a> {
    fn new(
        ctx: &KeyCtx<'_>,
        outcome: Result<Versioned, ApiError>,
        reference: Cow<'a, str>,
    ) -> Self {
        match outcome {
            Ok(ciphertext) => {
                ctx.inputs.note(ciphertext.text.as_bytes());
                ItemResult {
                    key_version: Some(ciphertext.version),
                    ciphertext: Some(ciphertext.text),
                    error: None,
                    reference,
                }
            }
            Err(e) => ItemResult {
                ciphertext: None,
                key_version: None,
                error: Some(e.message),
                reference,
            },
        }
    }
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let body: Body = params::body(call.body)?;
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
        let result = ItemResult::new(ctx, Ok(ciphertext), Cow::Borrowed(""));
        let version = result.key_version.unwrap_or_default();
        return Ok(Reply::data(&result).version(version));
    };
    check_batch(items.len(), &call.state.limits)?;
    let inputs = Input::decode_all(ctx, &items);
    let requests: Vec<DecryptRequest<'_>> = inputs
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(Input::request)
        .collect();
    let merged = merge_batch(
        &inputs,
        ctx.vault
            .rewrap_batch(ctx.tenant, ctx.key, &requests, key_version)?,
    );
    let errors = merged.iter().filter(|r| r.is_err()).count();
    let batch_results: Vec<ItemResult<'_>> = merged
        .into_iter()
        .zip(&items)
        .map(|(outcome, item)| {
            ItemResult::new(ctx, outcome, item.reference.clone().unwrap_or_default())
        })
        .collect();
    let count = batch_results.len();
    Ok(Reply::data(&BatchResults { batch_results }).batch(count, errors))
}
