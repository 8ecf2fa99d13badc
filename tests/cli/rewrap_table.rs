//! `tresor rewrap --pg` and `tresor key census --pg` (issue 17, point 3) with the real binary,
//! a real server and a real PostgreSQL table: 20,000 rows on four versions (`vault:` ones of an
//! imported version among them) all end on the latest and decrypt to what they held; a `kill -9`
//! in the middle resumes without writing any row twice or missing one (a trigger counts each
//! row's writes); a row the application changes between the read and the write is left alone
//! and reported; bad names, tables, URLs and keys are refused and change nothing.

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_postgres::NoTls;
use tresor_client::CryptoOptions;
use tresor_core::KeySpec;
use tresor_crypto::SecretKey;
use tresor_crypto::byok::{vault_gcm_seal_for_tests, wrap_to_pem};

use super::rewrap::Cli;
use crate::common::postgres::TestDatabase;
use crate::common::server::{ADMIN, TestServer};

/// A connection as the database's owner, the role the command logs in as.
async fn owner(db: &TestDatabase) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = db.url().parse().unwrap();
    let password = std::fs::read_to_string(db.password_file()).unwrap();
    config.password(password.trim());
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// `secrets (id, note, ct, writes)`: `writes` counts the updates of each row (a trigger), so a
/// row written twice or never shows.
async fn create_table(client: &tokio_postgres::Client, rows: &[(i64, Option<String>)]) {
    client
        .batch_execute(
            "CREATE TABLE secrets (id bigint PRIMARY KEY, note text NOT NULL DEFAULT 'kept', \
                 ct text, writes int NOT NULL DEFAULT 0);
             CREATE FUNCTION count_writes() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN NEW.writes := OLD.writes + 1; RETURN NEW; END $$;
             CREATE TRIGGER count_writes BEFORE UPDATE ON secrets
                 FOR EACH ROW EXECUTE FUNCTION count_writes();",
        )
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    let values: Vec<Option<&str>> = rows.iter().map(|(_, ct)| ct.as_deref()).collect();
    client
        .execute(
            "INSERT INTO secrets (id, ct) SELECT * FROM unnest($1::int8[], $2::text[])",
            &[&ids, &values],
        )
        .await
        .unwrap();
}

/// Key `dev/k` with `rows` values encrypted under its version 1, then rotated, and the table
/// holding them (ids 0..rows): every row one version behind. The owner's connection.
async fn a_table_one_version_behind(
    server: &TestServer,
    db: &TestDatabase,
    rows: usize,
) -> tokio_postgres::Client {
    let admin = server.admin();
    admin
        .create_key("dev", "k", &Default::default())
        .await
        .unwrap();
    let plaintexts: Vec<String> = (0..rows).map(|i| format!("value-{i}")).collect();
    let ciphertexts = encrypt(server, "k", &plaintexts).await;
    admin.rotate_key("dev", "k").await.unwrap();
    let rows: Vec<(i64, Option<String>)> = ciphertexts
        .into_iter()
        .enumerate()
        .map(|(i, ct)| (i as i64, Some(ct)))
        .collect();
    let client = owner(db).await;
    create_table(&client, &rows).await;
    client
}

