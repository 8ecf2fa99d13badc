//! `tresor rewrap TENANT/KEY --pg URL --table T --column C` and `tresor key census --pg …`
//! (issue 17, point 3): re-encrypt in place every ciphertext stored in a column of an
//! application's PostgreSQL table, or (`--dry-run`, `census`) count them per key version.
//!
//! The table is walked in key order (keyset pagination on its single-column primary key, or on
//! `--key-column`, a non-null column with a unique index of its own). Each batch is rewrapped
//! through the vault in one request, then written in ONE transaction that updates a row only if
//! it still holds the ciphertext that was read: a row the application changed meanwhile (or
//! deleted) is left alone and reported. Values already on the latest version are not written;
//! values that are no ciphertext, or that the vault refuses, keep their value and are reported.
//!
//! Exactly once across interruptions: the job's position (the last key done) and its counts
//! sit in `tresor_rewrap_progress`, a table Tresor creates in the same database, updated in the
//! same transaction as the batch's rows. Whatever moment the process dies at, the database
//! holds a batch's updates together with the position after it, or neither; `--resume`
//! continues after the recorded position. Batches are read ahead and rewrapped and written on
//! `--connections` connections at once, but each commits only after the one before it (the
//! progress update waits for it), so the recorded position never passes a batch that did not
//! commit.
//!
//! Identifiers are checked to be plain SQL names and always quoted, so no table or column name
//! can carry SQL; values travel only as statement parameters. The database password never sits
//! on the command line: `--pg-password-file`, libpq's password file or `PGPASSWORD`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Mutex, oneshot};
use tresor_client::Client;
use tresor_postgres::{PgOptions, redact_url};

use super::connection::ConnectionArgs;
use super::rewrap_args::{FileArgs, SourceArgs};
use super::rewrap_request::{
    Census, Standing, latest_version, progress_bar, rewrap_batch, standing, version_label,
};

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;
/// Keys of rows changed meanwhile and rows in error kept in the summary and the job's record.
const MAX_LISTED: usize = 100;
/// The table holding each job's position and counts.
const PROGRESS_TABLE: &str = "tresor_rewrap_progress";

/// `name` quoted, after checking it is a plain SQL name: letters, digits, `_` and `$`, not
/// starting with a digit or `$`. Quoting keeps its case: the name is matched as the catalog
/// spells it.
fn identifier(flag: &str, name: &str) -> anyhow::Result<String> {
    let plain = !name.is_empty()
        && name.len() <= MAX_IDENTIFIER
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '$');
    if !plain {
        let shown: String = name.chars().take(80).collect();
        bail!(
            "{flag} `{shown}` is not a plain SQL name (letters, digits, _ and $, not starting with a digit or $, at most {MAX_IDENTIFIER} bytes)"
        );
    }
    Ok(format!("\"{name}\""))
}

/// A name from the catalog, quoted (whatever it holds).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `--table` value as `(schema, table)`, each checked.
fn table_name(table: &str) -> anyhow::Result<(Option<&str>, &str)> {
    match table.split_once('.') {
        Some((schema, name)) => {
            identifier("--table", schema)?;
            identifier("--table", name)?;
            Ok((Some(schema), name))
        }
        None => {
            identifier("--table", table)?;
            Ok((None, table))
        }
    }
}

/// What the catalog says about the table and its columns.
struct Table {
    /// `"schema"."table"`, quoted.
    sql: String,
    /// `schema.table`, as the progress table records it.
    name: String,
    column: String,
    /// The ciphertext column, quoted.
    column_sql: String,
}

/// The walking key of a table.
struct Walk {
    name: String,
    sql: String,
    /// The key's type as `format_type` spells it (read from the catalog, never from input).
    type_sql: String,
}

