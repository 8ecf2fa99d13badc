//! `/v1/pins/…` over real mutual TLS (issue 5): the manifest an app fetches verifies byte for
//! byte with the manifest key, every version stays servable, exports come in their platform's
//! syntax, early activation waits for a custodian, keys are delivered sealed, and every route
//! goes through policy, audit and metrics like the rest of the API.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tresor_client::PinActivation;
use tresor_crypto::identity::CustodianIdentity;
use tresor_wire::pins::{self, AppSpec, KeyAlgorithm, PinState};

use crate::common::server::{Options, TestServer, error_message, list, principal};

const DAY: u64 = 86_400;
const APP: &str = "ios-banking";

fn spec() -> AppSpec {
    AppSpec {
        hosts: vec![pins::parse_host("api.example.com:all").unwrap()],
        max_update_lag: 30 * DAY,
        expires: 14 * DAY,
        enforce_until: 180 * DAY,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const READER_POLICY: &str = r#"
[[operator]]
principals = ["spiffe://test.tresor.local/app-backend"]
operations = ["pins-read"]

[[operator]]
principals = ["spiffe://test.tresor.local/release"]
operations = ["pins-read", "pins-manage"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_served_as_signed_and_verify() {
    let server = TestServer::start(Options::default().policy("pins.toml", READER_POLICY)).await;
    let admin = server.admin();
    let created = admin.pins_create_app(APP, &spec()).await.unwrap();
    assert_eq!(created.manifest_version, None);
    let a = admin
        .pins_generate_key(APP, KeyAlgorithm::EcdsaP256)
        .await
        .unwrap();
    assert_eq!(a.manifest_version, None);
    let b = admin
        .pins_generate_key(APP, KeyAlgorithm::Ed25519)
        .await
        .unwrap();
    assert_eq!(b.manifest_version, Some(1));

    // The app's backend only reads: it fetches the key and the manifest and verifies them.
    let reader = server.client(&principal("app-backend"));
    let key = reader.pins_manifest_key().await.unwrap();
    let trust = pins::parse_manifest_key(key.public_key_pem.as_bytes()).unwrap();
    let (status, bytes) = reader
        .fetch(Method::GET, &format!("pins/{APP}/manifest"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let first = pins::verify(&bytes, &trust, APP, None, now()).unwrap();
    assert_eq!(first.manifest.version, 1);
    let mut served: Vec<String> = first
        .manifest
        .pins
        .iter()
        .map(|p| p.sha256.clone())
        .collect();
    served.sort();
    let mut generated = vec![a.key.unwrap().pin, b.key.as_ref().unwrap().pin.clone()];
    generated.sort();
    assert_eq!(served, generated);

    // A change signs version 2; version 1 stays servable, byte for byte, and replaying it to a
    // client that has seen version 2 is a rollback.
    let kid_b = b.key.unwrap().kid;
    admin
        .pins_generate_key(APP, KeyAlgorithm::Rsa2048)
        .await
        .unwrap();
    let latest = reader.pins_manifest(APP, None).await.unwrap();
    let second = pins::verify(&latest, &trust, APP, Some(&first.state), now()).unwrap();
    assert_eq!(second.manifest.version, 2);
    assert_eq!(second.manifest.prev.as_deref(), Some(first.hash.as_str()));
    assert_eq!(reader.pins_manifest(APP, Some(1)).await.unwrap(), bytes);
    assert!(matches!(
        pins::verify(&bytes, &trust, APP, Some(&second.state), now()),
        Err(pins::VerifyError::Rollback { .. })
    ));
    let (status, body) = reader
        .raw(Method::GET, &format!("pins/{APP}/manifest/9"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error_message(&body).contains("no manifest version 9"));

    // Exports in their platform's syntax, with its content type.
    let (status, android) = reader
        .fetch(Method::GET, &format!("pins/{APP}/export/android"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let android = String::from_utf8(android.to_vec()).unwrap();
    assert!(android.contains("<pin-set expiration="));
    for pin in &second.manifest.pins {
        assert!(android.contains(&format!("<pin digest=\"SHA-256\">{}</pin>", pin.sha256)));
    }
    let (status, body) = reader
        .raw(Method::GET, &format!("pins/{APP}/export/windows"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("not one of android"));

    // The reader may not change anything, nor receive keys.
    let (status, body) = reader
        .raw(
            Method::POST,
            &format!("pins/{APP}/keys/generate"),
            Some(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(error_message(&body).contains("pins-manage"));
    // The release job manages pins but may not take private keys out.
    let release = server.client(&principal("release"));
    let terminator = CustodianIdentity::generate("edge-1").unwrap();
    let err = release
        .pins_deliver(APP, &kid_b, terminator.public())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("403") && err.to_string().contains("pins-deliver"),
        "{err}"
    );
    // A stranger reads nothing.
    let (status, _) = server
        .client(&principal("stranger"))
        .fetch(Method::GET, &format!("pins/{APP}/manifest"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        admin.pins_app(APP).await.unwrap().keys.len(),
        3,
        "refused requests changed nothing"
    );

    // Audit lines name the operation and the app (or app/key), and metrics count the routes.
    let audit = std::fs::read_to_string(server.path("audit.log")).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let seen = |operation: &str, key: &str, status: u16| {
        lines.iter().any(|l| {
            l["operation"] == operation
                && l["key"] == key
                && l["status"].as_u64() == Some(u64::from(status))
        })
    };
    assert!(seen("pins-read", APP, 200), "{audit}");
    assert!(seen("pins-manage", APP, 200), "{audit}");
    assert!(
        seen("pins-deliver", &format!("{APP}/{kid_b}"), 403),
        "{audit}"
    );
    let metrics = admin
        .fetch(Method::GET, "sys/metrics", None)
        .await
        .unwrap()
        .1;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(metrics.contains("operation=\"pins-read\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_activation_waits_for_a_custodian_and_keys_are_delivered_sealed() {
    let server = TestServer::new().await;
    let admin = server.admin();
    admin.pins_create_app(APP, &spec()).await.unwrap();
    let a = admin
        .pins_generate_key(APP, KeyAlgorithm::EcdsaP256)
        .await
        .unwrap()
        .key
        .unwrap();
    admin
        .pins_generate_key(APP, KeyAlgorithm::EcdsaP256)
        .await
        .unwrap();

    // Without an override: refused, naming the rule and when it will be allowed.
    let err = admin.pins_activate(APP, &a.kid, false).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("400"), "{message}");
    assert!(message.contains("published-for-update-lag"), "{message}");
    // With one: a pending approval, which runs once the custodian signs.
    let approval = match admin.pins_activate(APP, &a.kid, true).await.unwrap() {
        PinActivation::PendingApproval(approval) => approval,
        PinActivation::Done(change) => panic!("activated without approval: {change:?}"),
    };
    let state_of =
        |app: &tresor_wire::pins::PinApp| app.keys.iter().find(|k| k.kid == a.kid).unwrap().state;
    assert_eq!(
        state_of(&admin.pins_app(APP).await.unwrap()),
        PinState::Staged
    );
    server.approve(&approval.id).await;
    let app = admin.pins_app(APP).await.unwrap();
    assert_eq!(state_of(&app), PinState::Active);
    assert_eq!(app.manifest_version, Some(2));

    // The CSR is PKCS#10 PEM for the pinned key.
    let csr = admin
        .pins_csr(APP, &a.kid, "CN=api.example.com", &[])
        .await
        .unwrap();
    assert_eq!(
        pins::public_key_from(pins::KeySource::Csr, csr.as_bytes())
            .unwrap()
            .pin,
        a.pin
    );
    // Delivery is sealed to the terminator; the answer holds no key in the clear.
    let terminator = CustodianIdentity::generate("edge-1").unwrap();
    let delivered = admin
        .pins_deliver(APP, &a.kid, terminator.public())
        .await
        .unwrap();
    let pem = pins::open_delivered_key(&terminator, &delivered).unwrap();
    assert_eq!(
        pins::pem_key_pin(&pem, KeyAlgorithm::EcdsaP256).unwrap(),
        a.pin
    );
    let other = CustodianIdentity::generate("edge-2").unwrap();
    assert!(pins::open_delivered_key(&other, &delivered).is_err());

    // Bad requests are refused with Tresor's messages and statuses.
    for (method, path, body, status) in [
        (
            Method::POST,
            format!("pins/{APP}"),
            json!({"hosts": [{"name": "api.example.com", "subdomains": "none"}], "max_update_lag": "1d", "expires": "1d", "enforce_until": "2d"}),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "pins/new-app".to_owned(),
            json!({"hosts": [{"name": "*.example.com", "subdomains": "all"}], "max_update_lag": "1d", "expires": "1d", "enforce_until": "2d"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "pins/new-app".to_owned(),
            json!({"hosts": [], "bogus": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "pins/nope/keys/generate".to_owned(),
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("pins/{APP}/keys/generate"),
            json!({"algorithm": "dsa"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("pins/{APP}/keys/import"),
            json!({"kind": "certificate", "pem": "garbage"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("pins/{APP}/keys/k-000000000000/retire"),
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("pins/{APP}/keys/not-a-kid/retire"),
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            format!("pins/{APP}/manifest"),
            json!({}),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "pins/Bad/manifest".to_owned(),
            json!({}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, reply) = admin.raw(method.clone(), &path, Some(&body)).await.unwrap();
        assert_eq!(got, status, "{method} {path}: {reply}");
    }
    // Listing apps.
    let (status, listed) = admin.raw(list(), "pins", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"]["keys"], json!([APP]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_vault_serves_no_manifest() {
    let server = TestServer::new().await;
    let admin = server.admin();
    admin.pins_create_app(APP, &spec()).await.unwrap();
    server.vault().seal();
    let (status, _) = admin
        .fetch(Method::GET, &format!("pins/{APP}/manifest"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_over_the_api_waits_for_the_update_lag_then_needs_no_approval() {
    let start = now();
    let clock = std::sync::Arc::new(tresor_core::ManualClock::new(start));
    let server = TestServer::start(Options::default().clock(clock.clone())).await;
    let admin = server.admin();
    admin.pins_create_app(APP, &spec()).await.unwrap();
    let a = admin
        .pins_generate_key(APP, KeyAlgorithm::EcdsaP256)
        .await
        .unwrap()
        .key
        .unwrap();
    admin
        .pins_generate_key(APP, KeyAlgorithm::Ed25519)
        .await
        .unwrap();

    // One second short of the lag: still refused, and nothing changed.
    clock.advance(spec().max_update_lag - 1);
    let message = admin
        .pins_activate(APP, &a.kid, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("published-for-update-lag"), "{message}");
    let app = admin.pins_app(APP).await.unwrap();
    assert_eq!(app.manifest_version, Some(1));

    // Once the pin has been published for the whole lag, activation runs at once.
    clock.advance(1);
    match admin.pins_activate(APP, &a.kid, false).await.unwrap() {
        PinActivation::Done(_) => {}
        PinActivation::PendingApproval(approval) => {
            panic!("an on-time activation asked for approval: {approval:?}")
        }
    }
    let app = admin.pins_app(APP).await.unwrap();
    let state = app.keys.iter().find(|k| k.kid == a.kid).unwrap().state;
    assert_eq!((state, app.manifest_version), (PinState::Active, Some(2)));
    let trust = pins::parse_manifest_key(
        admin
            .pins_manifest_key()
            .await
            .unwrap()
            .public_key_pem
            .as_bytes(),
    )
    .unwrap();
    let manifest = admin.pins_manifest(APP, None).await.unwrap();
    let verified =
        pins::verify(&manifest, &trust, APP, None, start + spec().max_update_lag).unwrap();
    assert!(
        verified
            .manifest
            .pins
            .iter()
            .any(|p| p.sha256 == a.pin && p.state == PinState::Active)
    );
}
