//! Issue 14: the disaster-recovery drill with real processes. A 2-of-3 vault with tenants at
//! levels 1-3 and 10,000 ciphertexts is backed up while `tresor bench` runs against it, its data
//! directory is deleted, the backup is restored into a fresh directory served on another port,
//! two custodians unseal it (the third is lost), and every ciphertext decrypts; then a rekey
//! shuts the lost custodian out. Tampered, truncated and other-environment files change nothing.

use std::collections::BTreeMap;

use tresor_client::{Client, CreateKeyOptions, CryptoOptions};

use crate::common::deployment::Deployment;
use crate::common::postgres::TestDatabase;

const CIPHERTEXTS: usize = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// (tenant, key, options) of the drill's keys.
fn keys() -> Vec<(&'static str, &'static str, CreateKeyOptions)> {
    vec![
        ("plain", "k1", CreateKeyOptions::default()),
        ("payments", "card", CreateKeyOptions::default()),
        ("payments", "rotated", CreateKeyOptions::default()),
        ("payments", "retired", CreateKeyOptions::default()),
        (
            "payments",
            "derived",
            CreateKeyOptions {
                derived: true,
                ..Default::default()
            },
        ),
        (
            "payments",
            "convergent",
            CreateKeyOptions {
                derived: true,
                convergent_encryption: true,
                ..Default::default()
            },
        ),
        ("vault3", "k3", CreateKeyOptions::default()),
    ]
}

