//! POST `{tenant}/encrypt/{key}`, single or `batch_input`. Encrypting with a key that does
//! not exist creates it when the caller may `create` it (Vault's upsert): derived if a context
//! was given. The creation is a change, so the request's `started` audit line is written before
//! it.

use std::borrow::Cow;

use tresor_core::{EncryptRequest, Error, KeySpec};
use tresor_wire::api::transit;
use zeroize::Zeroizing;

use super::mount::{KeyCtx, check_key_type, ciphertext_result, refuse_nonce};
use crate::api::batch::{self, BatchStatus};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, Int, IntField, optional_base64};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Encrypt.
pub(crate) const ENCRYPT: Operation = Operation::new("encrypt", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::ENCRYPT, ENCRYPT, handle);

/// Decoded inputs of one item.
struct Input {
    plaintext: Zeroizing<Vec<u8>>,
    context: Option<Zeroizing<Vec<u8>>>,
    associated_data: Option<Zeroizing<Vec<u8>>>,
    key_version: Option<u32>,
}

impl Input {
    fn decode(
        ctx: &KeyCtx<'_>,
        plaintext: Option<&str>,
        context: Option<&str>,
        ad: Option<&str>,
        nonce: Option<&str>,
        version: Option<Int>,
    ) -> Result<Input, ApiError> {
        refuse_nonce(nonce)?;
        let plaintext =
            plaintext.ok_or_else(|| ApiError::bad_request("missing plaintext to encrypt"))?;
        let input = Input {
            plaintext: params::base64_field("plaintext", plaintext)?,
            context: optional_base64("context", context)?,
            associated_data: optional_base64("associated_data", ad)?,
            key_version: version.map(|v| v.to_u32("key_version")).transpose()?,
        };
        ctx.inputs
            .note_some(input.context.as_deref().map(Vec::as_slice));
        ctx.inputs
            .note_some(input.associated_data.as_deref().map(Vec::as_slice));
        Ok(input)
    }

    fn request(&self) -> EncryptRequest<'_> {
        EncryptRequest {
            plaintext: &self.plaintext,
            context: self.context.as_deref().map(Vec::as_slice),
            associated_data: self.associated_data.as_deref().map(Vec::as_slice),
            key_version: self.key_version,
        }
    }
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let body: transit::EncryptRequest = params::body(call.body)?;
    check_key_type(body.key_type.as_deref())?;
    let convergent = body.convergent_encryption.is_some_and(|f| f.0);
    let Some(items) = body.batch_input else {
        let input = Input::decode(
            ctx,
            body.plaintext.as_deref(),
            body.context.as_deref(),
            body.associated_data.as_deref(),
            body.nonce.as_deref(),
            body.key_version,
        )?;
        let ciphertext = with_upsert(ctx, input.context.is_some(), convergent, || {
            ctx.vault.encrypt(ctx.tenant, ctx.key, &input.request())
        })?;
        ctx.inputs.note(ciphertext.text.as_bytes());
        let result = ciphertext_result(Ok(ciphertext), Cow::Borrowed(""));
        let version = result.key_version.unwrap_or_default();
        return Ok(Reply::data(&result).version(version));
    };
    batch::run(
        &call.state.limits,
        &items,
        BatchStatus::PartialFailure(body.partial_failure_response_code),
        |i| {
            Input::decode(
                ctx,
                i.plaintext.as_deref(),
                i.context.as_deref(),
                i.associated_data.as_deref(),
                i.nonce.as_deref(),
                i.key_version,
            )
        },
        |valid| {
            // A missing key is created derived if the first item has a context.
            let derived = items[0].context.as_deref().is_some_and(|c| !c.is_empty());
            let requests: Vec<EncryptRequest<'_>> = valid.iter().map(|i| i.request()).collect();
            with_upsert(ctx, derived, convergent, || {
                ctx.vault.encrypt_batch(ctx.tenant, ctx.key, &requests)
            })
        },
        |outcome, reference| {
            if let Ok(ciphertext) = &outcome {
                ctx.inputs.note(ciphertext.text.as_bytes());
            }
            ciphertext_result(outcome, reference)
        },
    )
}

/// Runs `operation`; if the key does not exist and the caller may create it, creates it (as
/// Vault's upsert does) and runs `operation` again.
fn with_upsert<T>(
    ctx: &KeyCtx<'_>,
    derived: bool,
    convergent: bool,
    operation: impl Fn() -> Result<T, Error>,
) -> Result<T, ApiError> {
    match operation() {
        // Encrypt creates a missing key when the caller may create it.
        Err(Error::KeyNotFound { .. }) if ctx.call.may(super::keys_create::CREATE) => {
            if convergent && !derived {
                return Err(ApiError::bad_request(
                    "convergent encryption requires derivation to be enabled, so context is required",
                ));
            }
            let spec = KeySpec {
                derived,
                convergent_encryption: convergent,
                ..KeySpec::default()
            };
            // Creating the key is a change: its `started` line goes first (fail closed).
            (ctx.call.before_change)()?;
            match blocking(|| ctx.vault.create_key(ctx.tenant, ctx.key, spec)) {
                Ok(_) | Err(Error::KeyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            operation().map_err(ApiError::from)
        }
        Err(Error::KeyNotFound { tenant, key }) => Err(ApiError::bad_request(format!(
            "encryption key not found: key `{key}` does not exist in tenant `{tenant}`, and this principal may not create it"
        ))),
        other => other.map_err(ApiError::from),
    }
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::json;

    use crate::api::testing::{APP, TestApi};

    #[tokio::test]
    async fn encrypts_creating_the_key_when_allowed() {
        let api = TestApi::new();
        let (status, answer) = api
            .call("POST", "t/encrypt/k", json!({"plaintext": "aGk="}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["data"]["key_version"], 1);
        let ciphertext = answer["data"]["ciphertext"].as_str().unwrap();
        assert!(ciphertext.starts_with("tresor:v1:"), "{ciphertext}");
        let (_, opened) = api
            .call("POST", "t/decrypt/k", json!({"ciphertext": ciphertext}))
            .await;
        assert_eq!(opened["data"]["plaintext"], "aGk=");
        // APP may encrypt but not create: no upsert for it.
        let (status, answer) = api
            .call_as(APP, "POST", "t/encrypt/other", json!({"plaintext": "aGk="}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["errors"][0]
                .as_str()
                .unwrap()
                .contains("this principal may not create it"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_batch_that_fails_in_part_answers_the_callers_code() {
        let api = TestApi::new();
        let body = json!({
            "batch_input": [{"plaintext": "aGk=", "reference": "a"}, {"plaintext": "*"}],
            "partial_failure_response_code": 207,
        });
        let (status, answer) = api.call("POST", "t/encrypt/k", body).await;
        assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
        let results = answer["data"]["batch_results"].as_array().unwrap();
        assert_eq!(results[0]["reference"], "a");
        assert_eq!(results[0]["key_version"], 1);
        assert!(results[1]["error"].as_str().unwrap().contains("base64"));
    }
}
