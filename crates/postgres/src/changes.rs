//! Following the change log: how a node learns what other nodes changed.
//!
//! The change log (`tresor_changes`) is the source of truth: every commit appends the paths it
//! wrote, with gapless positions in commit order (see the `store` module). A [`Follower`] keeps
//! one connection of its own, outside the pool, and reads the log from the last position it saw:
//! - after each commit the writer sends `NOTIFY tresor_changes`, which wakes the follower at
//!   once; a notification is only a hint (one lost with a connection changes nothing);
//! - it reads anyway every `poll` (the floor);
//! - after any reconnect it reads on from its last position (catch-up), so nothing is missed;
//! - entries older than an hour are trimmed; a node whose position is no longer in the log (a
//!   hole in the gapless positions, or a head it cannot account for, e.g. after a restore) drops
//!   everything it cached ([`Change::Everything`]).
//!
//! Each read that completes confirms the node's view as of the moment the read *started* (the
//! statement's snapshot is taken after that, so every change committed before it is seen). The
//! server answers only while that moment is younger than its `max_staleness`
//! ([`FollowStatus::age`]), which bounds how long a change made elsewhere can go unenforced
//! here, by construction: a node cut off from the database stops answering instead of serving
//! from a stale cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::store::{Connect, PgStore};
use crate::{PgError, describe};

/// Most changes read in one go; a node further behind reads again at once.
const PAGE: i64 = 1000;

/// How long the change log keeps an entry.
const RETENTION_SECONDS: i64 = 3600;

/// How often a follower trims the log.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// What a follower tells the node: the paths other nodes changed, or that it must forget
/// everything (its position is no longer in the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Paths written by other nodes, in commit order.
    Paths(Vec<String>),
    /// Changes since the last position cannot be listed: drop every cached record.
    Everything,
}

/// Where a follower stands.
#[derive(Debug)]
pub struct FollowStatus {
    position: AtomicI64,
    connected: AtomicBool,
    /// When the follower started; `confirmed` counts from it.
    base: Instant,
    /// The start of the last read that completed, in nanoseconds after `base`: an atomic,
    /// because every request of the node reads it (`age`) and a lock there costs both workers.
    confirmed: AtomicU64,
}

impl FollowStatus {
    /// The last change-log position applied.
    pub fn position(&self) -> i64 {
        self.position.load(Ordering::SeqCst)
    }

    /// How old the node's view of the change log is: the time since the start of the last read
    /// that completed.
    pub fn age(&self) -> Duration {
        let confirmed = Duration::from_nanos(self.confirmed.load(Ordering::Acquire));
        self.base.elapsed().saturating_sub(confirmed)
    }

    /// True while the follower's own connection is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    fn confirm(&self, started: Instant, position: i64) {
        self.position.store(position, Ordering::SeqCst);
        let since_base = started.saturating_duration_since(self.base).as_nanos();
        self.confirmed.fetch_max(
            u64::try_from(since_base).unwrap_or(u64::MAX),
            Ordering::AcqRel,
        );
    }
}

/// A running follower; stops when dropped.
pub struct Follower {
    status: Arc<FollowStatus>,
    task: tokio::task::AbortHandle,
}

