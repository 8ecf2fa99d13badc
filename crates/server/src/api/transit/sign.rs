//! POST `{tenant}/sign/{key}[/{algorithm}]`: Vault's signing route. Tresor keys are symmetric
//! ([`KEY_TYPE`]) and cannot sign, so this always answers the 400 that `verify` with a
//! `signature` answers, naming the key type; it is served (rather than left a 404, which reads
//! as a missing mount) so that clients learn why. It needs no grant: the answer is the same for
//! every key and tenant, and nothing is read or changed.

use tresor_wire::api::transit;

use super::mount::KEY_TYPE;
use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::open(transit::SIGN, "sign", handle);

/// What both `sign` and `verify` with a `signature` answer.
pub(crate) fn no_signing() -> ApiError {
    ApiError::bad_request(format!(
        "key type {KEY_TYPE} does not support signing: use `hmac` and verify HMAC tokens with `verify`"
    ))
}

fn handle(_call: &Call<'_>) -> Result<Reply, ApiError> {
    Err(no_signing())
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::{Value, json};

    use crate::api::testing::{APP, TENANT, TestApi};

    #[tokio::test]
    async fn sign_answers_as_verify_with_a_signature() {
        let api = TestApi::new();
        let (status, signed) = api
            .call_as(APP, "POST", &format!("{TENANT}/sign/k1"), json!({"input": "aGk="}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{signed}");
        let (status, verified) = api
            .call(
                "POST",
                &format!("{TENANT}/verify/k1"),
                json!({"input": "aGk=", "signature": "vault:v1:abc"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{verified}");
        assert_eq!(signed["errors"], verified["errors"]);
        assert!(
            signed["errors"][0]
                .as_str()
                .unwrap()
                .contains("does not support signing")
        );
        let (status, _) = api
            .call("POST", &format!("{TENANT}/sign/k1/sha2-256"), Value::Null)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Nothing was created.
        assert!(api.vault().list_keys(TENANT).unwrap().is_empty());
    }
}
