//! The storage contract, run against both backends (sled in a temporary directory, PostgreSQL
//! in a database of its own): atomic checked batches, ordered scans, durable reopen, and a purge
//! that leaves no deleted bytes behind. Then what only one backend has: sled's generations,
//! PostgreSQL's schema versions, concurrent writers and what its rows may hold.

use std::fs;
use std::sync::Arc;

use tresor_core::store::{Batch, SledStore, Store, StoreError};
use tresor_postgres::{PgError, PgStore};

use crate::common::postgres::TestDatabase;

/// One store under test, and a way to look at everything it wrote. (A few in a test: their
/// size does not matter.)
#[allow(clippy::large_enum_variant)]
enum Backend {
    Sled(tempfile::TempDir, Option<SledStore>),
    Postgres(TestDatabase, Option<PgStore>),
}

impl Backend {
    fn sled() -> Option<Backend> {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        Some(Backend::Sled(dir, Some(store)))
    }

    fn postgres() -> Option<Backend> {
        let db = TestDatabase::create()?;
        let store = PgStore::open(&db.options("a")).unwrap();
        Some(Backend::Postgres(db, Some(store)))
    }

    fn store(&self) -> &dyn Store {
        match self {
            Backend::Sled(_, store) => store.as_ref().unwrap(),
            Backend::Postgres(_, store) => store.as_ref().unwrap(),
        }
    }

    /// True if anything the backend keeps holds `needle`.
    fn holds(&self, needle: &[u8]) -> bool {
        match self {
            Backend::Sled(dir, _) => crate::common::dir_contains(dir.path(), needle),
            Backend::Postgres(db, _) => db.holds(needle),
        }
    }

    /// Drops the store (as a process exit would) and opens it again.
    fn reopen(&mut self) {
        match self {
            Backend::Sled(dir, store) => {
                drop(store.take());
                *store = Some(crate::common::open_store(dir.path()));
            }
            Backend::Postgres(db, store) => {
                drop(store.take());
                *store = Some(PgStore::open(&db.options("a")).unwrap());
            }
        }
    }
}

/// Each contract test runs once per backend, with the same body.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sled {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::sled().unwrap());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(backend) = super::Backend::postgres() {
                    super::$name(backend);
                }
            })*
        }
    };
}

on_both_backends!(
    commit_is_atomic_and_checks_expectations,
    scan_prefix_in_order,
    purge_removes_deleted_bytes_and_keeps_live_data,
    values_are_kept_byte_for_byte,
);

fn commit_is_atomic_and_checks_expectations(backend: Backend) {
    let store = backend.store();
    store.put("a", b"1").unwrap();
    let conflict = store.commit(
        Batch::new()
            .expect("a", Some(b"0".to_vec()))
            .put("a", b"2".to_vec())
            .put("b", b"2".to_vec()),
    );
    assert!(matches!(conflict, Err(StoreError::Conflict { key }) if key == "a"));
    assert_eq!(store.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get("b").unwrap(), None);
    let absent = store.commit(Batch::new().expect("a", None).put("z", b"9".to_vec()));
    assert!(matches!(absent, Err(StoreError::Conflict { key }) if key == "a"));
    assert_eq!(store.get("z").unwrap(), None);
    store
        .commit(
            Batch::new()
                .expect("a", Some(b"1".to_vec()))
                .expect("c", None)
                .put("c", b"3".to_vec())
                .delete("a"),
        )
        .unwrap();
    assert_eq!(store.get("a").unwrap(), None);
    assert_eq!(store.get("c").unwrap().as_deref(), Some(&b"3"[..]));
    // Deleting what is absent is a no-op, not an error.
    store.delete("never-there").unwrap();
}