/// `(id, ct, writes)` of every row, in id order.
async fn table(client: &tokio_postgres::Client) -> Vec<(i64, Option<String>, i32)> {
    client
        .query("SELECT id, ct, writes FROM secrets ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The job's counts in the progress table, once it exists.
async fn job(client: &tokio_postgres::Client) -> Option<(Value, bool)> {
    let row = client
        .query_opt(
            "SELECT state, finished_at IS NOT NULL FROM tresor_rewrap_progress",
            &[],
        )
        .await
        .ok()??;
    Some((
        serde_json::from_str(&row.get::<_, String>(0)).unwrap(),
        row.get(1),
    ))
}

async fn encrypt(server: &TestServer, key: &str, plaintexts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in plaintexts.chunks(1000) {
        let items: Vec<&[u8]> = chunk.iter().map(|p| p.as_bytes()).collect();
        for sealed in server
            .admin()
            .encrypt_batch("dev", key, &items, &CryptoOptions::default())
            .await
            .unwrap()
        {
            out.push(sealed.unwrap().ciphertext);
        }
    }
    out
}

/// Runs `test` on a fresh database. The database is made and dropped outside the runtime (its
/// helpers run their own).
fn on_a_database(test: impl AsyncFnOnce(&TestDatabase)) {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test(&db));
}

fn cli_for(server: &TestServer) -> Cli {
    let files = server.issue(ADMIN);
    Cli {
        env: vec![
            ("TRESOR_CACERT".into(), server.path("ca.pem")),
            ("TRESOR_CLIENT_CERT".into(), files.cert.clone()),
            ("TRESOR_CLIENT_KEY".into(), files.key.clone()),
        ],
        url: server.url.clone(),
    }
}

async fn finish(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_table_is_rewrapped_in_place_and_a_kill_resumes_without_redoing_or_missing_a_row() {
    on_a_database(async |db| {
        let server = TestServer::new().await;
        let cli = cli_for(&server);
        // Version 1 imported from Vault (`vault:v1:` texts); 2 and 3 older Tresor versions; 4 the
        // latest. Another key's ciphertext, a value that is no ciphertext and a NULL join them.
        let vault = server.vault();
        let imported = SecretKey::random();
        let wrapped =
            wrap_to_pem(&vault.wrapping_key_pem("dev").unwrap(), imported.expose()).unwrap();
        vault
            .import_key("dev", "k", KeySpec::default(), &wrapped)
            .unwrap();
        let admin = server.admin();
        admin
            .create_key("dev", "other", &Default::default())
            .await
            .unwrap();
        let plaintexts: Vec<String> = (0..20_000).map(|i| format!("value-{i}")).collect();
        let mut ciphertexts: Vec<String> = plaintexts[..2000]
            .iter()
            .map(|p| {
                use base64::Engine;
                format!(
                    "vault:v1:{}",
                    base64::engine::general_purpose::STANDARD.encode(vault_gcm_seal_for_tests(
                        &imported,
                        p.as_bytes(),
                        b""
                    ))
                )
            })
            .collect();
        ciphertexts.extend(encrypt(&server, "k", &plaintexts[2000..10_000]).await);
        admin.rotate_key("dev", "k").await.unwrap();
        ciphertexts.extend(encrypt(&server, "k", &plaintexts[10_000..17_000]).await);
        admin.rotate_key("dev", "k").await.unwrap();
        ciphertexts.extend(encrypt(&server, "k", &plaintexts[17_000..]).await);
        assert!(ciphertexts[2000].starts_with("tresor:v2:"));
        assert!(ciphertexts[19_999].starts_with("tresor:v4:"));
        let foreign = encrypt(&server, "other", &["x".to_owned()]).await.remove(0);
        // Ids with gaps, so that keys and row numbers differ.
        let id = |i: usize| 7 + 3 * i as i64;
        let mut rows: Vec<(i64, Option<String>)> = ciphertexts
            .iter()
            .enumerate()
            .map(|(i, ct)| (id(i), Some(ct.clone())))
            .collect();
        rows.push((id(20_000), None));
        rows.push((id(20_001), Some("not-a-ciphertext".into())));
        rows.push((
            id(20_002),
            Some(foreign.replacen("tresor:v1:", "tresor:v2:", 1)),
        ));
        let client = owner(db).await;
        create_table(&client, &rows).await;
        let before = table(&client).await;

        let url = db.url();
        let password_file = db.password_file();
        let pg = [
            "--pg",
            url.as_str(),
            "--pg-password-file",
            password_file.to_str().unwrap(),
            "--table",
            "secrets",
            "--column",
            "ct",
        ];
        let with = |head: &[&'static str], tail: &[&'static str]| {
            let mut all: Vec<&str> = head.to_vec();
            all.extend(pg);
            all.extend(tail);
            all.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        let run = |args: Vec<String>| {
            let cli = &cli;
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                cli.run(&args).await
            }
        };

        // Census and dry run: the same counts, nothing changed.
        let census = json_of(&run(with(&["key", "census", "dev/k"], &[])).await);
        assert_eq!(census["latest_version"], 4, "{census}");
        assert_eq!(
            census["versions"],
            json!({"vault:v1": 2000, "tresor:v2": 8001, "tresor:v3": 7000, "tresor:v4": 3000})
        );
        assert_eq!(
            (
                &census["rows"],
                &census["empty"],
                &census["malformed"],
                &census["to_rewrap"]
            ),
            (&20_003.into(), &1.into(), &1.into(), &17_001.into())
        );
        let dry = json_of(&run(with(&["rewrap", "dev/k"], &["--dry-run"])).await);
        assert_eq!(dry, census);
        assert_eq!(table(&client).await, before, "a census changes nothing");

        // A run slowed by --rate, killed (SIGKILL) once some batches are in.
        let args = with(
            &["rewrap", "dev/k"],
            &["--batch-size", "500", "--connections", "2"],
        );
        let mut slow: Vec<&str> = args.iter().map(String::as_str).collect();
        slow.extend(["--rate", "3000"]);
        let mut child = cli
            .command(&slow)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let waited = Instant::now();
        loop {
            if let Some((state, _)) = job(&client).await {
                if state["rows"].as_u64().unwrap() >= 5000 {
                    break;
                }
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before the kill"
            );
            assert!(waited.elapsed() < Duration::from_secs(120), "no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap();
        let killed = finish(child).await;
        assert!(!killed.status.success());
        let (done, finished) = job(&client).await.unwrap();
        assert!(!finished);
        let done_rows = done["rows"].as_u64().unwrap();
        assert!((5000..20_003).contains(&done_rows), "{done}");
        let middle = table(&client).await;
        let written = middle.iter().filter(|(_, _, w)| *w > 0).count() as u64;
        assert_eq!(
            written, done["rewrapped"],
            "the record counts exactly what committed"
        );
        assert!(middle.iter().all(|(_, _, w)| *w <= 1));

        // Again without --resume: refused, saying how to go on, nothing written.
        let out = run(args.clone()).await;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("unfinished")
                && stderr.contains("--resume")
                && stderr.contains("DELETE FROM tresor_rewrap_progress"),
            "{stderr}"
        );
        assert_eq!(table(&client).await, middle);

        let mut resume = args.clone();
        resume.push("--resume".into());
        let out = run(resume).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "error rows fail the run: {out:?}"
        );
        let summary = json_of(&out);
        assert_eq!(summary["resumed_from"], done_rows, "{summary}");
        assert_eq!(summary["rows"], 20_003 - done_rows);
        assert_eq!(
            summary["rewrapped"].as_u64().unwrap() + done["rewrapped"].as_u64().unwrap(),
            17_000,
            "nothing redone, nothing missed"
        );
        assert_eq!(summary["changed_meanwhile"], 0);
        let job_total = &summary["job"];
        assert_eq!(
            (
                &job_total["rows"],
                &job_total["rewrapped"],
                &job_total["already_latest"],
                &job_total["empty"],
                &job_total["errors"]
            ),
            (
                &20_003.into(),
                &17_000.into(),
                &3000.into(),
                &1.into(),
                &2.into()
            ),
            "{summary}"
        );
        let errors: Vec<&Value> = job_total["error_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["key"])
            .collect();
        assert_eq!(
            errors,
            [
                &json!(id(20_001).to_string()),
                &json!(id(20_002).to_string())
            ]
        );
        assert!(job(&client).await.unwrap().1, "the job is finished");

        let after = table(&client).await;
        assert_eq!(after.len(), before.len());
        for (i, ((id, old, _), (_, new, writes))) in before.iter().zip(&after).enumerate() {
            if i < 17_000 {
                assert_eq!(*writes, 1, "row {id} written exactly once");
                assert!(new.as_deref().unwrap().starts_with("tresor:v4:"), "{new:?}");
            } else {
                assert_eq!(*writes, 0, "row {id} left alone");
                assert_eq!(new, old);
            }
        }
        for i in (0..20_000).step_by(499) {
            let plaintext = admin
                .decrypt(
                    "dev",
                    "k",
                    after[i].1.as_deref().unwrap(),
                    &CryptoOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(plaintext.as_slice(), plaintexts[i].as_bytes());
        }
        let census_after = json_of(&run(with(&["rewrap", "dev/k"], &["--dry-run"])).await);
        assert_eq!(
            census_after["versions"],
            json!({"tresor:v2": 1, "tresor:v4": 20_000})
        );
        assert_eq!(census_after["rows"], census["rows"]);
        assert_eq!(census_after["to_rewrap"], 1, "only the other key's");

        // A finished job may start over: nothing left to write.
        let again = json_of(&run(with(&["rewrap", "dev/k"], &[])).await);
        assert_eq!(
            (&again["rewrapped"], &again["already_latest"]),
            (&0.into(), &20_000.into())
        );
        server.shutdown().await;
    });
}

#[test]
fn a_row_the_application_changes_during_the_run_is_left_alone_and_reported() {
    on_a_database(async |db| {
        let server = TestServer::new().await;
        let cli = cli_for(&server);
        let client = a_table_one_version_behind(&server, db, 3000).await;
        let app_value = encrypt(&server, "k", &["written by the application".to_owned()])
            .await
            .remove(0);

        // The application changes row 1500 in a transaction still open when the command reads it:
        // the command reads the old value, and its update waits for the row.
        let mut app = owner(db).await;
        let app_tx = app.transaction().await.unwrap();
        app_tx
            .execute("UPDATE secrets SET ct = $1 WHERE id = 1500", &[&app_value])
            .await
            .unwrap();
        let url = db.url();
        let password_file = db.password_file();
        let child = cli
            .command(&[
                "rewrap",
                "dev/k",
                "--pg",
                &url,
                "--pg-password-file",
                password_file.to_str().unwrap(),
                "--table",
                "secrets",
                "--column",
                "ct",
                "--batch-size",
                "100",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let waited = Instant::now();
        loop {
            let waiting: i64 = client
                .query_one(
                    // Only this test's database: other tests run rewraps on the same cluster.
                    "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'tresor/rewrap' \
                 AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(waited.elapsed() < Duration::from_secs(120), "never waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app_tx.commit().await.unwrap();
        let out = finish(child).await;
        assert!(out.status.success(), "{out:?}");
        let summary = json_of(&out);
        assert_eq!(summary["changed_meanwhile"], 1, "{summary}");
        assert_eq!(summary["changed_keys"], json!(["1500"]));
        assert_eq!(summary["rewrapped"], 2999, "{summary}");
        let after = table(&client).await;
        assert_eq!(after[1500].1.as_deref(), Some(app_value.as_str()));
        assert_eq!(after[1500].2, 1, "only the application's write");
        for (id, ct, writes) in &after {
            assert_eq!(*writes, 1, "row {id}");
            assert!(ct.as_deref().unwrap().starts_with("tresor:v2:"));
        }
        server.shutdown().await;
    });
}

#[test]
fn bad_names_tables_urls_and_keys_are_refused_and_change_nothing() {
    on_a_database(async |db| {
        let server = TestServer::new().await;
        let cli = cli_for(&server);
        let client = a_table_one_version_behind(&server, db, 10).await;
        client
            .batch_execute(
                "CREATE TABLE nokey (id bigint, ct text);
             CREATE TABLE twokey (a int, b int, ct text, PRIMARY KEY (a, b));
             CREATE TABLE nullable (id bigint UNIQUE, ct text);
             CREATE TABLE numbers (id bigint PRIMARY KEY, ct bytea);
             CREATE VIEW secrets_view AS SELECT * FROM secrets;",
            )
            .await
            .unwrap();
        let before = table(&client).await;
        let url = db.url();
        let password_file = db.password_file();
        let password = std::fs::read_to_string(&password_file).unwrap();
        let password = password.trim();
        let with_password = url.replacen('@', &format!(":{password}@"), 1);
        let file = password_file.to_str().unwrap();

        let cases: Vec<(Vec<&str>, &str)> = vec![
            (
                vec!["--table", "secrets; DROP TABLE secrets", "--column", "ct"],
                "--table `secrets; DROP TABLE secrets` is not a plain SQL name",
            ),
            (
                vec!["--table", "secrets", "--column", "ct\" = NULL --"],
                "is not a plain SQL name",
            ),
            (
                vec!["--table", "public.secrets\"", "--column", "ct"],
                "is not a plain SQL name",
            ),
            (
                vec![
                    "--table",
                    "secrets",
                    "--column",
                    "ct",
                    "--key-column",
                    "id; --",
                ],
                "--key-column `id; --` is not a plain SQL name",
            ),
            (
                vec!["--table", "missing", "--column", "ct"],
                "--table `missing`: no such table",
            ),
            (
                vec!["--table", "Secrets", "--column", "ct"],
                "--table `Secrets`: no such table",
            ),
            (
                vec!["--table", "secrets", "--column", "missing"],
                "--column `missing`: no such column",
            ),
            (
                vec!["--table", "secrets_view", "--column", "ct"],
                "is not a table",
            ),
            (
                vec!["--table", "numbers", "--column", "ct"],
                "not of type text or varchar",
            ),
            (
                vec!["--table", "nokey", "--column", "ct"],
                "has no primary key",
            ),
            (
                vec!["--table", "twokey", "--column", "ct"],
                "has 2 columns (a, b)",
            ),
            (
                vec!["--table", "nokey", "--column", "ct", "--key-column", "id"],
                "no unique index",
            ),
            (
                vec![
                    "--table",
                    "nullable",
                    "--column",
                    "ct",
                    "--key-column",
                    "id",
                ],
                "may be NULL",
            ),
            (
                vec!["--table", "secrets", "--column", "ct", "--key-column", "ct"],
                "is the column being rewrapped",
            ),
        ];
        for (tail, expected) in &cases {
            let mut args = vec!["rewrap", "dev/k", "--pg", &url, "--pg-password-file", file];
            args.extend(tail);
            let out = cli.run(&args).await;
            assert!(!out.status.success(), "{args:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
        }
        // Census checks the same names.
        let out = cli
            .run(&[
                "key",
                "census",
                "dev/k",
                "--pg",
                &url,
                "--pg-password-file",
                file,
                "--table",
                "secrets;",
                "--column",
                "ct",
            ])
            .await;
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a plain SQL name"));

        let base = ["--table", "secrets", "--column", "ct"];
        // A password in the URL: refused without repeating it.
        let out = cli
            .run(&[&["rewrap", "dev/k", "--pg", &with_password][..], &base[..]].concat())
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("carries a password"), "{stderr}");
        assert!(!stderr.contains(password), "{stderr}");
        assert!(stderr.contains(":***@"), "{stderr}");
        // No password at all: the database refuses, nothing else happens.
        let out = cli
            .run(&[&["rewrap", "dev/k", "--pg", &url][..], &base[..]].concat())
            .await;
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--pg: "),
            "{out:?}"
        );
        // A key that does not exist.
        let out = cli
            .run(
                &[
                    &[
                        "rewrap",
                        "dev/missing",
                        "--pg",
                        &url,
                        "--pg-password-file",
                        file,
                    ][..],
                    &base[..],
                ]
                .concat(),
            )
            .await;
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot read key dev/missing"),
            "{out:?}"
        );
        // Flags of the file mode that make no sense here, and a rate of nothing.
        for (extra, expected) in [
            (vec!["--output", "x.jsonl"], "--output"),
            (vec!["--input", "x.jsonl"], "--input"),
            (vec!["--rate", "0"], "rows per second"),
            (
                vec!["--key-version", "1"],
                "--key-version is for one ciphertext",
            ),
        ] {
            let out = cli
                .run(
                    &[
                        &["rewrap", "dev/k", "--pg", &url, "--pg-password-file", file][..],
                        &base[..],
                        &extra[..],
                    ]
                    .concat(),
                )
                .await;
            assert!(!out.status.success());
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(expected),
                "{extra:?}: {out:?}"
            );
        }
        assert_eq!(table(&client).await, before, "nothing changed");
        let progress: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE tablename = 'tresor_rewrap_progress'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(progress, 0, "no job was even recorded");

        // PGPASSWORD instead of a file.
        let mut command =
            cli.command(&[&["key", "census", "dev/k", "--pg", &url][..], &base[..]].concat());
        command.env("PGPASSWORD", password);
        let out = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(json_of(&out)["versions"], json!({"tresor:v1": 10}));
        server.shutdown().await;
    });
}
