//! [`PgStore`]: the [`Store`] trait on PostgreSQL.
//!
//! # Sync trait, async driver
//!
//! `Store` is synchronous (the vault core knows no runtime; the server calls it inside
//! `block_in_place`, tests call it from plain threads). tokio-postgres is async. The bridge: the
//! store owns a current-thread tokio runtime driven by one dedicated thread
//! (`tresor-postgres`); each `Store` call spawns its future onto that runtime and waits for the
//! answer on a std channel. No call ever runs `block_on` on a runtime it may be inside of (which
//! would panic or deadlock a tokio worker), and dropping the store stops the runtime on its own
//! thread, never inside the caller's async context. Nothing running on the store's runtime calls
//! a `Store` method (that would wait on itself).
//!
//! # Transactions
//!
//! A [`Batch`] is one transaction at READ COMMITTED that first increments the one row of
//! `tresor_log_head`. That row lock serialises every commit of every node, so the expectations
//! checked after it see every earlier commit: a compare-and-set that cannot be lost, and change
//! log positions that are gapless and in commit order (a follower never skips a position that
//! commits later). Writes in Tresor are rare (create, rotate, configure), reads are cached, so
//! serialising commits costs nothing that matters. Each commit sets `synchronous_commit = on`:
//! a commit that returned is durable even if the database default says otherwise.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;
use tresor_core::store::{Batch, Store, StoreError};

use crate::options::PgOptions;
use crate::{PgError, describe, schema};

/// Longest any one store operation may take, waiting for a connection included; past it the
/// operation fails (a database that stopped answering must not hang requests forever).
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] in a PostgreSQL database (tables: see the `schema` module).
pub struct PgStore {
    pool: Pool,
    node_id: Arc<str>,
    target: String,
    connect: Connect,
    runtime: StoreRuntime,
}

/// What a connection outside the pool needs (the change-log follower's).
#[derive(Clone)]
pub(crate) struct Connect {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl PgStore {
    /// Connects, creates or migrates the schema (refusing a newer one), and returns the store.
    pub fn open(options: &PgOptions) -> Result<PgStore, PgError> {
        let (config, _) = options.driver_config()?;
        let tls = options.tls_connector()?;
        let target = options.redacted_url();
        let runtime = StoreRuntime::start()
            .map_err(|e| PgError::Options(format!("cannot start the storage runtime: {e}")))?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
            None => Manager::from_config(config.clone(), NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(OP_TIMEOUT),
                create: Some(Duration::from_secs(5)),
                recycle: Some(Duration::from_secs(5)),
            })
            .build()
            .map_err(|e| PgError::Options(format!("cannot build the connection pool: {e}")))?;
        let opened = {
            let pool = pool.clone();
            let target = target.clone();
            runtime.run(async move {
                let mut client = pool.get().await.map_err(|e| PgError::Connect {
                    target: target.clone(),
                    reason: pool_error(&e),
                })?;
                schema::migrate(&mut client).await
            })
        };
        match opened {
            Some(result) => result?,
            None => return Err(PgError::Database("the storage runtime stopped".into())),
        }
        tracing::info!(database = %target, node_id = %options.node_id, "storage: PostgreSQL opened");
        Ok(PgStore {
            pool,
            node_id: options.node_id.as_str().into(),
            target,
            connect: Connect { config, tls },
            runtime,
        })
    }

    /// The database, redacted, as logs and errors name it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// This node's name in the change log.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub(crate) fn connect_options(&self) -> Connect {
        self.connect.clone()
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.runtime.handle
    }

    /// Runs `op` on the store's runtime and waits for it (`None`: the runtime stopped).
    pub(crate) fn runtime_run<T: Send + 'static>(
        &self,
        op: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.runtime.run(op)
    }

    /// Runs `op` on the store's runtime within [`OP_TIMEOUT`] and waits for it.
    fn run<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let target = self.target.clone();
        self.runtime
            .run(async move {
                match tokio::time::timeout(OP_TIMEOUT, op).await {
                    Ok(result) => result,
                    Err(_) => Err(StoreError::Backend(format!(
                        "{target}: no answer within {} s",
                        OP_TIMEOUT.as_secs()
                    ))),
                }
            })
            .unwrap_or_else(|| Err(StoreError::Backend("the storage runtime stopped".into())))
    }
}

