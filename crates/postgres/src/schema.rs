//! The tables Tresor keeps in its database, created and migrated by Tresor itself.
//!
//! `tresor_schema` holds one row: the schema version. Each start takes a transaction-scoped
//! advisory lock (safe behind connection poolers: it ends with the transaction), reads the
//! version, refuses a version newer than [`SCHEMA_VERSION`], and applies the missing migrations
//! in that same transaction. Migrations are expand/contract: a new version only adds, so nodes
//! of the previous version keep working on it during a rolling upgrade.
//!
//! - `tresor_kv (path, value)`: the store. Values are what the vault hands the store:
//!   barrier-sealed records (and the seal configuration, which holds no secret).
//! - `tresor_log_head (position)`: one row, the last change-log position. Every commit updates
//!   it first, which serialises commits and makes positions gapless and in commit order.
//! - `tresor_changes (position, path, node_id, changed_at)`: the change log, paths only.
//! - `tresor_leases (name, holder, epoch, expires_at)` (version 2): who runs the background
//!   jobs, until when (the database's clock), and the fencing epoch their commits check.

use tokio_postgres::Transaction;

use crate::{PgError, describe};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 2;

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
];

/// Brings the schema to [`SCHEMA_VERSION`], or refuses a newer one.
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
        return Err(PgError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
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
