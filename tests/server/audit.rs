//! Issue 6 acceptance, over the real server (mutual TLS on loopback, sled in a temporary
//! directory) and the real `tresor` binary: the audit trail records every request and refused
//! attempt, `tresor audit verify` accepts the log as written and names the line of every edit,
//! removal, reordering and truncation, no secret reaches the log, the server's own log output or
//! the data directory, the server fails closed when the audit log cannot be written and heals
//! when it can again, and refused requests change nothing and are counted in the metrics.

use crate::common::process::Bounded;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tresor_client::Client;

use crate::common::audit::{
    assert_names_line, assert_verifies, audit_hash, captured_logs, entries, field_edits,
    files_under, forger_key, leaks, line_hash, lines, metric, metrics, rechain, requests, resign,
    swap_symlink, until_the_log_path_is_checked, verify, with_field, write_lines, write_public_key,
};
use crate::common::dev::DevProcess;
use crate::common::server::{
    ADMIN, Options, TestServer, b64, call, error_message, principal, refused, unb64,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn ok(client: &Client, path: &str, body: Value) -> Value {
    let (status, reply) = call(client, Method::POST, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {reply}");
    reply
}

/// A value no other test and no key material could contain by chance.
fn distinctive(label: &str) -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{nanos:x}-{n}-do-not-log").into_bytes()
}

/// A distinctive value, remembered as a secret.
fn sent(secrets: &mut Vec<(String, Vec<u8>)>, name: &str) -> Vec<u8> {
    let value = distinctive(name);
    secrets.push((name.to_owned(), value.clone()));
    value
}

/// What the scripted session did, for the tests that examine its log.
struct Session {
    /// The server's directory (the server has shut down, so the log ends in `shutdown`).
    dir: tempfile::TempDir,
    /// Plaintexts, contexts, associated data, HMAC inputs sent, and key bytes received.
    secrets: Vec<(String, Vec<u8>)>,
    /// Values that may appear in the log only as audit HMACs, with the HMAC `tresor audit
    /// hash` computed for each while the server ran.
    hashed: Vec<(String, String, String)>,
    /// Request ids of replies, with what the line about each must say.
    expected: Vec<Expected>,
    /// The audit key `sys/seal-status` published.
    published_key: String,
}

impl Session {
    fn log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("audit.pub")
    }
}

/// What the audit line of one request must say.
#[derive(Debug, Clone)]
struct Expected {
    /// Known for replies with a body envelope; else the line is found by principal and status.
    request_id: Option<String>,
    principal: String,
    operation: &'static str,
    key: Option<&'static str>,
    status: u16,
    outcome: &'static str,
    key_version: Option<u64>,
    batch_items: Option<u64>,
    /// A `started` line (same request id) must come before it.
    started: bool,
}

impl Expected {
    fn ok(reply: &Value, operation: &'static str, key: &'static str) -> Expected {
        Expected {
            request_id: reply["request_id"].as_str().map(str::to_owned),
            principal: ADMIN.to_owned(),
            operation,
            key: Some(key),
            status: 200,
            outcome: "ok",
            key_version: None,
            batch_items: None,
            started: false,
        }
    }

    fn version(mut self, version: u64) -> Self {
        self.key_version = Some(version);
        self
    }

    fn batch(mut self, items: u64) -> Self {
        self.batch_items = Some(items);
        self
    }

    fn started(mut self) -> Self {
        self.started = true;
        self
    }
}

const CHECKPOINT_EVERY: usize = 9;

fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        captured_logs();
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(scripted_session())
        })
        .join()
        .unwrap()
    })
}