impl Store for PgStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let pool = self.pool.clone();
        let key = key.to_owned();
        self.run(async move {
            let client = pool.get().await.map_err(backend_pool)?;
            let statement = client
                .prepare_cached("SELECT value FROM tresor_kv WHERE path = $1")
                .await
                .map_err(backend)?;
            let row = client
                .query_opt(&statement, &[&key])
                .await
                .map_err(backend)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let pool = self.pool.clone();
        let prefix = prefix.to_owned();
        self.run(async move {
            let client = pool.get().await.map_err(backend_pool)?;
            let statement = client
                .prepare_cached(
                    "SELECT path, value FROM tresor_kv WHERE starts_with(path, $1) ORDER BY path",
                )
                .await
                .map_err(backend)?;
            let rows = client
                .query(&statement, &[&prefix])
                .await
                .map_err(backend)?;
            Ok(rows
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }

    fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let node_id = self.node_id.clone();
        let fence = crate::fence::current_fence();
        self.run(async move {
            let mut client = pool.get().await.map_err(backend_pool)?;
            let tx = client.transaction().await.map_err(backend)?;
            tx.batch_execute("SET LOCAL synchronous_commit TO on")
                .await
                .map_err(backend)?;
            let writes = i64::try_from(batch.writes().count())
                .map_err(|_| StoreError::Backend("batch too large".into()))?;
            let head: i64 = tx
                .query_one(
                    "UPDATE tresor_log_head SET position = position + $1 WHERE id RETURNING position",
                    &[&writes],
                )
                .await
                .map_err(backend)?
                .get(0);
            if let Some(fence) = &fence {
                // Share-locks the lease row: a takeover waits for this commit, and this commit
                // happens only if the lease is still this node's at this epoch.
                let held = tx
                    .query_opt(
                        "SELECT 1 FROM tresor_leases WHERE name = $1 AND holder = $2 \
                         AND epoch = $3 AND expires_at > clock_timestamp() FOR SHARE",
                        &[&fence.name, &fence.holder, &fence.epoch],
                    )
                    .await
                    .map_err(backend)?;
                if held.is_none() {
                    return Err(StoreError::Conflict {
                        key: format!("lease `{}` (epoch {})", fence.name, fence.epoch),
                    });
                }
            }
            let read = tx
                .prepare_cached("SELECT value FROM tresor_kv WHERE path = $1")
                .await
                .map_err(backend)?;
            for (key, expected) in batch.expectations() {
                let actual: Option<Vec<u8>> = tx
                    .query_opt(&read, &[&key])
                    .await
                    .map_err(backend)?
                    .map(|row| row.get(0));
                if actual.as_deref() != expected {
                    // Dropping the transaction rolls it back: nothing of the batch lands.
                    return Err(StoreError::Conflict {
                        key: key.to_owned(),
                    });
                }
            }
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO tresor_kv (path, value) VALUES ($1, $2) \
                     ON CONFLICT (path) DO UPDATE SET value = EXCLUDED.value",
                )
                .await
                .map_err(backend)?;
            let delete = tx
                .prepare_cached("DELETE FROM tresor_kv WHERE path = $1")
                .await
                .map_err(backend)?;
            let log = tx
                .prepare_cached(
                    "INSERT INTO tresor_changes (position, path, node_id) VALUES ($1, $2, $3)",
                )
                .await
                .map_err(backend)?;
            let mut position = head - writes;
            for (key, value) in batch.writes() {
                match value {
                    Some(value) => tx.execute(&upsert, &[&key, &value]).await,
                    None => tx.execute(&delete, &[&key]).await,
                }
                .map_err(backend)?;
                position += 1;
                tx.execute(&log, &[&position, &key, &&*node_id])
                    .await
                    .map_err(backend)?;
            }
            if writes > 0 {
                // A wake-up hint for the other nodes, delivered at commit; the log is the truth.
                tx.execute("SELECT pg_notify('tresor_changes', $1)", &[&head.to_string()])
                    .await
                    .map_err(backend)?;
            }
            tx.commit().await.map_err(backend)
        })
    }

    fn purge_stale(&self) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(backend_pool)?;
            // Rewrites the table into new files without the dead rows of deleted or overwritten
            // values (plain VACUUM only marks their space reusable). Old copies may remain in
            // the write-ahead log until it is recycled, and in backups (docs/deployment.md).
            client
                .batch_execute("VACUUM (FULL) tresor_kv")
                .await
                .map_err(backend)
        })
    }
}

/// The store's runtime and the thread that drives it.
struct StoreRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl StoreRuntime {
    fn start() -> std::io::Result<StoreRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tresor-postgres".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(StoreRuntime {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `op` on the runtime and waits for its result (`None`: the runtime stopped).
    fn run<T: Send + 'static>(&self, op: impl Future<Output = T> + Send + 'static) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(op.await);
        });
        rx.recv().ok()
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {}", describe(&e)))
}

fn backend_pool(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {}", pool_error(&e)))
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}
