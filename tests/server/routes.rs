//! Every key route through the HTTP API over real mutual TLS, single and batch: Vault's field
//! names, envelope, status codes and batch rules (issue 3, first acceptance item).

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tresor_client::Client;

use crate::common::server::{TestServer, b64, call, error_message, list, unb64};

async fn post(client: &Client, path: &str, body: Value) -> (StatusCode, Value) {
    call(client, Method::POST, path, Some(body)).await
}

/// POSTs and expects 200; returns `data`.
async fn ok(client: &Client, path: &str, body: Value) -> Value {
    let (status, value) = post(client, path, body).await;
    assert_eq!(status, StatusCode::OK, "POST {path}: {value}");
    value["data"].clone()
}

/// Creates an exportable key: the request waits for approval, and the key exists only once the
/// vault's custodian has signed.
async fn create_exportable(server: &TestServer, client: &Client, path: &str) {
    let (status, value) = post(client, path, json!({"exportable": "true"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "POST {path}: {value}");
    let (status, _) = call(client, Method::GET, path, None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "{path} exists before approval"
    );
    server.approve_pending().await;
    let key = read_key(client, path).await;
    assert_eq!(key["exportable"], true, "{key}");
}

async fn read_key(client: &Client, path: &str) -> Value {
    let (status, value) = call(client, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {value}");
    value["data"].clone()
}

fn versions(key: &Value) -> Vec<String> {
    key["keys"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_management_routes_round_trip() {
    let server = TestServer::new().await;
    let admin = server.admin();

    // Nothing yet: Vault's bare 404 for LIST and for GET ?list=true.
    let (status, body) = call(&admin, list(), "dev/keys", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"errors": []}))
    );

    // Create: 200 with the read shape, envelope fields Vault clients require.
    let (status, created) = post(&admin, "dev/keys/card-pan", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    for field in ["request_id", "lease_id", "lease_duration", "renewable"] {
        assert!(
            !created[field].is_null(),
            "envelope lacks {field}: {created}"
        );
    }
    let data = &created["data"];
    assert_eq!(data["name"], "card-pan");
    assert_eq!(data["type"], "aes256-gcm96");
    assert_eq!(data["latest_version"], 1);
    assert_eq!(data["deletion_allowed"], false);
    assert!(data["keys"]["1"].is_u64(), "{data}");
    // Creating again changes nothing and answers 200 (Vault's upsert semantics).
    let again = ok(&admin, "dev/keys/card-pan", json!({"derived": true})).await;
    assert_eq!(again["derived"], false);
    // An exportable key is created once custodians approve (issue 15, point 10).
    create_exportable(&server, &admin, "dev/keys/iban").await;

    // Read, list both ways.
    let key = read_key(&admin, "dev/keys/card-pan").await;
    assert_eq!(key["min_decryption_version"], 1);
    let (status, listed) = call(&admin, list(), "dev/keys", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"]["keys"], json!(["card-pan", "iban"]));
    let (status, listed) = call(&admin, Method::GET, "dev/keys?list=true", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"]["keys"], json!(["card-pan", "iban"]));
    let (status, listed) = call(&admin, Method::GET, "dev/keys/?list=true", None).await;
    assert_eq!(
        (status, &listed["data"]["keys"]),
        (StatusCode::OK, &json!(["card-pan", "iban"]))
    );

    // Rotate (POST and PUT are the same), then config and trim.
    let rotated = ok(&admin, "dev/keys/card-pan/rotate", json!({})).await;
    assert_eq!(rotated["latest_version"], 2);
    let (status, rotated) = call(&admin, Method::PUT, "dev/keys/card-pan/rotate", None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["data"]["latest_version"], 3);
    assert_eq!(versions(&rotated["data"]), ["1", "2", "3"]);

    let (status, body) = post(
        &admin,
        "dev/keys/card-pan/trim",
        json!({"min_available_version": 2}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "trim before min_encryption_version: {body}"
    );

    let configured = ok(
        &admin,
        "dev/keys/card-pan/config",
        json!({"min_decryption_version": 2, "min_encryption_version": "2"}),
    )
    .await;
    assert_eq!(configured["min_decryption_version"], 2);
    assert_eq!(configured["min_encryption_version"], 2);
    assert_eq!(versions(&configured), ["2", "3"]);
    // Trimming destroys version 1: a pending approval (202) until the custodian signs.
    let (status, pending) = post(
        &admin,
        "dev/keys/card-pan/trim",
        json!({"min_available_version": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    let key = read_key(&admin, "dev/keys/card-pan").await;
    assert_eq!(key["min_available_version"], 0, "trimmed before approval");
    server.approve_pending().await;
    let key = read_key(&admin, "dev/keys/card-pan").await;
    assert_eq!(key["min_available_version"], 2);
    assert_eq!(versions(&key), ["2", "3"]);
    // Version 1 is gone for good: it cannot be brought back.
    let (status, body) = post(
        &admin,
        "dev/keys/card-pan/config",
        json!({"min_decryption_version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Delete: refused until deletion_allowed; then a pending approval (202) that, once a
    // custodian signs it, deletes the key. Here with a deletion window of 0, which custodians
    // see in what they sign: destroyed at once (the window itself: tests/server/deletion.rs).
    let (status, body) = call(&admin, Method::DELETE, "dev/keys/card-pan", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("deletion is not allowed"),
        "{body}"
    );
    ok(
        &admin,
        "dev/keys/card-pan/config",
        json!({"deletion_allowed": true}),
    )
    .await;
    let (status, body) = call(
        &admin,
        Method::DELETE,
        "dev/keys/card-pan?deletion_window=0s",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["data"]["request"]["operation"], "delete-key");
    assert_eq!(body["data"]["request"]["deletion_window"], 0);
    assert_eq!(body["data"]["state"]["state"], "pending");
    let (status, _) = call(&admin, Method::GET, "dev/keys/card-pan", None).await;
    assert_eq!(status, StatusCode::OK, "not deleted before approval");
    let outcome = server.approve(body["data"]["id"].as_str().unwrap()).await;
    assert!(matches!(
        outcome.approval.state,
        tresor_wire::approvals::ApprovalState::Executed { .. }
    ));
    let (status, body) = call(&admin, Method::GET, "dev/keys/card-pan", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"errors": []}))
    );
    let (status, body) = call(&admin, Method::DELETE, "dev/keys/card-pan", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("not found"), "{body}");
    let (status, listed) = call(&admin, list(), "dev/keys", None).await;
    assert_eq!(
        (status, &listed["data"]["keys"]),
        (StatusCode::OK, &json!(["iban"]))
    );

    // Operations on a key that does not exist: Vault's messages and 400.
    for (path, body, message) in [
        ("dev/keys/nope/rotate", json!({}), "key not found"),
        (
            "dev/keys/nope/config",
            json!({"deletion_allowed": true}),
            "no existing key named nope",
        ),
        (
            "dev/keys/nope/trim",
            json!({"min_available_version": 1}),
            "invalid key name",
        ),
    ] {
        let (status, answer) = post(&admin, path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(error_message(&answer).contains(message), "{path}: {answer}");
    }
    // Wrong method on a known path, unknown path.
    let (status, _) = call(&admin, Method::DELETE, "dev/encrypt/iban", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = post(&admin, "dev/nope/iban", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crypto_routes_round_trip() {
    let server = TestServer::new().await;
    let admin = server.admin();
    create_exportable(&server, &admin, "dev/keys/k").await;

    // Encrypt and decrypt, with associated data bound in.
    let sealed = ok(
        &admin,
        "dev/encrypt/k",
        json!({"plaintext": b64("4111 1111 1111 1111")}),
    )
    .await;
    let ciphertext = sealed["ciphertext"].as_str().unwrap().to_owned();
    assert!(ciphertext.starts_with("tresor:v1:"), "{sealed}");
    assert_eq!(sealed["key_version"], 1);
    let opened = ok(&admin, "dev/decrypt/k", json!({"ciphertext": ciphertext})).await;
    assert_eq!(
        unb64(opened["plaintext"].as_str().unwrap()),
        b"4111 1111 1111 1111"
    );
    // The empty plaintext is allowed.
    let empty = ok(&admin, "dev/encrypt/k", json!({"plaintext": ""})).await;
    let opened = ok(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": empty["ciphertext"]}),
    )
    .await;
    assert_eq!(opened["plaintext"], "");

    let ad = b64("order-42");
    let bound = ok(
        &admin,
        "dev/encrypt/k",
        json!({"plaintext": b64("x"), "associated_data": ad}),
    )
    .await;
    let opened = ok(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": bound["ciphertext"], "associated_data": ad}),
    )
    .await;
    assert_eq!(opened["plaintext"], b64("x"));
    let (status, body) = post(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": bound["ciphertext"]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "decrypt without the associated data: {body}"
    );
    let (status, body) = post(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": bound["ciphertext"], "associated_data": b64("order-43")}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "decrypt with other associated data: {body}"
    );

    // Derived keys need the context, and a ciphertext opens only under its own context.
    ok(&admin, "dev/keys/per-user", json!({"derived": true})).await;
    let context = b64("user-7");
    let sealed_7 = ok(
        &admin,
        "dev/encrypt/per-user",
        json!({"plaintext": b64("secret"), "context": context}),
    )
    .await;
    let opened = ok(
        &admin,
        "dev/decrypt/per-user",
        json!({"ciphertext": sealed_7["ciphertext"], "context": context}),
    )
    .await;
    assert_eq!(opened["plaintext"], b64("secret"));
    let (status, body) = post(
        &admin,
        "dev/encrypt/per-user",
        json!({"plaintext": b64("secret")}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("context"), "{body}");
    let (status, body) = post(
        &admin,
        "dev/decrypt/per-user",
        json!({"ciphertext": sealed_7["ciphertext"], "context": b64("user-8")}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Convergent keys: same plaintext and context, same ciphertext.
    ok(
        &admin,
        "dev/keys/lookup",
        json!({"derived": true, "convergent_encryption": "true"}),
    )
    .await;
    let body = json!({"plaintext": b64("alice@example.com"), "context": b64("email")});
    let first = ok(&admin, "dev/encrypt/lookup", body.clone()).await;
    let second = ok(&admin, "dev/encrypt/lookup", body).await;
    assert_eq!(first["ciphertext"], second["ciphertext"]);

    // Rotate, then rewrap the v1 ciphertext to v2; both decrypt to the plaintext.
    ok(&admin, "dev/keys/k/rotate", json!({})).await;
    let rewrapped = ok(&admin, "dev/rewrap/k", json!({"ciphertext": ciphertext})).await;
    let rewrapped_text = rewrapped["ciphertext"].as_str().unwrap();
    assert!(rewrapped_text.starts_with("tresor:v2:"), "{rewrapped}");
    assert_eq!(rewrapped["key_version"], 2);
    for c in [ciphertext.as_str(), rewrapped_text] {
        let opened = ok(&admin, "dev/decrypt/k", json!({"ciphertext": c})).await;
        assert_eq!(opened["plaintext"], b64("4111 1111 1111 1111"));
    }
    // Encrypting with an explicit older version, and rewrapping to it.
    let old = ok(
        &admin,
        "dev/encrypt/k",
        json!({"plaintext": b64("y"), "key_version": 1}),
    )
    .await;
    assert!(
        old["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("tresor:v1:"),
        "{old}"
    );
    let down = ok(
        &admin,
        "dev/rewrap/k",
        json!({"ciphertext": rewrapped_text, "key_version": 1}),
    )
    .await;
    assert_eq!(down["key_version"], 1);
    // Rewrap keeps the context of derived keys.
    let rewrapped_7 = ok(
        &admin,
        "dev/rewrap/per-user",
        json!({"ciphertext": sealed_7["ciphertext"], "context": context}),
    )
    .await;
    let opened = ok(
        &admin,
        "dev/decrypt/per-user",
        json!({"ciphertext": rewrapped_7["ciphertext"], "context": context}),
    )
    .await;
    assert_eq!(opened["plaintext"], b64("secret"));

    // Data keys: the plaintext form returns the key; the wrapped form decrypts to a key.
    let datakey = ok(&admin, "dev/datakey/plaintext/k", json!({})).await;
    let key_bytes = unb64(datakey["plaintext"].as_str().unwrap());
    assert_eq!(key_bytes.len(), 32, "256 bits by default");
    assert_eq!(datakey["key_version"], 2);
    let opened = ok(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": datakey["ciphertext"]}),
    )
    .await;
    assert_eq!(opened["plaintext"], datakey["plaintext"]);
    let wrapped = ok(&admin, "dev/datakey/wrapped/k", json!({"bits": 512})).await;
    assert!(wrapped.get("plaintext").is_none(), "{wrapped}");
    let opened = ok(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": wrapped["ciphertext"]}),
    )
    .await;
    assert_eq!(unb64(opened["plaintext"].as_str().unwrap()).len(), 64);
    let derived_key = ok(
        &admin,
        "dev/datakey/wrapped/per-user",
        json!({"context": context, "bits": "128"}),
    )
    .await;
    let opened = ok(
        &admin,
        "dev/decrypt/per-user",
        json!({"ciphertext": derived_key["ciphertext"], "context": context}),
    )
    .await;
    assert_eq!(unb64(opened["plaintext"].as_str().unwrap()).len(), 16);
    let (status, body) = post(&admin, "dev/datakey/wrapped/k", json!({"bits": 100})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("bit length"), "{body}");
    let (status, _) = post(&admin, "dev/datakey/both/k", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // HMAC: stable tokens; the algorithm in the path or the body; verify.
    let input = b64("alice");
    let token = ok(&admin, "dev/hmac/k", json!({"input": input})).await["hmac"].clone();
    let token_text = token.as_str().unwrap().to_owned();
    assert!(token_text.starts_with("tresor:v2:"), "{token}");
    assert_eq!(
        ok(&admin, "dev/hmac/k", json!({"input": input})).await["hmac"],
        token
    );
    let sha512 = ok(&admin, "dev/hmac/k/sha2-512", json!({"input": input})).await["hmac"].clone();
    let sha512_text = sha512.as_str().unwrap();
    assert_eq!(unb64(sha512_text.rsplit(':').next().unwrap()).len(), 64);
    assert_eq!(
        ok(
            &admin,
            "dev/hmac/k",
            json!({"input": input, "algorithm": "sha2-512"})
        )
        .await["hmac"],
        sha512
    );
    let v1 = ok(
        &admin,
        "dev/hmac/k",
        json!({"input": input, "key_version": 1}),
    )
    .await["hmac"]
        .clone();
    assert!(v1.as_str().unwrap().starts_with("tresor:v1:"), "{v1}");
    assert_ne!(
        ok(&admin, "dev/hmac/per-user", json!({"input": input})).await["hmac"],
        token,
        "another key gives another token"
    );
    let (status, body) = post(&admin, "dev/hmac/k/md5", json!({"input": input})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let valid = |body: Value| {
        let admin = admin.clone();
        async move { ok(&admin, "dev/verify/k", body).await["valid"].clone() }
    };
    assert_eq!(valid(json!({"input": input, "hmac": token})).await, true);
    assert_eq!(
        valid(json!({"input": b64("bob"), "hmac": token})).await,
        false
    );
    assert_eq!(valid(json!({"input": input, "hmac": v1})).await, true);
    assert_eq!(
        valid(json!({"input": input, "hmac": sha512, "algorithm": "sha2-512"})).await,
        true
    );
    assert_eq!(
        ok(
            &admin,
            "dev/verify/k/sha2-512",
            json!({"input": input, "hmac": sha512})
        )
        .await["valid"],
        true
    );
    assert_eq!(
        ok(
            &admin,
            "dev/verify/k/sha2-512",
            json!({"input": input, "hmac": token})
        )
        .await["valid"],
        false
    );
    let (status, body) = post(&admin, "dev/verify/k", json!({"input": input})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Export of an exportable key: every version, the latest, one version.
    let (status, exported) = call(&admin, Method::GET, "dev/export/encryption-key/k", None).await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    let keys = exported["data"]["keys"].as_object().unwrap();
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(unb64(keys["2"].as_str().unwrap()).len(), 32);
    assert_eq!(exported["data"]["name"], "k");
    let (_, latest) = call(
        &admin,
        Method::GET,
        "dev/export/encryption-key/k/latest",
        None,
    )
    .await;
    assert_eq!(latest["data"]["keys"], json!({"2": keys["2"]}));
    let (_, one) = call(&admin, Method::GET, "dev/export/encryption-key/k/1", None).await;
    assert_eq!(one["data"]["keys"], json!({"1": keys["1"]}));
    let (status, hmac_keys) = call(&admin, Method::GET, "dev/export/hmac-key/k/latest", None).await;
    assert_eq!(status, StatusCode::OK, "{hmac_keys}");
    assert_ne!(
        hmac_keys["data"]["keys"]["2"], keys["2"],
        "HMAC keys are separate keys"
    );
    let (status, body) = call(
        &admin,
        Method::GET,
        "dev/export/encryption-key/per-user",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not exportable: {body}");
    assert!(error_message(&body).contains("not exportable"), "{body}");
    let (status, body) = call(
        &admin,
        Method::GET,
        "dev/export/encryption-key/missing",
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"errors": []}))
    );
}

fn results(body: &Value) -> &Vec<Value> {
    body["data"]["batch_results"]
        .as_array()
        .unwrap_or_else(|| panic!("no batch_results: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_answer_per_item_with_vaults_status_rules() {
    let server = TestServer::new().await;
    let admin = server.admin();
    ok(&admin, "dev/keys/k", json!({})).await;

    // All good: 200, references echoed, "" when none was given.
    let (status, body) = post(
        &admin,
        "dev/encrypt/k",
        json!({"batch_input": [
            {"plaintext": b64("one"), "reference": "r1"},
            {"plaintext": b64("two")},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let good = results(&body).clone();
    assert_eq!(good[0]["reference"], "r1");
    assert_eq!(good[1]["reference"], "");
    assert_eq!(good[0]["key_version"], 1);

    // One bad item among good ones: 400 with the full envelope (no `errors`), the good items'
    // ciphertexts, and the bad item's error.
    let batch = json!([
        {"plaintext": b64("one"), "reference": "a"},
        {"plaintext": "not base64!", "reference": "b"},
        {"plaintext": b64("three"), "reference": "c"},
    ]);
    let (status, body) = post(&admin, "dev/encrypt/k", json!({"batch_input": batch})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.get("errors").is_none() && !body["request_id"].is_null(),
        "{body}"
    );
    let items = results(&body).clone();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items
            .iter()
            .map(|i| i["reference"].clone())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(
        items[1]["error"]
            .as_str()
            .unwrap()
            .contains("illegal base64"),
        "{body}"
    );
    assert!(items[1].get("ciphertext").is_none(), "{body}");
    for i in [0, 2] {
        assert!(items[i].get("error").is_none(), "{body}");
        assert!(
            items[i]["ciphertext"]
                .as_str()
                .unwrap()
                .starts_with("tresor:v1:")
        );
    }
    // With partial_failure_response_code and at least one success: that code.
    let (status, body) = post(
        &admin,
        "dev/encrypt/k",
        json!({"batch_input": batch, "partial_failure_response_code": 207}),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    // Every item failing: 400 whatever the override says.
    let (status, body) = post(
        &admin,
        "dev/encrypt/k",
        json!({"batch_input": [{"plaintext": "!"}, {"plaintext": "?"}], "partial_failure_response_code": 207}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(results(&body).len(), 2);

    // Decrypt: the encrypted items, a tampered one and a missing ciphertext.
    let c0 = items[0]["ciphertext"].as_str().unwrap();
    let c2 = items[2]["ciphertext"].as_str().unwrap();
    // Three more bytes in front of the nonce: still base64, no longer authentic.
    let tampered = c0.replace("tresor:v1:", "tresor:v1:AAAA");
    let decrypt_batch = json!([
        {"ciphertext": c0, "reference": "x"},
        {"ciphertext": tampered, "reference": "y"},
        {"ciphertext": c2, "reference": "z"},
        {"ciphertext": "", "reference": "w"},
    ]);
    let (status, body) = post(
        &admin,
        "dev/decrypt/k",
        json!({"batch_input": decrypt_batch}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let opened = results(&body);
    assert_eq!(opened[0]["plaintext"], b64("one"));
    assert_eq!(opened[2]["plaintext"], b64("three"));
    assert_eq!(
        opened[1]["plaintext"], "",
        "failed items carry an empty plaintext"
    );
    assert!(!opened[1]["error"].as_str().unwrap().is_empty(), "{body}");
    assert!(
        opened[3]["error"]
            .as_str()
            .unwrap()
            .contains("missing ciphertext"),
        "{body}"
    );
    assert_eq!(
        opened
            .iter()
            .map(|i| i["reference"].clone())
            .collect::<Vec<_>>(),
        ["x", "y", "z", "w"]
    );
    let (status, _) = post(
        &admin,
        "dev/decrypt/k",
        json!({"batch_input": decrypt_batch, "partial_failure_response_code": "299"}),
    )
    .await;
    assert_eq!(status.as_u16(), 299);
    let (status, body) = post(
        &admin,
        "dev/decrypt/k",
        json!({"batch_input": [{"ciphertext": c0}, {"ciphertext": c2, "reference": "r"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Rewrap, HMAC and verify batches answer 200 with per-item errors.
    ok(&admin, "dev/keys/k/rotate", json!({})).await;
    let (status, body) = post(
        &admin,
        "dev/rewrap/k",
        json!({"batch_input": [
            {"ciphertext": c0, "reference": "p"},
            {"ciphertext": "tresor:v9:AAAA", "reference": "q"},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rewrapped = results(&body);
    assert!(
        rewrapped[0]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("tresor:v2:")
    );
    assert_eq!(rewrapped[0]["reference"], "p");
    assert!(
        rewrapped[1]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(rewrapped[1]["reference"], "q");
    let opened = ok(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": rewrapped[0]["ciphertext"]}),
    )
    .await;
    assert_eq!(opened["plaintext"], b64("one"));

    let (status, body) = post(
        &admin,
        "dev/hmac/k/sha2-384",
        json!({"batch_input": [
            {"input": b64("alice"), "reference": "h1"},
            {"input": "%%%", "reference": "h2"},
            {"input": b64("bob")},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens = results(&body).clone();
    assert!(
        tokens[1]["error"].as_str().unwrap().contains("base64"),
        "{body}"
    );
    assert_eq!(tokens[0]["reference"], "h1");
    assert_eq!(tokens[2]["reference"], "");
    let single = ok(
        &admin,
        "dev/hmac/k/sha2-384",
        json!({"input": b64("alice")}),
    )
    .await;
    assert_eq!(single["hmac"], tokens[0]["hmac"], "batch and single agree");

    let (status, body) = post(
        &admin,
        "dev/verify/k/sha2-384",
        json!({"batch_input": [
            {"input": b64("alice"), "hmac": tokens[0]["hmac"], "reference": "v1"},
            {"input": b64("alice"), "hmac": tokens[2]["hmac"], "reference": "v2"},
            {"input": b64("alice"), "reference": "v3"},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let checks = results(&body);
    assert_eq!(checks[0]["valid"], true);
    assert_eq!(checks[1]["valid"], false);
    assert!(
        checks[2]["error"].as_str().unwrap().contains("hmac"),
        "{body}"
    );
    assert_eq!(checks[2]["reference"], "v3");

    // Derived keys in batches: each item with its own context.
    ok(&admin, "dev/keys/d", json!({"derived": true})).await;
    let (status, body) = post(
        &admin,
        "dev/encrypt/d",
        json!({"batch_input": [
            {"plaintext": b64("a"), "context": b64("ctx-1")},
            {"plaintext": b64("b"), "context": b64("ctx-2")},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sealed = results(&body).clone();
    let (status, body) = post(
        &admin,
        "dev/decrypt/d",
        json!({"batch_input": [
            {"ciphertext": sealed[0]["ciphertext"], "context": b64("ctx-1")},
            {"ciphertext": sealed[1]["ciphertext"], "context": b64("ctx-1")},
        ]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the second context is wrong: {body}"
    );
    assert_eq!(results(&body)[0]["plaintext"], b64("a"));
    assert!(results(&body)[1]["error"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_seal_status_follow_vault_and_a_sealed_vault_answers_503() {
    use crate::common::server::{Options, VaultState};
    let server = TestServer::start(Options::default().state(VaultState::Uninitialized)).await;
    let admin = server.admin();
    let health = |query: &'static str| {
        let admin = admin.clone();
        async move { call(&admin, Method::GET, &format!("sys/health{query}"), None).await }
    };
    let head = || {
        let admin = admin.clone();
        async move { call(&admin, Method::HEAD, "sys/health", None).await }
    };

    // Not initialised: 501, or the uninitcode override.
    let (status, body) = health("").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert_eq!(body["initialized"], false);
    assert!(
        body.get("data").is_none(),
        "health is not enveloped: {body}"
    );
    assert_eq!(health("?uninitcode=200").await.0, StatusCode::OK);
    assert_eq!(head().await, (StatusCode::NOT_IMPLEMENTED, Value::Null));
    let (status, seal) = call(&admin, Method::GET, "sys/seal-status", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&seal["initialized"], &seal["sealed"]),
        (&json!(false), &json!(true))
    );
    let (_, init) = call(&admin, Method::GET, "sys/init", None).await;
    assert_eq!(init, json!({"initialized": false}));

    // Initialised, sealed: 503, or the sealedcode override.
    server
        .vault()
        .init(&tresor_wire::custody::InitRequest {
            custodians: vec![server.custodian.public().clone()],
            threshold: 1,
            four_eyes: None,
        })
        .unwrap();
    let (status, body) = health("").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        (&body["initialized"], &body["sealed"]),
        (&json!(true), &json!(true))
    );
    assert!(body.get("cluster_id").is_none(), "{body}");
    assert_eq!(health("?sealedcode=200").await.0, StatusCode::OK);
    assert_eq!(
        health("?sealedcode=429&standbyok=true").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(health("?sealedcode=abc").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(head().await, (StatusCode::SERVICE_UNAVAILABLE, Value::Null));
    let (_, seal) = call(&admin, Method::GET, "sys/seal-status", None).await;
    assert_eq!(seal["sealed"], true);
    assert_eq!(
        (&seal["t"], &seal["n"], &seal["progress"]),
        (&json!(1), &json!(1), &json!(0))
    );
    let (status, body) = post(&admin, "dev/encrypt/k", json!({"plaintext": b64("x")})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Unsealed: 200 with every field vaultrs requires; HEAD too, with no body.
    server.unseal();
    server
        .vault()
        .create_tenant("dev", &tresor_core::TenantSpec::default())
        .unwrap();
    let (status, body) = health("").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for field in [
        "initialized",
        "sealed",
        "standby",
        "performance_standby",
        "replication_performance_mode",
        "replication_dr_mode",
        "server_time_utc",
        "version",
    ] {
        assert!(!body[field].is_null(), "health lacks {field}: {body}");
    }
    assert_eq!(body["sealed"], false);
    assert!(body["server_time_utc"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(health("?activecode=299").await.0.as_u16(), 299);
    let (status, body) = head().await;
    assert_eq!((status, body), (StatusCode::OK, Value::Null));
    let (status, _) = call(&admin, Method::POST, "sys/health", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (_, seal) = call(&admin, Method::GET, "sys/seal-status", None).await;
    assert_eq!(seal["type"], "shamir");
    assert_eq!(
        (&seal["initialized"], &seal["sealed"]),
        (&json!(true), &json!(false))
    );
    for field in ["t", "n", "progress", "nonce", "version", "cluster_id"] {
        assert!(!seal[field].is_null(), "seal-status lacks {field}: {seal}");
    }

    // Every key route answers 503 while sealed, and works again once unsealed.
    let key_routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "dev/keys/k", Some(json!({}))),
        (Method::GET, "dev/keys/k", None),
        (list(), "dev/keys", None),
        (Method::GET, "dev/keys?list=true", None),
        (
            Method::POST,
            "dev/keys/k/config",
            Some(json!({"deletion_allowed": true})),
        ),
        (Method::POST, "dev/keys/k/rotate", None),
        (
            Method::POST,
            "dev/keys/k/trim",
            Some(json!({"min_available_version": 1})),
        ),
        (
            Method::POST,
            "dev/encrypt/k",
            Some(json!({"plaintext": b64("x")})),
        ),
        (
            Method::POST,
            "dev/encrypt/k",
            Some(json!({"batch_input": [{"plaintext": b64("x")}]})),
        ),
        (
            Method::POST,
            "dev/decrypt/k",
            Some(json!({"ciphertext": "tresor:v1:AAAA"})),
        ),
        (
            Method::POST,
            "dev/rewrap/k",
            Some(json!({"ciphertext": "tresor:v1:AAAA"})),
        ),
        (Method::POST, "dev/datakey/plaintext/k", None),
        (Method::POST, "dev/datakey/wrapped/k", None),
        (Method::POST, "dev/hmac/k", Some(json!({"input": b64("x")}))),
        (
            Method::POST,
            "dev/verify/k",
            Some(json!({"input": b64("x"), "hmac": "tresor:v1:AAAA"})),
        ),
        (Method::GET, "dev/export/encryption-key/k", None),
        (Method::DELETE, "dev/keys/k", None),
        (Method::GET, "sys/tenants/dev", None),
        (list(), "sys/tenants", None),
    ];
    create_exportable(&server, &admin, "dev/keys/k").await;
    server.vault().seal();
    for (method, path, body) in &key_routes {
        let (status, answer) = call(&admin, method.clone(), path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {answer}"
        );
        assert!(
            error_message(&answer).contains("sealed"),
            "{method} {path}: {answer}"
        );
    }
    assert_eq!(health("").await.0, StatusCode::SERVICE_UNAVAILABLE);
    server.unseal();
    assert_eq!(health("").await.0, StatusCode::OK);
    let (status, body) = call(&admin, Method::GET, "dev/keys/k", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["latest_version"], 1,
        "nothing changed while sealed"
    );
}

/// Issue 15, point 10: creating an exportable key needs the approval that making a key
/// exportable needs, so a name cannot be claimed exportable in advance: if an application
/// creates the key (by encrypting) before custodians sign, the approval fails and the key stays
/// unexportable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exportable_key_cannot_be_claimed_in_advance() {
    let server = TestServer::new().await;
    let admin = server.admin();
    let (status, pending) = post(&admin, "dev/keys/orders", json!({"exportable": true})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    let (status, refused) = call(
        &admin,
        Method::GET,
        "dev/export/encryption-key/orders",
        None,
    )
    .await;
    assert_ne!(status, StatusCode::OK, "{refused}");
    // The application's first encrypt creates it, unexportable.
    ok(
        &admin,
        "dev/encrypt/orders",
        json!({"plaintext": b64("order 1")}),
    )
    .await;
    let outcome = server
        .approve(pending["data"]["id"].as_str().unwrap())
        .await;
    let state = serde_json::to_value(&outcome.approval.state).unwrap();
    assert_eq!(state["state"], "failed", "{state}");
    assert_eq!(
        read_key(&admin, "dev/keys/orders").await["exportable"],
        false
    );
    let (status, refused) = call(
        &admin,
        Method::GET,
        "dev/export/encryption-key/orders",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}