/// Every key route (single and batch forms), a policy denial, a refused source address, a
/// rate-limit hit, failed handshakes and an unrouted path; then shutdown.
async fn scripted_session() -> Session {
    let nobody = principal("svc/nobody");
    let outsider = principal("svc/outsider");
    let limited = principal("svc/limited");
    let grants = format!(
        r#"
[[grant]]
principals = ["{outsider}"]
tenant = "dev"
keys = ["*"]
operations = ["encrypt"]
allowed_cidrs = ["10.0.0.0/8"]

[[grant]]
principals = ["{limited}"]
tenant = "dev"
keys = ["*"]
operations = ["encrypt"]
rate_limit = {{ requests_per_second = 0.01, burst = 2 }}
"#
    );
    let server = TestServer::start(
        Options::default()
            .policy("grants.toml", &grants)
            .audit(&format!("checkpoint_every = {CHECKPOINT_EVERY}")),
    )
    .await;
    let admin = server.admin();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut expected = Vec::new();
    // Values that must appear only as audit HMACs: (value as given to `audit hash`, base64?).
    let mut hashed_inputs: Vec<(String, bool)> = Vec::new();

    // Keys: create, read, list, config, rotate.
    let created = ok(&admin, "dev/keys/k", json!({})).await;
    expected.push(Expected::ok(&created, "create", "k").version(1).started());
    // Exportable for the export below, without an approval's lines in this trail (creating an
    // exportable key over the API waits for custodians: tests/server/routes.rs).
    server
        .vault()
        .configure_key(
            "dev",
            "k",
            &tresor_wire::keys::KeyConfigUpdate {
                exportable: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    let derived = ok(&admin, "dev/keys/per-user", json!({"derived": true})).await;
    expected.push(Expected::ok(&derived, "create", "per-user").started());
    let (status, read) = call(&admin, Method::GET, "dev/keys/k", None).await;
    assert_eq!(status, StatusCode::OK);
    expected.push(Expected::ok(&read, "read", "k").version(1));
    let (status, listed) = call(&admin, crate::common::server::list(), "dev/keys", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    expected.push(Expected {
        key: None,
        ..Expected::ok(&listed, "list", "")
    });
    let rotated = ok(&admin, "dev/keys/k/rotate", json!({})).await;
    expected.push(Expected::ok(&rotated, "rotate", "k").version(2).started());

    // Encrypt: single with associated data, single with a context, batch.
    let plaintext = sent(&mut secrets, "plaintext-single");
    let ad = sent(&mut secrets, "associated-data");
    let encrypted = ok(
        &admin,
        "dev/encrypt/k",
        json!({"plaintext": b64(&plaintext), "associated_data": b64(&ad)}),
    )
    .await;
    expected.push(Expected::ok(&encrypted, "encrypt", "k").version(2));
    let ciphertext = encrypted["data"]["ciphertext"].as_str().unwrap().to_owned();
    hashed_inputs.push((ciphertext.clone(), false));
    hashed_inputs.push((b64(&ad), true));
    let context = sent(&mut secrets, "context");
    let derived_plaintext = sent(&mut secrets, "plaintext-derived");
    let encrypted_derived = ok(
        &admin,
        "dev/encrypt/per-user",
        json!({"plaintext": b64(&derived_plaintext), "context": b64(&context)}),
    )
    .await;
    expected.push(Expected::ok(&encrypted_derived, "encrypt", "per-user").version(1));
    hashed_inputs.push((b64(&context), true));
    let batch_plaintexts: Vec<Vec<u8>> = (0..3)
        .map(|i| sent(&mut secrets, &format!("plaintext-batch-{i}")))
        .collect();
    let batch = ok(
        &admin,
        "dev/encrypt/k",
        json!({"batch_input": batch_plaintexts.iter().map(|p| json!({"plaintext": b64(p)})).collect::<Vec<_>>()}),
    )
    .await;
    expected.push(Expected::ok(&batch, "encrypt", "k").batch(3));
    let batch_ciphertexts: Vec<String> = batch["data"]["batch_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ciphertext"].as_str().unwrap().to_owned())
        .collect();
    for c in &batch_ciphertexts {
        hashed_inputs.push((c.clone(), false));
    }

    // Decrypt: single and batch.
    let decrypted = ok(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": ciphertext, "associated_data": b64(&ad)}),
    )
    .await;
    assert_eq!(decrypted["data"]["plaintext"], b64(&plaintext));
    expected.push(Expected::ok(&decrypted, "decrypt", "k").version(2));
    let decrypted = ok(
        &admin,
        "dev/decrypt/k",
        json!({"batch_input": batch_ciphertexts.iter().map(|c| json!({"ciphertext": c})).collect::<Vec<_>>()}),
    )
    .await;
    expected.push(Expected::ok(&decrypted, "decrypt", "k").batch(3));

    // Rotate, then rewrap: single and batch.
    ok(&admin, "dev/keys/k/rotate", json!({})).await;
    let rewrapped = ok(
        &admin,
        "dev/rewrap/k",
        json!({"ciphertext": batch_ciphertexts[0]}),
    )
    .await;
    expected.push(Expected::ok(&rewrapped, "rewrap", "k").version(3));
    hashed_inputs.push((
        rewrapped["data"]["ciphertext"].as_str().unwrap().to_owned(),
        false,
    ));
    let rewrapped = ok(
        &admin,
        "dev/rewrap/k",
        json!({"batch_input": batch_ciphertexts.iter().map(|c| json!({"ciphertext": c})).collect::<Vec<_>>()}),
    )
    .await;
    expected.push(Expected::ok(&rewrapped, "rewrap", "k").batch(3));

    // Data keys: plaintext and wrapped. The plaintext key is key material the log must not hold.
    let datakey = ok(&admin, "dev/datakey/plaintext/k", json!({})).await;
    expected.push(Expected::ok(&datakey, "datakey", "k").version(3));
    secrets.push((
        "datakey plaintext".into(),
        unb64(datakey["data"]["plaintext"].as_str().unwrap()),
    ));
    hashed_inputs.push((
        datakey["data"]["ciphertext"].as_str().unwrap().to_owned(),
        false,
    ));
    let wrapped = ok(&admin, "dev/datakey/wrapped/k", json!({"bits": 512})).await;
    expected.push(Expected::ok(&wrapped, "datakey", "k").version(3));
    // Its plaintext, once unwrapped, is key material too.
    let unwrapped = ok(
        &admin,
        "dev/decrypt/k",
        json!({"ciphertext": wrapped["data"]["ciphertext"]}),
    )
    .await;
    secrets.push((
        "wrapped datakey".into(),
        unb64(unwrapped["data"]["plaintext"].as_str().unwrap()),
    ));

    // HMAC and verify: single and batch.
    let hmac_input = sent(&mut secrets, "hmac-input");
    let hmac = ok(&admin, "dev/hmac/k", json!({"input": b64(&hmac_input)})).await;
    expected.push(Expected::ok(&hmac, "hmac", "k").version(3));
    hashed_inputs.push((b64(&hmac_input), true));
    let token = hmac["data"]["hmac"].as_str().unwrap().to_owned();
    let hmac_batch_inputs: Vec<Vec<u8>> = (0..2)
        .map(|i| sent(&mut secrets, &format!("hmac-batch-{i}")))
        .collect();
    let hmacs = ok(
        &admin,
        "dev/hmac/k",
        json!({"batch_input": hmac_batch_inputs.iter().map(|i| json!({"input": b64(i)})).collect::<Vec<_>>()}),
    )
    .await;
    expected.push(Expected::ok(&hmacs, "hmac", "k").batch(2));
    let verified = ok(
        &admin,
        "dev/verify/k",
        json!({"input": b64(&hmac_input), "hmac": token}),
    )
    .await;
    assert_eq!(verified["data"]["valid"], true);
    expected.push(Expected::ok(&verified, "verify", "k"));
    let verified = ok(
        &admin,
        "dev/verify/k",
        json!({"batch_input": [
            {"input": b64(&hmac_input), "hmac": token},
            {"input": b64(&hmac_batch_inputs[0]), "hmac": token},
        ]}),
    )
    .await;
    expected.push(Expected::ok(&verified, "verify", "k").batch(2));

    // Export: every version's key bytes are key material.
    let (status, exported) = call(&admin, Method::GET, "dev/export/encryption-key/k", None).await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    expected.push(Expected::ok(&exported, "export", "k"));
    for (version, key) in exported["data"]["keys"].as_object().unwrap() {
        secrets.push((
            format!("exported key v{version}"),
            unb64(key.as_str().unwrap()),
        ));
    }
    let (status, exported) = call(&admin, Method::GET, "dev/export/hmac-key/k/latest", None).await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    for (version, key) in exported["data"]["keys"].as_object().unwrap() {
        secrets.push((
            format!("exported HMAC key v{version}"),
            unb64(key.as_str().unwrap()),
        ));
    }

    // Config and trim, then delete (202, runs once the custodian approves).
    let configured = ok(
        &admin,
        "dev/keys/k/config",
        json!({"min_decryption_version": 2, "min_encryption_version": 2, "deletion_allowed": true}),
    )
    .await;
    expected.push(Expected::ok(&configured, "config", "k").started());
    // A trim that destroys a version is dual-controlled like a delete.
    let (status, trimmed) = call(
        &admin,
        Method::POST,
        "dev/keys/k/trim",
        Some(json!({"min_available_version": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{trimmed}");
    expected.push(Expected {
        status: 202,
        ..Expected::ok(&trimmed, "trim", "k").started()
    });
    server.approve_pending().await;
    let (status, deleted) = call(&admin, Method::DELETE, "dev/keys/k", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleted}");
    expected.push(Expected {
        status: 202,
        ..Expected::ok(&deleted, "delete", "k").started()
    });
    server.approve_pending().await;
    assert!(
        server
            .vault()
            .key_info("dev", "k")
            .unwrap()
            .deletion
            .is_some(),
        "its deletion window runs once approved"
    );

    // Encrypt that creates its key (Vault's upsert): a change, so `started` first.
    let upsert_plaintext = sent(&mut secrets, "plaintext-upsert");
    let upserted = ok(
        &admin,
        "dev/encrypt/upserted",
        json!({"plaintext": b64(&upsert_plaintext)}),
    )
    .await;
    expected.push(
        Expected::ok(&upserted, "encrypt", "upserted")
            .version(1)
            .started(),
    );
    hashed_inputs.push((
        upserted["data"]["ciphertext"].as_str().unwrap().to_owned(),
        false,
    ));

    // Invalid inputs: the error messages (in the log as `reason`) must not echo them.
    let not_base64 = sent(&mut secrets, "not-base64 plaintext!");
    let bad_ciphertext = sent(&mut secrets, "bad-ciphertext");
    let bad_version = sent(&mut secrets, "bad-version");
    let bad_batch = sent(&mut secrets, "bad-batch");
    let as_text = |v: &[u8]| String::from_utf8(v.to_vec()).unwrap();
    for (path, body) in [
        (
            "dev/encrypt/per-user",
            json!({"plaintext": as_text(&not_base64), "context": b64("c")}),
        ),
        (
            "dev/decrypt/per-user",
            json!({"ciphertext": format!("tresor:v1:{}", as_text(&bad_ciphertext)), "context": b64("c")}),
        ),
        (
            "dev/encrypt/per-user",
            json!({"plaintext": b64("p"), "key_version": as_text(&bad_version)}),
        ),
        (
            "dev/encrypt/per-user",
            json!({"batch_input": as_text(&bad_batch)}),
        ),
    ] {
        let (status, body) = call(&admin, Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }

    // Refusals: no grant, wrong source address, over the rate limit; none changes anything.
    let denied_plaintext = sent(&mut secrets, "plaintext-denied");
    let refused_body = json!({"plaintext": b64(&denied_plaintext)});
    let (status, body) = call(
        &server.client(&nobody),
        Method::POST,
        "dev/encrypt/nobody-key",
        Some(refused_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    expected.push(Expected {
        request_id: None,
        principal: nobody.clone(),
        operation: "encrypt",
        key: Some("nobody-key"),
        status: 403,
        outcome: "denied",
        key_version: None,
        batch_items: None,
        started: false,
    });
    let (status, body) = call(
        &server.client(&outsider),
        Method::POST,
        "dev/encrypt/outsider-key",
        Some(refused_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        error_message(&body).contains("not from this address"),
        "{body}"
    );
    expected.push(Expected {
        principal: outsider.clone(),
        key: Some("outsider-key"),
        ..expected.last().unwrap().clone()
    });
    let limited_client = server.client(&limited);
    for _ in 0..2 {
        let (status, body) = call(
            &limited_client,
            Method::POST,
            "dev/encrypt/upserted",
            Some(refused_body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = call(
        &limited_client,
        Method::POST,
        "dev/encrypt/limited-key",
        Some(refused_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    expected.push(Expected {
        request_id: None,
        principal: limited.clone(),
        operation: "encrypt",
        key: Some("limited-key"),
        status: 429,
        outcome: "rate_limited",
        key_version: None,
        batch_items: None,
        started: false,
    });
    for key in ["nobody-key", "outsider-key", "limited-key"] {
        assert!(
            server.vault().key_info("dev", key).is_err(),
            "a refused encrypt created {key}"
        );
    }

    // Failed handshakes: no client certificate, and one from another CA.
    assert!(refused(server.connect(None).await).await);
    let foreign = tresor_server::tls::pki::DevCa::generate("foreign CA").unwrap();
    let foreign_cert = foreign.issue_client(ADMIN, DAY).unwrap();
    assert!(refused(server.connect(Some(&foreign_cert)).await).await);
    server
        .wait_for_handshake_failures("no_client_certificate", 1)
        .await;
    server.wait_for_handshake_failures("unknown_ca", 1).await;
    let (status, _) = call(&admin, Method::GET, "nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // What `tresor audit hash` says of each value, while the vault is up.
    let hashed = hashed_inputs
        .iter()
        .map(|(value, base64)| {
            (
                value.clone(),
                if *base64 { "base64" } else { "text" }.to_owned(),
                audit_hash(&server, value, *base64),
            )
        })
        .collect();

    let (status, seal_status) = call(&admin, Method::GET, "sys/seal-status", None).await;
    assert_eq!(status, StatusCode::OK, "{seal_status}");
    let published_key = seal_status["audit_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no audit_key in {seal_status}"))
        .to_owned();

    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    Session {
        dir,
        secrets,
        hashed,
        expected,
        published_key,
    }
}

fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    &line[name]
}

#[test]
fn every_request_and_refused_attempt_has_a_line_with_its_facts() {
    let session = session();
    let log = entries(&session.log());
    let events: Vec<&Value> = log.iter().filter(|l| l.get("type").is_none()).collect();
    for expected in &session.expected {
        let matches = |l: &&&Value| {
            field(l, "outcome") == expected.outcome
                && match &expected.request_id {
                    Some(id) => field(l, "request_id") == id.as_str(),
                    None => {
                        field(l, "principal") == expected.principal.as_str()
                            && field(l, "status") == expected.status
                    }
                }
        };
        let line = *events
            .iter()
            .find(matches)
            .unwrap_or_else(|| panic!("no audit line for {expected:?}"));
        assert_eq!(
            field(line, "principal"),
            expected.principal.as_str(),
            "{line}"
        );
        assert_eq!(field(line, "operation"), expected.operation, "{line}");
        assert_eq!(field(line, "tenant"), "dev", "{line}");
        match expected.key {
            Some(key) => assert_eq!(field(line, "key"), key, "{line}"),
            None => assert!(line.get("key").is_none(), "{line}"),
        }
        assert_eq!(field(line, "status"), expected.status, "{line}");
        assert!(
            field(line, "source")
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{line}"
        );
        let time = field(line, "time").as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line}"
        );
        assert_eq!(
            field(line, "request_id").as_str().unwrap().len(),
            36,
            "{line}"
        );
        assert!(field(line, "latency_us").is_u64(), "{line}");
        if let Some(version) = expected.key_version {
            assert_eq!(field(line, "key_version"), version, "{line}");
        }
        match expected.batch_items {
            Some(items) => assert_eq!(field(line, "batch_items"), items, "{line}"),
            None => assert!(line.get("batch_items").is_none(), "{line}"),
        }
        if expected.outcome != "ok" {
            assert!(
                !field(line, "reason").as_str().unwrap().is_empty(),
                "{line}"
            );
        }
        let started = events.iter().position(|l| {
            field(l, "outcome") == "started" && field(l, "request_id") == field(line, "request_id")
        });
        let finished = events.iter().position(|l| std::ptr::eq(*l, line)).unwrap();
        match started {
            Some(at) => {
                assert!(expected.started, "unexpected started line for {expected:?}");
                assert!(at < finished, "started after its outcome: {expected:?}");
                let started = events[at];
                assert_eq!(field(started, "operation"), expected.operation);
                assert_eq!(field(started, "principal"), expected.principal.as_str());
            }
            None => assert!(!expected.started, "no started line for {expected:?}"),
        }
    }
    // Failed handshakes: source and reason, no principal.
    let handshakes: Vec<&&Value> = events
        .iter()
        .filter(|l| field(l, "operation") == "tls-handshake")
        .collect();
    assert!(handshakes.len() >= 2, "{handshakes:?}");
    for line in handshakes {
        assert_eq!(field(line, "outcome"), "handshake_failed", "{line}");
        assert!(
            field(line, "source")
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{line}"
        );
        assert!(
            !field(line, "reason").as_str().unwrap().is_empty(),
            "{line}"
        );
        assert!(line.get("principal").is_none(), "{line}");
    }
    assert!(
        events
            .iter()
            .any(|l| field(l, "operation") == "unrouted" && field(l, "status") == 404),
        "the unrouted request is missing"
    );
    // Checkpoints: at start, periodically (at most CHECKPOINT_EVERY lines apart), at shutdown.
    let checkpoints: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.get("type").is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(field(&log[0], "reason"), "start");
    assert_eq!(field(log.last().unwrap(), "reason"), "shutdown");
    for pair in checkpoints.windows(2) {
        assert!(pair[1] - pair[0] <= CHECKPOINT_EVERY + 1, "{checkpoints:?}");
    }
    assert!(
        checkpoints
            .iter()
            .any(|i| field(&log[*i], "reason") == "periodic")
    );
    // The key that signs them is the one in audit.pub and in sys/seal-status.
    let public: Value =
        serde_json::from_str(&std::fs::read_to_string(session.key()).unwrap()).unwrap();
    assert_eq!(public["key"], session.published_key.as_str());
    for i in checkpoints {
        assert_eq!(field(&log[i], "key"), session.published_key.as_str());
    }
}

#[test]
fn the_session_log_verifies_and_every_single_field_edit_is_named() {
    let session = session();
    let key = session.key();
    let report = assert_verifies(&[session.log()], &key, &[]);
    let original = lines(&session.log());
    assert!(
        report.starts_with(&format!("OK: {} lines, ", original.len())),
        "{report}"
    );
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("audit.log");
    let mut cases = 0;
    for (index, line) in original.iter().enumerate() {
        for (what, edited) in field_edits(line) {
            let mut lines = original.clone();
            lines[index] = edited;
            write_lines(&copy, &lines);
            let run = verify(std::slice::from_ref(&copy), &key, &[]);
            let expected = format!("{}:{}: ", copy.display(), index + 1);
            assert!(
                !run.ok && run.stderr.contains(&expected),
                "line {} edited ({what}): verify should fail naming {expected}: {run:?}",
                index + 1
            );
            cases += 1;
        }
    }
    assert!(cases > original.len() * 10, "{cases}");
}

#[test]
fn removed_swapped_and_truncated_lines_are_named() {
    let session = session();
    let key = session.key();
    let original = lines(&session.log());
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("audit.log");
    let n = original.len();
    for index in 0..n {
        // Removing line i+1 (1-based): the break shows at the line now in its place; removing
        // the last line leaves a log without its closing checkpoint, named at its new end.
        let mut lines = original.clone();
        lines.remove(index);
        write_lines(&copy, &lines);
        assert_names_line(
            std::slice::from_ref(&copy),
            &key,
            &copy,
            if index + 1 == n { n - 1 } else { index + 1 },
        );
    }
    for index in 0..n - 1 {
        let mut lines = original.clone();
        lines.swap(index, index + 1);
        write_lines(&copy, &lines);
        assert_names_line(std::slice::from_ref(&copy), &key, &copy, index + 1);
    }
    // Truncation at every line boundary, and inside every line.
    let text = std::fs::read(session.log()).unwrap();
    let mut line_start = 0;
    for (number, line) in original.iter().enumerate() {
        let number = number + 1;
        if number > 1 {
            std::fs::write(&copy, &text[..line_start]).unwrap();
            assert_names_line(std::slice::from_ref(&copy), &key, &copy, number - 1);
        }
        for cut in [1, line.len() / 2, line.len()] {
            std::fs::write(&copy, &text[..line_start + cut]).unwrap();
            assert_names_line(std::slice::from_ref(&copy), &key, &copy, number);
        }
        line_start += line.len() + 1;
    }
    // A carriage return is an edit too (a line reader that splits on \r\n must not hide it).
    for index in [0, n / 2, n - 2, n - 1] {
        let mut lines = original.clone();
        lines[index].push('\r');
        write_lines(&copy, &lines);
        assert_names_line(std::slice::from_ref(&copy), &key, &copy, index + 1);
    }
    // An extra line anywhere.
    for index in [1, n / 2, n] {
        let mut lines = original.clone();
        lines.insert(index, original[index - 1].clone());
        write_lines(&copy, &lines);
        assert_names_line(std::slice::from_ref(&copy), &key, &copy, index + 1);
    }
}

#[test]
fn no_plaintext_or_key_bytes_in_the_log_the_server_output_or_the_data_dir() {
    let session = session();
    let dir = session.dir.path();
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    for file in files_under(&dir.join("data")) {
        haystacks.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }
    let log = std::fs::read(session.log()).unwrap();
    haystacks.push(("audit.log".into(), log.clone()));
    let output = captured_logs().lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&output).contains("TLS handshake failed"),
        "the server's tracing output was captured"
    );
    haystacks.push(("server log output".into(), output.clone()));
    assert!(haystacks.len() > 3, "the data dir has files");
    assert!(session.secrets.len() >= 12, "{}", session.secrets.len());
    // (The search finds a secret where there is one, in each encoding.)
    let planted = &session.secrets[0];
    for (encoding, form) in crate::common::audit::encodings(&planted.1) {
        let mut haystack = b"...".to_vec();
        haystack.extend_from_slice(&form);
        let hits = leaks(
            &[("planted".into(), haystack)],
            std::slice::from_ref(planted),
        );
        assert!(
            hits.iter().any(|(_, _, e)| *e == encoding),
            "{encoding}: {hits:?}"
        );
    }
    let found = leaks(&haystacks, &session.secrets);
    assert!(
        found.is_empty(),
        "secrets leaked (where, what, encoding): {found:?}"
    );

    // Ciphertexts, contexts, associated data and HMAC inputs are in the log only as their audit
    // HMAC, which `tresor audit hash` reproduces; never as themselves.
    let log_text = String::from_utf8(log).unwrap();
    let output_text = String::from_utf8_lossy(&output);
    assert!(session.hashed.len() >= 10);
    for (value, form, hmac) in &session.hashed {
        // Keyed: not a bare hash of the value anyone could compute.
        assert!(!line_hash(value).starts_with(hmac.as_str()), "{value}");
        assert!(
            log_text.contains(&format!("\"{hmac}\"")),
            "the audit HMAC of {value} ({form}) is not in the log"
        );
        for (name, text) in [
            ("audit log", log_text.as_str()),
            ("server output", &output_text),
        ] {
            assert!(
                !text.contains(value.as_str()),
                "{value} appears in the {name}"
            );
            let bare = value.strip_prefix("tresor:").unwrap_or(value);
            assert!(!text.contains(bare), "{value} appears in the {name}");
        }
    }
    // The log holds nothing else that looks like an input: every `input_hmacs` entry is 32 hex.
    for line in entries(&session.log()) {
        if let Some(hmacs) = line.get("input_hmacs") {
            for h in hmacs.as_array().unwrap() {
                let h = h.as_str().unwrap();
                assert!(
                    h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn a_checkpoint_signed_with_another_key_fails() {
    let session = session();
    let key = session.key();
    let original = lines(&session.log());
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("audit.log");
    let forger = forger_key();
    let forger_pub = scratch.path().join("forger.pub");
    write_public_key(&forger_pub, &forger);

    // Each checkpoint re-signed by another key (everything else as written) is named.
    let checkpoints: Vec<usize> = (0..original.len())
        .filter(|i| original[*i].contains("\"type\":\"checkpoint\""))
        .collect();
    assert!(checkpoints.len() >= 3, "{checkpoints:?}");
    for &index in &checkpoints {
        let mut lines = original.clone();
        lines[index] = resign(&original[index], &forger);
        lines.truncate(index + 1);
        // (Cut after it, and ending in the re-signed checkpoint, so only its signature is off.)
        let last = lines.len() - 1;
        lines[last] = resign(&with_field(&lines[last], "reason", "\"shutdown\""), &forger);
        write_lines(&copy, &lines);
        let stderr = assert_names_line(std::slice::from_ref(&copy), &key, &copy, index + 1);
        assert!(stderr.contains("another key"), "{stderr}");
    }

    // A forger who edits a line and re-chains and re-signs everything after it gets a log
    // that is consistent under the forger's key, and refused under the vault's, at the first
    // checkpoint re-signed.
    let edited = original.len() / 2;
    let mut lines = original.clone();
    lines[edited] = with_field(&lines[edited], "latency_us", "1");
    rechain(&mut lines, edited, &forger);
    write_lines(&copy, &lines);
    let first_resigned = checkpoints.iter().find(|i| **i > edited).unwrap();
    assert_names_line(std::slice::from_ref(&copy), &key, &copy, first_resigned + 1);
    // (The forgery itself is well made: every line but the edit is as the format requires.)
    let mut whole = original.clone();
    rechain(&mut whole, 0, &forger);
    write_lines(&copy, &whole);
    assert_verifies(std::slice::from_ref(&copy), &forger_pub, &[]);

    // The genuine log under another key: refused at its first line (a checkpoint).
    assert_names_line(&[session.log()], &forger_pub, &session.log(), 1);
}

#[test]
fn verify_refuses_what_is_not_a_complete_log() {
    let session = session();
    let key = session.key();
    let scratch = tempfile::tempdir().unwrap();
    let path = |name: &str| scratch.path().join(name);
    let original = lines(&session.log());

    let empty = path("empty.log");
    std::fs::write(&empty, "").unwrap();
    let run = verify(std::slice::from_ref(&empty), &key, &[]);
    assert!(!run.ok && run.stderr.contains("empty"), "{run:?}");

    let not_json = path("not-json.log");
    let mut lines = original.clone();
    lines.insert(3, "this is not an audit line".into());
    write_lines(&not_json, &lines);
    let stderr = assert_names_line(std::slice::from_ref(&not_json), &key, &not_json, 4);
    assert!(stderr.contains("not a JSON audit line"), "{stderr}");

    let blank = path("blank.log");
    let mut lines = original.clone();
    lines.insert(2, String::new());
    write_lines(&blank, &lines);
    assert_names_line(std::slice::from_ref(&blank), &key, &blank, 3);

    let binary = path("binary.log");
    let mut bytes = std::fs::read(session.log()).unwrap();
    bytes[original[0].len() + 5] = 0xff;
    std::fs::write(&binary, bytes).unwrap();
    assert_names_line(std::slice::from_ref(&binary), &key, &binary, 2);

    for (name, contents) in [
        ("garbage.pub", "not a key\n"),
        (
            "wrong-type.pub",
            "{\"type\":\"something-else\",\"key\":\"AAAA\"}\n",
        ),
        (
            "short.pub",
            "{\"type\":\"tresor-audit-public-key-v1\",\"key\":\"AAAA\"}\n",
        ),
    ] {
        let bad_key = path(name);
        std::fs::write(&bad_key, contents).unwrap();
        let run = verify(&[session.log()], &bad_key, &[]);
        assert!(
            !run.ok && run.stderr.contains("not an audit public key"),
            "{name}: {run:?}"
        );
    }
    let run = verify(&[session.log()], &path("missing.pub"), &[]);
    assert!(!run.ok && run.stderr.contains("missing.pub"), "{run:?}");
    let run = verify(&[path("missing.log")], &key, &[]);
    assert!(!run.ok && run.stderr.contains("missing.log"), "{run:?}");
    // The private key file is not a public key either.
    let run = verify(&[session.log()], &session.dir.path().join("audit.key"), &[]);
    assert!(
        !run.ok && run.stderr.contains("not an audit public key"),
        "{run:?}"
    );

    // A log that does not start at the beginning needs --allow-partial-start.
    let tail = path("tail.log");
    write_lines(&tail, &original[5..]);
    let stderr = assert_names_line(std::slice::from_ref(&tail), &key, &tail, 1);
    assert!(stderr.contains("--allow-partial-start"), "{stderr}");
    let report = assert_verifies(
        std::slice::from_ref(&tail),
        &key,
        &["--allow-partial-start"],
    );
    assert!(
        report.contains("continues from an earlier file"),
        "{report}"
    );
    // A log still being written needs --allow-open, which says how much is not yet signed.
    let open = path("open.log");
    let last_checkpoint = original
        .iter()
        .position(|l| l.contains("\"reason\":\"periodic\""))
        .unwrap();
    write_lines(&open, &original[..last_checkpoint + 3]);
    assert_names_line(
        std::slice::from_ref(&open),
        &key,
        &open,
        last_checkpoint + 3,
    );
    let report = assert_verifies(std::slice::from_ref(&open), &key, &["--allow-open"]);
    assert!(
        report.contains("2 line(s) after the last checkpoint"),
        "{report}"
    );
    // Both flags still catch an edit.
    let mut lines = original.clone();
    lines[6] = with_field(&lines[6], "latency_us", "7");
    write_lines(&open, &lines[5..]);
    let run = verify(
        std::slice::from_ref(&open),
        &key,
        &["--allow-open", "--allow-partial-start"],
    );
    assert!(!run.ok && run.stderr.contains(":2: "), "{run:?}");
}

/// The rotated files of `log`, oldest first.
fn rotated(log: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_under(log.parent().unwrap())
        .into_iter()
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_prefix("audit.log.")
                .is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_size_keeps_the_chain_across_files() {
    let server = TestServer::start(Options::default().audit("max_file_bytes = 4096")).await;
    let admin = server.admin();
    ok(&admin, "dev/keys/k", json!({})).await;
    for i in 0..40 {
        ok(
            &admin,
            "dev/encrypt/k",
            json!({"plaintext": b64(format!("{i}"))}),
        )
        .await;
    }
    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    let log = dir.path().join("audit.log");
    let key = dir.path().join("audit.pub");
    let mut files = rotated(&log);
    assert!(files.len() >= 3, "{files:?}");
    files.push(log.clone());
    let mut total = 0;
    for pair in files.windows(2) {
        let before = lines(&pair[0]);
        let after = entries(&pair[1]);
        let last = before.last().unwrap();
        let last_entry: Value = serde_json::from_str(last).unwrap();
        assert_eq!(last_entry["type"], "checkpoint", "{}", pair[0].display());
        assert_eq!(last_entry["reason"], "rotate", "{}", pair[0].display());
        // The size limit holds, give or take the line that crossed it and the checkpoint.
        let size = std::fs::metadata(&pair[0]).unwrap().len();
        assert!(size < 4096 + 2048, "{size}");
        assert_eq!(after[0]["prev"], line_hash(last), "{}", pair[1].display());
        assert_eq!(
            after[0]["seq"].as_u64(),
            Some(last_entry["seq"].as_u64().unwrap() + 1)
        );
        total += before.len();
    }
    total += lines(&log).len();
    let report = assert_verifies(&files, &key, &[]);
    assert!(
        report.starts_with(&format!("OK: {total} lines")),
        "{report}"
    );

    // A part of the set: refused unless explicitly allowed.
    let n = files.len();
    assert_names_line(std::slice::from_ref(&log), &key, &log, 1);
    assert_verifies(std::slice::from_ref(&log), &key, &["--allow-partial-start"]);
    assert_names_line(&files[1..], &key, &files[1], 1);
    assert_verifies(&files[1..], &key, &["--allow-partial-start"]);
    // The files out of order, or one left out: named where the chain breaks.
    let mut swapped = files.clone();
    swapped.swap(0, 1);
    assert_names_line(&swapped, &key, &files[1], 1);
    let mut gap = files.clone();
    gap.remove(1);
    assert_names_line(&gap, &key, &files[2], 1);
    // The rotated files alone end at a rotation, not at shutdown.
    let last_rotated = &files[n - 2];
    assert_names_line(
        &files[..n - 1],
        &key,
        last_rotated,
        lines(last_rotated).len(),
    );
    let report = assert_verifies(&files[..n - 1], &key, &["--allow-open"]);
    assert!(report.contains("ends at a rotation"), "{report}");

    // Across files too, an edit to any line is named in its own file.
    let scratch = tempfile::tempdir().unwrap();
    let copies: Vec<PathBuf> = files
        .iter()
        .map(|f| scratch.path().join(f.file_name().unwrap()))
        .collect();
    for (file, copy) in files.iter().zip(&copies) {
        std::fs::copy(file, copy).unwrap();
    }
    for (which, copy) in copies.iter().enumerate() {
        let original = lines(&files[which]);
        for (index, line) in original.iter().enumerate() {
            for name in ["time", "prev"] {
                let (_, range) = crate::common::audit::fields(line)
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .unwrap();
                let value = crate::common::audit::altered(&line[range.clone()]);
                let mut edited = original.clone();
                edited[index] = with_field(line, name, &value);
                write_lines(copy, &edited);
                assert_names_line(&copies, &key, copy, index + 1);
            }
        }
        write_lines(copy, &original);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_moved_away_by_an_outside_tool_is_closed_and_the_path_reopened() {
    let server = TestServer::new().await;
    let admin = server.admin();
    ok(&admin, "dev/keys/k", json!({})).await;
    let log = server.path("audit.log");
    let mut ids = Vec::new();
    // As logrotate does by default: rename, let the program create the new file...
    std::fs::rename(&log, server.path("audit.log.1")).unwrap();
    until_the_log_path_is_checked();
    for _ in 0..3 {
        let reply = ok(&admin, "dev/encrypt/k", json!({"plaintext": b64("x")})).await;
        ids.push(reply["request_id"].as_str().unwrap().to_owned());
    }
    // ...or rename and create the new file itself.
    std::fs::rename(&log, server.path("audit.log.2")).unwrap();
    std::fs::write(&log, "").unwrap();
    until_the_log_path_is_checked();
    let reply = ok(&admin, "dev/encrypt/k", json!({"plaintext": b64("y")})).await;
    ids.push(reply["request_id"].as_str().unwrap().to_owned());
    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    let files: Vec<PathBuf> = ["audit.log.1", "audit.log.2", "audit.log"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    let has = |file: &Path, id: &str| lines(file).iter().any(|l| l.contains(id));
    for id in &ids[..3] {
        assert!(has(&files[1], id), "{id} not in the second file");
        assert!(!has(&files[0], id), "{id} went to the moved-away file");
    }
    assert!(has(&files[2], &ids[3]));
    for moved in &files[..2] {
        let last = entries(moved).pop().unwrap();
        assert_eq!(
            (&last["type"], &last["reason"]),
            (&json!("checkpoint"), &json!("rotate")),
            "{}",
            moved.display()
        );
    }
    assert_verifies(&files, &dir.path().join("audit.pub"), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_fails_requests_with_503_changes_nothing_and_heals() {
    let server = TestServer::new().await;
    let admin = server.admin();
    ok(&admin, "dev/keys/existing", json!({})).await;
    let log = server.path("audit.log");
    let real = server.path("audit-real.log");
    // The disk fills up: the log's path now leads to a device where every write fails (ENOSPC).
    std::fs::rename(&log, &real).unwrap();
    swap_symlink(Path::new("/dev/full"), &log);
    let plaintext = json!({"plaintext": b64("x")});
    let attempts = [
        (Method::POST, "dev/keys/new", Some(json!({})), 2),
        (Method::POST, "dev/keys/existing/rotate", None, 2),
        (
            Method::POST,
            "dev/keys/existing/config",
            Some(json!({"deletion_allowed": true})),
            2,
        ),
        // Encrypt with a missing key creates it (upsert): a change, logged first.
        (
            Method::POST,
            "dev/encrypt/upserted",
            Some(plaintext.clone()),
            2,
        ),
        (
            Method::POST,
            "dev/encrypt/existing",
            Some(plaintext.clone()),
            1,
        ),
        (Method::GET, "dev/keys/existing", None, 1),
        (Method::GET, "sys/metrics", None, 1),
    ];
    let mut unwritten = 0;
    for (method, path, body, lines_lost) in attempts.clone() {
        let (status, reply) = call(&admin, method, path, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {reply}");
        assert!(error_message(&reply).contains("audit log"), "{reply}");
        assert!(reply.get("data").is_none(), "{path} answered: {reply}");
        unwritten += lines_lost;
    }
    // Nothing happened.
    assert!(server.vault().key_info("dev", "new").is_err(), "created");
    assert!(
        server.vault().key_info("dev", "upserted").is_err(),
        "upserted"
    );
    let existing = server.vault().key_info("dev", "existing").unwrap();
    assert_eq!(existing.latest_version, 1, "rotated");
    assert!(!existing.config.deletion_allowed, "configured");
    // Each line that could not be written counts once: a change's `started` line and its
    // outcome line, a read's outcome line.
    assert_eq!(server.handle.audit().unwrap().write_failures(), unwritten);

    // The disk recovers: the server carries on by itself.
    swap_symlink(&real, &log);
    let rotated = ok(&admin, "dev/keys/existing/rotate", json!({})).await;
    assert_eq!(rotated["data"]["latest_version"], 2);
    let m = metrics(&server).await;
    assert_eq!(
        metric(&m, "tresor_audit_write_failures_total"),
        unwritten as f64
    );
    for (operation, count) in [
        ("create", 1.0),
        ("rotate", 1.0),
        ("config", 1.0),
        ("encrypt", 2.0),
        ("read", 1.0),
        ("metrics", 1.0),
    ] {
        assert_eq!(requests(&m, operation, 503), count, "{operation}");
    }
    assert_eq!(requests(&m, "rotate", 200), 1.0);
    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    // The log continued where it was; none of the failed requests is in it.
    let written = lines(&dir.path().join("audit-real.log"));
    for refused_key in ["\"key\":\"new\"", "\"key\":\"upserted\""] {
        assert!(
            !written.iter().any(|l| l.contains(refused_key)),
            "{refused_key}"
        );
    }
    assert_verifies(
        &[dir.path().join("audit-real.log")],
        &dir.path().join("audit.pub"),
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_change_nothing_and_the_metrics_count_them() {
    let nobody = principal("svc/nobody");
    let outsider = principal("svc/outsider");
    let limited = principal("svc/limited");
    let grants = format!(
        r#"
[[grant]]
principals = ["{outsider}"]
tenant = "dev"
keys = ["*"]
operations = ["rotate", "encrypt"]
allowed_cidrs = ["10.0.0.0/8", "::1/128"]

[[grant]]
principals = ["{limited}"]
tenant = "dev"
keys = ["*"]
operations = ["rotate", "encrypt"]
rate_limit = {{ requests_per_second = 0.01, burst = 2 }}
"#
    );
    let server = TestServer::start(Options::default().policy("grants.toml", &grants)).await;
    server
        .vault()
        .create_key("dev", "k", tresor_core::KeySpec::default())
        .unwrap();
    let before = metrics(&server).await;
    assert_eq!(metric(&before, "tresor_sealed"), 0.0);
    let plaintext = json!({"plaintext": b64("x")});
    let nobody_client = server.client(&nobody);
    for _ in 0..2 {
        let (status, body) = call(&nobody_client, Method::POST, "dev/keys/k/rotate", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, _) = call(
        &nobody_client,
        Method::POST,
        "dev/encrypt/made-by-nobody",
        Some(plaintext.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // In a tenant no policy names, and vault-wide.
    let (status, _) = call(&nobody_client, Method::GET, "ghost/keys/k", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &nobody_client,
        crate::common::server::list(),
        "sys/tenants",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let outsider_client = server.client(&outsider);
    for _ in 0..3 {
        let (status, body) = call(&outsider_client, Method::POST, "dev/keys/k/rotate", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            error_message(&body).contains("not from this address"),
            "{body}"
        );
    }
    let limited_client = server.client(&limited);
    for _ in 0..2 {
        let (status, body) = call(&limited_client, Method::POST, "dev/keys/k/rotate", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for _ in 0..2 {
        let (status, _) = call(&limited_client, Method::POST, "dev/keys/k/rotate", None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    let (status, _) = call(
        &limited_client,
        Method::POST,
        "dev/encrypt/made-by-limited",
        Some(plaintext.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    for _ in 0..2 {
        assert!(refused(server.connect(None).await).await);
    }
    let foreign = tresor_server::tls::pki::DevCa::generate("foreign CA").unwrap();
    assert!(
        refused(
            server
                .connect(Some(&foreign.issue_client(ADMIN, DAY).unwrap()))
                .await
        )
        .await
    );
    server
        .wait_for_handshake_failures("no_client_certificate", 2)
        .await;
    server.wait_for_handshake_failures("unknown_ca", 1).await;

    // Nothing changed but what the limited principal was allowed before its limit.
    assert_eq!(
        server.vault().key_info("dev", "k").unwrap().latest_version,
        3
    );
    for key in ["made-by-nobody", "made-by-limited"] {
        assert!(
            server.vault().key_info("dev", key).is_err(),
            "{key} was created"
        );
    }

    let m = metrics(&server).await;
    for (operation, status, count) in [
        ("rotate", 403, 5.0),
        ("encrypt", 403, 1.0),
        ("rotate", 200, 2.0),
        ("rotate", 429, 2.0),
        ("encrypt", 429, 1.0),
        ("metrics", 200, 1.0),
    ] {
        assert_eq!(
            requests(&m, operation, status),
            count,
            "{operation} {status}"
        );
    }
    // By tenant and reason, never by principal (issue 15): the audit log says who.
    let denials = |tenant: &str, reason: &str| {
        metric(
            &m,
            &format!("tresor_denials_total{{tenant=\"{tenant}\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(denials("dev", "no_grant"), 3.0);
    assert_eq!(denials("dev", "source_not_allowed"), 3.0);
    assert_eq!(denials("other", "no_grant"), 1.0);
    assert_eq!(denials("-", "no_grant"), 1.0);
    assert!(
        !m.keys()
            .any(|series| series.contains("ghost") || series.contains("principal=")),
        "{m:?}"
    );
    assert_eq!(metric(&m, "tresor_rate_limited_total"), 3.0);
    assert_eq!(
        metric(
            &m,
            "tresor_handshake_failures_total{reason=\"no_client_certificate\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(&m, "tresor_handshake_failures_total{reason=\"unknown_ca\"}"),
        1.0
    );
    assert_eq!(metric(&m, "tresor_audit_write_failures_total"), 0.0);
    assert_eq!(metric(&m, "tresor_sealed"), 0.0);

    // Key cache: after unsealing, the first use of a key loads it, the second is served from
    // memory.
    server.vault().seal();
    let sealed = metrics(&server).await;
    assert_eq!(metric(&sealed, "tresor_sealed"), 1.0);
    server.unseal();
    let admin = server.admin();
    let cache = |m: &std::collections::BTreeMap<String, f64>| {
        (
            metric(m, "tresor_key_cache_hits_total"),
            metric(m, "tresor_key_cache_misses_total"),
        )
    };
    let (hits, misses) = cache(&metrics(&server).await);
    ok(&admin, "dev/encrypt/k", plaintext.clone()).await;
    let after_first = cache(&metrics(&server).await);
    assert_eq!(after_first, (hits, misses + 1.0));
    ok(&admin, "dev/encrypt/k", plaintext.clone()).await;
    let after_second = cache(&metrics(&server).await);
    assert_eq!(after_second, (hits + 1.0, misses + 1.0));

    // Every refusal is in the audit log, with who, from where and why.
    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    let log = entries(&dir.path().join("audit.log"));
    let count = |principal: &str, outcome: &str| {
        log.iter()
            .filter(|l| l["principal"] == principal && l["outcome"] == outcome)
            .count()
    };
    assert_eq!(count(&nobody, "denied"), 5);
    assert_eq!(count(&outsider, "denied"), 3);
    assert_eq!(count(&limited, "rate_limited"), 3);
    assert_eq!(count(&limited, "started"), 2);
    for line in log.iter().filter(|l| l["principal"] == outsider.as_str()) {
        assert!(
            line["reason"]
                .as_str()
                .unwrap()
                .contains("not from this address"),
            "{line}"
        );
        assert!(
            line["source"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
    }
    let handshakes: Vec<&Value> = log
        .iter()
        .filter(|l| l["outcome"] == "handshake_failed")
        .collect();
    assert_eq!(handshakes.len(), 3, "{handshakes:?}");
    assert_verifies(
        &[dir.path().join("audit.log")],
        &dir.path().join("audit.pub"),
        &[],
    );
}

/// How long a TLS handshake with a good certificate takes from `source`.
async fn handshake_time(server: &TestServer, source: &str) -> Duration {
    let cert = server.ca.issue_client(ADMIN, DAY).unwrap();
    let config = server.tls_config(Some(&cert));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let started = std::time::Instant::now();
    let tcp = socket.connect(server.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    started.elapsed()
}

/// The fastest of three handshakes from `source` (so a busy machine does not look like a delay).
async fn fastest_handshake(server: &TestServer, source: &str) -> Duration {
    let mut fastest = handshake_time(server, source).await;
    for _ in 0..2 {
        fastest = fastest.min(handshake_time(server, source).await);
    }
    fastest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_handshakes_from_one_address_are_slowed_down() {
    let server = TestServer::start(
        Options::default()
            .limit("handshake_failures_allowed = 2")
            .limit("handshake_failure_max_delay = 1"),
    )
    .await;
    let quick = Duration::from_millis(90);
    let fail = |n: u64| {
        let server = &server;
        async move {
            assert!(refused(server.connect(None).await).await);
            server
                .wait_for_handshake_failures("no_client_certificate", n)
                .await;
        }
    };
    assert!(fastest_handshake(&server, "127.0.0.1").await < quick);
    fail(1).await;
    fail(2).await;
    // Within the allowance: not slowed.
    assert!(fastest_handshake(&server, "127.0.0.1").await < quick);
    // One more: 100 ms, then doubling.
    fail(3).await;
    let t = handshake_time(&server, "127.0.0.1").await;
    assert!(t >= Duration::from_millis(100), "{t:?}");
    fail(4).await;
    let t = handshake_time(&server, "127.0.0.1").await;
    assert!(t >= Duration::from_millis(200), "{t:?}");
    // Up to handshake_failure_max_delay.
    for n in 5..=8 {
        fail(n).await;
    }
    let t = handshake_time(&server, "127.0.0.1").await;
    assert!(
        t >= Duration::from_secs(1) && t < Duration::from_millis(2500),
        "{t:?}"
    );
    // Another address is not slowed.
    assert!(fastest_handshake(&server, "127.0.0.2").await < quick);
    let m = metrics(&server).await;
    assert_eq!(
        metric(
            &m,
            "tresor_handshake_failures_total{reason=\"no_client_certificate\"}"
        ),
        8.0
    );
    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    let failed: Vec<Value> = entries(&dir.path().join("audit.log"))
        .into_iter()
        .filter(|l| l["operation"] == "tls-handshake")
        .collect();
    assert_eq!(failed.len(), 8);
    for line in failed {
        assert_eq!(line["reason"], "no_client_certificate", "{line}");
        assert!(
            line["source"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rotation_is_audited_and_does_not_happen_unaudited() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = std::sync::Arc::new(tresor_core::ManualClock::new(now));
    let server = TestServer::start(Options::default().clock(clock.clone())).await;
    let admin = server.admin();
    ok(&admin, "dev/keys/auto", json!({"auto_rotate_period": "1h"})).await;
    ok(&admin, "dev/keys/manual", json!({})).await;
    assert!(server.handle.rotate_due_keys().unwrap().is_empty());
    clock.advance(3601);
    let rotated = server.handle.rotate_due_keys().unwrap();
    assert_eq!(rotated.len(), 1);
    assert_eq!(
        (rotated[0].name.as_str(), rotated[0].latest_version),
        ("auto", 2)
    );
    let log = server.path("audit.log");
    let about_auto: Vec<Value> = entries(&log)
        .into_iter()
        .filter(|l| l["principal"] == tresor_server::server::AUTO_ROTATE_PRINCIPAL)
        .collect();
    assert_eq!(about_auto.len(), 2, "{about_auto:?}");
    for (line, outcome) in about_auto.iter().zip(["started", "ok"]) {
        assert_eq!(line["outcome"], outcome, "{line}");
        assert_eq!(line["operation"], "rotate", "{line}");
        assert_eq!(
            (&line["tenant"], &line["key"]),
            (&json!("dev"), &json!("auto"))
        );
    }
    assert_eq!(about_auto[1]["key_version"], 2);

    // With the audit log unwritable, a due key is not rotated; it is once the log recovers.
    let real = server.path("audit-real.log");
    std::fs::rename(&log, &real).unwrap();
    swap_symlink(Path::new("/dev/full"), &log);
    clock.advance(3601);
    assert!(server.handle.rotate_due_keys().unwrap().is_empty());
    assert_eq!(
        server
            .vault()
            .key_info("dev", "auto")
            .unwrap()
            .latest_version,
        2
    );
    swap_symlink(&real, &log);
    let rotated = server.handle.rotate_due_keys().unwrap();
    assert_eq!(rotated[0].latest_version, 3);
    assert_eq!(
        server
            .vault()
            .key_info("dev", "manual")
            .unwrap()
            .latest_version,
        1
    );
    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    assert_verifies(
        &[dir.path().join("audit-real.log")],
        &dir.path().join("audit.pub"),
        &[],
    );
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where this process may not mount (not root, or a container without the right).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Fills the file system: a filler file takes every free block.
    fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        let block = [0u8; 4096];
        while filler.write_all(&block).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_fails_requests_cleanly_and_they_resume_when_space_returns() {
    let Some(disk) = SmallDisk::mount("256k") else {
        eprintln!("skipped: cannot mount a tmpfs here (the /dev/full test covers failing writes)");
        return;
    };
    let server = TestServer::new().await;
    let admin = server.admin();
    let log = server.path("audit.log");
    let first = server.path("audit-first.log");
    // Move the log onto the small disk (the writer follows its path there).
    std::fs::rename(&log, &first).unwrap();
    swap_symlink(&disk.path("audit.log"), &log);
    ok(&admin, "dev/keys/k", json!({})).await;
    assert!(lines(&disk.path("audit.log")).len() >= 2);

    // Full: writes fail part-way through a line. Every failed line is rolled back whole.
    disk.fill();
    let plaintext = json!({"plaintext": b64("x")});
    let mut failed = false;
    for _ in 0..40 {
        let (status, _) = call(
            &admin,
            Method::POST,
            "dev/encrypt/k",
            Some(plaintext.clone()),
        )
        .await;
        let text = std::fs::read(disk.path("audit.log")).unwrap();
        assert!(text.ends_with(b"\n"), "a partial line was left behind");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            failed = true;
            break;
        }
        assert_eq!(status, StatusCode::OK);
    }
    assert!(failed, "the disk never filled up");
    let (status, _) = call(&admin, Method::POST, "dev/keys/k/rotate", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = call(&admin, Method::POST, "dev/keys/other", Some(json!({}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        server.vault().key_info("dev", "k").unwrap().latest_version,
        1
    );
    assert!(server.vault().key_info("dev", "other").is_err());
    disk.free();
    let rotated = ok(&admin, "dev/keys/k/rotate", json!({})).await;
    assert_eq!(rotated["data"]["latest_version"], 2);

    // Rotated by copy and truncate in place (logrotate's copytruncate), then full again: the
    // failed line is rolled back to the file's new end, not padded out to its old length.
    let copied = server.path("audit-copied.log");
    std::fs::copy(disk.path("audit.log"), &copied).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(disk.path("audit.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    ok(&admin, "dev/encrypt/k", plaintext.clone()).await;
    disk.fill();
    let mut failed = false;
    for _ in 0..40 {
        let (status, _) = call(
            &admin,
            Method::POST,
            "dev/encrypt/k",
            Some(plaintext.clone()),
        )
        .await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            failed = true;
            break;
        }
    }
    assert!(failed, "the disk never filled up");
    let text = std::fs::read(disk.path("audit.log")).unwrap();
    assert!(!text.contains(&0u8), "the file was padded with zeros");
    assert!(text.ends_with(b"\n"));
    disk.free();
    ok(&admin, "dev/encrypt/k", plaintext.clone()).await;

    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    let m = std::fs::read_to_string(disk.path("audit.log")).unwrap();
    assert!(m.ends_with("\"reason\":\"shutdown\"") || m.contains("\"reason\":\"shutdown\""));
    assert_verifies(
        &[first, copied, disk.path("audit.log")],
        &dir.path().join("audit.pub"),
        &[],
    );
}

#[test]
fn tresor_dev_keeps_a_log_that_verifies_after_sigterm_and_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = DevProcess::start_logging(dir.path(), "trace");
    let plaintext = String::from_utf8(distinctive("dev-plaintext")).unwrap();
    dev.run(&["key", "create", "dev/card-pan"]);
    dev.run(&["encrypt", "dev/card-pan", &plaintext]);
    // While it runs, the log is open: it verifies only with --allow-open.
    let log = dir.path().join("audit.log");
    let key = dir.path().join("audit.pub");
    assert_names_line(std::slice::from_ref(&log), &key, &log, lines(&log).len());
    assert_verifies(std::slice::from_ref(&log), &key, &["--allow-open"]);
    assert!(
        dev.terminate(Duration::from_secs(15)).is_some(),
        "tresor dev did not stop on SIGTERM"
    );
    // Stopped: the log ends in its shutdown checkpoint and verifies as it is.
    let last = entries(&log).pop().unwrap();
    assert_eq!(
        (&last["type"], &last["reason"]),
        (&json!("checkpoint"), &json!("shutdown"))
    );
    assert_verifies(std::slice::from_ref(&log), &key, &[]);
    let operations: Vec<String> = entries(&log)
        .iter()
        .filter_map(|l| l["operation"].as_str().map(str::to_owned))
        .collect();
    assert!(operations.contains(&"create".to_owned()), "{operations:?}");
    assert!(operations.contains(&"encrypt".to_owned()), "{operations:?}");
    let secret = vec![("plaintext".to_owned(), plaintext.into_bytes())];
    let mut haystacks = vec![(
        "tresor dev stderr (RUST_LOG=trace)".to_owned(),
        dev.stderr().into_bytes(),
    )];
    assert!(haystacks[0].1.len() > 100, "no server output captured");
    for file in files_under(dir.path()) {
        haystacks.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }
    let found = leaks(&haystacks, &secret);
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_hash_is_keyed_stable_and_refuses_what_it_cannot_hash() {
    let server = TestServer::new().await;
    let first = audit_hash(&server, "some value", false);
    assert_eq!(audit_hash(&server, "some value", false), first, "stable");
    assert_eq!(
        audit_hash(&server, &b64("some value"), true),
        first,
        "--base64 is the same value"
    );
    assert_ne!(audit_hash(&server, "some valuf", false), first);

    // Invalid input, no arguments, no server: refused with a reason.
    let run = crate::common::audit::tresor(&["audit", "hash", "not base64!", "--base64"]);
    assert!(!run.ok && run.stderr.contains("not base64"), "{run:?}");
    let run = crate::common::audit::tresor(&["audit", "hash"]);
    assert!(!run.ok, "{run:?}");
    let run =
        crate::common::audit::tresor(&["audit", "hash", "x", "--addr", "https://127.0.0.1:9"]);
    assert!(!run.ok, "{run:?}");
    let run = crate::common::audit::tresor(&["audit", "verify", "--key", "audit.pub"]);
    assert!(!run.ok, "{run:?}");
    let run = crate::common::audit::tresor(&["audit", "verify", "audit.log"]);
    assert!(!run.ok && run.stderr.contains("--key"), "{run:?}");

    // Over the API: only a principal granted audit-hash may ask, and only while unsealed.
    let body = json!({"input": b64("some value")});
    let stranger = server.client(&principal("svc/stranger"));
    let (status, reply) = call(
        &stranger,
        Method::POST,
        "sys/audit/hash",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    let admin = server.admin();
    let (status, reply) = call(
        &admin,
        Method::POST,
        "sys/audit/hash",
        Some(json!({"input": "%%"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let (status, reply) = call(&admin, Method::POST, "sys/audit/hash", Some(body.clone())).await;
    assert_eq!(
        (status, reply["data"]["hmac"].as_str()),
        (StatusCode::OK, Some(first.as_str()))
    );
    // The audit key survives a root rotation and a seal/unseal: old lines keep matching.
    let (status, reply) = call(&admin, Method::POST, "sys/rotate-root", Some(json!({}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    server.approve_pending().await;
    server.vault().seal();
    let (status, reply) = call(&admin, Method::POST, "sys/audit/hash", Some(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    server.unseal();
    assert_eq!(audit_hash(&server, "some value", false), first);
}

#[test]
fn the_chain_continues_across_a_crash_with_a_torn_line_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let key = dir.path().join("audit.pub");
    let mut dev = DevProcess::start(dir.path());
    dev.run(&["key", "create", "dev/k"]);
    // A crash (SIGKILL: no shutdown checkpoint) in the middle of writing a line.
    dev.kill();
    let before = lines(&log);
    let mut torn = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut torn, b"{\"seq\":999,\"time\":\"2026-").unwrap();
    drop(torn);
    assert_names_line(std::slice::from_ref(&log), &key, &log, before.len() + 1);

    // Restarted, the server cuts the torn line off and continues the chain with a signed
    // start checkpoint; stopped cleanly, the whole log verifies.
    let mut dev = DevProcess::start(dir.path());
    dev.run(&["encrypt", "dev/k", "hello"]);
    assert!(
        dev.terminate(Duration::from_secs(15)).is_some(),
        "tresor dev did not stop on SIGTERM"
    );
    let after = lines(&log);
    assert_eq!(
        after[..before.len()],
        before[..],
        "the lines before the crash changed"
    );
    let restart: Value = serde_json::from_str(&after[before.len()]).unwrap();
    assert_eq!(restart["reason"], "start", "{restart}");
    assert_eq!(restart["prev"], line_hash(before.last().unwrap()));
    assert_verifies(std::slice::from_ref(&log), &key, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_keep_one_chain_through_checkpoints_and_rotations() {
    let server = TestServer::start(
        Options::default()
            .audit("max_file_bytes = 4096")
            .audit("checkpoint_every = 5"),
    )
    .await;
    server
        .vault()
        .create_key("dev", "k", tresor_core::KeySpec::default())
        .unwrap();
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let client = server.admin();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..20 {
                let body = json!({"plaintext": b64(format!("{worker}-{i}"))});
                let reply = ok(&client, "dev/encrypt/k", body).await;
                ids.push(reply["request_id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    let TestServer { dir, handle, .. } = server;
    handle.shutdown().await;
    let log = dir.path().join("audit.log");
    let mut files = rotated(&log);
    assert!(files.len() >= 5, "{files:?}");
    files.push(log);
    assert_verifies(&files, &dir.path().join("audit.pub"), &[]);
    // Every request has exactly one line.
    let all: Vec<Value> = files.iter().flat_map(|f| entries(f)).collect();
    for id in &ids {
        let count = all
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .count();
        assert_eq!(count, 1, "{id}");
    }
}

#[test]
fn the_server_does_not_start_without_a_writable_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    // Where the log should be, a directory: it cannot be opened for appending.
    std::fs::create_dir(dir.path().join("audit.log")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["dev", "--dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .bounded_output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started anyway: {stderr}");
    let log = dir.path().join("audit.log");
    assert!(
        stderr.contains(&format!("audit log {} cannot be written", log.display())),
        "{stderr}"
    );
    // Said once, not repeated down the error chain.
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");
}
