//! A rolling upgrade with a real binary of the previous release (docs/deployment.md,
//! "Upgrades"): nodes of the old and the new version serve one database at the same time.
//!
//! `.ci/run` builds the previous release (the commit named in `.ci/previous-release`) and hands
//! its binary over in `TRESOR_PREVIOUS_BIN`. Without it: in CI (`CI=true`) the test fails;
//! elsewhere it prints how to build one and passes without running.

use std::path::PathBuf;

use super::{Cluster, position, wait_for_position};
use crate::common::deployment::ServerProcess;

/// The previous release's `tresor`, or `None` (with a note) outside CI.
fn previous_release() -> Option<PathBuf> {
    match std::env::var_os("TRESOR_PREVIOUS_BIN") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "TRESOR_PREVIOUS_BIN={} is not a file",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("TRESOR_PREVIOUS_BIN is not set: .ci/run builds the previous release")
        }
        None => {
            eprintln!(
                "note: rolling-upgrade test not run: set TRESOR_PREVIOUS_BIN to a `tresor` built from \
                 the commit in .ci/previous-release (.ci/run does)"
            );
            None
        }
    }
}

impl Cluster {
    /// Starts `node` with the previous release's binary (writing its configuration on its first
    /// start): the server, or its exit status and stderr.
    fn try_start_previous(
        &self,
        previous: &std::path::Path,
        node: &str,
    ) -> Result<ServerProcess, (std::process::ExitStatus, String)> {
        let file = format!("tresor-{node}.toml");
        if !self.d.path(&file).exists() {
            self.node_config(node, "");
        }
        self.d.try_start_binary(previous, &file)
    }

    /// Starts `node`, configured before, with this version's binary: an upgrade in place.
    fn restart(&self, node: &str) -> ServerProcess {
        self.d.start_with(&format!("tresor-{node}.toml"))
    }

    fn schema_version(&self) -> i32 {
        let rows = self.db.rows("SELECT version FROM tresor_schema");
        String::from_utf8(rows[0][0].clone())
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// Old nodes A and B on the old schema; new node C migrates it while they serve; keys, ciphertexts
/// and changes cross between versions both ways; A is upgraded; an old node restarted mid-upgrade
/// behaves as its release documents; B is upgraded last. Nothing returned on the way fails to
/// decrypt at the end, on every node.
#[test]
fn old_and_new_nodes_serve_one_database_through_a_rolling_upgrade() {
    let Some(previous) = previous_release() else {
        return;
    };
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let start_previous = |node: &str| {
        cluster
            .try_start_previous(&previous, node)
            .unwrap_or_else(|(status, stderr)| {
                panic!("previous {node} exited ({status}): {stderr}")
            })
    };
    let alice = ["alice"];

    // The previous release: A initialises, B joins.
    let a = start_previous("a");
    cluster.init(&a, &alice, 1);
    let b = start_previous("b");
    // The custodian pins each further node's identity key (made at its first start).
    let trust = |node: &str| {
        d.ok(&[
            "operator",
            "trust-node",
            &cluster.fingerprint(node),
            "--identity",
            "alice.key",
        ]);
    };
    trust("b");
    cluster.unseal(&a, &alice);
    cluster.unseal(&b, &alice);
    a.ops(d, &["tenant", "create", "payments"]);
    a.ops(d, &["key", "create", "payments/card-pan"]);
    let mut ciphertexts = vec![(
        "4111 1111",
        b.ops(d, &["encrypt", "payments/card-pan", "4111 1111"]),
    )];
    let old_schema = cluster.schema_version();

    // C, of this version, migrates the schema while A and B serve.
    let c = cluster.start("c");
    trust("c");
    cluster.unseal(&c, &alice);
    assert_eq!(cluster.schema_version(), tresor_postgres::SCHEMA_VERSION);
    assert!(old_schema <= tresor_postgres::SCHEMA_VERSION);

    // Across versions, both ways: old ciphertexts on the new node, new ones on the old nodes.
    assert_eq!(
        c.ops(
            d,
            &["decrypt", "payments/card-pan", ciphertexts[0].1.trim()]
        )
        .trim(),
        "4111 1111"
    );
    let from_c = c.ops(d, &["encrypt", "payments/card-pan", "5500 0000"]);
    for old in [&a, &b] {
        assert_eq!(
            old.ops(d, &["decrypt", "payments/card-pan", from_c.trim()])
                .trim(),
            "5500 0000"
        );
    }
    ciphertexts.push(("5500 0000", from_c));
    // A change on the new node reaches the old ones through the change log, and back.
    c.ops(d, &["key", "rotate", "payments/card-pan"]);
    let rotated = position(d, &c);
    wait_for_position(d, &a, rotated);
    let from_a = a.ops(d, &["encrypt", "payments/card-pan", "3400 0000"]);
    assert!(from_a.trim().starts_with("tresor:v2:"), "{from_a}");
    ciphertexts.push(("3400 0000", from_a));
    b.ops(d, &["key", "create", "payments/iban"]);
    let created = position(d, &b);
    wait_for_position(d, &c, created);
    let from_new = c.ops(d, &["encrypt", "payments/iban", "DE89 3704"]);
    assert_eq!(
        b.ops(d, &["decrypt", "payments/iban", from_new.trim()])
            .trim(),
        "DE89 3704"
    );

    // A is upgraded: stopped, started with this version, unsealed.
    a.stop();
    let a = cluster.restart("a");
    cluster.unseal(&a, &alice);
    let from_upgraded = a.ops(d, &["encrypt", "payments/card-pan", "6011 0000"]);
    assert_eq!(
        b.ops(d, &["decrypt", "payments/card-pan", from_upgraded.trim()])
            .trim(),
        "6011 0000"
    );
    ciphertexts.push(("6011 0000", from_upgraded));

    // B, still old, restarts in the middle of the upgrade (a crash, a reboot). A release that
    // knows `compatible_from` (schema 3 on) starts again on the newer schema that admits it; an
    // older one refuses, naming the versions: its documented "roll forward, not back".
    b.stop();
    match cluster.try_start_previous(&previous, "b") {
        Ok(b) => {
            assert!(
                old_schema >= 3,
                "a release without the marker started: {}",
                b.stderr()
            );
            cluster.unseal(&b, &alice);
            assert_eq!(
                b.ops(d, &["decrypt", "payments/iban", from_new.trim()])
                    .trim(),
                "DE89 3704"
            );
        }
        Err((status, stderr)) => {
            assert!(
                old_schema < 3,
                "the previous release refused an admitting schema: {stderr}"
            );
            assert!(!status.success());
            assert!(
                stderr.contains(&format!("version {}", tresor_postgres::SCHEMA_VERSION))
                    && stderr.contains("upgrade Tresor"),
                "{stderr}"
            );
        }
    }

    // B is upgraded last. Every ciphertext returned on the way decrypts on every node.
    let b = cluster.restart("b");
    cluster.unseal(&b, &alice);
    for node in [&a, &b, &c] {
        for (plaintext, ciphertext) in &ciphertexts {
            assert_eq!(
                node.ops(d, &["decrypt", "payments/card-pan", ciphertext.trim()])
                    .trim(),
                *plaintext
            );
        }
        assert_eq!(
            node.ops(d, &["decrypt", "payments/iban", from_new.trim()])
                .trim(),
            "DE89 3704"
        );
    }
    assert_eq!(cluster.schema_version(), tresor_postgres::SCHEMA_VERSION);
}
