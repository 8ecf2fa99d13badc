//! Peer unseal on three nodes of one database (docs/deployment.md, "Unsealing"): enrolment is
//! dual-controlled; a restarted enrolled node gets the root from an unsealed peer, sealed to its
//! per-boot key; a node that is not enrolled, removed, or configured with a peer it cannot
//! verify stays sealed and says why; a root rotation is followed by enrolled nodes only.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_crypto::sign::SigningKey;
use tresor_wire::peers::PeerUnsealRequest;

use super::Cluster;
use crate::common::deployment::{ServerProcess, principal};
use crate::common::wait_until;

impl Cluster {
    /// Client certificates for the nodes (`node-a.pem`, …) and a policy granting them
    /// `peer-unseal` only. Before the nodes start: policies load at start.
    fn allow_peer_unseal(&self) {
        for node in ["a", "b", "c"] {
            self.d.issue(&format!("node-{node}"));
        }
        self.d.write(
            "policies/nodes.toml",
            &format!(
                "[[operator]]\nprincipals = [\"{}\", \"{}\", \"{}\"]\noperations = [\"peer-unseal\"]\n",
                principal("node-a"),
                principal("node-b"),
                principal("node-c")
            ),
        );
    }

    /// Kills `node` (SIGKILL: no orderly seal) and starts it again with `peers` (address,
    /// fingerprint) as its `node.peers`.
    fn restart_with_peers(
        &self,
        node: &str,
        process: ServerProcess,
        peers: &[(&str, &str)],
    ) -> ServerProcess {
        process.signal("KILL");
        drop(process);
        let list: Vec<String> = peers
            .iter()
            .map(|(address, fingerprint)| {
                format!("{{ address = \"{address}\", fingerprint = \"{fingerprint}\" }}")
            })
            .collect();
        // The node's own configuration (its database role exists already), with its peers.
        let file = format!("tresor-{node}.toml");
        let config = std::fs::read_to_string(self.d.path(&file)).unwrap();
        let kept: Vec<&str> = config.lines().filter(|l| !l.starts_with("peer")).collect();
        self.d.write(
            &file,
            &format!(
                "{}\npeer_cert = \"node-{node}.pem\"\npeer_key = \"node-{node}-key.pem\"\npeers = [{}]\n",
                kept.join("\n"),
                list.join(", ")
            ),
        );
        self.d.start_with(&file)
    }

    /// Asks for a dangerous operation with `args` (as ops, on `node`) and has `approvers`
    /// approve it; the approval id.
    fn approved(&self, node: &ServerProcess, args: &[&str], approvers: &[&str]) -> String {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let asked = node.ops(&self.d, &args);
        let id = serde_json::from_str::<serde_json::Value>(&asked).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for name in approvers {
            node.ops(
                &self.d,
                &[
                    "approval",
                    "approve",
                    &id,
                    "--identity",
                    &format!("{name}.key"),
                    "--yes",
                ],
            );
        }
        id
    }

    /// The lines of `node`'s audit log whose operation is `operation`.
    fn audit_lines(&self, node: &str, operation: &str) -> Vec<String> {
        std::fs::read_to_string(self.d.path(&format!("audit-{node}/audit.log")))
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("\"operation\":\"{operation}\"")))
            .map(str::to_owned)
            .collect()
    }
}

/// `tresor status` exit code on `node`: 0 unsealed, 2 sealed.
fn status(cluster: &Cluster, node: &ServerProcess) -> Option<i32> {
    node.run_as(&cluster.d, "ops", &["status"]).code()
}

/// Waits (bounded) until `node` answers `tresor status` with `code`.
fn wait_for_status(cluster: &Cluster, node: &ServerProcess, code: i32) {
    wait_until(
        Duration::from_millis(100),
        || status(cluster, node) == Some(code),
        || format!("the node never answered status {code}: {}", node.stderr()),
    );
}

