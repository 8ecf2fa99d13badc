//! Issue 4 through the command line: `tresor custodian keygen`, `operator init|unseal|seal|
//! rotate-root|rekey`, `tenant unlock|lock` and `approval list|approve` run as real
//! subprocesses against a real server over mutual TLS; and `tresor dev` (item 6): its custodian
//! is a real identity file and it unseals itself through the custodians' API path.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use hyper::StatusCode;
use serde_json::Value;
use tresor_client::CryptoOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_crypto::identity::CustodianPublicKey;

use crate::common::custody::{CustodyOptions, CustodyServer};
use crate::common::dev::DevProcess;

const TRESOR: &str = env!("CARGO_BIN_EXE_tresor");
const PASSPHRASE: &str = "custodian passphrase for the CLI test";

struct Output {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `tresor ARGS` against `server` (extra environment `env`), off the async workers.
async fn tresor(server: &CustodyServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(TRESOR);
    command
        .args(args)
        .env_remove("TRESOR_PASSPHRASE")
        .env("TRESOR_ADDR", &server.url)
        .env("TRESOR_CACERT", server.path("ca.pem"))
        .env("TRESOR_CLIENT_CERT", &server.admin_files.cert)
        .env("TRESOR_CLIENT_KEY", &server.admin_files.key)
        .current_dir(server.dir.path())
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || crate::common::process::output(&mut command))
        .await
        .unwrap();
    Output {
        ok: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs and expects success; stdout.
async fn ok(server: &CustodyServer, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = tresor(server, args, env).await;
    assert!(
        out.ok,
        "tresor {args:?} failed: {}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// Runs and expects failure with one error line on stderr; that line. (`approval approve`
/// first shows the custodian what they are asked to sign, on stderr; the error follows it.)
async fn fails(server: &CustodyServer, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = tresor(server, args, env).await;
    assert!(!out.ok, "tresor {args:?} should fail: {}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let errors = lines
        .iter()
        .filter(|l| l.starts_with("tresor: error: "))
        .count();
    assert_eq!(errors, 1, "one error line: {:?}", out.stderr);
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.starts_with("tresor: error: "), "{:?}", out.stderr);
    if args[0] == "approval" && lines.len() > 1 {
        assert!(lines[0].starts_with("approval "), "{:?}", out.stderr);
    } else {
        assert_eq!(lines.len(), 1, "one line on stderr: {:?}", out.stderr);
    }
    last.to_owned()
}

const WITH_PASSPHRASE: &[(&str, &str)] = &[("TRESOR_PASSPHRASE", PASSPHRASE)];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custodian_ceremonies_through_the_cli() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).uninitialised()).await;
    let admin = server.admin();
    let passphrase_file = server.path("passphrase.txt");
    std::fs::write(
        &passphrase_file,
        format!("{PASSPHRASE}\nignored second line\n"),
    )
    .unwrap();
    let passphrase_file = passphrase_file.to_str().unwrap().to_owned();

    // keygen: from TRESOR_PASSPHRASE and from --passphrase-file; secrets mode 0600, encrypted.
    for name in ["alice", "bob", "carol", "tenantsec"] {
        ok(
            &server,
            &["custodian", "keygen", "--name", name, "--out", name],
            WITH_PASSPHRASE,
        )
        .await;
    }
    ok(
        &server,
        &[
            "custodian",
            "keygen",
            "--name",
            "dave",
            "--out",
            "dave",
            "--passphrase-file",
            &passphrase_file,
        ],
        &[],
    )
    .await;
    let read = |name: &str| std::fs::read_to_string(server.path(name)).unwrap();
    let alice_pub = CustodianPublicKey::from_json(&read("alice.pub")).unwrap();
    assert_eq!(alice_pub.name(), "alice");
    let mode = std::fs::metadata(server.path("alice.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dave =
        CustodianIdentity::from_encrypted_json(&read("dave.key"), PASSPHRASE.as_bytes()).unwrap();
    assert_eq!(dave.name(), "dave");
    let before = read("alice.key");
    let error = fails(
        &server,
        &["custodian", "keygen", "--name", "alice", "--out", "alice"],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(error.contains("exists already"), "{error}");
    assert_eq!(
        read("alice.key"),
        before,
        "the refused keygen did not overwrite the identity"
    );
    let error = fails(
        &server,
        &["custodian", "keygen", "--name", "eve", "--out", "eve"],
        &[("TRESOR_PASSPHRASE", "")],
    )
    .await;
    assert!(error.contains("empty"), "{error}");
    assert!(!server.path("eve.key").exists());

    // init 2-of-3.
    let out = ok(
        &server,
        &[
            "operator",
            "init",
            "--custodian",
            "alice.pub",
            "--custodian",
            "bob.pub",
            "--custodian",
            "carol.pub",
            "--threshold",
            "2",
        ],
        &[],
    )
    .await;
    assert!(out.contains("2-of-3 among alice ("), "{out}");
    assert!(
        out.contains(", bob (") && out.contains(", carol ("),
        "{out}"
    );
    // The node's fingerprint is printed and pinned beside each custodian's files.
    let fingerprint = server.pinned().remove(0);
    assert!(
        out.contains(&format!("node fingerprint: {fingerprint}")),
        "{out}"
    );
    for name in ["alice", "bob", "carol"] {
        let pins = std::fs::read_to_string(server.path(&format!("{name}.nodes"))).unwrap();
        assert!(pins.starts_with(&fingerprint), "{pins}");
    }

    // A wrong passphrase: one clear line, non-zero exit, no progress.
    let error = fails(
        &server,
        &["operator", "unseal", "--identity", "alice.key"],
        &[("TRESOR_PASSPHRASE", "not it")],
    )
    .await;
    assert!(error.contains("wrong passphrase"), "{error}");
    assert!(!error.contains("not it"));
    let status = admin.seal_status().await.unwrap();
    assert_eq!(
        status["submitted"],
        serde_json::json!([]),
        "a wrong passphrase submitted nothing"
    );

    let out = ok(
        &server,
        &["operator", "unseal", "--identity", "alice.key"],
        WITH_PASSPHRASE,
    )
    .await;
    assert_eq!(out.trim(), "share accepted: 1 of 2 (alice); still sealed");
    // Still sealed: `tresor status` exits 2, like `vault status` (issue 12, point 7).
    let status = tresor(&server, &["status"], &[]).await;
    assert_eq!(status.code, Some(2), "{}", status.stderr);
    let out = status.stdout;
    assert!(out.contains("sealed: true"), "{out}");
    assert!(out.contains("shares: 2 of 3"), "{out}");
    assert!(out.contains("submitted: 1 (alice)"), "{out}");
    let out = ok(
        &server,
        &[
            "operator",
            "unseal",
            "--identity",
            "bob.key",
            "--passphrase-file",
            &passphrase_file,
        ],
        &[],
    )
    .await;
    assert_eq!(out.trim(), "unsealed");
    assert_eq!(admin.health().await.unwrap().0, StatusCode::OK);

    admin.create_tenant("payments", 2, &[]).await.unwrap();
    admin
        .create_key("payments", "k", &Default::default())
        .await
        .unwrap();
    let sealed = admin
        .encrypt("payments", "k", b"cli data", &CryptoOptions::default())
        .await
        .unwrap();

    // rotate-root: a pending approval; list; approve needs confirmation or --yes; k signatures.
    let out = ok(
        &server,
        &["operator", "rotate-root", "--format", "json"],
        &[],
    )
    .await;
    let approval: Value = serde_json::from_str(&out).unwrap();
    let id = approval["id"].as_str().unwrap().to_owned();
    let out = ok(&server, &["approval", "list"], &[]).await;
    assert!(
        out.contains(&id) && out.contains("rotate the root key") && out.contains("pending"),
        "{out}"
    );
    let error = fails(
        &server,
        &["approval", "approve", &id, "--identity", "alice.key"],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(
        error.contains("refusing to sign without confirmation"),
        "{error}"
    );
    assert_eq!(admin.approval(&id).await.unwrap().signatures.len(), 0);
    let error = fails(
        &server,
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "alice.key",
            "--yes",
        ],
        &[("TRESOR_PASSPHRASE", "nope")],
    )
    .await;
    assert!(error.contains("wrong passphrase"), "{error}");
    let out = ok(
        &server,
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "alice.key",
            "--yes",
        ],
        WITH_PASSPHRASE,
    )
    .await;
    assert_eq!(out.trim(), "signature accepted: 1 of 2 signatures");
    let out = ok(
        &server,
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "alice.key",
            "--yes",
        ],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(out.contains("counts once"), "{out}");
    assert_eq!(
        admin.seal_status().await.unwrap()["root_generation"],
        1,
        "not yet"
    );
    let out = ok(
        &server,
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "carol.key",
            "--yes",
        ],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(
        out.contains("done: root key rotated (generation 2)"),
        "{out}"
    );
    let error = fails(
        &server,
        &["approval", "approve", &id, "--identity", "bob.key", "--yes"],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(error.contains("no longer pending"), "{error}");

    // rekey to alice, carol, dave (2-of-3), approved by two current custodians.
    let out = ok(
        &server,
        &[
            "operator",
            "rekey",
            "--custodian",
            "alice.pub",
            "--custodian",
            "carol.pub",
            "--custodian",
            "dave.pub",
            "--threshold",
            "2",
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &server,
        &["approval", "approve", &id, "--identity", "bob.key", "--yes"],
        WITH_PASSPHRASE,
    )
    .await;
    let out = ok(
        &server,
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "carol.key",
            "--yes",
        ],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(out.contains("rekeyed: 2-of-3"), "{out}");

    // seal; bob is out; alice and dave unseal; the data is intact.
    assert_eq!(
        ok(&server, &["operator", "seal"], &[]).await.trim(),
        "sealed"
    );
    assert_eq!(
        admin.health().await.unwrap().0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let error = fails(
        &server,
        &["operator", "unseal", "--identity", "bob.key"],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(error.contains("not a custodian"), "{error}");
    ok(
        &server,
        &["operator", "unseal", "--identity", "alice.key"],
        WITH_PASSPHRASE,
    )
    .await;
    // dave joined by the rekey: nothing pinned for him yet, so his CLI refuses before sending
    // anything; he pins the node (its fingerprint checked with the operators) and unseals.
    let error = fails(
        &server,
        &["operator", "unseal", "--identity", "dave.key"],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(error.contains("no vault node is pinned"), "{error}");
    let fingerprint = server.pinned().remove(0);
    let out = ok(
        &server,
        &[
            "operator",
            "trust-node",
            &fingerprint,
            "--identity",
            "dave.key",
        ],
        &[],
    )
    .await;
    assert!(out.contains("pinned"), "{out}");
    let out = ok(
        &server,
        &[
            "operator",
            "unseal",
            "--identity",
            "dave.key",
            "--passphrase-file",
            &passphrase_file,
        ],
        &[],
    )
    .await;
    assert_eq!(out.trim(), "unsealed");
    let opened = admin
        .decrypt(
            "payments",
            "k",
            &sealed.ciphertext,
            &CryptoOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(opened.as_slice(), b"cli data");

    // A level-3 tenant: its own custodian unlocks it, a vault custodian cannot; lock relocks.
    ok(
        &server,
        &[
            "tenant",
            "create",
            "vault3",
            "--level",
            "3",
            "--custodian",
            "tenantsec.pub",
        ],
        &[],
    )
    .await;
    let error = fails(
        &server,
        &["tenant", "unlock", "vault3", "--identity", "alice.key"],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(
        error.contains("not a custodian of tenant `vault3`"),
        "{error}"
    );
    let error = fails(
        &server,
        &["tenant", "unlock", "vault3", "--identity", "tenantsec.key"],
        &[("TRESOR_PASSPHRASE", "wrong")],
    )
    .await;
    assert!(error.contains("wrong passphrase"), "{error}");
    assert!(admin.tenant("vault3").await.unwrap().locked);
    ok(
        &server,
        &["tenant", "unlock", "vault3", "--identity", "tenantsec.key"],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(!admin.tenant("vault3").await.unwrap().locked);
    let out = ok(&server, &["tenant", "lock", "vault3"], &[]).await;
    assert!(out.contains("locked"), "{out}");
    assert!(admin.tenant("vault3").await.unwrap().locked);

    // An approval left unsigned past its expiry is listed as expired and cannot be signed;
    // an unknown one is a clear 404.
    let out = ok(
        &server,
        &["operator", "rotate-root", "--format", "json"],
        &[],
    )
    .await;
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.clock.advance(server.options.approval_ttl);
    let out = ok(&server, &["approval", "list"], &[]).await;
    assert!(out.contains(&format!("approval {id} (EXPIRED")), "{out}");
    let error = fails(
        &server,
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "alice.key",
            "--yes",
        ],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(error.contains("no longer pending"), "{error}");
    assert_eq!(
        admin.seal_status().await.unwrap()["root_generation"],
        3,
        "the expired rotation did not run"
    );
    let error = fails(
        &server,
        &[
            "approval",
            "approve",
            "0123456789abcdef01234567",
            "--identity",
            "alice.key",
            "--yes",
        ],
        WITH_PASSPHRASE,
    )
    .await;
    assert!(
        error.contains("404") && error.contains("does not exist"),
        "{error}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tresor_dev_uses_a_real_custodian_identity_and_the_unseal_api() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevProcess::start(dir.path());
    // The passphrase is printed, and it opens the identity file, whose public half is the
    // vault's one custodian.
    let line = dev
        .stdout
        .iter()
        .find(|l| l.starts_with("Dev custodian: "))
        .expect("the dev custodian is printed");
    let key_path = dir.path().canonicalize().unwrap().join("custodian.key");
    assert!(line.contains(&key_path.display().to_string()), "{line}");
    let passphrase = line
        .split("(passphrase: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .expect("the passphrase is printed");
    let identity = CustodianIdentity::from_encrypted_json(
        &std::fs::read_to_string(&key_path).unwrap(),
        passphrase.as_bytes(),
    )
    .unwrap();
    assert!(
        CustodianIdentity::from_encrypted_json(
            &std::fs::read_to_string(&key_path).unwrap(),
            b"guess"
        )
        .is_err()
    );
    let public = CustodianPublicKey::from_json(
        &std::fs::read_to_string(dir.path().join("custodian.pub")).unwrap(),
    )
    .unwrap();
    assert_eq!(&public, identity.public());
    let client = dev.client();
    let status = client.seal_status().await.unwrap();
    assert_eq!(status["sealed"], false);
    assert_eq!(status["custodians"], serde_json::json!([identity.name()]));
    assert_eq!(
        (status["t"].as_u64(), status["n"].as_u64()),
        (Some(1), Some(1))
    );

    // It unsealed through the API (the audit trail has the custodian's unseal submission), and
    // comes back the same way after a restart.
    let unseal_lines = || {
        std::fs::read_to_string(dir.path().join("audit.log"))
            .unwrap()
            .lines()
            .filter(|l| {
                l.contains("\"operation\":\"unseal\"")
                    && l.contains("spiffe://dev.tresor.local/admin")
            })
            .count()
    };
    let first = unseal_lines();
    assert!(first > 0, "no unseal request in the audit trail");
    dev.stop();
    let dev = DevProcess::start(dir.path());
    let client = dev.client();
    assert_eq!(client.seal_status().await.unwrap()["sealed"], false);
    assert_eq!(
        unseal_lines(),
        2 * first,
        "the restart unsealed through the API again"
    );

    // Its custodian approves dual-controlled operations like any other.
    let approval = client.rotate_root().await.unwrap();
    let outcome = client.approve_with(&approval, &identity).await.unwrap();
    assert_eq!(
        serde_json::to_value(&outcome.approval.state).unwrap()["state"],
        "executed"
    );
    dev.stop();
}