fn scan_prefix_in_order(backend: Backend) {
    let store = backend.store();
    for key in ["k/b", "k/a", "kx", "j", "k/B", "k/a/1", "k/é"] {
        store.put(key, key.as_bytes()).unwrap();
    }
    let keys: Vec<String> = store
        .scan_prefix("k/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    // Byte order, as sled keeps it (not a locale's collation).
    assert_eq!(keys, ["k/B", "k/a", "k/a/1", "k/b", "k/é"]);
    assert!(store.scan_prefix("nothing/").unwrap().is_empty());
    // `%` and `_` are plain characters in a prefix, not patterns.
    store.put("p%/x", b"1").unwrap();
    store.put("p_/x", b"2").unwrap();
    let keys: Vec<String> = store
        .scan_prefix("p%")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["p%/x"]);
}

fn purge_removes_deleted_bytes_and_keeps_live_data(mut backend: Backend) {
    let doomed = b"DOOMED-VALUE-0123456789-ABCDEFGHIJ".repeat(4);
    let store = backend.store();
    store.put("keep", b"live value").unwrap();
    store.put("doomed", &doomed).unwrap();
    store.delete("doomed").unwrap();
    assert!(
        backend.holds(&doomed),
        "control: a deleted value stays in the files until purged"
    );
    let store = backend.store();
    store.purge_stale().unwrap();
    assert_eq!(
        store.get("keep").unwrap().as_deref(),
        Some(&b"live value"[..])
    );
    assert!(backend.holds(b"live value"), "control: live data is found");
    assert!(!backend.holds(&doomed));
    backend.reopen();
    assert_eq!(
        backend.store().get("keep").unwrap().as_deref(),
        Some(&b"live value"[..])
    );
}

fn values_are_kept_byte_for_byte(mut backend: Backend) {
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let large = vec![0xA5u8; 3 << 20];
    let store = backend.store();
    store.put("bytes", &every_byte).unwrap();
    store.put("empty", b"").unwrap();
    store.put("large", &large).unwrap();
    backend.reopen();
    let store = backend.store();
    assert_eq!(store.get("bytes").unwrap(), Some(every_byte));
    assert_eq!(store.get("empty").unwrap(), Some(Vec::new()));
    assert_eq!(store.get("large").unwrap(), Some(large));
}

#[test]
fn leftover_generation_from_interrupted_purge_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.put("k", b"v").unwrap();
    }
    fs::create_dir_all(dir.path().join("gen-000002")).unwrap();
    fs::write(dir.path().join("gen-000002/junk"), b"half-copied").unwrap();
    let store = crate::common::open_store(dir.path());
    assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(!dir.path().join("gen-000002").exists());
}

/// A fresh database with this version's schema, holding `k` = `v` (for the schema tests).
fn a_database_holding_k() -> Option<TestDatabase> {
    let db = TestDatabase::create()?;
    let store = PgStore::open(&db.options("a")).unwrap();
    store.put("k", b"v").unwrap();
    drop(store);
    Some(db)
}

#[test]
fn postgres_refuses_a_newer_schema_that_no_longer_admits_it() {
    let Some(db) = a_database_holding_k() else {
        return;
    };
    let known = tresor_postgres::SCHEMA_VERSION;
    let newer = known + 1;
    // A newer schema that admits only nodes of its own version, and one whose marker is missing
    // (as if set by hand): both refused, by name, and nothing changes.
    for compatible_from in [newer.to_string(), "NULL".to_owned()] {
        db.sql(&format!(
            "UPDATE tresor_schema SET version = {newer}, compatible_from = {compatible_from}"
        ));
        let e = PgStore::open(&db.options("a"))
            .err()
            .expect("a newer schema is refused");
        assert!(
            matches!(e, PgError::SchemaTooNew { found, compatible_from, known: k }
                if found == newer && compatible_from == newer && k == known),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&format!("version {newer}"))
                && text.contains(&format!("knows version {known}"))
                && text.contains("upgrade Tresor"),
            "{text}"
        );
        let rows = db.rows("SELECT version FROM tresor_schema");
        assert_eq!(rows, [[newer.to_string().into_bytes()]]);
        let rows = db.rows("SELECT path FROM tresor_kv");
        assert_eq!(rows, [[b"k".to_vec()]]);
    }
}