fn pg_options(source: &SourceArgs) -> anyhow::Result<PgOptions> {
    let pg = &source.pg_table;
    let url = pg.pg.as_deref().context("--pg URL is required")?;
    let redacted = redact_url(url);
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| anyhow!("--pg `{redacted}` is not a PostgreSQL connection URL"))?;
    if config.get_password().is_some() {
        bail!(
            "--pg `{redacted}` carries a password: give it with --pg-password-file FILE, PGPASSFILE or the PGPASSWORD variable instead, so it never sits on a command line"
        );
    }
    if config.get_user().is_none() {
        bail!("--pg `{redacted}` names no user");
    }
    if pg.pg_ca_file.is_none() && config.get_ssl_mode() == tokio_postgres::config::SslMode::Require
    {
        bail!(
            "--pg `{redacted}` requires TLS: give the CA that signs the database's certificate with --pg-ca-file FILE"
        );
    }
    Ok(PgOptions {
        ca_file: pg.pg_ca_file.clone(),
        password_file: pg.pg_password_file.clone(),
        // libpq's password file, as psql would read it.
        passfile: match pg.pg_password_file {
            Some(_) => None,
            None => tresor_postgres::default_passfile(),
        },
        ..PgOptions::new(url, "rewrap")
    })
}

async fn connect(options: &PgOptions) -> anyhow::Result<tokio_postgres::Client> {
    tresor_postgres::connect(options)
        .await
        .map_err(|e| anyhow!("--pg: {e}"))
}

/// A database error as one line: the server's own message for database errors.
fn db(e: tokio_postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(d) => anyhow!("database: {}", d.message()),
        None => anyhow!("database: {e}"),
    }
}

/// Finds the table and the ciphertext column (text or varchar).
async fn resolve_table(
    client: &tokio_postgres::Client,
    source: &SourceArgs,
) -> anyhow::Result<(u32, Table)> {
    let table = source
        .pg_table
        .table
        .as_deref()
        .context("--table T is required with --pg")?;
    let column = source
        .column
        .as_deref()
        .context("--column C is required with --pg: the column holding the ciphertexts")?;
    let column_sql = identifier("--column", column)?;
    let (schema, name) = table_name(table)?;
    let quoted = match schema {
        Some(schema) => format!("\"{schema}\".\"{name}\""),
        None => format!("\"{name}\""),
    };
    let row = client
        .query_opt(
            "SELECT c.oid, c.relkind::text, n.nspname::text, c.relname::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1)",
            &[&quoted],
        )
        .await
        .map_err(db)?
        .with_context(|| format!("--table `{table}`: no such table in the database"))?;
    let (oid, kind, schema, relname): (u32, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if kind != "r" && kind != "p" {
        bail!("--table `{table}` is not a table (views and other relations are not rewrapped)");
    }
    let kind = client
        .query_opt(
            "SELECT a.atttypid IN ('text'::regtype, 'varchar'::regtype) \
             FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2 \
             AND a.attnum > 0 AND NOT a.attisdropped",
            &[&oid, &column],
        )
        .await
        .map_err(db)?
        .with_context(|| format!("--column `{column}`: no such column in table `{table}`"))?;
    if !kind.get::<_, bool>(0) {
        bail!("--column `{column}` of `{table}` is not of type text or varchar");
    }
    Ok((
        oid,
        Table {
            sql: format!("{}.{}", quote(&schema), quote(&relname)),
            name: format!("{schema}.{relname}"),
            column: column.to_owned(),
            column_sql,
        },
    ))
}

/// The column to walk the table by: `--key-column`, or the one-column primary key.
async fn resolve_walk(
    client: &tokio_postgres::Client,
    oid: u32,
    table: &Table,
    key_column: Option<&str>,
) -> anyhow::Result<Walk> {
    let name = match key_column {
        Some(name) => {
            identifier("--key-column", name)?;
            name.to_owned()
        }
        None => {
            let keys: Vec<String> = client
                .query(
                    "SELECT a.attname::text FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                     WHERE i.indrelid = $1 AND i.indisprimary ORDER BY a.attnum",
                    &[&oid],
                )
                .await
                .map_err(db)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            match keys.as_slice() {
                [one] => one.clone(),
                [] => bail!(
                    "table `{}` has no primary key to walk it by: name a non-null column with a unique index of its own with --key-column",
                    table.name
                ),
                several => bail!(
                    "the primary key of `{}` has {} columns ({}): name a non-null column with a unique index of its own with --key-column",
                    table.name,
                    several.len(),
                    several.join(", ")
                ),
            }
        }
    };
    if name == table.column {
        bail!("--key-column `{name}` is the column being rewrapped: name another one");
    }
    let row = client
        .query_opt(
            "SELECT a.attnotnull, format_type(a.atttypid, NULL), EXISTS (\
                 SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique \
                 AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum \
                 AND i.indpred IS NULL AND i.indexprs IS NULL) \
             FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2 \
             AND a.attnum > 0 AND NOT a.attisdropped",
            &[&oid, &name],
        )
        .await
        .map_err(db)?
        .with_context(|| format!("--key-column `{name}`: no such column in `{}`", table.name))?;
    let (not_null, type_sql, unique): (bool, String, bool) = (row.get(0), row.get(1), row.get(2));
    if !unique {
        bail!(
            "--key-column `{name}` of `{}` has no unique index of its own: the table cannot be walked by it without missing or repeating rows",
            table.name
        );
    }
    if !not_null {
        bail!(
            "--key-column `{name}` of `{}` may be NULL: rows without a key would be missed; name a NOT NULL column",
            table.name
        );
    }
    Ok(Walk {
        sql: format!("\"{name}\""),
        name,
        type_sql,
    })
}

/// Counts of a run, or of a whole job across its runs (kept in the progress table).
#[derive(Default, Clone, Serialize, Deserialize)]
struct Counts {
    rows: u64,
    rewrapped: u64,
    already_latest: u64,
    empty: u64,
    changed_meanwhile: u64,
    errors: u64,
    versions: BTreeMap<String, u64>,
    changed_keys: Vec<String>,
    error_rows: Vec<Value>,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.rows += other.rows;
        self.rewrapped += other.rewrapped;
        self.already_latest += other.already_latest;
        self.empty += other.empty;
        self.changed_meanwhile += other.changed_meanwhile;
        self.errors += other.errors;
        for (label, n) in &other.versions {
            *self.versions.entry(label.clone()).or_default() += n;
        }
        let room = MAX_LISTED.saturating_sub(self.changed_keys.len());
        self.changed_keys
            .extend(other.changed_keys.iter().take(room).cloned());
        let room = MAX_LISTED.saturating_sub(self.error_rows.len());
        self.error_rows
            .extend(other.error_rows.iter().take(room).cloned());
    }

    fn error(&mut self, key: &str, error: Value) {
        self.errors += 1;
        if self.error_rows.len() < MAX_LISTED {
            self.error_rows.push(json!({ "key": key, "error": error }));
        }
    }
}

