//! `tresor server` on PostgreSQL (`[storage] backend = "postgresql"`), as operators run it.

use std::time::{Duration, Instant};

use crate::common::deployment::{Deployment, ServerProcess};
use crate::common::postgres::TestDatabase;
use crate::common::wait_until;

mod peers;
mod upgrade;

/// Replaces the deployment's sled `[storage]` table with `storage`.
fn use_storage(d: &Deployment, storage: &str) {
    let config = std::fs::read_to_string(d.path("tresor.toml")).unwrap();
    let start = config.find("[storage]").unwrap();
    let end = config.find("[policies]").unwrap();
    let config = format!("{}{storage}\n{}", &config[..start], &config[end..]);
    d.write("tresor.toml", &config);
}

/// One node on `db`, unsealed by alice, with key `payments/card-pan` and a ciphertext of
/// "4111 1111" under it.
fn a_node_with_a_key(db: &TestDatabase) -> (Deployment, ServerProcess, String) {
    let d = Deployment::new();
    use_storage(&d, &db.storage_toml("node-a"));
    let server = d.start_unsealed(&["alice"], 1);
    server.ops(&d, &["tenant", "create", "payments"]);
    server.ops(&d, &["key", "create", "payments/card-pan"]);
    let ciphertext = server.ops(&d, &["encrypt", "payments/card-pan", "4111 1111"]);
    (d, server, ciphertext)
}

#[test]
fn a_server_on_postgresql_keeps_its_keys_across_restarts_and_logs_no_password() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (d, server, ciphertext) = a_node_with_a_key(&db);
    let log = server.stderr();
    assert!(
        log.contains("PostgreSQL opened") && log.contains(&db.url()),
        "{log}"
    );
    server.stop();
    // Nothing was written to a data directory: the records are in the database.
    assert!(!d.path("data").exists());
    assert!(db.holds(b"keys/payments/card-pan"));

    let server = d.start();
    server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
    let plaintext = server.ops(&d, &["decrypt", "payments/card-pan", ciphertext.trim()]);
    assert_eq!(plaintext.trim(), "4111 1111");
    let password = std::fs::read_to_string(db.password_file()).unwrap();
    assert!(!server.stderr().contains(password.trim()));
    server.stop();
}

/// Without `storage.password_file`, the server reads libpq's password file (`PGPASSFILE`, else
/// `~/.pgpass`), as operators who keep database passwords that way expect; without either, the
/// database refuses the login and the server says so, naming the database without a password.
#[test]
fn a_server_on_postgresql_reads_the_password_from_pgpassfile() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let d = Deployment::new();
    let storage = db.storage_toml("node-a");
    let storage: String = storage
        .lines()
        .filter(|l| !l.starts_with("password_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    use_storage(&d, &storage);
    let password = std::fs::read_to_string(db.password_file()).unwrap();
    d.write(
        "pgpass",
        &format!("*:*:{name}:{name}:{}\n", password.trim(), name = db.name),
    );
    std::fs::set_permissions(
        d.path("pgpass"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let home = d.path("home");
    std::fs::create_dir(&home).unwrap();
    let pgpass = d.path("pgpass");
    let server = d
        .try_start_env(&[
            ("PGPASSFILE", pgpass.to_str().unwrap()),
            ("HOME", home.to_str().unwrap()),
        ])
        .unwrap_or_else(|(status, stderr)| panic!("{status}: {stderr}"));
    assert!(server.stderr().contains("PostgreSQL opened"));
    server.stop();

    // No password anywhere (an empty home, no PGPASSFILE): the login fails, clearly.
    let (status, stderr) =
        match d.try_start_env(&[("PGPASSFILE", ""), ("HOME", home.to_str().unwrap())]) {
            Ok(server) => panic!("started without a password: {}", server.stderr()),
            Err(failure) => failure,
        };
    assert!(!status.success());
    assert!(
        stderr.contains("cannot connect") && stderr.contains(&db.url()),
        "{stderr}"
    );
    assert!(!stderr.contains(password.trim()), "{stderr}");
}

/// A rolling upgrade seen from a node of the older version: after a newer node migrated the
/// schema, this node restarts and serves (reads and writes) while the schema still admits it,
/// and refuses to start, naming both versions, once a later schema no longer does.
#[test]
fn an_older_node_restarts_on_a_newer_schema_only_while_it_is_admitted() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let (d, server, ciphertext) = a_node_with_a_key(&db);
    server.stop();

    let known = tresor_postgres::SCHEMA_VERSION;
    let newer = known + 1;
    db.sql(&format!(
        "UPDATE tresor_schema SET version = {newer}, compatible_from = {known}"
    ));
    let server = d.start();
    assert!(
        server.stderr().contains("migrated by a newer Tresor"),
        "{}",
        server.stderr()
    );
    server.ops(&d, &["operator", "unseal", "--identity", "alice.key"]);
    let plaintext = server.ops(&d, &["decrypt", "payments/card-pan", ciphertext.trim()]);
    assert_eq!(plaintext.trim(), "4111 1111");
    server.ops(&d, &["key", "rotate", "payments/card-pan"]);
    let fresh = server.ops(&d, &["encrypt", "payments/card-pan", "5500"]);
    assert!(fresh.starts_with("tresor:v2:"), "{fresh}");
    server.stop();
    assert_eq!(
        db.rows("SELECT version FROM tresor_schema"),
        [[newer.to_string().into_bytes()]]
    );

    db.sql(&format!(
        "UPDATE tresor_schema SET compatible_from = {newer}"
    ));
    let (status, stderr) = d.start_fails();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "schema is version {newer}, which admits Tresor nodes of schema version {newer} or newer; this Tresor knows version {known}"
        )),
        "{stderr}"
    );
}

