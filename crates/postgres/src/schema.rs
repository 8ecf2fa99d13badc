//! The tables Tresor keeps in its database, created and migrated by Tresor itself.
//!
//! `tresor_schema` holds one row: the schema version and (from version 3) `compatible_from`,
//! the oldest schema version whose nodes may still run on it. Each start takes a
//! transaction-scoped advisory lock (safe behind connection poolers: it ends with the
//! transaction), reads the version, and applies the missing migrations in that same
//! transaction. Migrations are expand/contract: a new version only adds, so nodes of the
//! previous version keep working on it during a rolling upgrade, and a node of an older version
//! may even (re)start on a newer schema as long as that schema's `compatible_from` is not newer
//! than what the node knows; otherwise it refuses to start (a "contract" release raises
//! `compatible_from` once no older node is left).
//!
//! - `tresor_kv (path, value)`: the store. Values are what the vault hands the store:
//!   barrier-sealed records (and the seal configuration, which holds no secret).
//! - `tresor_log_head (position)`: one row, the last change-log position. Every commit updates
//!   it first, which serialises commits and makes positions gapless and in commit order.
//! - `tresor_changes (position, path, node_id, changed_at)`: the change log, paths only.
//! - `tresor_leases (name, holder, epoch, expires_at)` (version 2): who runs the background
//!   jobs, until when (the database's clock), and the fencing epoch their commits check.
//! - `tresor_schema.compatible_from` (version 3): see above.

use tokio_postgres::Transaction;

use crate::{PgError, describe};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 3;

/// The oldest schema version whose nodes may run on [`SCHEMA_VERSION`]: every migration since
/// has only added, so those nodes do not notice. Raise it only with a migration that contracts
/// (drops or changes what older nodes read or write), and only in a release that follows one
/// whose nodes all run the newer schema.
pub const COMPATIBLE_FROM: i32 = 1;

/// Key of the advisory lock that serialises migrations (an arbitrary constant: "tresor" in hex).
const MIGRATION_LOCK: i64 = 0x7472_6573_6f72;

/// Migration `n` (1-based) takes the schema from version `n - 1` to `n`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tresor_kv (
    path text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);
CREATE TABLE tresor_log_head (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    position bigint NOT NULL
);
INSERT INTO tresor_log_head (id, position) VALUES (true, 0);
CREATE TABLE tresor_changes (
    position bigint PRIMARY KEY,
    path text COLLATE "C" NOT NULL,
    node_id text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
"#,
    r#"
CREATE TABLE tresor_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
"#,
    r#"
ALTER TABLE tresor_schema ADD COLUMN compatible_from integer;
"#,
];

/// Brings the schema to [`SCHEMA_VERSION`], or checks that a newer one still admits this build.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), PgError> {
    let db = |e: tokio_postgres::Error| PgError::Database(format!("schema: {}", describe(&e)));
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('tresor_schema') IS NOT NULL", &[])
        .await
        .map_err(db)?
        .get(0);
    if !exists {
        tx.batch_execute(
            "CREATE TABLE tresor_schema (\
                 id boolean PRIMARY KEY DEFAULT true CHECK (id), \
                 version integer NOT NULL)",
        )
        .await
        .map_err(db)?;
    }
    let found = current_version(&tx).await.map_err(db)?;
    if found > SCHEMA_VERSION {
        // Every schema newer than this build's has the column. A row without a value (written
        // by hand, or by a build that forgot it) admits nobody older: refusing is the safe side.
        let compatible_from: Option<i32> = tx
            .query_one("SELECT compatible_from FROM tresor_schema WHERE id", &[])
            .await
            .map_err(db)?
            .get(0);
        let compatible_from = compatible_from.unwrap_or(found);
        if compatible_from > SCHEMA_VERSION {
            return Err(PgError::SchemaTooNew {
                found,
                compatible_from,
                known: SCHEMA_VERSION,
            });
        }
        tracing::warn!(
            found,
            compatible_from,
            known = SCHEMA_VERSION,
            "storage: the database schema was migrated by a newer Tresor; this node still runs on it (a rolling upgrade): upgrade it"
        );
        return tx.commit().await.map_err(db);
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(migration).await.map_err(db)?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO tresor_schema (id, version) VALUES (true, $1) \
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &[&version],
        )
        .await
        .map_err(db)?;
        tracing::info!(version, "storage: database schema migrated");
    }
    if found < SCHEMA_VERSION {
        tx.execute(
            "UPDATE tresor_schema SET compatible_from = $1 WHERE id",
            &[&COMPATIBLE_FROM],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

async fn current_version(tx: &Transaction<'_>) -> Result<i32, tokio_postgres::Error> {
    let row = tx
        .query_opt("SELECT version FROM tresor_schema WHERE id", &[])
        .await?;
    Ok(row.map(|r| r.get(0)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rolling-upgrade promise (docs/deployment.md, "Upgrades"): nodes of the previous
    /// version keep running on a schema a newer node migrated, so a migration after the first
    /// may only add. A statement that drops, renames, retypes or tightens what an older node
    /// reads or writes would break those nodes mid-upgrade; it belongs in a later "contract"
    /// release, once no node of the old version is left, and this test makes that a decision.
    #[test]
    fn migrations_after_the_first_only_add() {
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
        // Only adds since version 1, so nodes of version 1 may run on it: raising this is the
        // "contract" decision that the test below would otherwise stand in the way of.
        assert_eq!(COMPATIBLE_FROM, 1);
        let breaking = [
            "DROP ",
            "RENAME",
            " TYPE ",
            "SET NOT NULL",
            "TRUNCATE",
            "DELETE ",
            "UPDATE ",
        ];
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(1) {
            let sql = migration.to_ascii_uppercase();
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let adds = statement.starts_with("CREATE TABLE ")
                    || statement.starts_with("CREATE INDEX ")
                    || statement.starts_with("CREATE UNIQUE INDEX ")
                    || statement.starts_with("INSERT INTO ")
                    || (statement.starts_with("ALTER TABLE ") && statement.contains(" ADD "));
                assert!(
                    adds && !breaking.iter().any(|b| statement.contains(b)),
                    "migration {} is not expand-only: {statement}",
                    i + 1
                );
                if statement.contains(" ADD COLUMN ") {
                    assert!(
                        !statement.contains("NOT NULL") || statement.contains("DEFAULT"),
                        "migration {}: a NOT NULL column needs a DEFAULT, or older nodes' inserts fail: {statement}",
                        i + 1
                    );
                }
            }
        }
    }
}