/// `--rate`: rows may be read at `rate` per second, with at most a second's worth at once.
struct Bucket {
    rate: f64,
    next: Instant,
}

impl Bucket {
    async fn take(&mut self, rows: usize) {
        let now = Instant::now();
        let burst = Duration::from_secs(1);
        if self.next + burst < now {
            self.next = now - burst;
        }
        self.next += Duration::from_secs_f64(rows as f64 / self.rate);
        if self.next > now + burst {
            tokio::time::sleep_until((self.next - burst).into()).await;
        }
    }
}

/// The job this run continues or starts: who owns it now and where it stands.
struct Job {
    key_path: String,
    run_id: String,
    last_key: Option<String>,
    done: Counts,
}

/// Creates the progress table if needed and takes the job: a new one, or with `resume` the
/// unfinished one (refusing, without it, to start over an unfinished job).
async fn take_job(
    client: &mut tokio_postgres::Client,
    key_path: &str,
    table: &Table,
    walk: &Walk,
    resume: bool,
) -> anyhow::Result<Job> {
    // Created only when missing: CREATE … IF NOT EXISTS would still need the CREATE privilege
    // on the schema, which a role may lose once the table exists.
    let exists: bool = client
        .query_one(
            &format!("SELECT to_regclass('{PROGRESS_TABLE}') IS NOT NULL"),
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (\
                 key_path text NOT NULL, table_name text NOT NULL, column_name text NOT NULL, \
                 key_column text NOT NULL, run_id text NOT NULL, last_key text, \
                 state text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), \
                 updated_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, \
                 PRIMARY KEY (key_path, table_name, column_name))"
            ))
            .await
            .map_err(db)?;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let run_id = format!("{}-{nanos}", std::process::id());
    let tx = client.transaction().await.map_err(db)?;
    let existing = tx
        .query_opt(
            &format!(
                "SELECT key_column, last_key, state, finished_at IS NOT NULL, updated_at::text \
                 FROM {PROGRESS_TABLE} WHERE key_path = $1 AND table_name = $2 AND column_name = $3 \
                 FOR UPDATE"
            ),
            &[&key_path, &table.name, &table.column],
        )
        .await
        .map_err(db)?;
    let job = match existing {
        Some(row) if !row.get::<_, bool>(3) => {
            let (key_column, last_key, state, updated): (String, Option<String>, String, String) =
                (row.get(0), row.get(1), row.get(2), row.get(4));
            let done: Counts = serde_json::from_str(&state)
                .with_context(|| format!("the job's record in {PROGRESS_TABLE} is unreadable"))?;
            let reset = format!(
                "DELETE FROM {PROGRESS_TABLE} WHERE key_path = '{}' AND table_name = '{}' AND column_name = '{}'",
                key_path.replace('\'', "''"),
                table.name,
                table.column
            );
            if !resume {
                bail!(
                    "an unfinished rewrap of `{}`.`{}` under {key_path} exists ({} rows done, last written {updated}): pass --resume to continue it, or reset it with `{reset}` to start over",
                    table.name,
                    table.column,
                    done.rows
                );
            }
            if key_column != walk.name {
                bail!(
                    "the unfinished rewrap of `{}`.`{}` walks the table by `{key_column}`, not `{}`: resume it with --key-column {key_column}, or reset it with `{reset}`",
                    table.name,
                    table.column,
                    walk.name
                );
            }
            tx.execute(
                &format!(
                    "UPDATE {PROGRESS_TABLE} SET run_id = $4, updated_at = now() \
                     WHERE key_path = $1 AND table_name = $2 AND column_name = $3"
                ),
                &[&key_path, &table.name, &table.column, &run_id],
            )
            .await
            .map_err(db)?;
            Job {
                key_path: key_path.to_owned(),
                run_id,
                last_key,
                done,
            }
        }
        _ => {
            tx.execute(
                &format!(
                    "INSERT INTO {PROGRESS_TABLE} (key_path, table_name, column_name, key_column, run_id, state) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (key_path, table_name, column_name) DO UPDATE SET \
                     key_column = $4, run_id = $5, last_key = NULL, state = $6, \
                     started_at = now(), updated_at = now(), finished_at = NULL"
                ),
                &[
                    &key_path,
                    &table.name,
                    &table.column,
                    &walk.name,
                    &run_id,
                    &serde_json::to_string(&Counts::default())?,
                ],
            )
            .await
            .map_err(db)?;
            Job {
                key_path: key_path.to_owned(),
                run_id,
                last_key: None,
                done: Counts::default(),
            }
        }
    };
    tx.commit().await.map_err(db)?;
    Ok(job)
}

