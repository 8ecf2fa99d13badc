//! POST `{tenant}/decrypt/{key}`, single or `batch_input`.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_core::DecryptRequest;
use tresor_wire::api::transit::{self, DecryptItem, PlaintextResult};
use zeroize::Zeroizing;

use super::mount::{KeyCtx, refuse_nonce};
use crate::api::batch::{self, BatchStatus};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params::{self, optional_base64};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Decrypt.
pub(crate) const DECRYPT: Operation = Operation::new("decrypt", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::DECRYPT, DECRYPT, handle);

/// Decoded inputs of one item, shared with rewrap.
pub(crate) struct Input<'a> {
    pub(crate) ciphertext: &'a str,
    pub(crate) context: Option<Zeroizing<Vec<u8>>>,
    pub(crate) associated_data: Option<Zeroizing<Vec<u8>>>,
}

impl<'a> Input<'a> {
    /// Decodes an item and notes its ciphertext, context and associated data for the audit line.
    pub(crate) fn decode(
        ctx: &KeyCtx<'_>,
        ciphertext: Option<&'a str>,
        context: Option<&str>,
        ad: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<Self, ApiError> {
        refuse_nonce(nonce)?;
        let ciphertext = ciphertext
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing ciphertext to decrypt"))?;
        ctx.inputs.note(ciphertext.as_bytes());
        let input = Input {
            ciphertext,
            context: optional_base64("context", context)?,
            associated_data: optional_base64("associated_data", ad)?,
        };
        ctx.inputs
            .note_some(input.context.as_deref().map(Vec::as_slice));
        ctx.inputs
            .note_some(input.associated_data.as_deref().map(Vec::as_slice));
        Ok(input)
    }

    /// Decodes an item of a batch.
    pub(crate) fn of_item(ctx: &KeyCtx<'_>, item: &'a DecryptItem<'a>) -> Result<Self, ApiError> {
        Input::decode(
            ctx,
            item.ciphertext.as_deref(),
            item.context.as_deref(),
            item.associated_data.as_deref(),
            item.nonce.as_deref(),
        )
    }

    pub(crate) fn request(&self) -> DecryptRequest<'_> {
        DecryptRequest {
            ciphertext: self.ciphertext,
            context: self.context.as_deref().map(Vec::as_slice),
            associated_data: self.associated_data.as_deref().map(Vec::as_slice),
        }
    }
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let body: transit::DecryptRequest = params::body(call.body)?;
    let Some(items) = body.batch_input else {
        let input = Input::decode(
            ctx,
            body.ciphertext.as_deref(),
            body.context.as_deref(),
            body.associated_data.as_deref(),
            body.nonce.as_deref(),
        )?;
        let plaintext = ctx.vault.decrypt(ctx.tenant, ctx.key, &input.request())?;
        let version = version_of(input.ciphertext);
        return Ok(
            Reply::data(&result(Ok(plaintext), Cow::Borrowed(""))).version(version),
        );
    };
    batch::run(
        &call.state.limits,
        &items,
        BatchStatus::PartialFailure(body.partial_failure_response_code),
        |item| Input::of_item(ctx, item),
        |valid| {
            let requests: Vec<DecryptRequest<'_>> = valid.iter().map(|i| i.request()).collect();
            Ok(ctx.vault.decrypt_batch(ctx.tenant, ctx.key, &requests)?)
        },
        result,
    )
}

/// A plaintext (base64) or an item's refusal.
fn result(
    outcome: Result<Zeroizing<Vec<u8>>, ApiError>,
    reference: Cow<'_, str>,
) -> PlaintextResult<'_> {
    match outcome {
        Ok(plaintext) => PlaintextResult {
            plaintext: encode(&plaintext),
            error: None,
            reference,
        },
        Err(e) => PlaintextResult {
            plaintext: Zeroizing::new(String::new()),
            error: Some(e.message),
            reference,
        },
    }
}

fn encode(plaintext: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(plaintext.len().div_ceil(3) * 4));
    STANDARD.encode_string(plaintext, &mut out);
    out
}

/// The version in `tresor:v<N>:…` (0 if the text is not of that form).
fn version_of(text: &str) -> u32 {
    text.strip_prefix("tresor:v")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(v, _)| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_of_ciphertexts() {
        assert_eq!(version_of("tresor:v12:abc"), 12);
        assert_eq!(version_of("vault:v1:abc"), 0);
    }
}
