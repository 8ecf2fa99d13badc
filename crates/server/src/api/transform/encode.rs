//! POST `{tenant}/transform/encode/{key}`: encode a value, or a `batch_input`, with the role
//! `{key}`. Batches answer 200 with per-item errors. Every value is noted for the audit line
//! (as an HMAC), so bulk encoding shows in the log.

use std::borrow::Cow;

use tresor_wire::api::transform::{self, CodeRequest, EncodeResult};
use zeroize::Zeroizing;

use super::mount::{self, Direction};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::ENCODE, mount::ENCODE, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: CodeRequest = crate::api::params::body(call.body)?;
    mount::run(call, &body, Direction::Encode, result)
}

fn result<'r>(
    outcome: Result<(Zeroizing<String>, Option<String>), ApiError>,
    reference: Cow<'r, str>,
) -> EncodeResult<'r> {
    match outcome {
        Ok((value, tweak)) => EncodeResult {
            encoded_value: Some(value.to_string()),
            tweak,
            error: None,
            reference,
        },
        Err(e) => EncodeResult {
            error: Some(e.message),
            reference,
            ..EncodeResult::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::{Value, json};

    use crate::api::testing::{ENCODER, TestApi};
    use crate::transform::template::{bsn_valid, luhn_valid};

    async fn ok(api: &TestApi, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = api.call(method, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        answer
    }

    async fn setup(api: &TestApi) {
        ok(
            api,
            "POST",
            "t/transform/transformation/ccn-v1",
            json!({"type": "fpe", "template": "builtin/creditcardnumber", "allowed_roles": ["payroll"]}),
        )
        .await;
        ok(
            api,
            "POST",
            "t/transform/role/payroll",
            json!({"transformations": ["ccn-v1"]}),
        )
        .await;
    }

    #[tokio::test]
    async fn fpe_encodes_and_decodes_single_and_batch() {
        let api = TestApi::new();
        setup(&api).await;
        let answer = ok(
            &api,
            "POST",
            "t/transform/encode/payroll",
            json!({"value": "4111-1111-1111-1111"}),
        )
        .await;
        assert_eq!(answer["mount_type"], "transform");
        let encoded = answer["data"]["encoded_value"].as_str().unwrap().to_owned();
        assert_ne!(encoded, "4111-1111-1111-1111");
        assert!(luhn_valid(&encoded));
        assert_eq!(&encoded[4..5], "-");
        let answer = ok(
            &api,
            "POST",
            "t/transform/decode/payroll",
            json!({"value": encoded}),
        )
        .await;
        assert_eq!(answer["data"]["decoded_value"], "4111-1111-1111-1111");
        // A batch answers each item, failures included, in order.
        let (status, answer) = api
            .call(
                "POST",
                "t/transform/encode/payroll",
                json!({"batch_input": [
                    {"value": "4111111111111111", "reference": "a"},
                    {"value": "4111111111111112", "reference": "bad-luhn"},
                    {"reference": "missing"},
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let results = answer["data"]["batch_results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        assert!(luhn_valid(results[0]["encoded_value"].as_str().unwrap()));
        assert_eq!(results[0]["reference"], "a");
        let error = results[1]["error"].as_str().unwrap();
        assert!(error.contains("Luhn"), "{error}");
        assert!(!error.contains("4111111111111112"));
        assert!(results[1].get("encoded_value").is_none());
        assert!(results[2]["error"].as_str().unwrap().contains("missing value"));
        // Reads describe, never show the key.
        let role = ok(&api, "GET", "t/transform/role/payroll", Value::Null).await;
        assert_eq!(role["data"]["transformations"], json!(["ccn-v1"]));
        let t = ok(&api, "GET", "t/transform/transformation/ccn-v1", Value::Null).await;
        assert_eq!(t["data"]["type"], "fpe");
        assert_eq!(t["data"]["key_version"], 1);
        assert!(t["data"].get("key").is_none());
        let listed = ok(&api, "LIST", "t/transform/role", Value::Null).await;
        assert_eq!(listed["data"]["keys"], json!(["payroll"]));
    }

    #[tokio::test]
    async fn an_encoder_is_refused_decode() {
        let api = TestApi::new();
        setup(&api).await;
        let (status, answer) = api
            .call_as(
                ENCODER,
                "POST",
                "t/transform/encode/payroll",
                json!({"value": "4111111111111111"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let encoded = answer["data"]["encoded_value"].clone();
        let (status, answer) = api
            .call_as(
                ENCODER,
                "POST",
                "t/transform/decode/payroll",
                json!({"value": encoded}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        // Nor may it define transformations.
        let (status, _) = api
            .call_as(
                ENCODER,
                "POST",
                "t/transform/role/payroll",
                json!({"transformations": ["x"]}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn small_domains_bad_definitions_and_wrong_places_are_refused() {
        let api = TestApi::new();
        // BIN and last four kept, Luhn recomputed: 5 digits transformed, 10^5 < 10^6.
        let (status, answer) = api
            .call(
                "POST",
                "t/transform/template/ccn-bin",
                json!({"type": "regex", "pattern": "\\d{6}(\\d{5})\\d{5}", "alphabet": "builtin/numeric"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer["errors"][0].as_str().unwrap().contains("10^6"), "{answer}");
        let (status, _) = api
            .call("GET", "t/transform/template/ccn-bin", Value::Null)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "a refused request changes nothing");
        for (path, body) in [
            ("t/transform/transformation/x", json!({"type": "fpe", "template": "nope"})),
            ("t/transform/transformation/x", json!({"type": "ff3", "template": "builtin/bsn"})),
            ("t/transform/transformation/x", json!({"type": "fpe", "template": "builtin/bsn", "tweak_source": "generated"})),
            ("t/transform/transformation/x", json!({"type": "masking", "template": "builtin/bsn", "masking_character": "ab"})),
            ("t/transform/role/r", json!({"transformations": []})),
            ("t/transform/role/r", json!({"transformations": ["bad name!"]})),
            ("t/transform/template/x", json!({"pattern": "(\\d{9}", "alphabet": "builtin/numeric"})),
            ("t/transform/template/x", json!({"pattern": "(\\d{9})", "alphabet": "builtin/emoji"})),
            ("t/transform/encode/nobody", json!({"value": "1"})),
        ] {
            let (status, answer) = api.call("POST", path, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        }
        assert_eq!(
            api.call("LIST", "t/transform/transformation", Value::Null).await.0,
            StatusCode::NOT_FOUND
        );
        // Another tenant's mount: the tenant does not exist.
        let (status, _) = api
            .call("POST", "other/transform/encode/payroll", json!({"value": "1"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A role not allowed by the transformation.
        setup(&api).await;
        ok(&api, "POST", "t/transform/role/other", json!({"transformations": ["ccn-v1"]})).await;
        let (status, answer) = api
            .call("POST", "t/transform/encode/other", json!({"value": "4111111111111111"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer["errors"][0].as_str().unwrap().contains("allowed_roles"));
    }

    /// FF1 output carries no version: a transformation's key never changes, and rotating is a
    /// new transformation; decode picks the key by the transformation named.
    #[tokio::test]
    async fn rotation_is_a_new_transformation_and_decode_follows_the_name() {
        let api = TestApi::new();
        setup(&api).await;
        ok(
            &api,
            "POST",
            "t/transform/transformation/ccn-v2",
            json!({"type": "fpe", "template": "builtin/creditcardnumber", "allowed_roles": "payroll"}),
        )
        .await;
        ok(
            &api,
            "POST",
            "t/transform/role/payroll",
            json!({"transformations": "ccn-v1,ccn-v2"}),
        )
        .await;
        let (status, _) = api
            .call("POST", "t/transform/encode/payroll", json!({"value": "4111111111111111"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "two transformations: one must be named");
        let mut encoded = Vec::new();
        for t in ["ccn-v1", "ccn-v2"] {
            let a = ok(
                &api,
                "POST",
                "t/transform/encode/payroll",
                json!({"value": "4111111111111111", "transformation": t}),
            )
            .await;
            encoded.push(a["data"]["encoded_value"].as_str().unwrap().to_owned());
        }
        assert_ne!(encoded[0], encoded[1]);
        for (t, e) in [("ccn-v1", &encoded[0]), ("ccn-v2", &encoded[1])] {
            let a = ok(
                &api,
                "POST",
                "t/transform/decode/payroll",
                json!({"value": e, "transformation": t}),
            )
            .await;
            assert_eq!(a["data"]["decoded_value"], "4111111111111111");
        }
        // Re-writing v1 keeps its key (its outputs stay decodable); a new type is refused.
        ok(
            &api,
            "POST",
            "t/transform/transformation/ccn-v1",
            json!({"type": "fpe", "template": "builtin/creditcardnumber", "allowed_roles": ["payroll", "audit"]}),
        )
        .await;
        let a = ok(
            &api,
            "POST",
            "t/transform/encode/payroll",
            json!({"value": "4111111111111111", "transformation": "ccn-v1"}),
        )
        .await;
        assert_eq!(a["data"]["encoded_value"], encoded[0].as_str());
        let (status, answer) = api
            .call(
                "POST",
                "t/transform/transformation/ccn-v1",
                json!({"type": "masking", "template": "builtin/creditcardnumber", "allowed_roles": ["payroll"]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer["errors"][0].as_str().unwrap().contains("new transformation"));
    }

    #[tokio::test]
    async fn pseudonyms_are_per_role_and_masks_and_pseudonyms_do_not_decode() {
        let api = TestApi::new();
        ok(
            &api,
            "POST",
            "t/transform/transformation/bsn-p",
            json!({"type": "pseudonym", "template": "builtin/bsn", "allowed_roles": ["*"]}),
        )
        .await;
        ok(
            &api,
            "POST",
            "t/transform/transformation/bsn-m",
            json!({"type": "masking", "template": "builtin/bsn", "masking_character": "#", "allowed_roles": ["*"]}),
        )
        .await;
        let mut outputs = Vec::new();
        for role in ["project-a", "project-b"] {
            ok(
                &api,
                "POST",
                &format!("t/transform/role/{role}"),
                json!({"transformations": ["bsn-p", "bsn-m"]}),
            )
            .await;
            let a = ok(
                &api,
                "POST",
                &format!("t/transform/encode/{role}"),
                json!({"value": "111222333", "transformation": "bsn-p"}),
            )
            .await;
            let out = a["data"]["encoded_value"].as_str().unwrap().to_owned();
            assert!(bsn_valid(&out), "{out}");
            let again = ok(
                &api,
                "POST",
                &format!("t/transform/encode/{role}"),
                json!({"value": "111222333", "transformation": "bsn-p"}),
            )
            .await;
            assert_eq!(again["data"]["encoded_value"], out.as_str(), "deterministic");
            outputs.push(out);
        }
        assert_ne!(outputs[0], outputs[1], "two roles' pseudonyms cannot be joined");
        let a = ok(
            &api,
            "POST",
            "t/transform/encode/project-a",
            json!({"value": "111222333", "transformation": "bsn-m"}),
        )
        .await;
        assert_eq!(a["data"]["encoded_value"], "########3");
        for t in ["bsn-p", "bsn-m"] {
            let (status, answer) = api
                .call(
                    "POST",
                    "t/transform/decode/project-a",
                    json!({"value": "111222333", "transformation": t}),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(answer["errors"][0].as_str().unwrap().contains("cannot be decoded"));
        }
    }

    #[tokio::test]
    async fn supplied_tweaks_are_required_and_bind_the_output() {
        let api = TestApi::new();
        ok(
            &api,
            "POST",
            "t/transform/transformation/acct",
            json!({"type": "fpe", "template": "builtin/socialsecuritynumber", "tweak_source": "supplied", "allowed_roles": ["r"]}),
        )
        .await;
        ok(&api, "POST", "t/transform/role/r", json!({"transformations": ["acct"]})).await;
        let (status, _) = api
            .call("POST", "t/transform/encode/r", json!({"value": "123-45-6789"}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let a = ok(
            &api,
            "POST",
            "t/transform/encode/r",
            json!({"value": "123-45-6789", "tweak": "AQIDBAUGBw=="}),
        )
        .await;
        let e = a["data"]["encoded_value"].as_str().unwrap().to_owned();
        assert_eq!(a["data"]["tweak"], "AQIDBAUGBw==");
        let wrong = ok(
            &api,
            "POST",
            "t/transform/decode/r",
            json!({"value": e, "tweak": "BwYFBAMCAQ=="}),
        )
        .await;
        assert_ne!(wrong["data"]["decoded_value"], "123-45-6789");
        let right = ok(
            &api,
            "POST",
            "t/transform/decode/r",
            json!({"value": e, "tweak": "AQIDBAUGBw=="}),
        )
        .await;
        assert_eq!(right["data"]["decoded_value"], "123-45-6789");
    }
}
