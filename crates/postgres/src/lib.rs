//! The PostgreSQL storage backend (docs/deployment.md, "Several nodes on PostgreSQL"): a
//! [`Store`](tresor_core::Store) on tokio-postgres with a deadpool pool, the tables Tresor
//! creates and migrates itself, and the change log every node follows.
//!
//! - [`PgStore`]: the store. A `Batch` is one transaction; its expectations are compare-and-set
//!   checks that fail with the same [`StoreError::Conflict`](tresor_core::store::StoreError) as on
//!   sled. Every write also appends its path to the change log in the same transaction.
//! - [`Follower`]: reads the change log from the last position it saw, so each node drops what
//!   it cached of records other nodes changed.
//!
//! - [`connect`]: one connection, configured as the store's, for tools working on an
//!   application's tables (`tresor rewrap --pg`).
//! - [`Lease`]: background jobs on exactly one node, with a fencing epoch every job commit
//!   checks ([`PgStore::fenced`]).
//!
//! The database sees only what the vault hands the store: barrier-sealed values and their paths.
#![forbid(unsafe_code)]

mod changes;
mod client;
mod fence;
mod lease;
mod options;
mod passfile;
mod schema;
mod store;
mod tls;

pub use changes::{Change, FollowStatus, Follower};
pub use client::connect;
pub use lease::{Lease, LeaseStatus};
pub use options::{PgOptions, default_passfile, redact_url};
pub use schema::{COMPATIBLE_FROM, SCHEMA_VERSION};
pub use store::PgStore;

/// Why the PostgreSQL backend cannot be opened or used. Never names a password; URLs appear
/// only redacted ([`redact_url`]).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The storage options are invalid.
    #[error("storage: {0}")]
    Options(String),
    /// A file the options name cannot be read or used.
    #[error("storage: cannot use {what} `{path}`: {reason}")]
    File {
        /// Which file (`password_file`, `ca_file`, `client_key`…).
        what: &'static str,
        /// Its path.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The database cannot be reached or refused the connection.
    #[error("storage: cannot connect to {target}: {reason}")]
    Connect {
        /// The redacted target.
        target: String,
        /// Why.
        reason: String,
    },
    /// The database's schema was migrated by a newer Tresor that no longer admits nodes of
    /// this version: this one must not write to it.
    #[error(
        "storage: the database schema is version {found}, which admits Tresor nodes of schema version {compatible_from} or newer; this Tresor knows version {known}: upgrade Tresor (it never downgrades a schema)"
    )]
    SchemaTooNew {
        /// The version in the database.
        found: i32,
        /// The oldest schema version whose nodes the database admits.
        compatible_from: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// A statement failed.
    #[error("storage: {0}")]
    Database(String),
}

/// A tokio-postgres error as text: the server's message for database errors (which name
/// tables and paths, never values), the client's otherwise.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}
