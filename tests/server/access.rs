//! Who gets in and what they may do, over real mutual TLS: refused handshakes are counted with
//! their reason; a principal granted one tenant is refused everything on another and on keys
//! outside its globs, and a refused request changes nothing; a reload (SIGHUP) swaps the server
//! certificate and the policies without dropping open connections, and refuses a broken set.

use std::time::{Duration, SystemTime};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tresor_core::KeySpec;
use tresor_core::TenantSpec;

use crate::common::server::{
    ADMIN, ADMIN_POLICY, Http1, Options, TestServer, b64, call, client_cert_between, connect,
    error_message, list, peer_certificate, principal, read_response, read_until_closed, refused,
    tls_config,
};
use tokio::io::AsyncWriteExt;
use tresor_server::tls::pki::DevCa;

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_counted_with_their_reason() {
    let server = TestServer::start(Options::default().with_crl()).await;
    let stats = || server.handle.stats().handshake_failures();

    // A good certificate gets in (and is not counted).
    let good = server.ca.issue_client(ADMIN, DAY).unwrap();
    assert!(!refused(server.connect(Some(&good)).await).await);
    assert!(stats().is_empty(), "{:?}", stats());

    // No client certificate.
    assert!(refused(server.connect(None).await).await);
    server
        .wait_for_handshake_failures("no_client_certificate", 1)
        .await;

    // A certificate from another CA (the client still trusts the server's CA).
    let other_ca = DevCa::generate("Some other CA").unwrap();
    let foreign = other_ca.issue_client(ADMIN, DAY).unwrap();
    assert!(refused(server.connect(Some(&foreign)).await).await);
    server.wait_for_handshake_failures("unknown_ca", 1).await;

    // An expired certificate.
    let now = SystemTime::now();
    let expired = client_cert_between(&server.ca, ADMIN, now - 2 * DAY, now - DAY);
    assert!(refused(server.connect(Some(&expired)).await).await);
    server.wait_for_handshake_failures("expired", 1).await;

    // A revoked certificate, once the CRL says so (and only then).
    let revoked = server.ca.issue_client(ADMIN, DAY).unwrap();
    assert!(!refused(server.connect(Some(&revoked)).await).await);
    server.revoke(&[&revoked.serial]);
    assert!(refused(server.connect(Some(&revoked)).await).await);
    server.wait_for_handshake_failures("revoked", 1).await;
    // Others still get in, through the typed client too.
    let (status, _) = server.admin().health().await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // A certificate that names no principal (no SPIFFE URI, CN fallback off): the chain is
    // good, so the handshake completes, and every request is answered 403 saying why.
    let cn_only = server
        .ca
        .issue_client_with(&tresor_server::tls::pki::ClientCertSpec::common_name(
            "svc", DAY,
        ))
        .unwrap();
    let mut stream = server.connect(Some(&cn_only)).await.unwrap();
    stream
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (status, body) = read_response(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        error_message(&body),
        "the client certificate names no usable identity: the certificate has no SPIFFE URI SAN (spiffe://<trust-domain>/<path>)"
    );
    // Then the connection closes.
    assert!(
        read_until_closed(&mut stream, Duration::from_secs(10))
            .await
            .is_empty()
    );
    server.wait_for_handshake_failures("no_principal", 1).await;

    let counted = stats();
    for label in [
        "no_client_certificate",
        "unknown_ca",
        "expired",
        "revoked",
        "no_principal",
    ] {
        assert_eq!(counted.get(label), Some(&1), "{label}: {counted:?}");
    }
    // The typed client reports a refused handshake as a connection error.
    let files = server.write_identity("foreign", &foreign);
    let err = server.client_with(&files).health().await.unwrap_err();
    assert!(
        matches!(err, tresor_client::ClientError::Connect { .. }),
        "{err}"
    );
}