/// The statements of a run, built once from checked, quoted names.
struct Statements {
    first: String,
    next: String,
    update: String,
    progress: String,
    remaining: String,
}

impl Statements {
    fn new(table: &Table, walk: &Walk) -> Statements {
        let (t, c, k, ty) = (&table.sql, &table.column_sql, &walk.sql, &walk.type_sql);
        // The key's text is named so that no column can be: `ORDER BY "id"` would otherwise
        // sort by the output column `"id"::text`, in text order, not by the key.
        let read = format!("SELECT {k}::text AS \"tresor key\", {c} AS \"tresor value\" FROM {t}");
        Statements {
            first: format!("{read} ORDER BY {k} LIMIT $1"),
            next: format!("{read} WHERE {k} > $2::text::{ty} ORDER BY {k} LIMIT $1"),
            // A row is written only if it still holds what was read.
            update: format!(
                "UPDATE {t} AS t SET {c} = u.new \
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, old, new) \
                 WHERE t.{k} = u.k::{ty} AND t.{c} = u.old RETURNING u.k"
            ),
            progress: format!(
                "UPDATE {PROGRESS_TABLE} SET last_key = $4, state = $5, updated_at = now() \
                 WHERE key_path = $1 AND table_name = $2 AND column_name = $3 AND run_id = $6"
            ),
            remaining: format!(
                "SELECT count(*) FROM {t} WHERE $1::text IS NULL OR {k} > $1::text::{ty}"
            ),
        }
    }
}