#[test]
fn a_postgresql_url_with_a_password_is_refused_without_repeating_it() {
    let d = Deployment::new();
    use_storage(
        &d,
        "[storage]\nbackend = \"postgresql\"\nurl = \"postgresql://tresor:Hunter2-secret@127.0.0.1:1/tresor\"\nnode_id = \"a\"\n",
    );
    let (status, stderr) = d.start_fails();
    assert!(!status.success());
    assert!(stderr.contains("carries a password"), "{stderr}");
    assert!(
        stderr.contains("postgresql://tresor:***@127.0.0.1:1/tresor"),
        "{stderr}"
    );
    assert!(!stderr.contains("Hunter2"), "{stderr}");
}

#[test]
fn postgresql_keys_are_refused_with_sled_and_sled_keys_with_postgresql() {
    let d = Deployment::new();
    use_storage(
        &d,
        "[storage]\npath = \"data\"\nurl = \"postgresql://tresor@127.0.0.1/tresor\"\n",
    );
    let (_, stderr) = d.start_fails();
    assert!(
        stderr.contains("key `storage.url`: only for `backend = \"postgresql\"`"),
        "{stderr}"
    );
    use_storage(&d, "[storage]\nbackend = \"postgresql\"\nnode_id = \"a\"\n");
    let (_, stderr) = d.start_fails();
    assert!(stderr.contains("key `storage.url`: required"), "{stderr}");
}

#[test]
fn an_unreachable_database_stops_the_start_with_the_redacted_target() {
    let d = Deployment::new();
    // Nothing listens on port 1 of loopback.
    use_storage(
        &d,
        "[storage]\nbackend = \"postgresql\"\nurl = \"postgresql://tresor@127.0.0.1:1/tresor?password=x-Leaked-1\"\nnode_id = \"a\"\n",
    );
    let (_, stderr) = d.start_fails();
    assert!(stderr.contains("carries a password"), "{stderr}");
    assert!(!stderr.contains("x-Leaked-1"), "{stderr}");
    use_storage(
        &d,
        "[storage]\nbackend = \"postgresql\"\nurl = \"postgresql://tresor@127.0.0.1:1/tresor\"\nnode_id = \"a\"\n",
    );
    let (_, stderr) = d.start_fails();
    assert!(
        stderr.contains("cannot connect to postgresql://tresor@127.0.0.1:1/tresor"),
        "{stderr}"
    );
}

