//! `tresor server` on PostgreSQL (`[storage] backend = "postgresql"`), as operators run it.

use crate::common::deployment::Deployment;
use crate::common::postgres::TestDatabase;

/// Replaces the deployment's sled `[storage]` table with `storage`.
fn use_storage(d: &Deployment, storage: &str) {
    let config = std::fs::read_to_string(d.path("tresor.toml")).unwrap();
    let start = config.find("[storage]").unwrap();
    let end = config.find("[policies]").unwrap();
    let config = format!("{}{storage}\n{}", &config[..start], &config[end..]);
    d.write("tresor.toml", &config);
}

#[test]
fn a_server_on_postgresql_keeps_its_keys_across_restarts_and_logs_no_password() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let d = Deployment::new();
    use_storage(&d, &db.storage_toml("node-a"));
    let server = d.start_unsealed(&["alice"], 1);
    server.ops(&d, &["tenant", "create", "payments"]);
    server.ops(&d, &["key", "create", "payments/card-pan"]);
    let ciphertext = server.ops(&d, &["encrypt", "payments/card-pan", "4111 1111"]);
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
