//! A PostgreSQL database per test, made through `TRESOR_TEST_DATABASE_URL` (a superuser
//! connection; `.ci/with-postgres` starts a throwaway cluster and sets it). Each test gets its
//! own database and its own login role with a password (given to Tresor through
//! `storage.password_file`), both dropped afterwards, so tests run in parallel.
//!
//! Without the variable: in CI (`CI=true`) the test fails; elsewhere it prints a note and the
//! test returns early.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tresor_postgres::PgOptions;

/// The variable naming the superuser connection.
pub const URL_VAR: &str = "TRESOR_TEST_DATABASE_URL";

/// A fresh database owned by a fresh role.
pub struct TestDatabase {
    admin: tokio_postgres::Config,
    /// The database's name (also the role's).
    pub name: String,
    host: String,
    port: u16,
    /// Holds the password file.
    dir: tempfile::TempDir,
}

impl TestDatabase {
    /// A new database, or `None` (with a note) outside CI when no server is configured.
    pub fn create() -> Option<TestDatabase> {
        let Ok(url) = std::env::var(URL_VAR) else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{URL_VAR} is not set: this test needs PostgreSQL (run it through .ci/with-postgres)"
                );
            }
            eprintln!(
                "note: {URL_VAR} is not set, skipping a PostgreSQL test (run `.ci/with-postgres cargo test`)"
            );
            return None;
        };
        Some(Self::create_on(&url))
    }

    /// A new database on the server a superuser `url` names.
    pub fn create_on(url: &str) -> TestDatabase {
        let admin: tokio_postgres::Config = url.parse().expect("TRESOR_TEST_DATABASE_URL");
        let (host, port) = match (admin.get_hosts().first(), admin.get_ports().first()) {
            (Some(tokio_postgres::config::Host::Tcp(host)), Some(port)) => (host.clone(), *port),
            other => panic!("{URL_VAR} must name a TCP host and port, got {other:?}"),
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "tresor_t{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::tempdir().unwrap();
        let password = format!("pw-{name}");
        std::fs::write(dir.path().join("password"), format!("{password}\n")).unwrap();
        let db = TestDatabase {
            admin,
            name: name.clone(),
            host,
            port,
            dir,
        };
        db.admin_sql(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{password}'; CREATE DATABASE {name} OWNER {name}"
        ));
        db
    }

    /// The URL Tresor is given (no password in it).
    pub fn url(&self) -> String {
        format!(
            "postgresql://{}@{}:{}/{}",
            self.name, self.host, self.port, self.name
        )
    }

    /// The file holding the role's password.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// Store options for node `node_id`.
    pub fn options(&self, node_id: &str) -> PgOptions {
        PgOptions {
            password_file: Some(self.password_file()),
            ..PgOptions::new(self.url(), node_id)
        }
    }

    /// The `[storage]` table of a node's `tresor.toml`.
    pub fn storage_toml(&self, node_id: &str) -> String {
        format!(
            "[storage]\nbackend = \"postgresql\"\nurl = \"{}\"\nnode_id = \"{node_id}\"\npassword_file = \"{}\"\npool_size = 4\n",
            self.url(),
            self.password_file().display()
        )
    }

    /// The login role of node `node_id` (made by [`TestDatabase::node_storage_toml`]).
    pub fn node_role(&self, node_id: &str) -> String {
        format!("{}_{}", self.name, node_id.replace('-', "_"))
    }

    /// The `[storage]` table of node `node_id` logging in as a role of its own (a member of
    /// the database owner's role, acting as it), so that a test can cut
    /// one node off the database ([`TestDatabase::block`]).
    pub fn node_storage_toml(&self, node_id: &str) -> String {
        let role = self.node_role(node_id);
        let password = format!("pw-{role}");
        let file = self.dir.path().join(format!("password-{node_id}"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        // Sessions act as the owner's role, so every node may change the tables whichever
        // node created them (docs/deployment.md, the database role and its grants).
        self.admin_sql(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE {name}; \
             ALTER ROLE {role} SET role = {name}",
            name = self.name
        ));
        format!(
            "[storage]\nbackend = \"postgresql\"\nurl = \"postgresql://{role}@{}:{}/{}\"\nnode_id = \"{node_id}\"\npassword_file = \"{}\"\npool_size = 4\njob_lease = 2\n",
            self.host,
            self.port,
            self.name,
            file.display()
        )
    }

    /// Cuts node `node_id` off the database: its role may no longer log in, and its sessions
    /// are ended.
    pub fn block(&self, node_id: &str) {
        let role = self.node_role(node_id);
        self.admin_sql(&format!("ALTER ROLE {role} NOLOGIN"));
        self.end_sessions(node_id);
    }

    /// Lets node `node_id` log in again.
    pub fn unblock(&self, node_id: &str) {
        self.admin_sql(&format!("ALTER ROLE {} LOGIN", self.node_role(node_id)));
    }

    /// Ends every session of node `node_id` (its pool and its change-log connection), as a
    /// network cut or a database failover would.
    pub fn end_sessions(&self, node_id: &str) {
        self.admin_sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'",
            self.node_role(node_id)
        ));
    }

    /// Runs `sql` in this database as the superuser.
    pub fn sql(&self, sql: &str) {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        run(&config, |client| async move {
            client.batch_execute(sql).await.unwrap();
        });
    }

    /// Runs the `;`-separated statements of `sql` in the maintenance database as the
    /// superuser, each on its own (CREATE DATABASE cannot share a transaction).
    pub fn admin_sql(&self, sql: &str) {
        run(&self.admin, |client| async move {
            for statement in sql.split(';') {
                client.batch_execute(statement).await.unwrap();
            }
        });
    }

    /// The rows of `query` (run in this database as the superuser), each column as bytes
    /// (`NULL` as empty): what a test scans for secrets.
    pub fn rows(&self, query: &str) -> Vec<Vec<Vec<u8>>> {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        let query = query.to_owned();
        run(&config, |client| async move {
            let rows = client.simple_query(&query).await.unwrap();
            rows.into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).unwrap_or("").as_bytes().to_vec())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        })
    }

    /// True if any path or value the store holds (its table and its change log), in raw bytes
    /// or hex as the database shows them, contains `needle`.
    pub fn holds(&self, needle: &[u8]) -> bool {
        assert!(needle.len() >= 8, "needle too short to be meaningful");
        let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        let rows: Vec<Vec<Vec<u8>>> = run(&config, |client| async move {
            let mut rows = Vec::new();
            for row in client
                .query("SELECT path, value FROM tresor_kv", &[])
                .await
                .unwrap()
            {
                let path: String = row.get(0);
                let value: Vec<u8> = row.get(1);
                let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                rows.push(vec![path.into_bytes(), value, hex.into_bytes()]);
            }
            for row in client
                .query("SELECT path, node_id FROM tresor_changes", &[])
                .await
                .unwrap()
            {
                let (path, node): (String, String) = (row.get(0), row.get(1));
                rows.push(vec![path.into_bytes(), node.into_bytes()]);
            }
            rows
        });
        assert!(!rows.is_empty(), "control: the store holds rows");
        let in_rows = rows.iter().flatten().any(|cell| {
            cell.windows(needle.len()).any(|w| w == needle)
                || cell.windows(hex.len()).any(|w| w == hex.as_bytes())
        });
        in_rows || self.files_hold(needle)
    }

    /// True if the files of the store's tables (heap and TOAST, after a checkpoint) contain
    /// `needle`: SQL shows only live rows, the files also hold dead ones. The files must be
    /// readable (the tests run as root, or as the cluster's owner); in CI they must be.
    pub fn files_hold(&self, needle: &[u8]) -> bool {
        self.admin_sql("CHECKPOINT");
        let files = self.rows(
            "SELECT current_setting('data_directory') || '/' || pg_relation_filepath(c.oid) \
             FROM pg_class c WHERE c.relname IN ('tresor_kv', 'tresor_changes') \
             UNION ALL SELECT current_setting('data_directory') || '/' || pg_relation_filepath(c.reltoastrelid) \
             FROM pg_class c WHERE c.relname IN ('tresor_kv', 'tresor_changes') AND c.reltoastrelid <> 0",
        );
        let mut found = false;
        for file in files {
            let path = PathBuf::from(String::from_utf8(file[0].clone()).unwrap());
            match std::fs::read(&path) {
                Ok(bytes) => found |= bytes.windows(needle.len()).any(|w| w == needle),
                Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                    panic!("cannot read the table file {}: {e}", path.display())
                }
                Err(e) => eprintln!(
                    "note: cannot read the table file {} ({e}); checked the rows only",
                    path.display()
                ),
            }
        }
        found
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = self.admin.clone();
        // Best effort: a failing test must still report its own failure.
        let _ = std::panic::catch_unwind(move || {
            run(&admin, |client| async move {
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
                // The nodes' roles first (members of the owner's), then the owner.
                if let Ok(rows) = client
                    .query(
                        "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)",
                        &[&format!("{name}_")],
                    )
                    .await
                {
                    for row in rows {
                        let role: String = row.get(0);
                        let _ = client
                            .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
                            .await;
                    }
                }
                let _ = client
                    .batch_execute(&format!("DROP ROLE IF EXISTS {name}"))
                    .await;
            })
        });
    }
}

