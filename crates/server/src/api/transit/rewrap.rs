//! POST `{tenant}/rewrap/{key}`: decrypt and encrypt again with the latest (or a chosen)
//! version, without the plaintext leaving the vault. Batches always answer 200 with per-item
//! errors, as in Vault.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tresor_core::{DecryptRequest, Versioned};
use tresor_wire::api::transit;

use super::decrypt::{Input, Item};
use super::mount::KeyCtx;
use crate::api::batch::{self, BatchStatus};
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
        |outcome, reference| ItemResult::new(ctx, outcome, reference),
    )
}