#[test]
fn an_enrolled_node_unseals_from_a_peer_and_no_other_node_does() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    cluster.allow_peer_unseal();
    let [a, b, c] = cluster.three_with(&["alice", "bob", "carol"], 2);
    let (fa, fb, fc) = (
        cluster.fingerprint("a"),
        cluster.fingerprint("b"),
        cluster.fingerprint("c"),
    );
    a.ops(d, &["tenant", "create", "payments"]);
    a.ops(d, &["key", "create", "payments/card-pan"]);
    let ciphertext = a.ops(d, &["encrypt", "payments/card-pan", "4111 1111"]);

    // Enrolment is a dangerous operation: asked, then approved by 2 custodians. Someone who is
    // not a custodian cannot approve it, and nothing is enrolled until the quorum signs.
    let asked = a.ops(
        d,
        &[
            "operator",
            "enrol-node",
            &fb,
            "--address",
            &b.url,
            "--format",
            "json",
        ],
    );
    let id = serde_json::from_str::<serde_json::Value>(&asked).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    d.custodian("mallory");
    let refused = a.run_as(
        d,
        "ops",
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "mallory.key",
            "--yes",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("`mallory` is not a custodian"),
        "{}",
        refused.stderr
    );
    a.ops(
        d,
        &[
            "approval",
            "approve",
            &id,
            "--identity",
            "alice.key",
            "--yes",
        ],
    );
    assert!(
        a.ops(d, &["operator", "nodes"])
            .contains("no node is enrolled"),
        "enrolled on one signature of two"
    );
    a.ops(
        d,
        &["approval", "approve", &id, "--identity", "bob.key", "--yes"],
    );
    let nodes = a.ops(d, &["operator", "nodes"]);
    assert!(nodes.contains(&fb) && nodes.contains(&b.url), "{nodes}");
    assert!(!nodes.contains(&fc), "{nodes}");
    // Malformed fingerprints and addresses are refused before any approval is made.
    for (fingerprint, address, expected) in [
        ("aa:bb", "https://x:1", "not a node fingerprint"),
        (fc.as_str(), "http://x:1", "invalid address"),
    ] {
        let run = a.run_as(
            d,
            "ops",
            &["operator", "enrol-node", fingerprint, "--address", address],
        );
        assert!(!run.status.success());
        assert!(run.stderr.contains(expected), "{}", run.stderr);
    }

    // B restarted with a peer entry whose fingerprint is not A's: its request names the node it
    // believes it asks, so A refuses it (an answer signed by another node than the configured
    // one would not be used either: `tresor_wire::peers` tests that check).
    let b = cluster.restart_with_peers("b", b, &[(&a.url, &fc)]);
    b.wait_for_log(&format!(
        "the request is addressed to node {fc}, this is node {fa}"
    ));
    assert_eq!(status(&cluster, &b), Some(2));

    // B restarted with A as its peer: unsealed by A, without any custodian.
    let b = cluster.restart_with_peers("b", b, &[(&a.url, &fa)]);
    b.wait_for_log("unsealed by a peer");
    wait_for_status(&cluster, &b, 0);
    assert_eq!(
        b.ops(d, &["decrypt", "payments/card-pan", ciphertext.trim()])
            .trim(),
        "4111 1111"
    );
    let fresh = b.ops(d, &["encrypt", "payments/card-pan", "5500"]);
    assert_eq!(
        a.ops(d, &["decrypt", "payments/card-pan", fresh.trim()])
            .trim(),
        "5500"
    );
    // Both audit logs say who gave what to whom.
    let unsealed = cluster.audit_lines("b", "unsealed");
    assert!(
        unsealed
            .iter()
            .any(|l| l.contains(&format!("by peer node {fa}"))),
        "{unsealed:?}"
    );
    let granted = cluster.audit_lines("a", "peer-unseal-granted");
    assert!(granted.iter().any(|l| l.contains(&fb)), "{granted:?}");

    // C is not enrolled: A refuses it, C says why and stays sealed (503 on health).
    let c = cluster.restart_with_peers("c", c, &[(&a.url, &fa)]);
    c.wait_for_log(&format!("node {fc} is not enrolled"));
    assert_eq!(status(&cluster, &c), Some(2));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (code, health) = rt.block_on(d.client(&c, "ops").health()).unwrap();
    assert_eq!(code.as_u16(), 503, "{health}");
    assert_eq!(health["sealed"], true);
    let refusals = cluster.audit_lines("c", "peer-unseal-refused");
    assert!(
        refusals.iter().any(|l| l.contains("is not enrolled")),
        "{refusals:?}"
    );
    // A forged enrolment written straight into the database (B's sealed record copied to C's
    // path) enrols nothing: the barrier binds each record to its path, and the ledger lists
    // only what the vault wrote.
    let hex = |f: &str| f.replace(':', "");
    cluster.db.sql(&format!(
        "INSERT INTO tresor_kv (path, value) SELECT 'nodes/{}', value FROM tresor_kv WHERE path = 'nodes/{}'",
        hex(&fc),
        hex(&fb)
    ));
    c.wait_for_log(&format!("nodes/{}", hex(&fc)));
    assert_eq!(status(&cluster, &c), Some(2));
    cluster.db.sql(&format!(
        "DELETE FROM tresor_kv WHERE path = 'nodes/{}'",
        hex(&fc)
    ));

    // B's enrolment removed (dual control too): after its next restart, B stays sealed.
    cluster.approved(&a, &["operator", "remove-node", &fb], &["alice", "bob"]);
    assert!(
        a.ops(d, &["operator", "nodes"])
            .contains("no node is enrolled")
    );
    let b = cluster.restart_with_peers("b", b, &[(&a.url, &fa)]);
    b.wait_for_log(&format!("node {fb} is not enrolled"));
    assert_eq!(status(&cluster, &b), Some(2));
    // Custodians can always unseal it.
    cluster.unseal(&b, &["alice", "bob"]);
    assert_eq!(status(&cluster, &b), Some(0));
}

