//! Attacks from outside, over the real API and real mutual TLS: HTTP/2 multiplexing against the
//! connection limit, odd methods, names and encodings against the router and the policy, bodies
//! that try to confuse the decoder, and a sealed vault. Each attack that held is pinned here so
//! that it keeps holding.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use serde_json::{Value, json};
use tresor_core::KeySpec;

use crate::common::server::{
    ADMIN, Options, TestServer, b64, connect, error_message, list, principal, refused, tls_config,
};

/// A request body that sends `first` and then never another byte (nor its end).
struct Stalled(Option<Bytes>);

impl Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(first) => Poll::Ready(Some(Ok(Frame::data(first)))),
            None => Poll::Pending,
        }
    }
}

/// Either a complete body or a stalled one, so one HTTP/2 connection can carry both.
enum TestBody {
    Full(Option<Bytes>),
    Stalled(Stalled),
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            TestBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Stalled(stalled) => Pin::new(stalled).poll_frame(cx),
        }
    }
}

/// The test CA's client configuration as `principal`, offering only HTTP/2.
fn h2_config(server: &TestServer, principal: &str) -> Arc<ClientConfig> {
    let cert = server
        .ca
        .issue_client(principal, Duration::from_secs(3600))
        .unwrap();
    let mut config = (*tls_config(&server.ca, Some(&cert))).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// An HTTP/2 connection as `principal`.
async fn h2_as(
    server: &TestServer,
    principal: &str,
) -> (
    hyper::client::conn::http2::SendRequest<TestBody>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = connect(server.addr(), h2_config(server, principal))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    (sender, tokio::spawn(connection))
}

fn h2_request(method: Method, path: &str, body: TestBody) -> Request<TestBody> {
    Request::builder()
        .method(method)
        .uri(format!("https://localhost/v1/{path}"))
        .body(body)
        .unwrap()
}

async fn h2_send(
    sender: &mut hyper::client::conn::http2::SendRequest<TestBody>,
    method: Method,
    path: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    sender.ready().await.unwrap();
    let response = sender
        .send_request(h2_request(
            method,
            path,
            TestBody::Full(Some(Bytes::copy_from_slice(body))),
        ))
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// HTTP/2 multiplexes requests over one connection. If each stream were free, one connection
/// (one slot of `max_connections`) could hold hundreds of requests, each buffering up to
/// `max_body_bytes`: the connection limit would bound nothing. Every request in flight beyond a
/// connection's first takes a slot of its own; with none left it is refused and nothing else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_do_not_bypass_max_connections() {
    let server = TestServer::start(
        Options::default()
            .limit("max_connections = 3")
            .limit("body_read_timeout = 60"),
    )
    .await;
    let (mut h2, h2_connection) = h2_as(&server, ADMIN).await;
    let (status, body) = h2_send(&mut h2, Method::GET, "sys/health", b"").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Three requests whose bodies stall: they stay in flight, each holding what it has read.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        h2.ready().await.unwrap();
        let request = h2_request(
            Method::POST,
            "dev/encrypt/k",
            TestBody::Stalled(Stalled(Some(Bytes::from_static(b"{\"plaintext\": \"")))),
        );
        stalled.push(h2.send_request(request));
    }
    let pending: Vec<_> = stalled.into_iter().map(tokio::spawn).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Three requests in flight fill max_connections = 3: a fourth stream is refused, clearly.
    let (status, body) = h2_send(&mut h2, Method::GET, "sys/health", b"").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["errors"][0].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("limits.max_connections"), "{body}");
    // And so is a new connection: the streams hold the slots connections would.
    let cert = server
        .ca
        .issue_client(ADMIN, Duration::from_secs(3600))
        .unwrap();
    assert!(refused(server.connect(Some(&cert)).await).await);
    assert!(server.handle.stats().refused_connections() >= 2);

    // Once the stalled requests end (their connection closes), their slots are free again.
    h2_connection.abort();
    for task in &pending {
        task.abort();
    }
    drop(h2);
    // The server learns of the close when it next reads: wait for that, however loaded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.handle.stats().open_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "the aborted connection never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut h2, _connection) = h2_as(&server, ADMIN).await;
    let (status, body) = h2_send(&mut h2, Method::GET, "sys/health", b"").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!server.vault().is_sealed());
}