/// What one batch task needs besides its rows.
struct Shared {
    tenant: String,
    key: String,
    latest: u32,
    statements: Statements,
    table_name: String,
    column: String,
    key_path: String,
    run_id: String,
}

/// Rewraps and writes one batch; commits after the batch before it (whose job counts arrive on
/// `before`), then hands the job's counts on through `after`.
async fn batch(
    shared: Arc<Shared>,
    rows: Vec<(String, Option<String>)>,
    vault: Client,
    writer: Arc<Mutex<tokio_postgres::Client>>,
    before: oneshot::Receiver<Counts>,
    after: oneshot::Sender<Counts>,
) -> anyhow::Result<Counts> {
    let mut counts = Counts {
        rows: rows.len() as u64,
        ..Counts::default()
    };
    let mut older: Vec<(&str, &str)> = Vec::new();
    for (key, value) in &rows {
        let value = value.as_deref().filter(|v| !v.is_empty());
        if let Some((label, ..)) = value.and_then(version_label) {
            *counts.versions.entry(label).or_default() += 1;
        }
        match standing(value, shared.latest) {
            Standing::Empty => counts.empty += 1,
            Standing::Latest => counts.already_latest += 1,
            Standing::Malformed => counts.error(key, "not a tresor: or vault: ciphertext".into()),
            Standing::Older => older.push((key, value.unwrap_or_default())),
        }
    }
    let ciphertexts: Vec<&str> = older.iter().map(|(_, v)| *v).collect();
    let results = rewrap_batch(&vault, &shared.tenant, &shared.key, &ciphertexts).await?;
    let (mut keys, mut olds, mut news) = (Vec::new(), Vec::new(), Vec::new());
    for ((key, old), result) in older.iter().zip(&results) {
        match result["ciphertext"].as_str() {
            Some(new) => {
                keys.push(*key);
                olds.push(*old);
                news.push(new);
            }
            None => counts.error(key, result["error"].clone()),
        }
    }
    let mut writer = writer.lock().await;
    let tx = writer.transaction().await.map_err(db)?;
    if !keys.is_empty() {
        let written: HashSet<String> = tx
            .query(&shared.statements.update, &[&keys, &olds, &news])
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        counts.rewrapped = written.len() as u64;
        for key in keys.iter().filter(|k| !written.contains(**k)) {
            counts.changed_meanwhile += 1;
            if counts.changed_keys.len() < MAX_LISTED {
                counts.changed_keys.push((*key).to_owned());
            }
        }
    }
    let mut job = before
        .await
        .map_err(|_| anyhow!("an earlier batch failed"))?;
    job.add(&counts);
    let last_key = rows.last().map(|(k, _)| k.as_str());
    let owned = tx
        .execute(
            &shared.statements.progress,
            &[
                &shared.key_path,
                &shared.table_name,
                &shared.column,
                &last_key,
                &serde_json::to_string(&job)?,
                &shared.run_id,
            ],
        )
        .await
        .map_err(db)?;
    if owned != 1 {
        bail!(
            "another run took this job over (its record in {PROGRESS_TABLE} names another run): this one stops without writing its batch"
        );
    }
    tx.commit().await.map_err(db)?;
    let _ = after.send(job);
    Ok(counts)
}