/// A rolling upgrade: a node of this version (re)starts on a schema a newer node migrated, as
/// long as that schema still admits it, reads and writes as before, and downgrades nothing.
#[test]
fn postgres_runs_on_a_newer_schema_that_still_admits_it() {
    let Some(db) = a_database_holding_k() else {
        return;
    };
    let known = tresor_postgres::SCHEMA_VERSION;
    let newer = known + 1;
    db.sql(&format!(
        "UPDATE tresor_schema SET version = {newer}, compatible_from = {known}; \
         CREATE TABLE tresor_from_the_future (id integer)"
    ));
    let store = PgStore::open(&db.options("a")).unwrap();
    assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    store.put("k2", b"v2").unwrap();
    drop(store);
    assert_eq!(
        db.rows("SELECT version, compatible_from FROM tresor_schema"),
        [[
            newer.to_string().into_bytes(),
            known.to_string().into_bytes()
        ]]
    );
    assert_eq!(
        db.rows("SELECT count(*) FROM tresor_from_the_future"),
        [[b"0".to_vec()]]
    );
}

#[test]
fn postgres_connection_errors_name_the_database_without_its_password() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    fs::write(&wrong, "not-the-password-0xC0FFEE\n").unwrap();
    let options = tresor_postgres::PgOptions {
        password_file: Some(wrong),
        ..db.options("a")
    };
    let e = PgStore::open(&options)
        .err()
        .expect("a wrong password is refused");
    let text = e.to_string();
    assert!(matches!(e, PgError::Connect { .. }), "{text}");
    assert!(text.contains(&db.url()), "names the database: {text}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("0xC0FFEE"), "{text}");
    // Without a password the server refuses too, and the error says so.
    let options = tresor_postgres::PgOptions {
        password_file: None,
        ..db.options("a")
    };
    let text = PgStore::open(&options).err().unwrap().to_string();
    assert!(text.contains(&db.url()), "{text}");
}

/// Two nodes race to change one record, many times: each round exactly one wins, the other
/// gets the typed conflict, and no accepted write is lost.
#[test]
fn postgres_concurrent_writers_never_lose_an_update() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let a = Arc::new(PgStore::open(&db.options("a")).unwrap());
    let b = Arc::new(PgStore::open(&db.options("b")).unwrap());
    a.put("counter", b"0").unwrap();
    let rounds = 30;
    let mut wins = 0;
    for round in 0..rounds {
        let current = a.get("counter").unwrap().unwrap();
        let next = (round + 1).to_string().into_bytes();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let attempts: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(i, store)| {
                let (barrier, current, next) = (barrier.clone(), current.clone(), next.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store.commit(
                        Batch::new()
                            .expect("counter", Some(current))
                            .put("counter", next)
                            .put(format!("won/{round}/{i}"), b"1".to_vec()),
                    )
                })
            })
            .collect();
        let results: Vec<_> = attempts.into_iter().map(|t| t.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            won, 1,
            "round {round}: exactly one writer wins: {results:?}"
        );
        for result in &results {
            if let Err(e) = result {
                assert!(
                    matches!(e, StoreError::Conflict { key } if key == "counter"),
                    "{e}"
                );
            }
        }
        wins += won;
        assert_eq!(b.get("counter").unwrap(), Some(next));
        assert_eq!(a.scan_prefix(&format!("won/{round}/")).unwrap().len(), 1);
    }
    assert_eq!(wins, rounds as usize);
    // Every committed write is in the change log once, in order, with its node.
    let log = db.rows("SELECT position, path, node_id FROM tresor_changes ORDER BY position");
    let positions: Vec<i64> = log
        .iter()
        .map(|row| String::from_utf8(row[0].clone()).unwrap().parse().unwrap())
        .collect();
    assert_eq!(positions, (1..=positions.len() as i64).collect::<Vec<_>>());
    assert_eq!(positions.len(), 1 + 2 * rounds as usize);
    assert!(log.iter().any(|row| row[2] == b"b") && log.iter().any(|row| row[2] == b"a"));
}

