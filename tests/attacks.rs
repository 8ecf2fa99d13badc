//! Attacks from outside, over the real API and real mutual TLS: HTTP/2 multiplexing against the
//! connection limit, odd methods, names and encodings against the router and the policy, bodies
//! that try to confuse the decoder, and a sealed vault. Each attack that held is pinned here so
//! that it keeps holding.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use serde_json::Value;

use common::server::{
    ADMIN, Options, TestServer, connect, error_message, principal, refused, tls_config,
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
    tokio::time::sleep(Duration::from_millis(800)).await;
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
    for code in [204u16, 304] {
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