/// Every route that names tenant `tenant` and key `key`: method, path, body.
fn tenant_routes(tenant: &str, key: &str) -> Vec<(Method, String, Option<Value>)> {
    let t = tenant;
    let post = |path: String, body: Value| (Method::POST, path, Some(body));
    let ciphertext = "tresor:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    vec![
        post(format!("{t}/keys/{key}"), json!({})),
        (Method::PUT, format!("{t}/keys/{key}"), Some(json!({}))),
        (Method::GET, format!("{t}/keys/{key}"), None),
        (list(), format!("{t}/keys"), None),
        (Method::GET, format!("{t}/keys?list=true"), None),
        (Method::DELETE, format!("{t}/keys/{key}"), None),
        post(
            format!("{t}/keys/{key}/config"),
            json!({"min_decryption_version": 2}),
        ),
        post(format!("{t}/keys/{key}/rotate"), json!({})),
        post(
            format!("{t}/keys/{key}/trim"),
            json!({"min_available_version": 1}),
        ),
        post(format!("{t}/encrypt/{key}"), json!({"plaintext": b64("x")})),
        post(
            format!("{t}/encrypt/{key}"),
            json!({"batch_input": [{"plaintext": b64("x")}]}),
        ),
        post(
            format!("{t}/decrypt/{key}"),
            json!({"ciphertext": ciphertext}),
        ),
        post(
            format!("{t}/rewrap/{key}"),
            json!({"ciphertext": ciphertext}),
        ),
        post(format!("{t}/datakey/plaintext/{key}"), json!({})),
        post(format!("{t}/datakey/wrapped/{key}"), json!({})),
        post(format!("{t}/hmac/{key}"), json!({"input": b64("x")})),
        post(
            format!("{t}/hmac/{key}/sha2-512"),
            json!({"input": b64("x")}),
        ),
        post(
            format!("{t}/verify/{key}"),
            json!({"input": b64("x"), "hmac": ciphertext}),
        ),
        post(
            format!("{t}/verify/{key}/sha2-256"),
            json!({"input": b64("x"), "hmac": ciphertext}),
        ),
        (
            Method::GET,
            format!("{t}/export/encryption-key/{key}"),
            None,
        ),
        (
            Method::GET,
            format!("{t}/export/hmac-key/{key}/latest"),
            None,
        ),
        (Method::GET, format!("sys/tenants/{t}"), None),
        (Method::POST, format!("sys/tenants/{t}/rotate-kek"), None),
        (Method::DELETE, format!("sys/tenants/{t}"), None),
    ]
}