/// A vault on PostgreSQL: the database sees only barrier-sealed values and their paths, never a
/// plaintext, an exported key (raw, hex or base64) or a tenant's name inside a value; and the
/// vault reopens from it.
#[test]
fn postgres_holds_only_sealed_records() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use tresor_core::{
        EncryptRequest, ExportKind, KeySpec, ProtectionLevel, TenantSpec, Vault, VaultOptions,
    };
    use tresor_crypto::identity::CustodianIdentity;
    use tresor_wire::custody::InitRequest;

    let Some(db) = TestDatabase::create() else {
        return;
    };
    let custodian = CustodianIdentity::generate("custodian-0").unwrap();
    let open = || {
        let store = Arc::new(PgStore::open(&db.options("a")).unwrap());
        Vault::open(store, VaultOptions::new("test")).unwrap()
    };
    let unseal = |vault: &Vault| {
        let share = vault
            .sealed_share(custodian.name())
            .unwrap()
            .open(&custodian)
            .unwrap();
        assert!(!vault.unseal(vec![share]).unwrap().sealed);
    };
    let vault = open();
    vault
        .init(&InitRequest {
            custodians: vec![custodian.public().clone()],
            threshold: 1,
            four_eyes: None,
        })
        .unwrap();
    unseal(&vault);
    let plaintext = b"PLAINTEXT-NEVER-IN-THE-DATABASE-0123456789".to_vec();
    let mut secrets = vec![plaintext.clone()];
    let mut issued = Vec::new();
    for (tenant, level) in [
        ("flat", ProtectionLevel::One),
        ("kek", ProtectionLevel::Two),
    ] {
        vault
            .create_tenant(
                tenant,
                &TenantSpec {
                    level,
                    ..TenantSpec::default()
                },
            )
            .unwrap();
        let spec = KeySpec {
            exportable: true,
            ..Default::default()
        };
        vault.create_key(tenant, "k", spec).unwrap();
        vault.rotate_key(tenant, "k").unwrap();
        for kind in [ExportKind::EncryptionKey, ExportKind::HmacKey] {
            for (_, key) in vault.export_key(tenant, "k", kind, None).unwrap() {
                secrets.push(key.expose().to_vec());
            }
        }
        let request = EncryptRequest {
            plaintext: &plaintext,
            ..Default::default()
        };
        issued.push((tenant, vault.encrypt(tenant, "k", &request).unwrap().text));
    }
    assert_eq!(secrets.len(), 9);
    assert!(db.holds(b"keys/flat/k"), "control: paths are visible");
    for secret in &secrets {
        assert!(!db.holds(secret), "a secret reached the database");
        assert!(!db.holds(STANDARD.encode(secret).as_bytes()));
    }
    // The values hold no readable record either (they are sealed, not just encoded).
    assert!(!db.holds(b"\"versions\""));
    drop(vault);
    let vault = open();
    assert!(vault.is_sealed());
    unseal(&vault);
    for (tenant, ciphertext) in issued {
        let decrypted = crate::common::decrypt(&vault, tenant, "k", &ciphertext).unwrap();
        assert_eq!(decrypted, plaintext);
    }
}

