//! How a node proves itself to PostgreSQL other than with `storage.password_file`: a client
//! certificate (`cert` authentication over TLS) and libpq's password file. On a cluster of the
//! test's own: it rewrites that cluster's pg_hba.conf and turns TLS on.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tresor_core::store::Store;
use tresor_postgres::{PgError, PgOptions, PgStore};
use tresor_server::tls::pki::{ClientCertSpec, DevCa};

use crate::common::postgres::{PrivateCluster, TestDatabase};

const DAY: Duration = Duration::from_secs(86_400);

fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// A node logs in with a certificate from the database's client CA and no password; a
/// certificate from another CA, no certificate at all, and a key file others can read are
/// refused, each with an error that says so.
#[test]
fn a_node_logs_in_with_a_client_certificate_and_no_password() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let db = TestDatabase::create_on(&cluster.admin_url());
    let role = format!("{}_cert", db.name);
    db.admin_sql(&format!(
        "CREATE ROLE {role} LOGIN IN ROLE {name}; ALTER ROLE {role} SET role = {name}",
        name = db.name
    ));
    let ca = DevCa::generate("Tresor test database CA").unwrap();
    let server = ca.issue_server(&["localhost", "127.0.0.1"], DAY).unwrap();
    cluster.enable_tls(
        &server.cert_pem,
        &server.key_pem,
        ca.cert_pem(),
        &format!("hostssl all {role} 127.0.0.1/32 cert"),
    );

    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", ca.cert_pem(), 0o644);
    let client = ca
        .issue_client_with(&ClientCertSpec::common_name(&role, DAY))
        .unwrap();
    let cert = write(dir.path(), "node.pem", &client.cert_pem, 0o644);
    let key = write(dir.path(), "node-key.pem", &client.key_pem, 0o600);
    let options = |cert: &Path, key: &Path| PgOptions {
        ca_file: Some(ca_file.clone()),
        client_cert: Some(cert.to_owned()),
        client_key: Some(key.to_owned()),
        ..PgOptions::new(
            format!("postgresql://{role}@127.0.0.1:{}/{}", cluster.port, db.name),
            "a",
        )
    };

    let store = PgStore::open(&options(&cert, &key)).unwrap();
    store.put("by-certificate", b"1").unwrap();
    assert_eq!(
        store.get("by-certificate").unwrap().as_deref(),
        Some(&b"1"[..])
    );
    let sessions = db.rows(&format!(
        "SELECT bool_and(s.ssl), min(s.client_dn) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.usename = '{role}'"
    ));
    assert_eq!(sessions[0][0], b"t", "the store's sessions use TLS");
    assert_eq!(sessions[0][1], format!("/CN={role}").into_bytes());
    drop(store);

    // A certificate for the same name from another CA.
    let other = DevCa::generate("Other CA")
        .unwrap()
        .issue_client_with(&ClientCertSpec::common_name(&role, DAY))
        .unwrap();
    let other_cert = write(dir.path(), "other.pem", &other.cert_pem, 0o644);
    let other_key = write(dir.path(), "other-key.pem", &other.key_pem, 0o600);
    let e = PgStore::open(&options(&other_cert, &other_key))
        .err()
        .expect("a certificate of another CA is refused");
    assert!(matches!(e, PgError::Connect { .. }), "{e}");

    // No certificate: the `cert` line admits nobody without one.
    let bare = PgOptions {
        client_cert: None,
        client_key: None,
        ..options(&cert, &key)
    };
    let e = PgStore::open(&bare)
        .err()
        .expect("no certificate, no login");
    assert!(matches!(e, PgError::Connect { .. }), "{e}");

    // A key others can read is refused before anything connects; so is a key that is not
    // the certificate's.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let e = PgStore::open(&options(&cert, &key)).err().unwrap();
    let text = e.to_string();
    assert!(
        text.contains("storage.client_key") && text.contains("chmod 600"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let e = PgStore::open(&options(&cert, &other_key)).err().unwrap();
    assert!(e.to_string().contains("storage.client_key"), "{e}");
    let not_a_key = write(dir.path(), "not-a-key.pem", "not a key\n", 0o600);
    let e = PgStore::open(&options(&cert, &not_a_key)).err().unwrap();
    assert!(e.to_string().contains("no PEM private key"), "{e}");
}

/// Without `password_file`, the password comes from libpq's password file, matched on host,
/// port, database and user; a wrong one there fails the login, not silently something else.
#[test]
fn a_node_reads_its_password_from_libpqs_password_file() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let password = fs::read_to_string(db.password_file()).unwrap();
    let url: tokio_postgres::Config = db.url().parse().unwrap();
    let (host, port) = match (&url.get_hosts()[0], url.get_ports()[0]) {
        (tokio_postgres::config::Host::Tcp(host), port) => (host.clone(), port),
        other => panic!("{other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let passfile = write(
        dir.path(),
        "pgpass",
        &format!(
            "# for Tresor\n{host}:{port}:other_db:{name}:wrong\n{host}:{port}:{name}:{name}:{}\n",
            password.trim(),
            name = db.name
        ),
        0o600,
    );
    let options = PgOptions {
        passfile: Some(passfile.clone()),
        ..PgOptions::new(db.url(), "a")
    };
    let store = PgStore::open(&options).unwrap();
    store.put("by-passfile", b"1").unwrap();
    drop(store);

    write(
        dir.path(),
        "pgpass",
        &format!("*:*:*:{}:wrong-password\n", db.name),
        0o600,
    );
    let e = PgStore::open(&options)
        .err()
        .expect("a wrong password fails");
    let text = e.to_string();
    assert!(matches!(e, PgError::Connect { .. }), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");
}