/// Writes the ciphertexts: (tenant, key, context, plaintext, ciphertext).
async fn fill(client: &Client) -> Vec<(String, String, Vec<u8>, Vec<u8>, String)> {
    let mut out = Vec::new();
    let keys = keys();
    for (i, chunk) in (0..CIPHERTEXTS).collect::<Vec<_>>().chunks(500).enumerate() {
        let (tenant, key, options) = &keys[i % keys.len()];
        let context = if options.derived {
            format!("ctx-{}", i % 3).into_bytes()
        } else {
            Vec::new()
        };
        let plaintexts: Vec<Vec<u8>> = chunk
            .iter()
            .map(|n| format!("record {n} of the drill").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = plaintexts.iter().map(Vec::as_slice).collect();
        let crypto = CryptoOptions {
            context: (!context.is_empty()).then(|| context.clone()),
            ..Default::default()
        };
        let sealed = client
            .encrypt_batch(tenant, key, &refs, &crypto)
            .await
            .unwrap();
        for (plaintext, sealed) in plaintexts.into_iter().zip(sealed) {
            out.push((
                tenant.to_string(),
                key.to_string(),
                context.clone(),
                plaintext,
                sealed.unwrap().ciphertext,
            ));
        }
        if *key == "rotated" && i < keys.len() {
            client.rotate_key(tenant, key).await.unwrap();
        }
    }
    out
}

/// Every key's description but those of tenant `except`, for comparing before and after.
async fn describe(client: &Client, except: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for (tenant, key, _) in keys().into_iter().filter(|(t, _, _)| *t != except) {
        out.insert(
            format!("{tenant}/{key}"),
            client.read_key(tenant, key).await.unwrap(),
        );
    }
    out
}

fn node_fingerprint(d: &Deployment) -> String {
    let pins = std::fs::read_to_string(d.path("alice.nodes")).unwrap();
    pins.lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_disaster_recovery_drill() {
    let d = Deployment::new();
    let server = d.start_unsealed(&["alice", "bob", "carol"], 2);
    let rt = runtime();
    let ops = d.client(&server, "ops");
    server.ops(&d, &["tenant", "create", "plain", "--level", "1"]);
    server.ops(&d, &["tenant", "create", "payments", "--level", "2"]);
    server.ops(
        &d,
        &[
            "tenant",
            "create",
            "vault3",
            "--level",
            "3",
            "--custodian",
            "alice.pub",
        ],
    );
    server.ops(
        &d,
        &["tenant", "unlock", "vault3", "--identity", "alice.key"],
    );
    // A pinning app with an active manifest.
    server.ops(
        &d,
        &[
            "pins",
            "app",
            "create",
            "ios",
            "--host",
            "api.example.com:all",
            "--max-update-lag",
            "90d",
            "--expires",
            "14d",
            "--enforce-until",
            "180d",
        ],
    );
    server.ops(&d, &["pins", "key", "generate", "ios"]);
    server.ops(
        &d,
        &["pins", "key", "generate", "ios", "--algorithm", "ed25519"],
    );
    server.ops(
        &d,
        &["pins", "manifest-key", "show", "--out", "manifest.pub"],
    );
    let manifest = server.ops(&d, &["pins", "export", "ios", "--format", "json"]);
    let (written, tokens, before) = rt.block_on(async {
        for (tenant, key, options) in keys() {
            ops.create_key(tenant, key, &options).await.unwrap();
        }
        // One key's first version retired before any data: min_decryption_version 2.
        ops.rotate_key("payments", "retired").await.unwrap();
        let raise = tresor_wire::keys::KeyConfigUpdate {
            min_decryption_version: Some(2),
            ..Default::default()
        };
        ops.configure_key("payments", "retired", &raise)
            .await
            .unwrap();
        let written = fill(&ops).await;
        let mut tokens = Vec::new();
        for n in 0..20 {
            let input = format!("iban-{n}").into_bytes();
            let token = ops.hmac("payments", "card", &input, None).await.unwrap();
            tokens.push((input, token));
        }
        (written, tokens, describe(&ops, "").await)
    });
    assert_eq!(written.len(), CIPHERTEXTS);

    // The backup is taken while `tresor bench` runs against the vault.
    let env = server.env_for("ops");
    let bench_env = env.clone();
    let dir = d.dir.path().to_owned();
    let bench = std::thread::spawn(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tresor"));
        command
            .args([
                "bench", "-d", "3s", "-c", "2", "--tenant", "payments", "--key", "card",
            ])
            .current_dir(dir)
            .envs(bench_env);
        crate::common::process::output(&mut command)
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let summary = server.ops(&d, &["operator", "backup", "--out", "drill.backup"]);
    assert!(
        summary.starts_with("wrote drill.backup: vault "),
        "{summary}"
    );
    assert_eq!(d.mode("drill.backup"), 0o600);
    let bench = bench.join().unwrap();
    let report = String::from_utf8_lossy(&bench.stdout).into_owned()
        + &String::from_utf8_lossy(&bench.stderr);
    assert!(bench.status.success(), "{report}");
    assert!(
        report.contains(" ok, 0 errors in"),
        "bench saw errors during the backup: {report}"
    );
    let again = server.run_as(&d, "ops", &["operator", "backup", "--out", "drill.backup"]);
    assert_eq!(again.code(), Some(1));
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    // After the backup, tenant `plain` is shredded (with its approval).
    let asked = server.ops(&d, &["tenant", "shred", "plain", "--format", "json"]);
    let id = serde_json::from_str::<serde_json::Value>(&asked).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for who in ["alice", "bob"] {
        let key = format!("{who}.key");
        server.ops(
            &d,
            &["approval", "approve", &id, "--identity", &key, "--yes"],
        );
    }
    server.stop();

    // The machine is lost.
    std::fs::remove_dir_all(d.path("data")).unwrap();
    let node = node_fingerprint(&d);
    let config = std::fs::read_to_string(d.path("tresor.toml"))
        .unwrap()
        .replace("path = \"data\"", "path = \"restored\"")
        .replace("audit/audit.log", "restored-audit/audit.log");
    d.write("restored.toml", &config);

    // Refused files change nothing: the restored directory is not even created.
    let file = std::fs::read_to_string(d.path("drill.backup")).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    let tampered = file.replacen(
        "\"path\":\"keys/payments/card\"",
        "\"path\":\"keys/payments/cart\"",
        1,
    );
    let truncated = lines[..lines.len() - 1].join("\n") + "\n";
    for (name, contents, expected) in [
        (
            "tampered.backup",
            tampered.as_str(),
            "signature does not verify",
        ),
        ("truncated.backup", truncated.as_str(), "truncated"),
    ] {
        d.write(name, contents);
        let run = d.run(&[
            "operator",
            "restore",
            name,
            "--config",
            "restored.toml",
            "--node",
            &node,
        ]);
        assert_eq!(run.code(), Some(1), "{}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(!d.path("restored").exists(), "{name} wrote something");
    }
    let stranger = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
    let run = d.run(&[
        "operator",
        "restore",
        "drill.backup",
        "--config",
        "restored.toml",
        "--node",
        stranger,
    ]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr.contains("not among the trusted nodes"),
        "{}",
        run.stderr
    );
    d.write(
        "other-env.toml",
        &config.replace("environment = \"production\"", "environment = \"staging\""),
    );
    let run = d.run(&[
        "operator",
        "restore",
        "drill.backup",
        "--config",
        "other-env.toml",
        "--node",
        &node,
    ]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr
            .contains("the backup is of environment `production`"),
        "{}",
        run.stderr
    );
    assert!(!d.path("restored").exists());

    // The restore, on another port.
    // Given the vault's audit log, the restore finds `plain` shredded after the backup.
    let restored = d.run(&[
        "operator",
        "restore",
        "drill.backup",
        "--config",
        "restored.toml",
        "--node",
        &node,
        "--audit-log",
        "audit/audit.log",
        "--audit-key",
        "audit/audit.pub",
    ]);
    assert!(restored.status.success(), "{}", restored.stderr);
    assert!(
        restored.stdout.contains("it starts sealed"),
        "{}",
        restored.stdout
    );
    assert!(
        restored
            .stderr
            .contains("shredded again at the next unseal: plain"),
        "{}",
        restored.stderr
    );
    let again = d.run(&[
        "operator",
        "restore",
        "drill.backup",
        "--config",
        "restored.toml",
        "--node",
        &node,
    ]);
    assert_eq!(again.code(), Some(1));
    assert!(
        again.stderr.contains("the store is not empty"),
        "{}",
        again.stderr
    );
    let audit = std::fs::read_to_string(d.path("restored-audit/audit.log")).unwrap();
    assert!(audit.contains("\"operation\":\"restored\""), "{audit}");

    let server = d.start_with("restored.toml");
    // Carol is lost: Alice and Bob unseal.
    server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
    let unsealed = server.run_as(&d, "ops", &["operator", "unseal", "--identity", "bob.key"]);
    assert_eq!(unsealed.stdout.trim(), "unsealed", "{}", unsealed.stderr);
    assert!(
        unsealed.stderr.contains("shredded again"),
        "{}",
        unsealed.stderr
    );
    let tenants = server.ops(&d, &["tenant", "list"]);
    assert!(!tenants.lines().any(|t| t == "plain"), "{tenants}");
    server.ops(
        &d,
        &["tenant", "unlock", "vault3", "--identity", "alice.key"],
    );
    // The pins manifest is the same, and verifies as the app does.
    let restored_manifest = server.ops(&d, &["pins", "export", "ios", "--format", "json"]);
    assert_eq!(restored_manifest, manifest);
    d.write("restored-manifest.json", &restored_manifest);
    let verified = d.ok(&[
        "pins",
        "verify",
        "restored-manifest.json",
        "--app",
        "ios",
        "--trust",
        "manifest.pub",
    ]);
    assert!(verified.starts_with("valid: app ios"), "{verified}");
    let ops = d.client(&server, "ops");
    rt.block_on(async {
        let mut before = before.clone();
        before.remove("plain/k1");
        assert_eq!(
            describe(&ops, "plain").await,
            before,
            "key versions and configs"
        );
        for (tenant, key, context, plaintext, ciphertext) in &written {
            if tenant == "plain" {
                continue;
            }
            let crypto = CryptoOptions {
                context: (!context.is_empty()).then(|| context.clone()),
                ..Default::default()
            };
            let opened = ops.decrypt(tenant, key, ciphertext, &crypto).await.unwrap();
            assert_eq!(opened.as_slice(), plaintext.as_slice());
        }
        for (input, token) in &tokens {
            assert!(
                ops.verify_hmac("payments", "card", input, token, None)
                    .await
                    .unwrap()
            );
        }
    });

    // The same backup into PostgreSQL: how a vault moves to several nodes.
    if let Some(db) = TestDatabase::create() {
        let start = config.find("[storage]").unwrap();
        let end = config.find("[policies]").unwrap();
        let on_pg = format!(
            "{}{}\n{}",
            &config[..start],
            db.storage_toml("drill"),
            &config[end..]
        )
        .replace("restored-audit/audit.log", "pg-audit/audit.log");
        d.write("pg.toml", &on_pg);
        d.ok(&[
            "operator",
            "restore",
            "drill.backup",
            "--config",
            "pg.toml",
            "--node",
            &node,
        ]);
        let pg = d.start_with("pg.toml");
        pg.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
        pg.ops(&d, &["operator", "unseal", "--identity", "bob.key"]);
        pg.ops(
            &d,
            &["tenant", "unlock", "vault3", "--identity", "alice.key"],
        );
        let on_pg = d.client(&pg, "ops");
        rt.block_on(async {
            assert_eq!(
                describe(&on_pg, "").await,
                before,
                "key versions and configs"
            );
            for (tenant, key, context, plaintext, ciphertext) in &written {
                let crypto = CryptoOptions {
                    context: (!context.is_empty()).then(|| context.clone()),
                    ..Default::default()
                };
                let opened = on_pg
                    .decrypt(tenant, key, ciphertext, &crypto)
                    .await
                    .unwrap();
                assert_eq!(opened.as_slice(), plaintext.as_slice());
            }
        });
        pg.stop();
    }

    // A rekey without Carol: her identity with one remaining custodian opens nothing after it.
    let approval = server.ops(
        &d,
        &[
            "operator",
            "rekey",
            "--custodian",
            "alice.pub",
            "--custodian",
            "bob.pub",
            "--threshold",
            "2",
            "--format",
            "json",
        ],
    );
    let id = serde_json::from_str::<serde_json::Value>(&approval).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for who in ["alice", "bob"] {
        server.ops(
            &d,
            &[
                "approval",
                "approve",
                &id,
                "--identity",
                &format!("{who}.key"),
                "--yes",
            ],
        );
    }
    server.ops(&d, &["operator", "seal"]);
    server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
    let carol = server.run_as(
        &d,
        "ops",
        &["operator", "unseal", "--identity", "carol.key"],
    );
    assert_eq!(carol.code(), Some(1), "{}", carol.stderr);
    let status = server.run_as(&d, "ops", &["status"]);
    assert_eq!(status.code(), Some(2), "still sealed: {}", status.stdout);
    server.stop();
}