/// With `ca_file`, the store speaks TLS and trusts only that CA: the test turns TLS on in the
/// test cluster with a certificate from its own CA, then connects with that CA (works) and with
/// another one (refused, naming the certificate problem).
#[test]
fn postgres_over_tls_trusts_only_the_configured_ca() {
    use std::os::unix::fs::PermissionsExt;
    use tresor_server::tls::pki::DevCa;

    let Some(db) = TestDatabase::create() else {
        return;
    };
    let data_dir = String::from_utf8(db.rows("SHOW data_directory")[0][0].clone()).unwrap();
    let owner = match fs::metadata(&data_dir) {
        Ok(meta) => std::os::unix::fs::MetadataExt::uid(&meta),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("note: cannot see the cluster's data directory ({e}); skipping the TLS test");
            return;
        }
        Err(e) => panic!("cannot see the cluster's data directory {data_dir}: {e}"),
    };
    let day = std::time::Duration::from_secs(86_400);
    let ca = DevCa::generate("Tresor test database CA").unwrap();
    let server = ca.issue_server(&["localhost", "127.0.0.1"], day).unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (cert, key) = (dir.path().join("db.pem"), dir.path().join("db-key.pem"));
    fs::write(&cert, &server.cert_pem).unwrap();
    fs::write(&key, server.key_pem.as_bytes()).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    if let Err(e) = std::os::unix::fs::chown(&key, Some(owner), None) {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot hand the key to the cluster's user: {e}");
        }
        eprintln!("note: cannot hand the key to the cluster's user ({e}); skipping the TLS test");
        return;
    }
    let ca_file = dir.path().join("ca.pem");
    fs::write(&ca_file, ca.cert_pem()).unwrap();
    let other_ca_file = dir.path().join("other-ca.pem");
    fs::write(
        &other_ca_file,
        DevCa::generate("Other CA").unwrap().cert_pem(),
    )
    .unwrap();

    db.admin_sql(&format!(
        "ALTER SYSTEM SET ssl_cert_file = '{}'; ALTER SYSTEM SET ssl_key_file = '{}'; \
         ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf()",
        cert.display(),
        key.display()
    ));
    struct TlsOff<'a>(&'a TestDatabase);
    impl Drop for TlsOff<'_> {
        fn drop(&mut self) {
            self.0.admin_sql(
                "ALTER SYSTEM RESET ssl; ALTER SYSTEM RESET ssl_cert_file; \
                 ALTER SYSTEM RESET ssl_key_file; SELECT pg_reload_conf()",
            );
        }
    }
    let _off = TlsOff(&db);
    // The reload is asynchronous: wait (bounded) until the server says TLS is on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.rows("SHOW ssl")[0][0] != b"on" {
        assert!(std::time::Instant::now() < deadline, "TLS did not come on");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let with_ca = |ca_file: &std::path::Path| tresor_postgres::PgOptions {
        ca_file: Some(ca_file.to_owned()),
        ..db.options("a")
    };
    let store = PgStore::open(&with_ca(&ca_file)).unwrap();
    store.put("over-tls", b"1").unwrap();
    assert_eq!(store.get("over-tls").unwrap().as_deref(), Some(&b"1"[..]));
    let sessions = db.rows(&format!(
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.usename = '{}'",
        db.name
    ));
    assert_eq!(sessions, [[b"t".to_vec()]], "the store's sessions use TLS");
    drop(store);

    let e = PgStore::open(&with_ca(&other_ca_file))
        .err()
        .expect("another CA is refused");
    let text = e.to_string();
    assert!(matches!(e, PgError::Connect { .. }), "{text}");
    assert!(text.contains("certificate"), "{text}");
    // A CA file that holds no certificate is refused before connecting.
    fs::write(dir.path().join("empty.pem"), "").unwrap();
    let e = PgStore::open(&with_ca(&dir.path().join("empty.pem")))
        .err()
        .unwrap();
    assert!(e.to_string().contains("storage.ca_file"), "{e}");
}

/// The change-log follower reports what other nodes changed, not its own node's writes, picks
/// up after its connection is cut, and says "everything" when its position cannot be accounted
/// for (entries trimmed, or a database restored to an older head).
#[test]
fn postgres_follower_reports_other_nodes_changes() {
    use std::sync::mpsc;
    use std::time::Duration;
    use tresor_postgres::Change;

    let Some(db) = TestDatabase::create() else {
        return;
    };
    let a = PgStore::open(&db.options("a")).unwrap();
    let b = PgStore::open(&db.options("b")).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let follower = a
        .follow(Duration::from_millis(50), move |change| {
            let _ = tx.lock().unwrap().send(change);
        })
        .unwrap();
    let status = follower.status().clone();
    let follower_position = || status.position();
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the follower reports within the deadline")
    };
    // The position moves once the changes are applied (just after the report).
    let reaches = |position: i64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while follower_position() < position {
            assert!(
                std::time::Instant::now() < deadline,
                "stuck below {position}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(follower_position(), position);
    };
    a.put("own", b"1").unwrap();
    b.commit(Batch::new().put("keys/t/k", b"1".to_vec()).delete("gone"))
        .unwrap();
    assert_eq!(
        next(),
        Change::Paths(vec!["keys/t/k".into(), "gone".into()])
    );
    reaches(3);

    // Its connection cut: it reconnects and reads on from where it was.
    // Only this test's database: other tests on the cluster name their nodes `a` too.
    db.admin_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND application_name = 'tresor/a'",
        db.name
    ));
    b.put("tenants/t", b"2").unwrap();
    assert_eq!(next(), Change::Paths(vec!["tenants/t".into()]));

    // Entries trimmed away before it read them: it cannot list them, so everything.
    db.sql(
        "BEGIN; UPDATE tresor_log_head SET position = position + 5; COMMIT; NOTIFY tresor_changes",
    );
    assert_eq!(next(), Change::Everything);
    reaches(9);
    b.put("after", b"3").unwrap();
    assert_eq!(next(), Change::Paths(vec!["after".into()]));
    assert!(follower.status().age() < Duration::from_secs(30));
    drop(follower);
}