/// Connects with `config` on a private runtime and runs `work` with the client.
fn run<T, F, Fut>(config: &tokio_postgres::Config, work: F) -> T
where
    F: FnOnce(tokio_postgres::Client) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test database: {e}"));
        let driver = tokio::spawn(connection);
        let out = work(client).await;
        let _ = driver.await;
        out
    })
}

/// A PostgreSQL cluster of a test's own, which the test may restart (the shared one of
/// `.ci/with-postgres` serves other tests meanwhile). Made like that script makes its cluster:
/// initdb and pg_ctl from Debian's packages, run as `postgres` (or `nobody`) when the tests run
/// as root, loopback only, the superuser trusted.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    user: Option<String>,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl PrivateCluster {
    /// A started cluster, or `None` (with a note) outside CI when PostgreSQL is not installed.
    pub fn start() -> Option<PrivateCluster> {
        let bindir = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max();
        let Some(bindir) = bindir else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb)");
            }
            eprintln!("note: PostgreSQL is not installed, skipping a test that restarts it");
            return None;
        };
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let user = root.then(|| {
            let postgres = std::process::Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if postgres { "postgres" } else { "nobody" }.to_owned()
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        if let Some(user) = &user {
            let chown = std::process::Command::new("chown")
                .arg(user)
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let cluster = PrivateCluster {
            dir,
            bindir,
            user,
            port,
        };
        let data = cluster.dir.path().join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
        );
        cluster.pg_ctl("start");
        Some(cluster)
    }

    /// The superuser URL.
    pub fn admin_url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Turns TLS on with the given server certificate and key, trusting `client_ca_pem` for
    /// client certificates, and puts `hba` (pg_hba.conf lines) before the cluster's defaults;
    /// returns once the server says TLS is on.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str, client_ca_pem: &str, hba: &str) {
        use std::os::unix::fs::PermissionsExt;
        let file = |name: &str, contents: &str, mode: u32| {
            let path = self.dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            if let Some(user) = &self.user {
                let chown = std::process::Command::new("chown")
                    .arg(user)
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(chown.success());
            }
            path
        };
        let cert = file("server.pem", cert_pem, 0o644);
        let key = file("server-key.pem", key_pem, 0o600);
        let ca = file("client-ca.pem", client_ca_pem, 0o644);
        let hba = format!(
            "local all all trust\n{hba}\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        );
        let hba_file = file("pg_hba.conf", &hba, 0o644);
        let admin: tokio_postgres::Config = self.admin_url().parse().unwrap();
        let settings = [
            ("ssl_cert_file", cert),
            ("ssl_key_file", key),
            ("ssl_ca_file", ca),
            ("hba_file", hba_file),
        ];
        run(&admin, |client| async move {
            // ALTER SYSTEM refuses to run in a transaction: one statement at a time.
            for (name, path) in settings {
                client
                    .batch_execute(&format!("ALTER SYSTEM SET {name} = '{}'", path.display()))
                    .await
                    .unwrap();
            }
            client
                .batch_execute("ALTER SYSTEM SET ssl = on")
                .await
                .unwrap();
        });
        // hba_file is read at server start only.
        self.restart();
        let ssl = run(&admin, |client| async move {
            client
                .query_one("SHOW ssl", &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        });
        assert_eq!(ssl, "on", "TLS did not come on");
    }

    /// Restarts the server (`pg_ctl restart -m fast`: every session is ended), waiting until it
    /// accepts connections again.
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-m",
                "fast",
                "-o",
                &options,
                action,
            ],
        );
    }

    fn run(&self, program: &str, args: &[&str]) {
        use crate::common::process::Bounded;
        let binary = self.bindir.join(program);
        let mut command = match &self.user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&binary);
                command
            }
            None => std::process::Command::new(&binary),
        };
        let output = command.args(args).bounded_output();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut command = match &self.user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command
                    .args(["-u", user, "--"])
                    .arg(self.bindir.join("pg_ctl"));
                command
            }
            None => std::process::Command::new(self.bindir.join("pg_ctl")),
        };
        let _ = command
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}