#[test]
fn enrolled_nodes_follow_a_root_rotation_and_the_others_need_the_new_shares() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    cluster.allow_peer_unseal();
    let [a, b, c] = cluster.three_with(&["alice", "bob", "carol"], 2);
    let (fa, fb) = (cluster.fingerprint("a"), cluster.fingerprint("b"));
    cluster.approved(
        &a,
        &["operator", "enrol-node", &fb, "--address", &b.url],
        &["alice", "bob"],
    );
    let b = cluster.restart_with_peers("b", b, &[(&a.url, &fa)]);
    b.wait_for_log("unsealed by a peer");
    wait_for_status(&cluster, &b, 0);
    a.ops(d, &["tenant", "create", "payments"]);
    a.ops(d, &["key", "create", "payments/card-pan"]);
    let ciphertext = a.ops(d, &["encrypt", "payments/card-pan", "4111 1111"]);

    cluster.approved(&a, &["operator", "rotate-root"], &["alice", "bob"]);
    let generation = |node: &ServerProcess| -> u64 {
        let status = node.run_as(d, "ops", &["status", "--format", "json"]);
        serde_json::from_str::<serde_json::Value>(&status.stdout).unwrap()["root_generation"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(generation(&a), 2);
    // B sees the root change, seals itself, and gets the new root from A: a second `unsealed`.
    b.wait_for_log("the root key was rotated on another node");
    b.wait_for_logged("unsealed by a peer", 2);
    wait_for_status(&cluster, &b, 0);
    assert_eq!(
        b.ops(d, &["decrypt", "payments/card-pan", ciphertext.trim()])
            .trim(),
        "4111 1111"
    );
    let by_peer = cluster
        .audit_lines("b", "unsealed")
        .into_iter()
        .filter(|l| l.contains(&format!("by peer node {fa}")))
        .count();
    assert_eq!(by_peer, 2, "after the restart, and after the rotation");
    // C, unsealed by custodians before, is not enrolled: it seals itself and stays sealed.
    c.wait_for_log("the root key was rotated on another node");
    wait_for_status(&cluster, &c, 2);
    // The custodians unseal it with the new shares.
    cluster.unseal(&c, &["alice", "bob"]);
    assert_eq!(status(&cluster, &c), Some(0));
    assert_eq!(
        c.ops(d, &["decrypt", "payments/card-pan", ciphertext.trim()])
            .trim(),
        "4111 1111"
    );
}

/// The node identity key of `node`, read from its file (what a thief of the node's disk has).
fn identity(cluster: &Cluster, node: &str) -> SigningKey {
    let text = std::fs::read_to_string(cluster.d.path(&format!("node-{node}.key"))).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let seed = STANDARD.decode(value["seed"].as_str().unwrap()).unwrap();
    SigningKey::from_slice(&seed).unwrap()
}

/// Requests made by hand to an unsealed node: each check of the giving side refuses with the
/// reason, and only a fresh request signed by the enrolled key is answered, once.
#[test]
fn the_giving_node_refuses_forged_stale_replayed_and_misaddressed_requests() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    cluster.allow_peer_unseal();
    let [a, _b, _c] = cluster.three_with(&["alice", "bob", "carol"], 2);
    let (fa, fb) = (cluster.fingerprint("a"), cluster.fingerprint("b"));
    cluster.approved(
        &a,
        &[
            "operator",
            "enrol-node",
            &fb,
            "--address",
            "https://b.example:8200",
        ],
        &["alice", "bob"],
    );
    let status: serde_json::Value =
        serde_json::from_str(&a.ops(d, &["status", "--format", "json"])).unwrap();
    let vault_id = status["cluster_id"].as_str().unwrap().to_owned();
    let (key_b, key_c) = (identity(&cluster, "b"), identity(&cluster, "c"));
    let unseal_key = [5u8; 32];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |key: &SigningKey, giver: &str, at: u64| {
        PeerUnsealRequest::sign(key, &vault_id, "production", &unseal_key, giver, at)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = d.client(&a, "node-b");
    let ask = |request: &PeerUnsealRequest| rt.block_on(client.peer_unseal(request));
    let refused = |request: &PeerUnsealRequest, expected: &str| {
        let error = ask(request).expect_err("refused").to_string();
        assert!(error.contains(expected), "{error}");
    };

    // B's per-boot key signed by another identity (C's) while claiming B's key.
    let mut forged = sign(&key_c, &fa, now);
    forged.node_key = STANDARD.encode(key_b.verifying_key().as_bytes());
    refused(&forged, "does not verify");
    // C's own key: not enrolled.
    refused(&sign(&key_c, &fa, now), "is not enrolled");
    // An old signed request (captured an hour ago), and one addressed to another node.
    refused(&sign(&key_b, &fa, now - 3600), "an old request replayed");
    refused(&sign(&key_b, &fb, now), "is addressed to node");
    // Another vault.
    let mut other = sign(&key_b, &fa, now);
    other.vault_id = "0".repeat(32);
    refused(&other, "the request is for vault");
    // A fresh request by the enrolled key is answered once; the same request again is a replay.
    let fresh = sign(&key_b, &fa, now);
    let grant = ask(&fresh).unwrap();
    assert_eq!(grant.root_generation, 1);
    grant
        .verify(&fa, &vault_id, &unseal_key, &fb)
        .expect("signed by A for B's key");
    refused(&fresh, "answered already: a replay");
    // Only the principals a policy grants `peer-unseal` may ask at all.
    d.issue("stranger");
    let stranger = d.client(&a, "stranger");
    let error = rt
        .block_on(stranger.peer_unseal(&sign(&key_b, &fa, now)))
        .expect_err("denied")
        .to_string();
    assert!(error.contains("403"), "{error}");
    // Each refusal is in A's audit log with its reason.
    let log = std::fs::read_to_string(d.path("audit-a/audit.log")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"operation\":\"peer-unseal\""))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("is not enrolled")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("replay")), "{lines:?}");
}

/// A sealed node never leads the background jobs: when the node holding the job lease is
/// sealed, it lets the lease go and another node takes it.
#[test]
fn a_sealed_node_lets_the_job_lease_go() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let nodes = cluster.three();
    let leader = super::the_lease_holder(d, &nodes);
    nodes[leader].ops(d, &["operator", "seal"]);
    // It lets go at its next renewal (a third of the 2 s lease), and never takes it again.
    wait_until(
        Duration::from_millis(50),
        || !super::holds_lease(d, &nodes[leader]),
        || "a sealed node still counts itself the job leader".into(),
    );
    nodes[leader].wait_for_log("this node is sealed: it lets the background-job lease go");
    let others: Vec<&ServerProcess> = (0..3).filter(|&i| i != leader).map(|i| &nodes[i]).collect();
    wait_until(
        Duration::from_millis(50),
        || !super::lease_holders(d, &others).is_empty(),
        || "no unsealed node took the lease over".into(),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!super::holds_lease(d, &nodes[leader]));
    assert_eq!(super::lease_holders(d, &others).len(), 1);
}