/// Two vaults (two nodes) on one database rotate one key at the same instant, many times: each
/// round yields two new versions, or one and a clean conflict; the key ends with exactly one
/// version per accepted rotation.
#[test]
fn postgres_two_nodes_rotating_at_once_never_lose_a_version() {
    use tresor_core::{ErrorKind, KeySpec, ProtectionLevel, TenantSpec, Vault, VaultOptions};
    use tresor_crypto::identity::CustodianIdentity;
    use tresor_wire::custody::InitRequest;

    let Some(db) = TestDatabase::create() else {
        return;
    };
    let custodian = CustodianIdentity::generate("custodian-0").unwrap();
    let node = |id: &str| {
        let store = Arc::new(PgStore::open(&db.options(id)).unwrap());
        Vault::open(store, VaultOptions::new("test")).unwrap()
    };
    let unseal = |vault: &Vault| {
        let share = vault
            .sealed_share(custodian.name())
            .unwrap()
            .open(&custodian)
            .unwrap();
        assert!(!vault.unseal(vec![share]).unwrap().sealed);
    };
    let a = node("a");
    a.init(&InitRequest {
        custodians: vec![custodian.public().clone()],
        threshold: 1,
        four_eyes: None,
    })
    .unwrap();
    let b = node("b");
    unseal(&a);
    unseal(&b);
    a.create_tenant(
        "t",
        &TenantSpec {
            level: ProtectionLevel::Two,
            ..TenantSpec::default()
        },
    )
    .unwrap();
    a.create_key("t", "k", KeySpec::default()).unwrap();
    let (mut accepted, mut conflicts) = (0u32, 0u32);
    for _ in 0..40 {
        let start = std::sync::Barrier::new(2);
        let results: Vec<_> = std::thread::scope(|scope| {
            let runs: Vec<_> = [&a, &b]
                .into_iter()
                .map(|vault| {
                    let start = &start;
                    scope.spawn(move || {
                        start.wait();
                        vault.rotate_key("t", "k")
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for result in results {
            match result {
                Ok(_) => accepted += 1,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                    conflicts += 1;
                }
            }
        }
    }
    eprintln!("{accepted} rotations accepted, {conflicts} conflicts");
    assert!(accepted >= 40);
    // Read afresh from the store: one version per accepted rotation.
    b.invalidate_all();
    let ciphertext = b
        .encrypt(
            "t",
            "k",
            &tresor_core::EncryptRequest {
                plaintext: b"x",
                ..Default::default()
            },
        )
        .unwrap();
    assert!(
        ciphertext
            .text
            .starts_with(&format!("tresor:v{}:", 1 + accepted)),
        "{}",
        ciphertext.text
    );
}

/// The background-job lease: one holder at a time; when the holder stops renewing (paused,
/// killed), another node takes it over with the next epoch, and a commit fenced with the old
/// epoch fails with a conflict and changes nothing.
#[test]
fn postgres_job_lease_fences_a_paused_leader() {
    use std::time::{Duration, Instant};

    let Some(db) = TestDatabase::create() else {
        return;
    };
    let a = PgStore::open(&db.options("a")).unwrap();
    let b = PgStore::open(&db.options("b")).unwrap();
    let wait_held = |lease: &tresor_postgres::Lease| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(epoch) = lease.status().held() {
                return epoch;
            }
            assert!(Instant::now() < deadline, "the lease was never taken");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let ttl = Duration::from_millis(900);
    let lease_a = a.lease("jobs", ttl);
    let first = wait_held(&lease_a);
    let lease_b = b.lease("jobs", ttl);
    // B tries for a while (several of its renewals) and never gets it while A renews.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(lease_b.status().held(), None);
        assert_eq!(lease_a.status().held(), Some(first));
    }
    a.fenced("jobs", first, || a.put("job/a", b"1")).unwrap();
    let refused = b.fenced("jobs", first, || b.put("job/b", b"1"));
    assert!(
        matches!(refused, Err(StoreError::Conflict { .. })),
        "{refused:?}"
    );
    assert_eq!(a.get("job/b").unwrap(), None);
    // Unfenced commits are not affected.
    b.put("plain", b"1").unwrap();

    // A stops renewing (as if paused): B takes over with the next epoch…
    drop(lease_a);
    let second = wait_held(&lease_b);
    assert!(second > first, "{second} > {first}");
    // …and A's job write, fenced with its old epoch, fails and changes nothing.
    let stale = a.fenced("jobs", first, || {
        a.commit(Batch::new().put("job/late", b"1".to_vec()).delete("job/a"))
    });
    assert!(
        matches!(&stale, Err(StoreError::Conflict { key }) if key.contains("epoch")),
        "{stale:?}"
    );
    assert_eq!(a.get("job/late").unwrap(), None);
    assert_eq!(a.get("job/a").unwrap().as_deref(), Some(&b"1"[..]));
    b.fenced("jobs", second, || b.put("job/b", b"2")).unwrap();
    let holders = db.rows("SELECT holder, epoch FROM tresor_leases");
    assert_eq!(holders, [[b"b".to_vec(), second.to_string().into_bytes()]]);
}

#[test]
fn postgres_migrates_an_older_schema_and_keeps_the_data() {
    let Some(db) = a_database_holding_k() else {
        return;
    };
    // Back to what version 1 had.
    db.sql(
        "DROP TABLE tresor_leases; ALTER TABLE tresor_schema DROP COLUMN compatible_from; \
         UPDATE tresor_schema SET version = 1",
    );
    let store = PgStore::open(&db.options("a")).unwrap();
    assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    let version = db.rows("SELECT version FROM tresor_schema");
    assert_eq!(
        version,
        [[tresor_postgres::SCHEMA_VERSION.to_string().into_bytes()]]
    );
    assert_eq!(
        db.rows("SELECT count(*) FROM tresor_leases"),
        [[b"0".to_vec()]]
    );
    // What this build writes: nodes of every version since COMPATIBLE_FROM may run on it.
    assert_eq!(
        db.rows("SELECT compatible_from FROM tresor_schema"),
        [[tresor_postgres::COMPATIBLE_FROM.to_string().into_bytes()]]
    );
}

/// A measurement, not a test (docs/benchmarks.md): how long after node B's commit returns node
/// A's follower reports the change, over 300 commits. Run with
/// `.ci/with-postgres cargo test --test vault -- --ignored --nocapture propagation`.
#[test]
#[ignore = "a measurement for docs/benchmarks.md, not a test"]
fn postgres_change_propagation_delay() {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let Some(db) = TestDatabase::create() else {
        return;
    };
    let a = PgStore::open(&db.options("a")).unwrap();
    let b = PgStore::open(&db.options("b")).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let _follower = a
        .follow(Duration::from_millis(200), move |_| {
            let _ = tx.lock().unwrap().send(Instant::now());
        })
        .unwrap();
    let mut delays = Vec::new();
    for i in 0..300 {
        b.put(&format!("keys/t/k{i}"), b"v").unwrap();
        let committed = Instant::now();
        let seen = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        delays.push(seen.saturating_duration_since(committed));
    }
    delays.sort();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    println!(
        "change propagation over {} commits: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        delays[delays.len() - 1]
    );
}
