//! POST `hmac/:name[/:algorithm]` and `verify/:name[/:algorithm]`: keyed, stable, irreversible
//! tokens (the pseudonymisation primitive) and their verification. Batches always answer 200
//! with per-item errors, as in Vault.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::params::{self, Int, IntField, Text};
use super::reply::{ApiError, Reply};
use super::{BatchResults, KeyCtx, merge_batch};
use tresor_core::HmacAlgorithm;
use tresor_core::Versioned;

#[derive(Deserialize, Default)]
struct HmacBody<'a> {
    #[serde(borrow)]
    input: Text<'a>,
    #[serde(borrow)]
    algorithm: Text<'a>,
    key_version: Option<Int>,
    #[serde(borrow)]
    batch_input: Option<Vec<HmacItem<'a>>>,
}

#[derive(Deserialize)]
struct HmacItem<'a> {
    #[serde(borrow)]
    input: Text<'a>,
    #[serde(borrow, default)]
    reference: Text<'a>,
}

#[derive(Serialize)]
struct HmacResult<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hmac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    reference: Cow<'a, str>,
}

impl<'a> HmacResult<'a> {
    fn new(outcome: Result<Versioned, ApiError>, reference: Cow<'a, str>) -> Self {
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
}

pub(crate) fn hmac(
    ctx: &KeyCtx<'_>,
    path_algorithm: Option<&str>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: HmacBody = params::body(body)?;
    let algorithm = algorithm(path_algorithm, body.algorithm.as_deref())?;
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
        return Ok(Reply::data(&HmacResult::new(Ok(token), Cow::Borrowed(""))).version(version));
    };
    ctx.check_batch(items.len())?;
    let inputs: Vec<Result<Zeroizing<Vec<u8>>, ApiError>> = items
        .iter()
        .map(|i| decode_input(ctx, i.input.as_deref()))
        .collect();
    let valid: Vec<&[u8]> = inputs
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(|i| i.as_slice())
        .collect();
    let merged = merge_batch(
        &inputs,
        ctx.vault
            .hmac_batch(ctx.tenant, ctx.key, &valid, algorithm, key_version)?,
    );
    let errors = merged.iter().filter(|r| r.is_err()).count();
    let batch_results: Vec<HmacResult<'_>> = merged
        .into_iter()
        .zip(&items)
        .map(|(outcome, item)| HmacResult::new(outcome, item.reference.clone().unwrap_or_default()))
        .collect();
    let count = batch_results.len();
    Ok(Reply::data(&BatchResults { batch_results }).batch(count, errors))
}

#[derive(Deserialize, Default)]
struct VerifyBody<'a> {
    #[serde(borrow)]
    input: Text<'a>,
    #[serde(borrow)]
    hmac: Text<'a>,
    #[serde(borrow)]
    signature: Text<'a>,
    #[serde(borrow)]
    algorithm: Text<'a>,
    #[serde(borrow)]
    hash_algorithm: Text<'a>,
    #[serde(borrow)]
    batch_input: Option<Vec<VerifyItem<'a>>>,
}

#[derive(Deserialize)]
struct VerifyItem<'a> {
    #[serde(borrow)]
    input: Text<'a>,
    #[serde(borrow)]
    hmac: Text<'a>,
    #[serde(borrow)]
    signature: Text<'a>,
    #[serde(borrow, default)]
    reference: Text<'a>,
}

#[derive(Serialize)]
struct VerifyResult<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    valid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    reference: Cow<'a, str>,
}

impl<'a> VerifyResult<'a> {
    fn new(outcome: Result<bool, ApiError>, reference: Cow<'a, str>) -> Self {
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
}

/// A decoded input and the token to check against it.
type VerifyInput<'a> = (Zeroizing<Vec<u8>>, &'a str);

pub(crate) fn verify(
    ctx: &KeyCtx<'_>,
    path_algorithm: Option<&str>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let body: VerifyBody = params::body(body)?;
    let algorithm = algorithm(
        path_algorithm,
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
        return Ok(Reply::data(&VerifyResult::new(
            Ok(valid),
            Cow::Borrowed(""),
        )));
    };
    ctx.check_batch(items.len())?;
    let inputs: Vec<Result<VerifyInput<'_>, ApiError>> = items
        .iter()
        .map(|i| {
            decode_verify(
                ctx,
                i.input.as_deref(),
                i.hmac.as_deref(),
                i.signature.as_deref(),
            )
        })
        .collect();
    let valid: Vec<(&[u8], &str)> = inputs
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(|(input, token)| (input.as_slice(), *token))
        .collect();
    let merged = merge_batch(
        &inputs,
        ctx.vault
            .verify_hmac_batch(ctx.tenant, ctx.key, &valid, algorithm)?,
    );
    let errors = merged.iter().filter(|r| r.is_err()).count();
    let batch_results: Vec<VerifyResult<'_>> = merged
        .into_iter()
        .zip(&items)
        .map(|(outcome, item)| {
            VerifyResult::new(outcome, item.reference.clone().unwrap_or_default())
        })
        .collect();
    let count = batch_results.len();
    Ok(Reply::data(&BatchResults { batch_results }).batch(count, errors))
}

fn algorithm(path: Option<&str>, body: Option<&str>) -> Result<HmacAlgorithm, ApiError> {
    match path.or(body).filter(|a| !a.is_empty()) {
        None => Ok(HmacAlgorithm::default()),
        Some(name) => name.parse().map_err(ApiError::from),
    }
}

/// Decodes an HMAC input and notes it for the audit line.
fn decode_input(ctx: &KeyCtx<'_>, input: Option<&str>) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let input = input.ok_or_else(|| ApiError::bad_request("missing input for HMAC"))?;
    let decoded = params::base64_field("input", input)?;
    ctx.inputs.note(&decoded);
    Ok(decoded)
}

fn decode_verify<'a>(
    ctx: &KeyCtx<'_>,
    input: Option<&str>,
    hmac: Option<&'a str>,
    signature: Option<&str>,
) -> Result<VerifyInput<'a>, ApiError> {
    if signature.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "key type {} does not support signing: verify HMAC tokens with `hmac`",
            super::keys::KEY_TYPE
        )));
    }
    let token = hmac
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing hmac to verify"))?;
    Ok((decode_input(ctx, input)?, token))
}
