//! Scheduled deletion over the API (issue 17; docs/custody.md, "Scheduled deletion"): an approved
//! DELETE starts the key's window — reads show the state and the date, use is a 400 naming the
//! date — `cancel-deletion` (dual-controlled) restores it with every version, and the server's
//! background job destroys it when the window ends, audited. The same for a tenant's shred.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::audit::entries;
use crate::common::server::{Options, TestServer, b64, call, error_message};

const DAY: u64 = 86_400;

async fn ok(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = call(&server.admin(), method, path, body).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// Proposes with `method path body` (202) and approves: returns the executed approval.
async fn approved(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = call(&server.admin(), method, path, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{path}: {answer}");
    let outcome = server.approve(answer["data"]["id"].as_str().unwrap()).await;
    let approval = serde_json::to_value(&outcome.approval).unwrap();
    assert_eq!(approval["state"]["state"], "executed", "{approval}");
    approval
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_waits_for_its_window_and_cancel_restores_it() {
    let now = 1_800_000_000;
    let clock = Arc::new(tresor_core::ManualClock::new(now));
    let server = TestServer::start(Options::default().clock(clock.clone())).await;
    ok(&server, Method::POST, "dev/keys/k", Some(json!({}))).await;
    let old = ok(
        &server,
        Method::POST,
        "dev/encrypt/k",
        Some(json!({"plaintext": b64("old")})),
    )
    .await["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&server, Method::POST, "dev/keys/k/rotate", None).await;
    ok(
        &server,
        Method::POST,
        "dev/keys/k/config",
        Some(json!({"deletion_allowed": true, "deletion_window": "2d"})),
    )
    .await;
    let read = ok(&server, Method::GET, "dev/keys/k", None).await;
    assert_eq!(
        (&read["data"]["state"], &read["data"]["deletion_window"]),
        (&json!("active"), &json!(2 * DAY))
    );

    // Refusals: a window over 30 days, a malformed one, a cancel of nothing.
    for (query, message) in [
        ("deletion_window=31d", "longer than 30 days"),
        ("deletion_window=soon", "invalid deletion_window"),
        ("deletion_window=1h&deletion_window=0", "twice"),
    ] {
        let path = format!("dev/keys/k?{query}");
        let (status, answer) = call(&server.admin(), Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(error_message(&answer).contains(message), "{answer}");
    }
    let (status, answer) = call(
        &server.admin(),
        Method::POST,
        "dev/keys/k/cancel-deletion",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(error_message(&answer).contains("not scheduled"), "{answer}");
    assert!(server.admin().approvals().await.unwrap().is_empty());

    // The approved delete starts the key's window: two days.
    let approval = approved(&server, Method::DELETE, "dev/keys/k", None).await;
    let destroy_at = now + 2 * DAY;
    let date = tresor_wire::time::rfc3339(destroy_at, 0);
    assert!(
        approval["state"]["outcome"]
            .as_str()
            .unwrap()
            .contains(&date),
        "{approval}"
    );
    let read = ok(&server, Method::GET, "dev/keys/k", None).await;
    assert_eq!(read["data"]["state"], "pending-deletion");
    assert_eq!(read["data"]["destroy_at"], destroy_at);
    assert_eq!(read["data"]["destroy_date"], date.as_str());
    for (path, body) in [
        ("dev/encrypt/k", json!({"plaintext": b64("x")})),
        ("dev/decrypt/k", json!({"ciphertext": old})),
        ("dev/keys/k/rotate", json!({})),
    ] {
        let (status, answer) = call(&server.admin(), Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(error_message(&answer).contains(&date), "{path}: {answer}");
    }
    // Deleting again is refused (the date does not move); the job has nothing to do yet.
    let (status, answer) = call(&server.admin(), Method::DELETE, "dev/keys/k", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        error_message(&answer).contains("already scheduled"),
        "{answer}"
    );
    clock.advance(DAY);
    assert!(server.handle.destroy_due_deletions().unwrap().is_empty());

    // Cancel, once approved, restores it with every version.
    let (status, pending) = call(
        &server.admin(),
        Method::POST,
        "dev/keys/k/cancel-deletion",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(
        pending["data"]["request"]["operation"],
        "cancel-key-deletion"
    );
    assert_eq!(
        ok(&server, Method::GET, "dev/keys/k", None).await["data"]["state"],
        "pending-deletion",
        "not restored before approval"
    );
    server
        .approve(pending["data"]["id"].as_str().unwrap())
        .await;
    let read = ok(&server, Method::GET, "dev/keys/k", None).await;
    assert_eq!(read["data"]["state"], "active");
    assert!(read["data"].get("destroy_at").is_none(), "{read}");
    assert_eq!(read["data"]["keys"].as_object().unwrap().len(), 2);
    let decrypted = ok(
        &server,
        Method::POST,
        "dev/decrypt/k",
        Some(json!({"ciphertext": old})),
    )
    .await;
    assert_eq!(decrypted["data"]["plaintext"], b64("old"));
    clock.advance(2 * DAY);
    assert!(server.handle.destroy_due_deletions().unwrap().is_empty());

    // Again, to the end of the window: the background job destroys it, audited.
    approved(
        &server,
        Method::DELETE,
        "dev/keys/k?deletion_window=1h",
        None,
    )
    .await;
    clock.advance(3599);
    assert!(server.handle.destroy_due_deletions().unwrap().is_empty());
    clock.advance(1);
    let destroyed = server.handle.destroy_due_deletions().unwrap();
    assert_eq!(
        destroyed,
        [tresor_core::DueDeletion::Key {
            tenant: "dev".into(),
            key: "k".into()
        }]
    );
    let (status, answer) = call(&server.admin(), Method::GET, "dev/keys/k", None).await;
    assert_eq!(
        (status, answer),
        (StatusCode::NOT_FOUND, json!({"errors": []}))
    );
    let lines: Vec<Value> = entries(&server.path("audit.log"))
        .into_iter()
        .filter(|l| l["principal"] == tresor_server::scheduled_deletion::DELETION_PRINCIPAL)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, outcome) in lines.iter().zip(["started", "ok"]) {
        assert_eq!(
            (
                &line["outcome"],
                &line["operation"],
                &line["tenant"],
                &line["key"]
            ),
            (
                &json!(outcome),
                &json!("delete"),
                &json!("dev"),
                &json!("k")
            ),
            "{line}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_deletion_says_so_to_the_custodians_and_a_shred_waits_too() {
    let clock = Arc::new(tresor_core::ManualClock::new(1_800_000_000));
    let server = TestServer::start(Options::default().clock(clock.clone())).await;
    ok(&server, Method::POST, "dev/keys/now", Some(json!({}))).await;
    ok(
        &server,
        Method::POST,
        "dev/keys/now/config",
        Some(json!({"deletion_allowed": true})),
    )
    .await;
    // Configuring a window of 0 is a weakening: it waits for custodians.
    let (status, answer) = call(
        &server.admin(),
        Method::POST,
        "dev/keys/now/config",
        Some(json!({"deletion_window": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["data"]["request"]["operation"], "configure-key");
    server
        .admin()
        .cancel_approval(answer["data"]["id"].as_str().unwrap())
        .await
        .unwrap();

    let (status, pending) = call(
        &server.admin(),
        Method::DELETE,
        "dev/keys/now?deletion_window=0",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    // What custodians sign names the window; what they are shown says it plainly.
    assert_eq!(
        pending["data"]["request"]["deletion_window"], 0,
        "{pending}"
    );
    let request: tresor_wire::approvals::Dangerous =
        serde_json::from_value(pending["data"]["request"].clone()).unwrap();
    assert!(request.describe().contains("IMMEDIATELY"), "{pending}");
    server
        .approve(pending["data"]["id"].as_str().unwrap())
        .await;
    let (status, _) = call(&server.admin(), Method::GET, "dev/keys/now", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "destroyed at once");

    // A tenant's shred waits for the default window; its tenant is unusable meanwhile.
    ok(&server, Method::POST, "dev/keys/other", Some(json!({}))).await;
    approved(&server, Method::DELETE, "sys/tenants/dev", None).await;
    let tenant = ok(&server, Method::GET, "sys/tenants/dev", None).await;
    let destroy_at = tenant["data"]["destroy_at"].as_u64().unwrap();
    assert_eq!(destroy_at, 1_800_000_000 + 7 * DAY);
    let (status, answer) = call(
        &server.admin(),
        Method::POST,
        "dev/encrypt/other",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert!(status.is_client_error(), "{status} {answer}");
    assert!(
        error_message(&answer).contains(&tresor_wire::time::rfc3339(destroy_at, 0)),
        "{answer}"
    );
    approved(&server, Method::POST, "sys/tenants/dev/cancel-shred", None).await;
    ok(
        &server,
        Method::POST,
        "dev/encrypt/other",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    approved(&server, Method::DELETE, "sys/tenants/dev", None).await;
    clock.advance(7 * DAY);
    assert_eq!(server.handle.destroy_due_deletions().unwrap().len(), 1);
    let (status, _) = call(&server.admin(), Method::GET, "sys/tenants/dev", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.shutdown().await;
}
