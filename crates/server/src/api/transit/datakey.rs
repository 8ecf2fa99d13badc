//! POST `{tenant}/datakey/plaintext/{key}` and `{tenant}/datakey/wrapped/{key}`: a fresh
//! random key for the caller to encrypt with locally, returned wrapped under the named key (and
//! in the clear for `plaintext`). Decrypting the wrapped form with `decrypt` gives the key back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_wire::api::transit::{self, DataKeyResponse};
use zeroize::Zeroizing;

use super::mount::{KeyCtx, refuse_nonce};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params::{self, Int, optional_base64};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Generate a data key.
pub(crate) const DATAKEY: Operation = Operation::new("datakey", Scope::Key);

/// `{form}` is checked when routing: another form is a 400 before authorization.
pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::DATAKEY, DATAKEY, handle).checking(&[("form", Form::check)]);

/// Whether the caller gets the key itself or only its wrapped form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Plaintext,
    Wrapped,
}

impl Form {
    fn check(segment: &str) -> Result<(), ApiError> {
        Form::parse(segment).map(drop)
    }

    fn parse(segment: &str) -> Result<Form, ApiError> {
        match segment {
            "plaintext" => Ok(Form::Plaintext),
            "wrapped" => Ok(Form::Wrapped),
            _ => Err(ApiError::bad_request(
                "Invalid path, must be 'plaintext' or 'wrapped'",
            )),
        }
    }
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let form = Form::parse(call.path("form"))?;
    let body: transit::DataKeyRequest = params::body(call.body)?;
    let context = optional_base64("context", body.context.as_deref())?;
    refuse_nonce(body.nonce.as_deref())?;
    let associated_data = optional_base64("associated_data", body.associated_data.as_deref())?;
    let bits = match body.bits {
        None => 256,
        Some(Int(b @ (128 | 256 | 512))) => b as u32,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid bit length: use 128, 256 or 512",
            ));
        }
    };
    let key = ctx.vault.datakey(
        ctx.tenant,
        ctx.key,
        bits,
        context.as_deref().map(Vec::as_slice),
        associated_data.as_deref().map(Vec::as_slice),
        form == Form::Plaintext,
    )?;
    ctx.inputs.note_some(context.as_deref().map(Vec::as_slice));
    ctx.inputs
        .note_some(associated_data.as_deref().map(Vec::as_slice));
    ctx.inputs.note(key.ciphertext.text.as_bytes());
    let version = key.ciphertext.version;
    let plaintext = key.plaintext.map(|p| {
        let mut text = Zeroizing::new(String::new());
        STANDARD.encode_string(p.as_slice(), &mut text);
        text
    });
    Ok(Reply::data(&DataKeyResponse {
        ciphertext: key.ciphertext.text,
        key_version: version,
        plaintext,
    })
    .version(version))
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::json;

    use crate::api::testing::TestApi;

    #[tokio::test]
    async fn wrapped_keys_stay_wrapped_and_the_form_is_checked_first() {
        let api = TestApi::new();
        api.call("POST", "t/keys/k", json!({})).await;
        let (status, answer) = api
            .call("POST", "t/datakey/wrapped/k", json!({"bits": "128"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer["data"].get("plaintext").is_none(), "{answer}");
        let (_, opened) = api
            .call(
                "POST",
                "t/decrypt/k",
                json!({"ciphertext": answer["data"]["ciphertext"]}),
            )
            .await;
        assert_eq!(opened["data"]["plaintext"].as_str().unwrap().len(), 24);
        let (status, answer) = api.call("POST", "t/datakey/both/k", json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            answer["errors"][0],
            "Invalid path, must be 'plaintext' or 'wrapped'"
        );
    }
}