/// Nodes of one deployment (same CA, policies and custodians) on one database, each with its
/// own configuration file, node identity, audit log and database role.
struct Cluster {
    d: Deployment,
    db: TestDatabase,
}

impl Cluster {
    fn new() -> Option<Cluster> {
        let db = TestDatabase::create()?;
        Some(Cluster::on(db))
    }

    fn on(db: TestDatabase) -> Cluster {
        Cluster {
            d: Deployment::new(),
            db,
        }
    }

    /// Writes `tresor-<node>.toml` and starts the node.
    fn start(&self, node: &str) -> ServerProcess {
        self.start_node(node, "")
    }

    /// As [`Cluster::start`], with `extra` lines in the node's `[node]` table.
    fn start_node(&self, node: &str, extra: &str) -> ServerProcess {
        let file = self.node_config(node, extra);
        self.d.start_with(&file)
    }

    /// Writes `tresor-<node>.toml` (with `extra` lines in its `[node]` table) and returns its
    /// name.
    fn node_config(&self, node: &str, extra: &str) -> String {
        let base = std::fs::read_to_string(self.d.path("tresor.toml")).unwrap();
        let start = base.find("[storage]").unwrap();
        let end = base.find("[policies]").unwrap();
        let config = format!(
            "{}{}\n{}\n[node]\nidentity_key = \"node-{node}.key\"\n{extra}",
            &base[..start],
            self.db.node_storage_toml(node),
            &base[end..]
        )
        .replace("audit/audit.log", &format!("audit-{node}/audit.log"));
        let file = format!("tresor-{node}.toml");
        self.d.write(&file, &config);
        file
    }

    /// Starts nodes `a`, `b`, `c`: `a` is initialised (custodian alice, 1 of 1), and each is
    /// unsealed by alice, one ceremony per node.
    fn three(&self) -> [ServerProcess; 3] {
        self.three_with(&["alice"], 1)
    }

    /// As [`Cluster::three`], with `custodians` sharing the root `threshold`-of-n; the first
    /// `threshold` of them unseal each node.
    fn three_with(&self, custodians: &[&str], threshold: u8) -> [ServerProcess; 3] {
        let a = self.start("a");
        self.init(&a, custodians, threshold);
        let b = self.start("b");
        let c = self.start("c");
        let unsealing = &custodians[..usize::from(threshold)];
        // The custodians pin the other nodes' fingerprints (each node has its own identity key).
        for node in ["b", "c"] {
            for name in unsealing {
                self.d.ok(&[
                    "operator",
                    "trust-node",
                    &self.fingerprint(node),
                    "--identity",
                    &format!("{name}.key"),
                ]);
            }
        }
        for node in [&a, &b, &c] {
            self.unseal(node, unsealing);
        }
        [a, b, c]
    }

    /// Makes identities for `custodians` and initialises the vault on `node`, sharing its root
    /// `threshold`-of-n among them.
    fn init(&self, node: &ServerProcess, custodians: &[&str], threshold: u8) {
        let mut init = vec!["operator".to_owned(), "init".to_owned()];
        for name in custodians {
            self.d.custodian(name);
            init.extend(["--custodian".to_owned(), format!("{name}.pub")]);
        }
        init.extend(["--threshold".to_owned(), threshold.to_string()]);
        node.ops(
            &self.d,
            &init.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    /// Custodians `names` unseal `node`, one after the other.
    fn unseal(&self, node: &ServerProcess, names: &[&str]) {
        for name in names {
            node.ops(
                &self.d,
                &["operator", "unseal", "--identity", &format!("{name}.key")],
            );
        }
    }

    /// The fingerprint of `node`'s identity key (its `node-<node>.pub`).
    fn fingerprint(&self, node: &str) -> String {
        let public: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.d.path(&format!("node-{node}.pub"))).unwrap(),
        )
        .unwrap();
        public["fingerprint"].as_str().unwrap().to_owned()
    }
}

/// The change-log position `node` has applied (from its metrics).
fn position(d: &Deployment, node: &ServerProcess) -> i64 {
    let text = node.ops(d, &["metrics"]);
    text.lines()
        .find_map(|l| l.strip_prefix("tresor_change_log_position "))
        .unwrap_or_else(|| panic!("no change-log position in the metrics: {text}"))
        .parse()
        .unwrap()
}