impl Follower {
    /// Where it stands.
    pub fn status(&self) -> &Arc<FollowStatus> {
        &self.status
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgStore {
    /// Starts following the change log from its current end (everything before it is what
    /// this node reads fresh anyway), reading at least every `poll`. `on_change` gets the paths
    /// other nodes changed; it runs on the store's runtime and must not call the store.
    pub fn follow(
        &self,
        poll: Duration,
        on_change: impl Fn(Change) + Send + Sync + 'static,
    ) -> Result<Follower, PgError> {
        let pool = self.pool().clone();
        let started = Instant::now();
        let head: i64 = self
            .runtime_run(async move {
                let client = pool
                    .get()
                    .await
                    .map_err(|e| PgError::Database(e.to_string()))?;
                let row = client
                    .query_one("SELECT position FROM tresor_log_head WHERE id", &[])
                    .await
                    .map_err(|e| PgError::Database(describe(&e)))?;
                Ok::<_, PgError>(row.get(0))
            })
            .ok_or_else(|| PgError::Database("the storage runtime stopped".into()))??;
        let status = Arc::new(FollowStatus {
            position: AtomicI64::new(head),
            connected: AtomicBool::new(false),
            base: started,
            confirmed: AtomicU64::new(0),
        });
        let task = self.handle().spawn(follow(
            self.connect_options(),
            self.node_id().to_owned(),
            self.target().to_owned(),
            status.clone(),
            poll,
            Arc::new(on_change),
        ));
        Ok(Follower {
            status,
            task: task.abort_handle(),
        })
    }
}

async fn follow(
    connect: Connect,
    node_id: String,
    target: String,
    status: Arc<FollowStatus>,
    poll: Duration,
    on_change: Arc<dyn Fn(Change) + Send + Sync>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut last_error = String::new();
    loop {
        let error = session(&connect, &node_id, &status, poll, &on_change, &mut backoff).await;
        status.connected.store(false, Ordering::SeqCst);
        // Said once per distinct failure, not once per retry.
        if error != last_error {
            tracing::warn!(database = %target, error = %error, "storage: change log unreachable; retrying (this node answers 503 once its view is older than max_staleness)");
            last_error = error;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// One connection's life: listen, read the log from the last position, repeat. Returns why it
/// ended.
async fn session(
    connect: &Connect,
    node_id: &str,
    status: &FollowStatus,
    poll: Duration,
    on_change: &Arc<dyn Fn(Change) + Send + Sync>,
    backoff: &mut Duration,
) -> String {
    let timeout = (poll * 4).max(Duration::from_secs(2));
    let wake = Arc::new(Notify::new());
    let client = match tokio::time::timeout(timeout, open(connect, wake.clone())).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return e,
        Err(_) => return "no answer to the connection attempt".into(),
    };
    let result: Result<(), String> = async {
        client
            .batch_execute("LISTEN tresor_changes")
            .await
            .map_err(|e| describe(&e))?;
        // The log head and the changes after `last`, from one snapshot.
        let read = client
            .prepare(
                "SELECT h.position, c.position, c.path, c.node_id FROM tresor_log_head h \
                 LEFT JOIN LATERAL (SELECT position, path, node_id FROM tresor_changes \
                 WHERE position > $1 ORDER BY position LIMIT $2) c ON true \
                 WHERE h.id ORDER BY c.position",
            )
            .await
            .map_err(|e| describe(&e))?;
        status.connected.store(true, Ordering::SeqCst);
        *backoff = Duration::from_millis(50);
        let mut trimmed = Instant::now();
        loop {
            let started = Instant::now();
            let last = status.position();
            let rows = tokio::time::timeout(timeout, client.query(&read, &[&last, &PAGE]))
                .await
                .map_err(|_| "no answer to the change-log read".to_owned())?
                .map_err(|e| describe(&e))?;
            let head: i64 = rows.first().map_or(last, |row| row.get(0));
            let mut position = last;
            let mut paths = Vec::new();
            let mut everything = false;
            let mut listed: i64 = 0;
            for row in &rows {
                let Some(at) = row.get::<_, Option<i64>>(1) else {
                    continue;
                };
                listed += 1;
                // Positions are gapless: a hole means the entries were trimmed away.
                everything |= at != position + 1;
                position = at;
                let writer: &str = row.get(3);
                if writer != node_id {
                    paths.push(row.get::<_, String>(2));
                }
            }
            if listed == 0 && head != last {
                // Nothing listed, yet the head moved: trimmed past us. Or it went backwards: the
                // database was restored. Either way what changed cannot be listed.
                everything = true;
                position = head;
            }
            if everything {
                on_change(Change::Everything);
            } else if !paths.is_empty() {
                on_change(Change::Paths(paths));
            }
            if listed == PAGE {
                // Behind by more than a page: applied, but not confirmed up to `started` yet.
                status.position.store(position, Ordering::SeqCst);
                continue;
            }
            status.confirm(started, position);
            if trimmed.elapsed() >= TRIM_EVERY {
                trimmed = Instant::now();
                // Any node may trim; a node away for longer than the retention finds a hole
                // (or a head it cannot reach) and drops everything it cached.
                if let Err(e) = client
                    .execute(
                        "DELETE FROM tresor_changes WHERE changed_at < now() - $1::bigint * interval '1 second'",
                        &[&RETENTION_SECONDS],
                    )
                    .await
                {
                    tracing::debug!(error = %describe(&e), "storage: cannot trim the change log");
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            if client.is_closed() {
                return Err("the connection closed".to_owned());
            }
        }
    }
    .await;
    result.err().unwrap_or_default()
}

/// Connects outside the pool; notifications wake `wake`, and so does the connection's end.
async fn open(connect: &Connect, wake: Arc<Notify>) -> Result<Client, String> {
    fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>, wake: Arc<Notify>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
            wake.notify_one();
        });
    }
    match &connect.tls {
        Some(tls) => {
            let (client, connection) = connect
                .config
                .connect(tls.clone())
                .await
                .map_err(|e| describe(&e))?;
            drive(connection, wake);
            Ok(client)
        }
        None => {
            let (client, connection) = connect
                .config
                .connect(NoTls)
                .await
                .map_err(|e| describe(&e))?;
            drive(connection, wake);
            Ok(client)
        }
    }
}
