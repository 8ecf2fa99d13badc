//! Bad and abusive requests over real mutual TLS: malformed JSON, wrong types, non-base64,
//! unknown fields, oversized bodies, too many batch items, stalled headers and bodies, too many
//! connections, idle keep-alive connections. Each gets a clear refusal that names the problem,
//! changes nothing, and the server keeps serving everyone else meanwhile.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tresor_client::Client;
use tresor_core::KeySpec;

use crate::common::server::{
    ADMIN, Options, TestServer, b64, call, error_message, read_response, read_until_closed, refused,
};

/// The admin is still served, promptly.
async fn still_serving(server: &TestServer, client: &Client) {
    let started = Instant::now();
    let (status, body) = call(
        client,
        Method::POST,
        "dev/encrypt/k",
        Some(json!({"plaintext": b64("x")})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert!(!server.vault().is_sealed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    let server = TestServer::start(
        Options::default()
            .limit("max_body_bytes = 4096")
            .limit("max_batch_items = 3"),
    )
    .await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    let admin = server.admin();
    let mut conn = server.http1_as(ADMIN).await;

    // (body, expected status, words the message must contain), all on encrypt of a key that
    // does not exist yet: a refused request must not create it.
    let cases: Vec<(Vec<u8>, u16, Vec<&str>)> = vec![
        (b"{\"plaintext\": ".to_vec(), 400, vec!["malformed JSON", "line 1"]),
        (b"[1, 2]".to_vec(), 400, vec!["invalid"]),
        (b"\"plaintext\"".to_vec(), 400, vec!["invalid"]),
        (br#"{"plaintext": 5}"#.to_vec(), 400, vec!["invalid type", "integer"]),
        (br#"{"plaintext": "aGk=", "key_version": "two"}"#.to_vec(), 400, vec!["not an integer"]),
        (br#"{"plaintext": "aGk=", "convergent_encryption": "maybe"}"#.to_vec(), 400, vec!["boolean"]),
        (br#"{"batch_input": "aGk="}"#.to_vec(), 400, vec!["invalid type"]),
        (br#"{"batch_input": [{"plaintext": 5}]}"#.to_vec(), 400, vec!["invalid type"]),
        (br#"{"plaintext": "not base64!"}"#.to_vec(), 400, vec!["invalid plaintext", "illegal base64 data at input byte 3"]),
        (br#"{"plaintext": "aGk"}"#.to_vec(), 400, vec!["invalid plaintext", "illegal base64"]),
        (br#"{"plaintext": "aGk=", "context": "%%"}"#.to_vec(), 400, vec!["invalid context", "illegal base64"]),
        (br#"{"plaintext": "aGk=", "associated_data": "a b"}"#.to_vec(), 400, vec!["invalid associated_data"]),
        (br#"{}"#.to_vec(), 400, vec!["missing plaintext"]),
        (br#"{"batch_input": []}"#.to_vec(), 400, vec!["missing batch input"]),
        (
            json!({"batch_input": [{"plaintext": ""}, {"plaintext": ""}, {"plaintext": ""}, {"plaintext": ""}]})
                .to_string()
                .into_bytes(),
            400,
            vec!["4 items", "limits.max_batch_items", "3"],
        ),
        (br#"{"plaintext": "aGk=", "type": "rsa-2048"}"#.to_vec(), 400, vec!["unknown key type rsa-2048"]),
        (br#"{"plaintext": "aGk=", "nonce": "AAAAAAAAAAAAAAAA"}"#.to_vec(), 400, vec!["nonce"]),
        (
            json!({"plaintext": b64(vec![b'a'; 4000])}).to_string().into_bytes(),
            413,
            vec!["limits.max_body_bytes", "4096"],
        ),
    ];
    for (body, status, words) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let (got, answer) = conn
            .send_bytes("POST", "dev/encrypt/new", body)
            .await
            .unwrap_or_else(|e| panic!("{shown}: the connection failed: {e}"));
        assert_eq!(got.as_u16(), status, "{shown}: {answer}");
        let message = error_message(&answer);
        for word in words {
            assert!(
                message.contains(word),
                "{shown}: `{message}` lacks `{word}`"
            );
        }
        assert!(
            !message.contains("not base64!") && !message.contains("aGk"),
            "{shown}: the message echoes the input: {message}"
        );
        assert_eq!(
            server.vault().list_keys("dev").unwrap(),
            ["k"],
            "{shown} created a key"
        );
        if conn.driver.is_finished() {
            // A refusal before the body was read (413) may end the connection; take another.
            conn = server.http1_as(ADMIN).await;
        }
    }
    still_serving(&server, &admin).await;

    // An oversized body without Content-Length (chunked) is cut off at the limit too.
    let mut raw = server.connect_as(ADMIN).await;
    let chunk = vec![b'a'; 5000];
    let mut request = b"POST /v1/dev/encrypt/new HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    raw.write_all(&request).await.unwrap();
    let (status, answer) = read_response(&mut raw, Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        error_message(&answer).contains("limits.max_body_bytes"),
        "{answer}"
    );
    assert_eq!(server.vault().list_keys("dev").unwrap(), ["k"]);

    // Unknown fields: refused on Tresor's own routes (nothing created), ignored on Vault's.
    let (status, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/newt",
        Some(json!({"level": 2, "colour": "red"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).contains("unknown field `colour`"),
        "{body}"
    );
    assert_eq!(server.vault().list_tenants().unwrap(), ["dev"]);
    let (status, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/newt",
        Some(json!({"level": "9"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("level"), "{body}");
    assert_eq!(server.vault().list_tenants().unwrap(), ["dev"]);
    let (status, body) = call(
        &admin,
        Method::POST,
        "dev/encrypt/k",
        Some(json!({"plaintext": b64("x"), "colour": "red", "batch_size": 9})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &admin,
        Method::POST,
        "dev/keys/k/config",
        Some(json!({"deletion_allowed": true, "colour": "red"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // And the same sys route with only known fields works.
    let (status, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/newt",
        Some(json!({"level": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Vault clients send no Content-Type and empty bodies.
    let (status, body) = conn
        .send_bytes("POST", "dev/keys/k/rotate", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    still_serving(&server, &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_header_is_cut_off_while_others_are_served() {
    let server = TestServer::start(
        Options::default()
            .limit("header_read_timeout = 1")
            .limit("idle_timeout = 30"),
    )
    .await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    let admin = server.admin();

    let mut stalled = server.connect_as(ADMIN).await;
    stalled.write_all(b"GET /v1/sys/hea").await.unwrap();
    stalled.flush().await.unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        still_serving(&server, &admin).await;
    }
    let got = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "closed after {waited:?}");
    let got = String::from_utf8_lossy(&got);
    assert!(
        !got.contains(" 200 "),
        "a stalled request was answered: {got}"
    );
    still_serving(&server, &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_changes_nothing() {
    let server = TestServer::start(Options::default().limit("body_read_timeout = 1")).await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    let admin = server.admin();

    let mut stalled = server.connect_as(ADMIN).await;
    stalled
        .write_all(b"POST /v1/dev/encrypt/new HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"plaintext\":")
        .await
        .unwrap();
    let started = Instant::now();
    still_serving(&server, &admin).await;
    let (status, body) = read_response(&mut stalled, Duration::from_secs(5)).await;
    assert_eq!(status, 408, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(800));
    let message = error_message(&body);
    assert!(
        message.contains("limits.body_read_timeout") && message.contains("1s"),
        "{message}"
    );
    assert_eq!(
        server.vault().list_keys("dev").unwrap(),
        ["k"],
        "the key was created anyway"
    );
    still_serving(&server, &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_and_counted() {
    let server = TestServer::start(Options::default().limit("max_connections = 2")).await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();

    let mut first = server.http1_as(ADMIN).await;
    let mut second = server.http1_as(ADMIN).await;
    for conn in [&mut first, &mut second] {
        let (status, _) = conn.send("GET", "sys/health", None).await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(server.handle.stats().open_connections(), 2);
    assert_eq!(server.handle.stats().refused_connections(), 0);

    let cert = server
        .ca
        .issue_client(ADMIN, Duration::from_secs(3600))
        .unwrap();
    assert!(refused(server.connect(Some(&cert)).await).await);
    assert!(server.admin().health().await.is_err());
    assert!(server.handle.stats().refused_connections() >= 2);
    // The open ones are still served.
    let (status, _) = first.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // Once one closes, a new connection gets in.
    second.driver.abort();
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if !refused(server.connect(Some(&cert)).await).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection got in after one closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = first.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::start(
        Options::default()
            .limit("idle_timeout = 1")
            .limit("header_read_timeout = 10"),
    )
    .await;
    // A busy connection stays open past the idle timeout.
    let mut busy = server.http1_as(ADMIN).await;
    let mut idle = server.http1_as(ADMIN).await;
    let (status, _) = idle.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        let (status, _) = busy.send("GET", "sys/health", None).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        idle.driver.is_finished(),
        "the idle connection is still open after 2.5 s"
    );
    assert!(!busy.driver.is_finished(), "the busy connection was closed");
    assert!(
        busy.closed_within(Duration::from_secs(3)).await,
        "and it closes once idle"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.handle.stats().open_connections() > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_cut_off_at_the_header_timeout() {
    // The slow-loris guard covers a client that completes the handshake and then sends no
    // byte at all, not only one that sends part of a request line.
    let server = TestServer::start(
        Options::default()
            .limit("header_read_timeout = 1")
            .limit("idle_timeout = 30"),
    )
    .await;
    let mut silent = server.connect_as(ADMIN).await;
    let started = Instant::now();
    let got = read_until_closed(&mut silent, Duration::from_secs(4)).await;
    assert!(got.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_lives_until_idle_timeout_not_header_timeout() {
    // idle_timeout, not header_read_timeout, decides how long a keep-alive connection may wait
    // for its next request.
    let server = TestServer::start(
        Options::default()
            .limit("header_read_timeout = 1")
            .limit("idle_timeout = 2"),
    )
    .await;
    let mut conn = server.http1_as(ADMIN).await;
    let (status, _) = conn.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !conn.driver.is_finished(),
        "closed after 1.5 s idle, before idle_timeout"
    );
    let (status, _) = conn.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    assert!(conn.closed_within(Duration::from_secs(4)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_request_finish_then_seals() {
    let server = TestServer::new().await;
    server
        .vault()
        .create_key("dev", "k", KeySpec::default())
        .unwrap();
    let mut in_flight = server.connect_as(ADMIN).await;
    let body = br#"{"plaintext":"aGk="}"#;
    in_flight
        .write_all(
            format!(
                "POST /v1/dev/encrypt/k HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    in_flight.write_all(&body[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let vault = server.vault().clone();
    let addr = server.addr();
    let shutdown = tokio::spawn(server.shutdown());
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 10 s after shutdown began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!vault.is_sealed(), "sealed under an in-flight request");
    in_flight.write_all(&body[5..]).await.unwrap();
    let (status, answer) = read_response(&mut in_flight, Duration::from_secs(5)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["data"]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("tresor:v1:")
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown finishes once the request is done")
        .unwrap();
    assert!(vault.is_sealed(), "keys are dropped at the end of shutdown");
}

/// Issue 15, point 5: a body over the limit is read and thrown away (up to a bound) so that a
/// client that sends it whole before reading gets the 413 (tests/server/hvac.rs); but not from a
/// client that waits for `100 Continue`, nor past the bound: those are answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_is_drained_only_when_on_its_way() {
    let server = TestServer::start(Options::default().limit("max_body_bytes = 4096")).await;
    for (headers, what) in [
        (
            "content-length: 100000\r\nexpect: 100-continue\r\n",
            "waits for 100 Continue",
        ),
        (
            "content-length: 1000000000000\r\n",
            "declares more than the drain bound",
        ),
    ] {
        let mut raw = server.connect_as(ADMIN).await;
        let head = format!("POST /v1/dev/encrypt/k HTTP/1.1\r\nhost: localhost\r\n{headers}\r\n");
        raw.write_all(head.as_bytes()).await.unwrap();
        // No body is sent: the answer comes anyway, and it is no 100 Continue.
        let (status, answer) = read_response(&mut raw, Duration::from_secs(10)).await;
        assert_eq!(status, 413, "{what}: {answer}");
        assert!(
            error_message(&answer).contains("limits.max_body_bytes"),
            "{what}: {answer}"
        );
    }
    // Sent whole without waiting, within the bound: read to its end, then answered, and the
    // connection stays usable.
    let mut conn = server.http1_as(ADMIN).await;
    let (status, answer) = conn
        .send_bytes("POST", "dev/encrypt/k", vec![b'a'; 200_000])
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 413, "{answer}");
    let (status, answer) = conn.send("GET", "sys/health", None).await.unwrap();
    assert_eq!(status.as_u16(), 200, "{answer}");
}
