//! POST `rewrap/:name`: decrypt and encrypt again with the latest (or a chosen) version, without
//! the plaintext leaving the vault. Batches always answer 200 with per-item errors, as in Vault.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::decrypt::{Input, Item};
use super::params::{self, Int, Text};
use super::reply::{ApiError, Reply};
use super::{KeyCtx, version_of};
use crate::DecryptRequest;

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

pub(crate) fn handle(ctx: &KeyCtx<'_>, body: &[u8]) -> Result<Reply, ApiError> {
    let body: Body = params::body(body)?;
    let key_version = body
        .key_version
        .map(|v| v.to_u32("key_version"))
        .transpose()?;
    let Some(items) = body.batch_input else {
        let input = Input::decode(
            body.ciphertext.as_deref(),
            body.context.as_deref(),
            body.associated_data.as_deref(),
            body.nonce.as_deref(),
        )?;
        let ciphertext = ctx
            .vault
            .rewrap(ctx.tenant, ctx.key, &input.request(), key_version)?;
        let version = version_of(&ciphertext);
        return Ok(Reply::data(&ItemResult {
            key_version: Some(version),
            ciphertext: Some(ciphertext),
            error: None,
            reference: Cow::Borrowed(""),
        })
        .version(version));
    };
    ctx.check_batch(items.len())?;
    let inputs: Vec<Result<Input<'_>, ApiError>> = items
        .iter()
        .map(|i| {
            Input::decode(
                i.ciphertext.as_deref(),
                i.context.as_deref(),
                i.associated_data.as_deref(),
                i.nonce.as_deref(),
            )
        })
        .collect();
    let requests: Vec<DecryptRequest<'_>> = inputs
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(Input::request)
        .collect();
    let mut outcomes = ctx
        .vault
        .rewrap_batch(ctx.tenant, ctx.key, &requests, key_version)?
        .into_iter();
    let mut errors = 0;
    let results: Vec<ItemResult<'_>> = inputs
        .into_iter()
        .zip(&items)
        .map(|(input, item)| {
            let outcome = match input {
                Ok(_) => outcomes
                    .next()
                    .expect("one outcome per valid item")
                    .map_err(ApiError::from),
                Err(e) => Err(e),
            };
            let reference = item.reference.clone().unwrap_or_default();
            match outcome {
                Ok(ciphertext) => ItemResult {
                    key_version: Some(version_of(&ciphertext)),
                    ciphertext: Some(ciphertext),
                    error: None,
                    reference,
                },
                Err(e) => {
                    errors += 1;
                    ItemResult {
                        ciphertext: None,
                        key_version: None,
                        error: Some(e.message),
                        reference,
                    }
                }
            }
        })
        .collect();
    Ok(Reply::data(&serde_json::json!({ "batch_results": results })).batch(results.len(), errors))
}