/// Counts the ciphertexts per version label in the column.
pub(crate) async fn census(
    tenant: &str,
    key: &str,
    source: &SourceArgs,
    connection: &ConnectionArgs,
) -> anyhow::Result<Value> {
    let options = pg_options(source)?;
    let database = connect(&options).await?;
    let (_, table) = resolve_table(&database, source).await?;
    let latest = latest_version(&connection.client()?, tenant, key).await?;
    // Grouped by the ciphertexts' prefixes in the database; each prefix is then labelled as the
    // file mode labels a value, so both count alike.
    let groups = database
        .query(
            &format!(
                "SELECT substring({c} from '^((?:tresor|vault):v[0-9]+):'), \
                 coalesce({c}, '') = '', count(*) FROM {t} GROUP BY 1, 2",
                c = table.column_sql,
                t = table.sql
            ),
            &[],
        )
        .await
        .map_err(db)?;
    let mut census = Census::default();
    for group in groups {
        let (prefix, is_empty, n): (Option<String>, bool, i64) =
            (group.get(0), group.get(1), group.get(2));
        let value = match (is_empty, prefix) {
            (true, _) => None,
            (false, Some(prefix)) => Some(format!("{prefix}:")),
            (false, None) => Some(String::new()),
        };
        census.count(value.as_deref(), latest, n as u64);
    }
    let mut summary = census.summary(tenant, key, latest);
    summary["table"] = json!(table.name);
    summary["column"] = json!(table.column);
    Ok(summary)
}

