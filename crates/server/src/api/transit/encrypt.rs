//! POST `{tenant}/encrypt/{key}`, single or `batch_input`. Encrypting with a key that does
//! not exist creates it when the caller may `create` it (Vault's upsert): derived if a context
//! was given. The creation is a change, so the request's `started` audit line is written before
//! it; and it happens only for a request that then succeeds whole (a refused request changes
//! nothing): every item must decode, name no version a new key lacks, and agree with the new
//! key's derivation, or the key is not created and the request is refused saying why.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;

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
    /// Where the plaintext is in the request's [`Plaintexts`].
    plaintext: Range<usize>,
    context: Option<Zeroizing<Vec<u8>>>,
    associated_data: Option<Zeroizing<Vec<u8>>>,
    key_version: Option<u32>,
}

impl Input {
    fn decode(
        ctx: &KeyCtx<'_>,
        plaintexts: &Plaintexts,
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
            plaintext: params::base64_into(
                "plaintext",
                plaintext,
                &mut plaintexts.borrow_mut(),
            )?,
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

    fn request<'a>(&'a self, plaintexts: &'a [u8]) -> EncryptRequest<'a> {
        EncryptRequest {
            plaintext: &plaintexts[self.plaintext.clone()],
            context: self.context.as_deref().map(Vec::as_slice),
            associated_data: self.associated_data.as_deref().map(Vec::as_slice),
            key_version: self.key_version,
        }
    }
}

/// Every plaintext of a request, decoded into one zeroizing buffer sized for all of them
/// (no allocation per item, and no reallocation leaving a copy behind).
type Plaintexts = RefCell<Zeroizing<Vec<u8>>>;

fn plaintexts<'t>(texts: impl Iterator<Item = Option<&'t str>>) -> Plaintexts {
    let room = texts.map(|t| t.map_or(0, params::base64_room)).sum();
    RefCell::new(Zeroizing::new(Vec::with_capacity(room)))
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let body: transit::EncryptRequest = params::body(call.body)?;
    check_key_type(body.key_type.as_deref())?;
    let convergent = body.convergent_encryption.is_some_and(|f| f.0);
    let Some(items) = body.batch_input else {
        let plaintexts = plaintexts(std::iter::once(body.plaintext.as_deref()));
        let input = Input::decode(
            ctx,
            &plaintexts,
            body.plaintext.as_deref(),
            body.context.as_deref(),
            body.associated_data.as_deref(),
            body.nonce.as_deref(),
            body.key_version,
        )?;
        let derived = input.context.is_some();
        let refusal = unfit_for_new_key([&input], derived, false);
        let plaintexts = plaintexts.borrow();
        let ciphertext = with_upsert(ctx, derived, convergent, refusal, || {
            ctx.vault
                .encrypt(ctx.tenant, ctx.key, &input.request(&plaintexts))
        })?;
        ctx.inputs.note(ciphertext.text.as_bytes());
        let result = ciphertext_result(Ok(ciphertext), Cow::Borrowed(""));
        let version = result.key_version.unwrap_or_default();
        return Ok(Reply::data(&result).version(version));
    };
    let partial_success = body
        .partial_failure_response_code
        .is_some_and(|code| (200..400).contains(&code.0));
    // The first item that does not decode, by position: a batch with one creates no key.
    let decoded = std::cell::Cell::new(0usize);
    let first_invalid = std::cell::Cell::new(None);
    let plaintexts = plaintexts(items.iter().map(|i| i.plaintext.as_deref()));
    batch::run(
        &call.state.limits,
        &items,
        BatchStatus::PartialFailure(body.partial_failure_response_code),
        |i| {
            let input = Input::decode(
                ctx,
                &plaintexts,
                i.plaintext.as_deref(),
                i.context.as_deref(),
                i.associated_data.as_deref(),
                i.nonce.as_deref(),
                i.key_version,
            );
            if input.is_err() && first_invalid.get().is_none() {
                first_invalid.set(Some(decoded.get()));
            }
            decoded.set(decoded.get() + 1);
            input
        },
        |valid| {
            // A missing key is created derived if the first item has a context.
            let derived = items[0].context.as_deref().is_some_and(|c| !c.is_empty());
            let unfit = match first_invalid.get() {
                Some(at) => Some(format!("batch item {at} is invalid (see its error)")),
                None => unfit_for_new_key(valid.iter().copied(), derived, true),
            };
            // A caller that accepts partial failure with a success code gets the key if any item
            // succeeds with it; otherwise a failing item makes the answer a 4xx: no key.
            let fit = valid
                .iter()
                .filter(|i| unfit_for_new_key([**i], derived, false).is_none())
                .count();
            let refusal = match unfit {
                Some(_) if fit > 0 && partial_success => None,
                Some(reason) => Some(reason),
                None if fit == 0 => Some("no batch item is valid".to_owned()),
                None => None,
            };
            let plaintexts = plaintexts.borrow();
            let requests: Vec<EncryptRequest<'_>> =
                valid.iter().map(|i| i.request(&plaintexts)).collect();
            with_upsert(ctx, derived, convergent, refusal, || {
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

/// Why `inputs` would fail with a key this request creates (version 1 only, derived as
/// `derived`), naming the first such input (by position in a batch); `None` if none would.
fn unfit_for_new_key<'i>(
    inputs: impl IntoIterator<Item = &'i Input>,
    derived: bool,
    batch: bool,
) -> Option<String> {
    inputs.into_iter().enumerate().find_map(|(at, input)| {
        let item = if batch {
            format!("batch item {at}: ")
        } else {
            String::new()
        };
        if input.key_version.is_some_and(|v| v > 1) {
            Some(format!(
                "{item}key_version is above 1, and a key created by this request has version 1 only"
            ))
        } else if input.context.is_some() != derived {
            Some(format!(
                "{item}the key would be created {} (as the first item), so this item's context {}",
                if derived { "derived" } else { "not derived" },
                if derived { "is missing" } else { "would be refused" }
            ))
        } else {
            None
        }
    })
}

/// Runs `operation`; if the key does not exist and the caller may create it, creates it (as
/// Vault's upsert does) and runs `operation` again, unless `refusal` says why the request would
/// fail with the new key: then nothing is created and the request is refused with that reason.
fn with_upsert<T>(
    ctx: &KeyCtx<'_>,
    derived: bool,
    convergent: bool,
    refusal: Option<String>,
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
            if let Some(reason) = refusal {
                return Err(ApiError::bad_request(format!(
                    "key `{}` does not exist in tenant `{}` and was not created, because the request would fail with it: {reason}",
                    ctx.key, ctx.tenant
                )));
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

    /// Issue 15, point 8: a request that fails creates no key.
    #[tokio::test]
    async fn a_refused_request_creates_no_key() {
        let api = TestApi::new();
        let refused = [
            json!({"batch_input": [{"plaintext": "!!!"}]}),
            json!({"batch_input": [{"plaintext": "aGk="}, {"plaintext": "!!!"}]}),
            json!({"plaintext": "aGk=", "key_version": 3}),
            json!({"batch_input": [{"plaintext": "aGk="}, {"plaintext": "aGk=", "key_version": 2}]}),
            json!({"batch_input": [{"plaintext": "aGk=", "context": "Yw=="}, {"plaintext": "aGk="}]}),
            json!({"batch_input": [{"plaintext": "aGk="}, {"plaintext": "aGk=", "context": "Yw=="}]}),
            json!({"plaintext": "aGk=", "convergent_encryption": true}),
            json!({"plaintext": "aGk=", "nonce": "AAAAAAAAAAAAAAAA"}),
        ];
        for body in refused {
            let (status, answer) = api.call("POST", "t/encrypt/new", body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            assert!(
                api.vault().list_keys("t").unwrap().is_empty(),
                "{body} created the key: {answer}"
            );
        }
        // A caller that accepts partial failure with 207 gets it when an item succeeds.
        let (status, answer) = api
            .call(
                "POST",
                "t/encrypt/partial",
                json!({"batch_input": [{"plaintext": "!!!"}], "partial_failure_response_code": 207}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(api.vault().list_keys("t").unwrap().is_empty());
        // The same requests that can succeed do create it.
        let (status, answer) = api
            .call(
                "POST",
                "t/encrypt/new",
                json!({"batch_input": [{"plaintext": "aGk=", "key_version": 1}, {"plaintext": "aGk="}]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(api.vault().list_keys("t").unwrap(), ["new"]);
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