/// `sys/health` lets the caller choose its status codes (as Vault does). A 1xx is not a final
/// answer: over HTTP/2 it made the server break the protocol and lose the whole connection (every
/// stream on it), over HTTP/1.1 the connection; 204 and 304 went out with a body they cannot
/// have. Now a 1xx is refused (400) and 204/304 come without a body, and the connection lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_status_overrides_cannot_break_the_connection() {
    let server = TestServer::new().await;
    let (mut h2, h2_connection) = h2_as(&server, ADMIN).await;
    let mut h1 = server.http1_as(ADMIN).await;
    for code in ["100", "101", "103", "199", "0", "600"] {
        let path = format!("sys/health?activecode={code}");
        let (status, _) = h2_send(&mut h2, Method::GET, &path, b"").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "h2 {code}");
        let (status, _) = h1.send("GET", &path, None).await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "h1 {code}");
    }
    for code in [204u16, 205, 304] {
        let path = format!("sys/health?activecode={code}");
        let (status, body) = h2_send(&mut h2, Method::GET, &path, b"").await;
        assert_eq!(status.as_u16(), code);
        assert_eq!(body, Value::Null);
        let (status, body) = h1.send("GET", &path, None).await.unwrap();
        assert_eq!(status.as_u16(), code);
        assert_eq!(body, Value::Null);
    }
    // Both connections still serve.
    let (status, body) = h2_send(&mut h2, Method::GET, "sys/health?activecode=299", b"").await;
    assert_eq!(status.as_u16(), 299, "{body}");
    assert_eq!(body["sealed"], false);
    let (status, body) = h1.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!h2_connection.is_finished() && !h1.driver.is_finished());
}

/// `partial_failure_response_code` picks the status of a batch that failed in part. It took
/// 1xx codes, which made the server send a non-final response (over HTTP/2 a protocol error
/// that tore the whole connection down), and 204, 205 and 304, which cannot carry the batch
/// results they were sent with. Now the code must be a status that carries a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failure_codes_cannot_break_the_connection() {
    let server = TestServer::new().await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    let (mut h2, h2_connection) = h2_as(&server, ADMIN).await;
    let mut h1 = server.http1_as(ADMIN).await;
    let batch = |code: &str| {
        json!({
            "batch_input": [{"plaintext": b64("x")}, {"plaintext": "!"}],
            "partial_failure_response_code": code,
        })
    };
    for code in ["100", "101", "150", "199", "204", "205", "304"] {
        let body = batch(code).to_string();
        let (status, answer) =
            h2_send(&mut h2, Method::POST, "dev/encrypt/k", body.as_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "h2 {code}: {answer}");
        assert!(
            error_message(&answer).contains("partial_failure_response_code"),
            "{answer}"
        );
        let (status, _) = h1
            .send("POST", "dev/decrypt/k", Some(&batch(code)))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "h1 {code}");
    }
    // A code with a body still works, and both connections still serve.
    let body = batch("207").to_string();
    let (status, answer) = h2_send(&mut h2, Method::POST, "dev/encrypt/k", body.as_bytes()).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{answer}");
    assert!(answer["data"]["batch_results"][0]["ciphertext"].is_string());
    let (status, _) = h1.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!h2_connection.is_finished() && !h1.driver.is_finished());
}

/// Tresor's own routes refuse unknown fields and name them. The name is the caller's text, and
/// it went back whole into the answer and into the audit line's reason: a tenant's custodian
/// (one grant, `tenant-unlock`) could write megabytes of its own text into the audit trail with
/// each request. Now a long name is cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_field_names_are_not_echoed_at_length() {
    let custodian = principal("dev-custodian");
    let grant = format!(
        r#"
[[grant]]
principals = ["{custodian}"]
tenant = "dev"
operations = ["tenant-unlock"]
"#
    );
    let server = TestServer::start(Options::default().policy("dev.toml", &grant)).await;
    let name = format!("planted{}", "x".repeat(100_000));
    let body: Value = serde_json::from_str(&format!("{{\"{name}\": 1}}")).unwrap();
    let client = server.client(&custodian);
    let (status, answer) = client
        .raw(Method::POST, "sys/tenants/dev/unlock", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = error_message(&answer);
    assert!(message.contains("unknown field `plantedxxx"), "{message}");
    assert!(message.len() < 400, "{} bytes", message.len());
    // Operators' routes too.
    let admin = server.admin();
    for path in [
        "sys/tenants/newt",
        "sys/unseal",
        "sys/approvals/abc/approve",
    ] {
        let (status, answer) = admin.raw(Method::POST, path, Some(&body)).await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(error_message(&answer).len() < 400, "{path}");
    }
    let audit = std::fs::read_to_string(server.path("audit.log")).unwrap();
    assert!(audit.contains("unknown field `plantedxxx"));
    assert!(
        !audit.contains(&name[..1000]),
        "the audit trail holds the caller's text"
    );
}