/// The age of `node`'s last confirmed read of the change log, in seconds (from its metrics).
fn age(d: &Deployment, node: &ServerProcess) -> f64 {
    let text = node.ops(d, &["metrics"]);
    text.lines()
        .find_map(|l| l.strip_prefix("tresor_change_log_age_seconds "))
        .unwrap_or_else(|| panic!("no change-log age in the metrics: {text}"))
        .parse()
        .unwrap()
}

/// Waits until `node` has applied the change log up to `at_least` (what a client that needs a
/// change enforced everywhere would do; never a sleep). The deadline only bounds a failure.
fn wait_for_position(d: &Deployment, node: &ServerProcess, at_least: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = position(d, node);
        if now >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the node stayed at change-log position {now}, below {at_least}: {}",
            node.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_nodes_on_one_database_see_each_others_changes() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let [a, b, c] = cluster.three();

    // Created on A, usable at once on B (a cache miss reads the store), decrypted on C.
    a.ops(d, &["tenant", "create", "payments"]);
    a.ops(d, &["key", "create", "payments/card-pan"]);
    let v1 = b.ops(d, &["encrypt", "payments/card-pan", "4111 1111"]);
    let v1 = v1.trim();
    assert!(v1.starts_with("tresor:v1:"), "{v1}");
    assert_eq!(
        c.ops(d, &["decrypt", "payments/card-pan", v1]).trim(),
        "4111 1111"
    );
    // A and B hold the ring in their caches now.
    assert!(
        a.ops(d, &["encrypt", "payments/card-pan", "x"])
            .starts_with("tresor:v1:")
    );

    // Rotated on C: once A has applied C's change, A encrypts with version 2.
    c.ops(d, &["key", "rotate", "payments/card-pan"]);
    let rotated = position(d, &c);
    wait_for_position(d, &a, rotated);
    let v2 = a.ops(d, &["encrypt", "payments/card-pan", "5500 0000"]);
    assert!(v2.trim().starts_with("tresor:v2:"), "{v2}");

    // B's cached ring still ends at version 1 unless it has caught up: a version-2 ciphertext
    // makes it reload the ring from the store instead of failing.
    assert_eq!(
        b.ops(d, &["decrypt", "payments/card-pan", v2.trim()])
            .trim(),
        "5500 0000"
    );

    // min_decryption_version raised on A: B refuses version 1 once it has applied A's change,
    // also when its change-log connection (and pool) was cut just before the change.
    assert_eq!(
        b.ops(d, &["decrypt", "payments/card-pan", v1]).trim(),
        "4111 1111"
    );
    cluster.db.end_sessions("b");
    a.ops(
        d,
        &[
            "key",
            "config",
            "payments/card-pan",
            "--min-decryption-version",
            "2",
        ],
    );
    let raised = position(d, &a);
    wait_for_position(d, &b, raised);
    let refused = b.run_as(d, "ops", &["decrypt", "payments/card-pan", v1]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("min_decryption_version") || refused.stderr.contains("below"),
        "{}",
        refused.stderr
    );
    // Each node keeps its own audit log, and each of its event lines names the node.
    for node in ["a", "b", "c"] {
        let log = std::fs::read_to_string(d.path(&format!("audit-{node}/audit.log"))).unwrap();
        let events: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"operation\""))
            .collect();
        assert!(!events.is_empty(), "{log}");
        for line in events {
            assert!(line.contains(&format!("\"node\":\"{node}\"")), "{line}");
        }
    }
}

