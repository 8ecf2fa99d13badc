//! `tresor pins …` as an operator and a TLS terminator run it, against a real server: app and
//! keys, the manifest key and manifest written to files, `verify` with a state file (and a
//! rollback refused), exports, a CSR, and a key delivered to a terminator identity and opened
//! into a PEM key.

use crate::common::process::Bounded;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tresor_wire::pins::{self, KeyAlgorithm};

use crate::common::server::{ADMIN, TestServer, write};

const TRESOR: &str = env!("CARGO_BIN_EXE_tresor");
const APP: &str = "ios-banking";

struct Cli {
    env: Vec<(String, String)>,
}

impl Cli {
    async fn run(&self, args: &[&str]) -> Output {
        let env = self.env.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new(TRESOR)
                .args(&args)
                .envs(env)
                .env_remove("TRESOR_PASSPHRASE")
                .bounded_output()
        })
        .await
        .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "tresor {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&args).await).unwrap()
    }

    async fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(!output.status.success(), "tresor {args:?} succeeded");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.starts_with("tresor: error: "), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_terminator_commands() {
    let server = TestServer::new().await;
    let files = server.issue(ADMIN);
    let cli = Cli {
        env: vec![
            ("TRESOR_ADDR".into(), server.url.clone()),
            ("TRESOR_CACERT".into(), p(&server.path("ca.pem")).into()),
            ("TRESOR_CLIENT_CERT".into(), p(&files.cert).into()),
            ("TRESOR_CLIENT_KEY".into(), p(&files.key).into()),
        ],
    };
    let path = |name: &str| server.path(name);

    let app = cli
        .json(&[
            "pins",
            "app",
            "create",
            APP,
            "--host",
            "api.example.com:all",
            "--host",
            "cdn.example.com",
            "--max-update-lag",
            "90d",
            "--expires",
            "14d",
            "--enforce-until",
            "180d",
        ])
        .await;
    assert_eq!(app["max_update_lag"], 90 * 86_400);
    assert_eq!(app["hosts"][0]["subdomains"], "all");
    let first = cli.json(&["pins", "key", "generate", APP]).await;
    assert!(first["manifest_version"].is_null());
    let kid = first["key"]["kid"].as_str().unwrap().to_owned();
    let second = cli
        .json(&["pins", "key", "generate", APP, "--algorithm", "ed25519"])
        .await;
    assert_eq!(second["manifest_version"], 1);
    assert_eq!(second["key"]["algorithm"], "ed25519");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pins");
    let imported = cli
        .json(&[
            "pins",
            "key",
            "import",
            APP,
            "--cert",
            p(&fixtures.join("rsa-2048.cert.pem")),
        ])
        .await;
    assert_eq!(
        imported["key"]["pin"],
        "U8cidsT1e788kJvOcyUg+Bm0EAYu6/6NG3kNa2q6Zw8="
    );
    assert_eq!(imported["manifest_version"], 2);
    let shown = cli.ok(&["pins", "app", "show", APP]).await;
    assert!(shown.contains(&kid) && shown.contains("staged"), "{shown}");

    // The key apps build in, the manifest, and verification with a state file.
    cli.ok(&[
        "pins",
        "manifest-key",
        "show",
        "--out",
        p(&path("manifest.pub")),
    ])
    .await;
    cli.ok(&["pins", "manifest", APP, "--out", p(&path("m2.json"))])
        .await;
    cli.ok(&["pins", "manifest", APP, "1", "--out", p(&path("m1.json"))])
        .await;
    let verify = |file: &str| {
        vec![
            "pins".to_owned(),
            "verify".into(),
            p(&path(file)).into(),
            "--app".into(),
            APP.into(),
            "--trust".into(),
            p(&path("manifest.pub")).into(),
            "--state".into(),
            p(&path("state.json")).into(),
        ]
    };
    let args = verify("m1.json");
    let v1 = cli
        .json(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert_eq!(
        (v1["valid"].clone(), v1["version"].clone()),
        (Value::Bool(true), Value::from(1))
    );
    let args = verify("m2.json");
    let text = cli
        .ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        text.starts_with("valid: app ios-banking version 2"),
        "{text}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(path("state.json")).unwrap()).unwrap();
    assert_eq!(state["version"], 2);
    let args = verify("m1.json");
    let refused = cli
        .fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(refused.contains("rollback"), "{refused}");
    let mut tampered = std::fs::read(path("m2.json")).unwrap();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    write(&path("m2-tampered.json"), &tampered);
    let refused = cli
        .fails(&[
            "pins",
            "verify",
            p(&path("m2-tampered.json")),
            "--app",
            APP,
            "--trust",
            p(&path("manifest.pub")),
        ])
        .await;
    assert!(refused.contains("manifest"), "{refused}");

    // The log, fetched and verified.
    let log = cli.ok(&["pins", "log"]).await;
    assert!(log.contains("log verified: 2 entries"), "{log}");

    // Exports.
    let okhttp = cli.ok(&["pins", "export", APP, "--format", "okhttp"]).await;
    assert_eq!(
        okhttp
            .matches(".add(\"**.api.example.com\", \"sha256/")
            .count(),
        3
    );
    let refused = cli
        .fails(&["pins", "export", APP, "--format", "bogus"])
        .await;
    assert!(refused.contains("not one of android"), "{refused}");

    // CSR, activation refused before the lag, delivery to a terminator and opening there.
    let csr = cli
        .ok(&[
            "pins",
            "key",
            "csr",
            APP,
            &kid,
            "--subject",
            "CN=api.example.com",
        ])
        .await;
    assert!(
        csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{csr}"
    );
    let refused = cli.fails(&["pins", "key", "activate", APP, &kid]).await;
    assert!(refused.contains("published-for-update-lag"), "{refused}");
    write(&path("pw"), "terminator passphrase\n");
    cli.ok(&[
        "custodian",
        "keygen",
        "--name",
        "edge-1",
        "--out",
        p(&path("terminator")),
        "--passphrase-file",
        p(&path("pw")),
    ])
    .await;
    cli.ok(&[
        "pins",
        "key",
        "deliver",
        APP,
        &kid,
        "--to",
        p(&path("terminator.pub")),
        "--out",
        p(&path("delivered.json")),
    ])
    .await;
    let delivered = std::fs::read_to_string(path("delivered.json")).unwrap();
    assert!(!delivered.contains("PRIVATE KEY"));
    cli.ok(&[
        "pins",
        "key",
        "open",
        p(&path("delivered.json")),
        "--identity",
        p(&path("terminator.key")),
        "--passphrase-file",
        p(&path("pw")),
        "--out",
        p(&path("key.pem")),
    ])
    .await;
    let pem = std::fs::read_to_string(path("key.pem")).unwrap();
    assert_eq!(
        pins::pem_key_pin(&pem, KeyAlgorithm::EcdsaP256).unwrap(),
        first["key"]["pin"].as_str().unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(path("key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The wrong passphrase (or identity) opens nothing.
    write(&path("wrong"), "not it\n");
    cli.fails(&[
        "pins",
        "key",
        "open",
        p(&path("delivered.json")),
        "--identity",
        p(&path("terminator.key")),
        "--passphrase-file",
        p(&path("wrong")),
    ])
    .await;
}