/// Rewraps the column in place; returns the summary.
pub(crate) async fn run(
    tenant: &str,
    key: &str,
    args: &FileArgs,
    connection: &ConnectionArgs,
) -> anyhow::Result<Value> {
    if args.output.is_some() {
        bail!("--output is for --input files: --pg rewraps the table in place");
    }
    if args.dry_run {
        return census(tenant, key, &args.source, connection).await;
    }
    let source = &args.source;
    let options = pg_options(source)?;
    let reader = connect(&options).await?;
    let (oid, table) = resolve_table(&reader, source).await?;
    let walk = resolve_walk(&reader, oid, &table, source.pg_table.key_column.as_deref()).await?;
    let vaults = (0..args.connections)
        .map(|_| connection.client())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let latest = latest_version(&vaults[0], tenant, key).await?;
    let mut writers = Vec::new();
    for _ in 0..args.connections {
        writers.push(Arc::new(Mutex::new(connect(&options).await?)));
    }
    let key_path = format!("{tenant}/{key}");
    let job = {
        let mut first = writers[0].lock().await;
        take_job(&mut first, &key_path, &table, &walk, args.resume).await?
    };
    let statements = Statements::new(&table, &walk);
    let remaining: i64 = reader
        .query_one(&statements.remaining, &[&job.last_key])
        .await
        .map_err(db)?
        .get(0);
    let resumed_from = job.done.rows;
    let progress = progress_bar(resumed_from + remaining as u64);
    progress.set_position(resumed_from);

    let mut batch_size = args.batch_size as usize;
    let mut bucket = args.rate.map(|rate| {
        // At most a second's rows per batch, so the rate holds from one batch to the next.
        batch_size = batch_size.min(rate.ceil() as usize).max(1);
        Bucket {
            rate,
            next: Instant::now(),
        }
    });
    let shared = Arc::new(Shared {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
        latest,
        statements,
        table_name: table.name.clone(),
        column: table.column.clone(),
        key_path: job.key_path.clone(),
        run_id: job.run_id.clone(),
    });
    let limit = batch_size as i64;
    let started = Instant::now();
    let (first, mut chain) = oneshot::channel();
    let _ = first.send(job.done.clone());
    let mut last_key = job.last_key.clone();
    let mut this_run = Counts::default();
    let mut in_flight: VecDeque<tokio::task::JoinHandle<anyhow::Result<Counts>>> = VecDeque::new();
    let mut index = 0usize;
    let outcome: anyhow::Result<()> = async {
        loop {
            if in_flight.len() >= writers.len() {
                let done = in_flight.pop_front().expect("in flight").await??;
                this_run.add(&done);
                progress.set_position(resumed_from + this_run.rows);
                if args.stop_after.is_some_and(|n| this_run.rows >= n) {
                    bail!(
                        "stopped after {} rows, as asked (--stop-after): continue with --resume",
                        this_run.rows
                    );
                }
            }
            if let Some(bucket) = &mut bucket {
                bucket.take(batch_size).await;
            }
            let rows = match &last_key {
                None => reader.query(&shared.statements.first, &[&limit]).await,
                Some(after) => {
                    reader
                        .query(&shared.statements.next, &[&limit, after])
                        .await
                }
            }
            .map_err(db)?;
            let rows: Vec<(String, Option<String>)> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let Some((last, _)) = rows.last() else {
                break;
            };
            last_key = Some(last.clone());
            let full = rows.len() == batch_size;
            let (after, next) = oneshot::channel();
            let before = std::mem::replace(&mut chain, next);
            in_flight.push_back(tokio::spawn(batch(
                shared.clone(),
                rows,
                vaults[index % vaults.len()].clone(),
                writers[index % writers.len()].clone(),
                before,
                after,
            )));
            index += 1;
            if !full {
                break;
            }
        }
        while let Some(handle) = in_flight.pop_front() {
            let done = handle.await??;
            this_run.add(&done);
            progress.set_position(resumed_from + this_run.rows);
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        // Batches after a failed one never commit (each waits for the one before it).
        for handle in &in_flight {
            handle.abort();
        }
        progress.abandon();
        return Err(e);
    }
    let total = chain
        .await
        .map_err(|_| anyhow!("the last batch did not hand on its counts"))?;
    writers[0]
        .lock()
        .await
        .execute(
            &format!(
                "UPDATE {PROGRESS_TABLE} SET finished_at = now(), updated_at = now() \
                 WHERE key_path = $1 AND table_name = $2 AND column_name = $3 AND run_id = $4"
            ),
            &[&shared.key_path, &table.name, &table.column, &shared.run_id],
        )
        .await
        .map_err(db)?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "key": key_path,
        "latest_version": latest,
        "table": table.name,
        "column": table.column,
        "key_column": walk.name,
        "rows": this_run.rows,
        "resumed_from": resumed_from,
        "rewrapped": this_run.rewrapped,
        "already_latest": this_run.already_latest,
        "empty": this_run.empty,
        "changed_meanwhile": this_run.changed_meanwhile,
        "changed_keys": this_run.changed_keys,
        "errors": this_run.errors,
        "error_rows": this_run.error_rows,
        "versions": this_run.versions,
        "seconds": seconds,
        "rows_per_second": if seconds > 0.0 { this_run.rows as f64 / seconds } else { 0.0 },
        "job": total,
        "dry_run": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::rewrap_args::TableSource;
    use super::*;

    #[test]
    fn only_plain_names_pass_and_come_back_quoted() {
        assert_eq!(identifier("--table", "users").unwrap(), "\"users\"");
        assert_eq!(identifier("--table", "Orders_2$").unwrap(), "\"Orders_2$\"");
        for bad in [
            "",
            "a b",
            "users; DROP TABLE users",
            "x\"y",
            "x'y",
            "1abc",
            "$x",
            "a-b",
            "é",
            &"a".repeat(64),
        ] {
            let e = identifier("--column", bad).unwrap_err().to_string();
            assert!(
                e.contains("--column") && e.contains("plain SQL name"),
                "{e}"
            );
        }
        assert_eq!(table_name("s.t").unwrap(), (Some("s"), "t"));
        assert!(table_name("s.t.u").is_err());
        assert!(table_name("s.").is_err());
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_repeated() {
        for url in [
            "postgresql://app:Hunter2-secret@db/app",
            "host=db user=app password=Hunter2-secret",
        ] {
            let source = SourceArgs {
                pg_table: TableSource {
                    pg: Some(url.into()),
                    ..TableSource::default()
                },
                ..SourceArgs::default()
            };
            let e = pg_options(&source).unwrap_err().to_string();
            assert!(e.contains("carries a password"), "{e}");
            assert!(!e.contains("Hunter2"), "{e}");
        }
    }

    #[tokio::test]
    async fn the_bucket_spaces_batches_at_the_rate() {
        let mut bucket = Bucket {
            rate: 1000.0,
            next: Instant::now(),
        };
        let start = Instant::now();
        // A second's worth passes at once; then each row waits its turn.
        bucket.take(1000).await;
        bucket.take(1000).await;
        bucket.take(500).await;
        assert!(start.elapsed() >= Duration::from_millis(1400));
    }
}