/// A node cut off from the database answers nothing once its view of the change log is older
/// than max_staleness (1 s): 503, never the answer a stale cache would give; it recovers by
/// itself when the database takes it back.
#[test]
fn a_node_cut_off_from_the_database_answers_503_then_recovers() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let [a, b, _c] = cluster.three();
    a.ops(d, &["tenant", "create", "payments"]);
    a.ops(d, &["key", "create", "payments/card-pan"]);
    let v1 = a.ops(d, &["encrypt", "payments/card-pan", "4111 1111"]);
    let v1 = v1.trim();
    a.ops(d, &["key", "rotate", "payments/card-pan"]);
    // B caches the ring (versions 1 and 2).
    assert_eq!(
        b.ops(d, &["decrypt", "payments/card-pan", v1]).trim(),
        "4111 1111"
    );

    cluster.db.block("b");
    // Made while B cannot see it: B's cache would still decrypt version 1.
    a.ops(
        d,
        &[
            "key",
            "config",
            "payments/card-pan",
            "--min-decryption-version",
            "2",
        ],
    );
    // Once B's view is older than max_staleness (its metrics say so; they stay readable)…
    wait_until(
        Duration::from_millis(50),
        || age(d, &b) > 1.0,
        || format!("B's view never aged: {}", b.stderr()),
    );
    // …it answers 503, for the stale key as for everything else, health included.
    let stale = b.run_as(d, "ops", &["decrypt", "payments/card-pan", v1]);
    assert!(!stale.status.success(), "a stale answer: {}", stale.stdout);
    assert!(
        stale.stderr.contains("503")
            || stale
                .stderr
                .contains("has not confirmed the storage change log"),
        "{}",
        stale.stderr
    );
    let health = b.run_as(d, "ops", &["status"]);
    assert!(!health.status.success(), "{}", health.stdout);
    // A, which sees the database, answers as before.
    assert!(
        a.ops(d, &["encrypt", "payments/card-pan", "x"])
            .starts_with("tresor:v2:")
    );

    // The database takes B back: B catches up by itself, and then refuses version 1.
    cluster.db.unblock("b");
    let raised = position(d, &a);
    wait_for_position(d, &b, raised);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = b.run_as(d, "ops", &["decrypt", "payments/card-pan", v1]);
        assert!(!run.status.success(), "a stale answer: {}", run.stdout);
        if !run
            .stderr
            .contains("has not confirmed the storage change log")
        {
            assert!(
                run.stderr.contains("min_decryption_version") || run.stderr.contains("below"),
                "{}",
                run.stderr
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B did not recover: {}",
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        b.ops(d, &["encrypt", "payments/card-pan", "y"])
            .starts_with("tresor:v2:")
    );
}