/// What held, pinned: names and encodings the router and the policy must read the same way,
/// odd methods, duplicate and deep JSON, another tenant's ciphertext, and the sealed vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_policy_and_decoder_attacks_are_refused_and_change_nothing() {
    let alice = principal("svc/alpha");
    let grant = format!(
        r#"
[[grant]]
principals = ["{alice}"]
tenant = "alpha"
keys = ["pay*"]
operations = ["encrypt", "decrypt", "list"]
"#
    );
    let server = TestServer::start(
        Options::default()
            .tenants(&["alpha", "beta"])
            .policy("alpha.toml", &grant),
    )
    .await;
    let vault = server.vault();
    for (tenant, key) in [("alpha", "pay"), ("alpha", "other"), ("beta", "pay")] {
        vault.create_key(tenant, key, KeySpec::default()).unwrap();
    }
    let client = server.client(&alice);
    let call = |method: Method, path: &str, body: Option<Value>| {
        let client = &client;
        let path = path.to_owned();
        async move { client.raw(method, &path, body.as_ref()).await.unwrap() }
    };
    let plaintext = json!({"plaintext": b64("x")});

    // Encodings and look-alikes never reach another key, tenant or mount: the router takes the
    // raw path, and the policy decides on what the router decided.
    for path in [
        "alpha/encrypt/pay%2F..%2Fother",
        "alpha/encrypt/pay%00",
        "alpha/encrypt/%6F%74%68%65%72",
        "alpha/encrypt/pay/../other",
        "alpha/encrypt/..",
        "alpha/encrypt/.",
        "alpha/encrypt/pаy", // Cyrillic а
        "alpha/encrypt/ⓟay",
        "alpha%2Fencrypt/pay",
        "%61lpha/encrypt/pay",
        "Alpha/encrypt/pay",
        "beta%00/encrypt/pay",
        "./alpha/encrypt/pay",
        "../beta/encrypt/pay",
        "sys/../beta/encrypt/pay",
        "pins/../beta/encrypt/pay",
        "sys/encrypt/pay",
        "pins/encrypt/pay",
        "SYS/health",
        "alpha//encrypt/pay",
    ] {
        let (status, body) = call(Method::POST, path, Some(plaintext.clone())).await;
        assert!(
            [400, 403, 404, 405].contains(&status.as_u16()),
            "{path}: {status} {body}"
        );
    }
    let long_key = format!("pay{}", "a".repeat(200));
    let (status, body) = call(
        Method::POST,
        &format!("alpha/encrypt/{long_key}"),
        Some(plaintext.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = call(
        Method::POST,
        &format!("{}/encrypt/pay", "a".repeat(64)),
        Some(plaintext.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Globs: `pay*` covers payroll (a key it may create? no: no `create`), not PAY or xpay.
    for key in ["PAY", "xpay", "other"] {
        let (status, body) = call(
            Method::POST,
            &format!("alpha/encrypt/{key}"),
            Some(plaintext.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{key}: {body}");
    }
    let (status, body) = call(
        Method::POST,
        "alpha/encrypt/payroll",
        Some(plaintext.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // LIST and GET ?list=true decide alike; GET without it is a read, which is not granted.
    assert_eq!(call(list(), "alpha/keys", None).await.0, StatusCode::OK);
    assert_eq!(
        call(Method::GET, "alpha/keys?list=true", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, "alpha/keys/pay", None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(list(), "beta/keys", None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(Method::GET, "beta/keys?list=true", None).await.0,
        StatusCode::FORBIDDEN
    );
    // Odd methods: 405, never a different operation.
    for method in ["HEAD", "OPTIONS", "PATCH", "TRACE", "list", "FOO"] {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, _) = call(method.clone(), "alpha/encrypt/pay", Some(plaintext.clone())).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    // A query string does not turn a POST into a LIST.
    let (status, body) = call(Method::POST, "alpha/keys?list=true", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");

    // Duplicate keys are refused, not resolved one way here and another way there.
    let mut conn = server.http1_as(&alice).await;
    for body in [
        r#"{"plaintext":"YQ==","plaintext":"Yg=="}"#,
        r#"{"batch_input":[{"plaintext":"YQ==","plaintext":"Yg=="}]}"#,
        r#"{"plaintext":"YQ==","key_version":1,"key_version":2}"#,
    ] {
        let (status, answer) = conn
            .send_bytes("POST", "alpha/encrypt/pay", body.as_bytes().to_vec())
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error_message(&answer).contains("duplicate field"),
            "{answer}"
        );
    }
    // Deep nesting, huge and negative numbers, wrong item types: refused or ignored, no crash.
    let deep = format!(
        "{{\"plaintext\":\"YQ==\",\"x\":{}{}}}",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let (status, _) = conn
        .send_bytes("POST", "alpha/encrypt/pay", deep.into_bytes())
        .await
        .unwrap();
    assert!(
        status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
        "{status}"
    );
    let deep = format!(
        "{{\"batch_input\":{}{}}}",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let (status, _) = conn
        .send_bytes("POST", "alpha/encrypt/pay", deep.into_bytes())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for body in [
        json!({"plaintext": b64("x"), "key_version": 4_294_967_296u64}),
        json!({"plaintext": b64("x"), "key_version": -1}),
        json!({"plaintext": b64("x"), "key_version": 1e300}),
        json!({"plaintext": b64("x"), "key_version": "99999999999999999999999"}),
        json!({"batch_input": []}),
        json!({"batch_input": [1, "a", null]}),
        json!({"batch_input": {"plaintext": b64("x")}}),
    ] {
        let (status, answer) = call(Method::POST, "alpha/encrypt/pay", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    assert_eq!(vault.key_info("alpha", "pay").unwrap().latest_version, 1);

    // Another tenant's ciphertext under the same key name does not decrypt (the AAD binds the
    // tenant), and the refusal says nothing about the plaintext.
    let admin = server.admin();
    let secret = "the-beta-secret-4111111111111111";
    let (_, body) = admin
        .raw(
            Method::POST,
            "beta/encrypt/pay",
            Some(&json!({"plaintext": b64(secret)})),
        )
        .await
        .unwrap();
    let ciphertext = body["data"]["ciphertext"].as_str().unwrap().to_owned();
    for path in ["alpha/decrypt/pay"] {
        let (status, answer) =
            call(Method::POST, path, Some(json!({"ciphertext": ciphertext}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            error_message(&answer).contains("authentication failed"),
            "{answer}"
        );
        assert!(!answer.to_string().contains(&b64(secret)[..16]));
    }

    // Sealed: every route but health, seal-status, init status and unseal answers 503 (or is
    // refused before it could do anything) and nothing changes.
    let before = (
        vault.list_tenants().unwrap(),
        vault.list_keys("alpha").unwrap(),
    );
    vault.seal();
    let sealed_routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "alpha/encrypt/pay", Some(plaintext.clone())),
        (Method::POST, "alpha/encrypt/new", Some(plaintext.clone())),
        (Method::POST, "alpha/keys/new", None),
        (Method::POST, "alpha/keys/pay/rotate", None),
        (
            Method::POST,
            "alpha/decrypt/pay",
            Some(json!({"ciphertext": ciphertext})),
        ),
        (list(), "alpha/keys", None),
        (list(), "sys/tenants", None),
        (Method::POST, "sys/tenants/gamma", Some(json!({}))),
        (Method::GET, "sys/tenants/alpha", None),
        (Method::DELETE, "sys/tenants/alpha", None),
        (list(), "sys/approvals", None),
        (
            Method::POST,
            "sys/audit/hash",
            Some(json!({"input": b64("x")})),
        ),
        (list(), "pins", None),
        (Method::POST, "sys/rotate-root", None),
    ];
    for (method, path, body) in sealed_routes {
        let (status, answer) = admin
            .raw(method.clone(), path, body.as_ref())
            .await
            .unwrap();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {answer}"
        );
    }
    let (status, _) = admin.raw(Method::GET, "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = admin
        .raw(Method::GET, "sys/seal-status", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sealed"], true);
    // Health and seal status say nothing more to a stranger than to the admin.
    let stranger = server.client(&principal("nobody"));
    assert_eq!(
        stranger
            .raw(Method::GET, "sys/seal-status", None)
            .await
            .unwrap()
            .1,
        body
    );
    assert_eq!(
        stranger
            .raw(Method::GET, "sys/metrics", None)
            .await
            .unwrap()
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = admin
        .raw(Method::GET, "sys/unseal-share/api-test-custodian", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    server.unseal();
    assert_eq!(
        before,
        (
            vault.list_tenants().unwrap(),
            vault.list_keys("alpha").unwrap()
        )
    );
    assert_eq!(vault.key_info("alpha", "pay").unwrap().latest_version, 1);
}

/// Slow-loris over HTTP/2. Only a connection's first request head is timed
/// (`header_read_timeout`); after it, an idle connection is closed gracefully at `idle_timeout`.
/// A client that leaves a header block unfinished (HEADERS without END_HEADERS, no CONTINUATION)
/// kept that graceful close from ever completing: the connection, and its slot of
/// `max_connections`, was held for good. An idle connection asked to close now gets
/// `header_read_timeout` more, then is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_http2_header_block_does_not_hold_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(
        Options::default()
            .limit("idle_timeout = 2")
            .limit("header_read_timeout = 1"),
    )
    .await;
    // GET /v1/sys/health in HPACK: :method GET, :scheme https (static table), :path and
    // :authority as literals with indexed names.
    let mut block = vec![0x82, 0x87, 0x44, 14];
    block.extend_from_slice(b"/v1/sys/health");
    block.extend_from_slice(&[0x41, 9]);
    block.extend_from_slice(b"localhost");
    for unfinished in [false, true] {
        let mut stream = connect(server.addr(), h2_config(&server, ADMIN))
            .await
            .unwrap();
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(FRAME_SETTINGS, 0, 0, b""));
        // A complete request first: after it, request heads are no longer timed.
        out.extend(frame(FRAME_HEADERS, END_STREAM | END_HEADERS, 1, &block));
        stream.write_all(&out).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream
            .write_all(&frame(FRAME_SETTINGS, ACK, 0, b""))
            .await
            .unwrap();
        if unfinished {
            // The start of a header block that never ends.
            stream
                .write_all(&frame(FRAME_HEADERS, END_STREAM, 3, &block[..2]))
                .await
                .unwrap();
        }
        let started = std::time::Instant::now();
        let mut buf = [0u8; 4096];
        let mut answered = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answered += n,
                Err(_) => panic!(
                    "unfinished={unfinished}: the connection is still open {:?} after its last request (idle_timeout 2 s)",
                    started.elapsed()
                ),
            }
        }
        assert!(answered > 0, "the first request was not answered");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "unfinished={unfinished}: closed only after {:?}",
            started.elapsed()
        );
    }
    assert!(!server.vault().is_sealed());
}

const FRAME_HEADERS: u8 = 0x1;
const FRAME_SETTINGS: u8 = 0x4;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One raw HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Issue 15: RFC 9112 requires a 400 for an HTTP/1.1 request without a Host header or with
/// several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_needs_exactly_one_host_header() {
    let server = TestServer::new().await;
    let cases: [(&str, u16, &str); 4] = [
        ("", 400, "needs a Host header"),
        ("host: a\r\nhost: b\r\n", 400, "only one Host header"),
        ("host: a\r\nHOST: a\r\n", 400, "only one Host header"),
        ("host: localhost\r\n", 200, ""),
    ];
    for (headers, expected, message) in cases {
        let mut stream = server.connect_as(ADMIN).await;
        let request = format!("GET /v1/sys/health HTTP/1.1\r\n{headers}connection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .unwrap();
        let (status, body) =
            crate::common::server::read_response(&mut stream, Duration::from_secs(10)).await;
        assert_eq!(status, expected, "{headers:?}: {body}");
        assert!(
            error_message(&body).contains(message),
            "{headers:?}: {body}"
        );
    }
}

/// Issue 12 of the conformance issue (15): slow, partial ClientHellos from one address (200 of
/// them, re-opened as the server drops them) must not make the clients behind the same address
/// (a NAT, a sidecar) wait: slow handshakes hurt themselves only. A generous bound, far below
/// the throttle's delay that used to apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handshakes_do_not_slow_completed_ones() {
    let server = TestServer::start(
        Options::default()
            .limit("handshake_timeout = 1")
            .limit("handshake_failure_max_delay = 60"),
    )
    .await;
    let addr = server.addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let stop = stop.clone();
        attackers.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // A handshake record header announcing 512 bytes, and 2 of them.
                let _ = tcp
                    .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
                    .await;
                let mut buf = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
            }
        });
    }
    // Let the slow handshakes time out, many times over the allowance of failures.
    server.wait_for_handshake_failures("timeout", 100).await;
    let files = server.issue(ADMIN);
    for i in 0..5 {
        // A new client each time: a new connection, a new handshake.
        let client = server.client_with(&files);
        let answered = tokio::time::timeout(Duration::from_secs(15), client.health()).await;
        let (status, _) = answered
            .unwrap_or_else(|_| panic!("request {i} got no answer within 15 s during the attack"))
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attackers.shutdown().await;
}