/// A snapshot of what a refused request must not change.
fn snapshot(server: &TestServer, tenant: &str) -> Value {
    let vault = server.vault();
    let keys = vault.list_keys(tenant).unwrap();
    let infos: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::to_value(vault.key_info(tenant, k).unwrap()).unwrap())
        .collect();
    json!({
        "tenants": vault.list_tenants().unwrap(),
        "tenant": serde_json::to_value(vault.tenant_info(tenant).unwrap()).unwrap(),
        "keys": infos,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_of_one_tenant_is_refused_everything_else_and_changes_nothing() {
    let alice = principal("svc/alpha");
    let grants = format!(
        r#"
[[grant]]
principals = ["{alice}"]
tenant = "alpha"
keys = ["card-*"]
operations = ["*"]
"#
    );
    let server = TestServer::start(
        Options::default()
            .tenants(&["alpha", "beta"])
            .policy("alpha.toml", &grants),
    )
    .await;
    let vault = server.vault();
    // Keys that every refused operation would change if it were allowed.
    for (tenant, key) in [("beta", "card-pan"), ("alpha", "iban")] {
        vault
            .create_key(
                tenant,
                key,
                KeySpec {
                    exportable: true,
                    ..KeySpec::default()
                },
            )
            .unwrap();
        vault
            .configure_key(
                tenant,
                key,
                &tresor_wire::keys::KeyConfigUpdate {
                    deletion_allowed: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
        vault.rotate_key(tenant, key).unwrap();
    }
    vault
        .create_key("alpha", "card-pan", KeySpec::default())
        .unwrap();
    let client = server.client(&alice);

    // Its own tenant, inside its globs: allowed (the grant is real).
    let (status, body) = call(
        &client,
        Method::POST,
        "alpha/encrypt/card-pan",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let before_beta = snapshot(&server, "beta");
    let before_alpha = snapshot(&server, "alpha");
    // Every route of the other tenant, for an existing and a missing key; every route of its
    // own tenant for keys outside `card-*`.
    let mut routes = tenant_routes("beta", "card-pan");
    routes.extend(tenant_routes("beta", "card-new"));
    routes.extend(
        tenant_routes("alpha", "iban")
            .into_iter()
            .filter(|(_, path, _)| {
                // Tenant-scoped routes of its own tenant are governed by the grant's operations, not
                // by key globs.
                !path.starts_with("sys/")
                    && !path.starts_with("alpha/keys?")
                    && path != "alpha/keys"
            }),
    );
    routes.extend(
        tenant_routes("alpha", "iban-new")
            .into_iter()
            .filter(|(_, p, _)| {
                !p.starts_with("sys/") && !p.starts_with("alpha/keys?") && p != "alpha/keys"
            }),
    );
    // Vault-wide routes.
    routes.push((list(), "sys/tenants".into(), None));
    routes.push((
        Method::POST,
        "sys/tenants/gamma".into(),
        Some(json!({"level": 2})),
    ));
    routes.push((Method::POST, "sys/tenants/beta".into(), Some(json!({}))));
    assert!(routes.len() > 80, "{}", routes.len());
    for (method, path, body) in routes {
        let (status, answer) = call(&client, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        let message = error_message(&answer);
        assert!(
            message.contains("permission denied") && message.contains(&alice),
            "{method} {path}: {answer}"
        );
    }
    assert_eq!(
        snapshot(&server, "beta"),
        before_beta,
        "refused requests changed tenant beta"
    );
    assert_eq!(
        snapshot(&server, "alpha"),
        before_alpha,
        "refused requests changed tenant alpha"
    );
    assert!(vault.list_tenants().unwrap() == ["alpha", "beta"]);
    // In particular: the refused rotates rotated nothing, the refused creates (and encrypts
    // that would upsert) created nothing, the refused deletes deleted nothing.
    assert_eq!(
        vault.key_info("beta", "card-pan").unwrap().latest_version,
        2
    );
    assert_eq!(vault.key_info("alpha", "iban").unwrap().latest_version, 2);
    assert_eq!(vault.list_keys("beta").unwrap(), ["card-pan"]);
    assert_eq!(vault.list_keys("alpha").unwrap(), ["card-pan", "iban"]);

    // The same requests from the admin do change things: the refusals above were the policy's.
    let admin = server.admin();
    let (status, _) = call(&admin, Method::POST, "beta/keys/card-pan/rotate", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        vault.key_info("beta", "card-pan").unwrap().latest_version,
        3
    );
    // A delete waits for custodian approval (dual control), then runs: the key's deletion
    // window starts (docs/custody.md, "Scheduled deletion").
    let (status, body) = call(&admin, Method::DELETE, "alpha/keys/iban", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(vault.key_info("alpha", "iban").unwrap().deletion, None);
    let id = body["data"]["id"].as_str().unwrap();
    server.approve(id).await;
    assert!(vault.key_info("alpha", "iban").unwrap().deletion.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_without_create_cannot_create_keys_by_encrypting() {
    let bob = principal("svc/bob");
    let grants = format!(
        r#"
[[grant]]
principals = ["{bob}"]
tenant = "dev"
keys = ["*"]
operations = ["encrypt", "decrypt", "rotate"]
"#
    );
    let server = TestServer::start(Options::default().policy("bob.toml", &grants)).await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    let bob = server.client(&bob);
    let (status, body) = call(
        &bob,
        Method::POST,
        "dev/encrypt/new",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("may not create it"), "{body}");
    let (status, body) = call(
        &bob,
        Method::POST,
        "dev/encrypt/new",
        Some(json!({"batch_input": [{"plaintext": b64("x")}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        server.vault().list_keys("dev").unwrap(),
        ["k"],
        "no key was created"
    );
    // What it is granted works; read is not granted.
    let (status, _) = call(&bob, Method::POST, "dev/keys/k/rotate", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&bob, Method::GET, "dev/keys/k", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The admin's encrypt creates the key (Vault's upsert).
    let (status, _) = call(
        &server.admin(),
        Method::POST,
        "dev/encrypt/new",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.vault().list_keys("dev").unwrap(), ["k", "new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_certificate_and_policies_without_dropping_connections() {
    let carol = principal("svc/carol");
    let server = TestServer::new().await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    server
        .vault()
        .create_tenant("other", &TenantSpec::default())
        .unwrap();

    // A keep-alive connection of carol's, held across the reload.
    let mut held = server.http1_as(&carol).await;
    let encrypt = json!({"plaintext": b64("x")});
    let (status, _) = held
        .send("POST", "dev/encrypt/k", Some(&encrypt))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "no policy names carol yet");
    assert_eq!(held.peer_certificate, server.server_cert.cert_der);

    // New server certificate and key, and a policy that grants carol `dev`.
    let new_cert = server
        .ca
        .issue_server(&["localhost", "127.0.0.1"], DAY)
        .unwrap();
    crate::common::server::write(&server.path("server.pem"), &new_cert.cert_pem);
    crate::common::server::write(&server.path("server-key.pem"), &new_cert.key_pem);
    server.write_policy(
        "carol.toml",
        &format!(
            "[[grant]]\nprincipals = [\"{carol}\"]\ntenant = \"dev\"\nkeys = [\"*\"]\noperations = [\"encrypt\", \"decrypt\"]\n"
        ),
    );
    let report = server.reload();
    report.tls.expect("the new certificate loads");
    report.policies.expect("the new policies load");

    // The held connection is still open, and the new policy governs its next request.
    let (status, body) = held
        .send("POST", "dev/encrypt/k", Some(&encrypt))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!held.driver.is_finished());
    // A new handshake sees the new certificate.
    let fresh = server.connect_as(&carol).await;
    assert_eq!(peer_certificate(&fresh), new_cert.cert_der);
    assert_ne!(new_cert.cert_der, server.server_cert.cert_der);
    let mut fresh = Http1::over(fresh).await;
    let (status, _) = fresh
        .send("POST", "dev/encrypt/k", Some(&encrypt))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    // A broken policy file is refused as a whole; the previous set still governs.
    server.write_policy(
        "carol.toml",
        &format!(
            "[[grant]]\nprincipals = [\"{carol}\"]\ntenant = \"other\"\nkeys = [\"*\"]\noperations = [\"encrypt\", \"teleport\"]\n"
        ),
    );
    let report = server.reload();
    assert!(report.tls.is_ok());
    let err = report
        .policies
        .expect_err("a broken policy set must be refused");
    assert!(err.to_string().contains("carol.toml"), "{err}");
    assert!(err.to_string().contains("teleport"), "{err}");
    let (status, _) = held
        .send("POST", "dev/encrypt/k", Some(&encrypt))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "the old grant still holds");
    let (status, _) = held
        .send("POST", "other/encrypt/k", Some(&encrypt))
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "nothing of the refused set applies"
    );
    // A file that does not parse at all is refused too.
    server.write_policy("zz.toml", "[[grant]\nprincipals = ");
    assert!(server.reload().policies.is_err());
    let (status, _) = held
        .send("POST", "dev/encrypt/k", Some(&encrypt))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    // Removing carol's grant (a valid set again) takes effect on the same open connection.
    std::fs::remove_file(server.path("policies/zz.toml")).unwrap();
    server.write_policy("carol.toml", "");
    server.write_policy("admin.toml", ADMIN_POLICY);
    server.reload().policies.expect("valid again");
    let (status, _) = held
        .send("POST", "dev/encrypt/k", Some(&encrypt))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A broken certificate file is refused; the current one keeps serving.
    crate::common::server::write(&server.path("server.pem"), "not a certificate");
    let report = server.reload();
    assert!(report.tls.is_err());
    let after = connect(
        server.addr(),
        tls_config(
            &server.ca,
            Some(&server.ca.issue_client(ADMIN, DAY).unwrap()),
        ),
    )
    .await
    .unwrap();
    assert_eq!(peer_certificate(&after), new_cert.cert_der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_grant_answers_429_with_retry_after_and_changes_nothing() {
    let dave = principal("svc/dave");
    let grants = format!(
        r#"
[[grant]]
principals = ["{dave}"]
tenant = "dev"
keys = ["*"]
operations = ["rotate", "encrypt"]
rate_limit = {{ requests_per_second = 0.01, burst = 2 }}
"#
    );
    let server = TestServer::start(Options::default().policy("dave.toml", &grants)).await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    let mut conn = server.http1_as(&dave).await;
    for _ in 0..2 {
        let (status, body) = conn.send("POST", "dev/keys/k/rotate", None).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = conn.send("POST", "dev/keys/k/rotate", None).await.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(error_message(&body).contains("rate limit"), "{body}");
    let retry_after: u64 = conn.last_headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry_after), "{retry_after}");
    assert_eq!(
        server.vault().key_info("dev", "k").unwrap().latest_version,
        3,
        "the refused rotate rotated"
    );
    // The bucket is dave's: the admin is not limited.
    let (status, _) = call(&server.admin(), Method::POST, "dev/keys/k/rotate", None).await;
    assert_eq!(status, StatusCode::OK);
    // A reload starts fresh buckets.
    server.reload().policies.unwrap();
    let (status, _) = conn
        .send(
            "POST",
            "dev/encrypt/k",
            Some(&json!({"plaintext": b64("x")})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_addresses_and_tenant_binding_are_enforced() {
    let erin = principal("svc/erin");
    let frank = principal("svc/frank");
    let grants = format!(
        r#"
[[grant]]
principals = ["{erin}"]
tenant = "alpha"
keys = ["*"]
operations = ["encrypt", "decrypt"]
allowed_cidrs = ["10.0.0.0/8"]

[[grant]]
principals = ["{frank}"]
tenant = "alpha"
keys = ["*"]
operations = ["encrypt", "decrypt"]
allowed_cidrs = ["127.0.0.0/8"]
"#
    );
    let server = TestServer::start(
        Options::default()
            .tenants(&["alpha", "beta"])
            .policy("cidr.toml", &grants),
    )
    .await;
    for tenant in ["alpha", "beta"] {
        server
            .vault()
            .create_key(tenant, "k", KeySpec::default())
            .unwrap();
    }
    let plaintext = json!({"plaintext": b64("x")});
    // Loopback is outside erin's networks and inside frank's.
    let (status, body) = call(
        &server.client(&erin),
        Method::POST,
        "alpha/encrypt/k",
        Some(plaintext.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        error_message(&body).contains("not from this address"),
        "{body}"
    );
    let (status, body) = call(
        &server.client(&frank),
        Method::POST,
        "alpha/encrypt/k",
        Some(plaintext.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A ciphertext of alpha/k does not open under beta/k (same key name, other tenant).
    let ciphertext = body["data"]["ciphertext"].clone();
    let admin = server.admin();
    let (status, body) = call(
        &admin,
        Method::POST,
        "beta/decrypt/k",
        Some(json!({"ciphertext": ciphertext})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &admin,
        Method::POST,
        "alpha/decrypt/k",
        Some(json!({"ciphertext": ciphertext})),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["plaintext"]),
        (StatusCode::OK, &json!(b64("x")))
    );
}