/// Two nodes rotating one key at the same moment: each round ends with versions n+1 and n+2,
/// or one rotation and one clean conflict error; never a lost version.
#[test]
fn two_nodes_rotating_one_key_at_once_never_lose_a_version() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let [a, b, _c] = cluster.three();
    a.ops(d, &["tenant", "create", "payments"]);
    a.ops(d, &["key", "create", "payments/card-pan"]);
    let rounds = 8;
    let mut rotations = 0;
    let mut conflicts = 0;
    for _ in 0..rounds {
        let results = std::thread::scope(|scope| {
            let runs: Vec<_> = [&a, &b]
                .into_iter()
                .map(|node| {
                    scope.spawn(move || {
                        node.run_as(d, "ops", &["key", "rotate", "payments/card-pan"])
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().unwrap())
                .collect::<Vec<_>>()
        });
        for run in results {
            if run.status.success() {
                rotations += 1;
            } else {
                conflicts += 1;
                assert!(
                    run.stderr.contains("changed concurrently"),
                    "a failed rotation is a clean conflict: {}",
                    run.stderr
                );
            }
        }
    }
    assert_eq!(rotations + conflicts, 2 * rounds);
    assert!(rotations >= rounds, "at least one rotation per round");
    eprintln!("{rotations} rotations, {conflicts} conflicts");
    // Each node has applied the other's rotations before it is asked.
    let (at_a, at_b) = (position(d, &a), position(d, &b));
    wait_for_position(d, &a, at_b);
    wait_for_position(d, &b, at_a);
    // Every accepted rotation is a version, on both nodes.
    let expected = 1 + rotations;
    for node in [&a, &b] {
        let json: serde_json::Value = serde_json::from_str(
            &node.ops(d, &["key", "show", "payments/card-pan", "--format", "json"]),
        )
        .unwrap();
        assert_eq!(json["latest_version"], expected, "{json}");
        assert_eq!(json["keys"].as_object().unwrap().len(), expected as usize);
    }
    let ciphertext = b.ops(d, &["encrypt", "payments/card-pan", "x"]);
    assert!(
        ciphertext.starts_with(&format!("tresor:v{expected}:")),
        "{ciphertext}"
    );
}

/// Total errors in a `tresor bench --format json` report (every `errors` count in it).
fn bench_errors(report: &serde_json::Value) -> u64 {
    match report {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("errors", serde_json::Value::Number(n)) => n.as_u64().unwrap(),
                _ => bench_errors(v),
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter().map(bench_errors).sum(),
        _ => 0,
    }
}

/// Under load on A and B (`tresor bench`): C is killed with SIGKILL, then every database
/// session of every node is ended at once (what a database restart or failover does to its
/// clients). A and B answer every request, and afterwards still follow each other's changes
/// without a restart.
#[test]
fn load_on_two_nodes_survives_a_killed_node_and_dropped_database_sessions() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let [a, b, c] = cluster.three();
    a.ops(d, &["tenant", "create", "bench"]);
    a.ops(d, &["key", "create", "bench/bench"]);
    let bench = [
        "bench", "mixed", "-d", "4s", "-c", "2", "--tenant", "bench", "--key", "bench", "--format",
        "json",
    ];
    let reports = std::thread::scope(|scope| {
        let runs: Vec<_> = [&a, &b]
            .into_iter()
            .map(|node| scope.spawn(move || node.run_as(d, "ops", &bench)))
            .collect();
        // Both loads are running once each node has served some of it.
        for node in [&a, &b] {
            wait_until(
                Duration::from_millis(20),
                || {
                    node.ops(d, &["metrics"])
                        .contains("operation=\"encrypt\",status=\"200\"")
                },
                || "no load reached the node".into(),
            );
        }
        c.signal("KILL");
        for node in ["a", "b", "c"] {
            cluster.db.end_sessions(node);
        }
        runs.into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    for run in reports {
        assert!(run.status.success(), "{}", run.stderr);
        let report: serde_json::Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
        assert!(run.stdout.contains("\"errors\""), "{report}");
        assert!(run.stdout.contains("\"requests\""), "{report}");
        assert_eq!(bench_errors(&report), 0, "{report}");
    }
    // Still following each other: a rotation on B is seen by A.
    b.ops(d, &["key", "rotate", "bench/bench"]);
    let rotated = position(d, &b);
    wait_for_position(d, &a, rotated);
    assert!(
        a.ops(d, &["encrypt", "bench/bench", "x"])
            .starts_with("tresor:v2:")
    );
    drop(c);
}

/// Whether `node` says it holds the background-job lease (from its metrics).
/// The indexes of `nodes` that hold the job lease.
fn lease_holders(d: &Deployment, nodes: &[&ServerProcess]) -> Vec<usize> {
    (0..nodes.len())
        .filter(|&i| holds_lease(d, nodes[i]))
        .collect()
}

/// Waits until exactly one of `nodes` holds the job lease (never two) and says which.
fn the_lease_holder(d: &Deployment, nodes: &[ServerProcess]) -> usize {
    let all: Vec<&ServerProcess> = nodes.iter().collect();
    let mut leader = None;
    wait_until(
        Duration::from_millis(50),
        || {
            let held = lease_holders(d, &all);
            assert!(held.len() <= 1, "two nodes hold the lease: {held:?}");
            leader = held.first().copied();
            leader.is_some()
        },
        || "no node took the lease".into(),
    );
    leader.expect("waited for it")
}

fn holds_lease(d: &Deployment, node: &ServerProcess) -> bool {
    let text = node.ops(d, &["metrics"]);
    match text
        .lines()
        .find_map(|l| l.strip_prefix("tresor_job_lease_held "))
    {
        Some("1") => true,
        Some("0") => false,
        other => panic!("no job lease gauge ({other:?}): {text}"),
    }
}

/// Background jobs run on exactly one node: the job lease (2 s here) is held by one node; when
/// that node is paused (SIGSTOP) past its lease another takes over, and the paused one, resumed,
/// knows it no longer holds it (its late writes are fenced: see the store test
/// `postgres_job_lease_fences_a_paused_leader`).
#[test]
fn the_job_lease_moves_to_another_node_when_its_holder_is_paused() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let nodes = cluster.three();
    let leader = the_lease_holder(d, &nodes);
    let others: Vec<&ServerProcess> = (0..3).filter(|&i| i != leader).map(|i| &nodes[i]).collect();
    nodes[leader].signal("STOP");
    wait_until(
        Duration::from_millis(50),
        || !lease_holders(d, &others).is_empty(),
        || "no node took the lease over".into(),
    );
    assert_eq!(lease_holders(d, &others).len(), 1);
    nodes[leader].signal("CONT");
    assert!(
        !holds_lease(d, &nodes[leader]),
        "the resumed node still believes it holds the lease"
    );
    let all: Vec<&ServerProcess> = nodes.iter().collect();
    assert_eq!(lease_holders(d, &all).len(), 1);
}

/// The database restarts (its own cluster, `pg_ctl restart -m fast`) while A and B are under
/// load: requests fail only with 503 while the nodes cannot confirm their view (never a wrong
/// answer), and the nodes recover by themselves, without a restart: they serve again and follow
/// each other's changes.
#[test]
fn nodes_recover_by_themselves_when_the_database_restarts_under_load() {
    let Some(private) = crate::common::postgres::PrivateCluster::start() else {
        return;
    };
    let db = TestDatabase::create_on(&private.admin_url());
    let cluster = Cluster::on(db);
    let d = &cluster.d;
    let [a, b, _c] = cluster.three();
    a.ops(d, &["tenant", "create", "bench"]);
    a.ops(d, &["key", "create", "bench/bench"]);
    let bench = [
        "bench", "encrypt", "-d", "6s", "-c", "2", "--tenant", "bench", "--key", "bench",
        "--format", "json",
    ];
    let reports = std::thread::scope(|scope| {
        let runs: Vec<_> = [&a, &b]
            .into_iter()
            .map(|node| scope.spawn(move || node.run_as(d, "ops", &bench)))
            .collect();
        for node in [&a, &b] {
            wait_until(
                Duration::from_millis(20),
                || {
                    node.ops(d, &["metrics"])
                        .contains("operation=\"encrypt\",status=\"200\"")
                },
                || "no load reached the node".into(),
            );
        }
        private.restart();
        runs.into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    for run in reports {
        let report: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
        assert!(run.stdout.contains("\"errors_by_kind\""), "{report}");
        let mut kinds = Vec::new();
        collect_error_kinds(&report, &mut kinds);
        eprintln!(
            "errors while the database restarted: {} ({kinds:?})",
            bench_errors(&report)
        );
        for kind in kinds {
            assert!(kind.contains("503"), "only 503s while stale: {report}");
        }
    }
    // Recovered without a restart: a rotation on B reaches A, and both serve.
    b.ops(d, &["key", "rotate", "bench/bench"]);
    let rotated = position(d, &b);
    wait_for_position(d, &a, rotated);
    assert!(
        a.ops(d, &["encrypt", "bench/bench", "x"])
            .starts_with("tresor:v2:")
    );
    assert!(
        b.ops(d, &["encrypt", "bench/bench", "y"])
            .starts_with("tresor:v2:")
    );
}

/// Every key of every `errors_by_kind` object in a bench report.
fn collect_error_kinds(report: &serde_json::Value, kinds: &mut Vec<String>) {
    match report {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "errors_by_kind" {
                    kinds.extend(v.as_object().unwrap().keys().cloned());
                } else {
                    collect_error_kinds(v, kinds);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_error_kinds(v, kinds)),
        _ => {}
    }
}

/// One `tresor bench encrypt` run of 64-byte single items on `node` over `connections`
/// connections (3 s after 0.5 s warm-up) against tenant and key `bench`: the report, which must
/// show no error.
fn bench_encrypt(d: &Deployment, node: &ServerProcess, connections: &str) -> serde_json::Value {
    let run = node.run_as(
        d,
        "ops",
        &[
            "bench",
            "encrypt",
            "--size",
            "64",
            "-c",
            connections,
            "-d",
            "3s",
            "--warmup",
            "500ms",
            "--tenant",
            "bench",
            "--key",
            "bench",
            "--format",
            "json",
        ],
    );
    assert!(run.status.success(), "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(bench_errors(&report), 0, "{report}");
    report
}

/// Requests per second of a [`bench_encrypt`] report.
fn requests_per_sec(report: &serde_json::Value) -> f64 {
    report["vault"]["requests_per_sec"].as_f64().unwrap()
}

/// A measurement, not a test (docs/benchmarks.md, "PostgreSQL backend vs sled"): cached 64-byte
/// encrypts on a sled node and on a PostgreSQL node (same binary, same configuration but the
/// `[storage]` table), alternating, four rounds at `-c 1` and at `-c 16`. A cached encrypt
/// touches neither store, so the two should match. Run on a release build:
/// `.ci/with-postgres cargo test --release --test cli -- --ignored --nocapture cached_encrypt_on_postgresql`.
#[test]
#[ignore = "a measurement for docs/benchmarks.md, not a test"]
fn cached_encrypt_on_postgresql_against_sled() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let on_sled = Deployment::new();
    let on_pg = Deployment::new();
    use_storage(&on_pg, &db.storage_toml("bench-pg"));
    let nodes = [
        ("sled", &on_sled, on_sled.start_unsealed(&["alice"], 1)),
        ("PostgreSQL", &on_pg, on_pg.start_unsealed(&["alice"], 1)),
    ];
    for (_, d, node) in &nodes {
        node.ops(d, &["tenant", "create", "bench"]);
        node.ops(d, &["key", "create", "bench/bench"]);
    }
    for connections in ["1", "16"] {
        let mut rates = [Vec::new(), Vec::new()];
        for round in 1..=4 {
            // Each backend goes first in every other round: the second run of a pair meets a
            // warmer (or busier) machine.
            let mut order = [0, 1];
            if round % 2 == 0 {
                order.reverse();
            }
            for i in order {
                let (name, d, node) = &nodes[i];
                let report = bench_encrypt(d, node, connections);
                let latency = &report["vault"]["latency"];
                println!(
                    "-c {connections} round {round} {name}: {:.0} req/s, p50 {} µs, p99 {} µs",
                    requests_per_sec(&report),
                    latency["p50_us"],
                    latency["p99_us"]
                );
                rates[i].push(requests_per_sec(&report));
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[1] + v[2]) / 2.0
        };
        let (sled, pg) = (median(&mut rates[0]), median(&mut rates[1]));
        println!(
            "-c {connections}: medians sled {sled:.0}, PostgreSQL {pg:.0} req/s; PostgreSQL / sled {:.3}",
            pg / sled
        );
    }
}

/// A measurement, not a test (docs/benchmarks.md, "Two nodes against one"): the same client
/// load (16 connections of 64-byte encrypts) on one node, then split 8 + 8 over two nodes of one
/// database, three alternating rounds. Run on a release build:
/// `.ci/with-postgres cargo test --release --test cli -- --ignored --nocapture two_nodes_against_one`.
#[test]
#[ignore = "a measurement for docs/benchmarks.md, not a test"]
fn two_nodes_against_one_under_the_same_load() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let d = &cluster.d;
    let [a, b, c] = cluster.three();
    drop(c);
    a.ops(d, &["tenant", "create", "bench"]);
    a.ops(d, &["key", "create", "bench/bench"]);
    let bench = |node: &ServerProcess, connections: &str| {
        requests_per_sec(&bench_encrypt(d, node, connections))
    };
    for round in 1..=3 {
        let one = bench(&a, "16");
        let (on_a, on_b) = std::thread::scope(|scope| {
            let on_a = scope.spawn(|| bench(&a, "8"));
            let on_b = scope.spawn(|| bench(&b, "8"));
            (on_a.join().unwrap(), on_b.join().unwrap())
        });
        println!(
            "round {round}: one node {one:.0} req/s; two nodes {:.0} req/s ({on_a:.0} + {on_b:.0}); ratio {:.2}",
            on_a + on_b,
            (on_a + on_b) / one
        );
    }
}
