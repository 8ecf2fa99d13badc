//! Background jobs on exactly one node: a lease on the database's clock with a fencing epoch.
//!
//! A [`Lease`] renews (or takes) the row `tresor_leases[name]` every third of its time to live,
//! on a connection of its own outside the pool, so a busy pool cannot make it lapse. The
//! expiry is the database's `now() + ttl`; the node counts its own hold from the moment it sent
//! the renewal (before the database's `now()`), so it always believes its hold ends no later
//! than the database does. A lease taken over (expired, then taken by another node) gets the next
//! epoch.
//!
//! Holding the lease is not enough to write: a node paused past its lease (SIGSTOP, a long GC,
//! a frozen VM) may resume believing it still holds it. So every commit a job makes runs inside
//! [`PgStore::fenced`], and the commit's transaction checks, with the lease row share-locked,
//! that the lease still names this node and this epoch and has not expired; otherwise the commit
//! fails with a conflict and changes nothing. (Session advisory locks would not do: they
//! strand under connection poolers and fence nothing.)

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::describe;
use crate::fence::{FENCE, Fence};
use crate::store::{Connect, PgStore};

/// What this node knows of a lease.
#[derive(Debug)]
pub struct LeaseStatus {
    epoch: AtomicI64,
    until: Mutex<Option<Instant>>,
}

impl LeaseStatus {
    /// The epoch while this node holds the lease (by its own, conservative, count).
    pub fn held(&self) -> Option<i64> {
        let until = *self.until.lock().unwrap_or_else(|p| p.into_inner());
        until
            .filter(|until| Instant::now() < *until)
            .map(|_| self.epoch.load(Ordering::SeqCst))
    }

    fn set(&self, epoch: Option<(i64, Instant)>) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        match epoch {
            Some((epoch, held_until)) => {
                self.epoch.store(epoch, Ordering::SeqCst);
                *until = Some(held_until);
            }
            None => *until = None,
        }
    }
}

/// A lease this node keeps trying to hold; released (left to expire) when dropped.
pub struct Lease {
    status: Arc<LeaseStatus>,
    task: tokio::task::AbortHandle,
}

impl Lease {
    /// What this node knows of it.
    pub fn status(&self) -> &Arc<LeaseStatus> {
        &self.status
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgStore {
    /// Keeps trying to hold lease `name` for `ttl` at a time.
    pub fn lease(&self, name: &str, ttl: Duration) -> Lease {
        self.lease_while(name, ttl, || true)
    }

    /// As [`PgStore::lease`], only while `eligible()` says this node may hold it (a sealed node
    /// must not: it cannot run the jobs, and holding the lease would keep every other node from
    /// running them). When it stops being eligible it lets go at once: it stops counting itself
    /// the holder, then ends the lease in the database, so another node takes it over at its
    /// next renewal instead of after the time to live.
    pub fn lease_while(
        &self,
        name: &str,
        ttl: Duration,
        eligible: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Lease {
        let status = Arc::new(LeaseStatus {
            epoch: AtomicI64::new(0),
            until: Mutex::new(None),
        });
        let task = self.handle().spawn(keep(
            self.connect_options(),
            name.to_owned(),
            self.node_id().to_owned(),
            ttl,
            status.clone(),
            Box::new(eligible),
        ));
        Lease {
            status,
            task: task.abort_handle(),
        }
    }

    /// Runs `work` on this thread with every commit it makes fenced by lease `name` at `epoch`:
    /// a commit fails with a conflict, changing nothing, unless this node still holds that
    /// lease at that epoch when it commits.
    pub fn fenced<T>(&self, name: &str, epoch: i64, work: impl FnOnce() -> T) -> T {
        struct Reset(Option<Fence>);
        impl Drop for Reset {
            fn drop(&mut self) {
                let previous = self.0.take();
                FENCE.with(|f| *f.borrow_mut() = previous);
            }
        }
        let fence = Fence {
            name: name.to_owned(),
            holder: self.node_id().to_owned(),
            epoch,
        };
        let _reset = Reset(FENCE.with(|f| f.borrow_mut().replace(fence)));
        work()
    }
}

async fn keep(
    connect: Connect,
    name: String,
    holder: String,
    ttl: Duration,
    status: Arc<LeaseStatus>,
    eligible: Box<dyn Fn() -> bool + Send + Sync>,
) {
    let every = ttl / 3;
    loop {
        let client = match open(&connect).await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!(error = %e, "storage: lease connection failed");
                tokio::time::sleep(every.min(Duration::from_secs(1))).await;
                continue;
            }
        };
        loop {
            if !eligible() {
                let held = status.held().is_some();
                status.set(None);
                if held {
                    tracing::info!(lease = %name, "storage: this node is sealed: it lets the background-job lease go");
                }
                let released = tokio::time::timeout(
                    every,
                    client.execute(
                        "UPDATE tresor_leases SET expires_at = now() \
                         WHERE name = $1 AND holder = $2 AND expires_at > now()",
                        &[&name, &holder],
                    ),
                )
                .await;
                if !matches!(released, Ok(Ok(_))) {
                    break;
                }
                tokio::time::sleep(every.min(Duration::from_millis(250))).await;
                continue;
            }
            let sent = Instant::now();
            let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            let renewed = tokio::time::timeout(
                every,
                client.query_opt(
                    "INSERT INTO tresor_leases (name, holder, epoch, expires_at) \
                     VALUES ($1, $2, 1, now() + $3::bigint * interval '1 millisecond') \
                     ON CONFLICT (name) DO UPDATE SET \
                       epoch = CASE WHEN tresor_leases.holder = EXCLUDED.holder \
                                     AND tresor_leases.expires_at > now() \
                                    THEN tresor_leases.epoch ELSE tresor_leases.epoch + 1 END, \
                       holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                     WHERE tresor_leases.holder = EXCLUDED.holder \
                        OR tresor_leases.expires_at <= now() \
                     RETURNING epoch",
                    &[&name, &holder, &ttl_ms],
                ),
            )
            .await;
            match renewed {
                Ok(Ok(Some(row))) => {
                    let epoch: i64 = row.get(0);
                    if status.held() != Some(epoch) {
                        tracing::info!(lease = %name, epoch, "storage: this node holds the background-job lease");
                    }
                    status.set(Some((epoch, sent + ttl)));
                }
                Ok(Ok(None)) => {
                    if status.held().is_some() {
                        tracing::warn!(lease = %name, "storage: the background-job lease was taken over");
                    }
                    status.set(None);
                }
                // Unknown: keep what we had; it lapses by itself at its conservative deadline.
                Ok(Err(e)) => {
                    tracing::debug!(error = %describe(&e), "storage: lease renewal failed");
                    break;
                }
                Err(_) => break,
            }
            tokio::time::sleep(every).await;
            if client.is_closed() {
                break;
            }
        }
    }
}

async fn open(connect: &Connect) -> Result<tokio_postgres::Client, String> {
    match &connect.tls {
        Some(tls) => {
            let (client, connection) = connect
                .config
                .connect(tls.clone())
                .await
                .map_err(|e| describe(&e))?;
            tokio::spawn(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = connect
                .config
                .connect(NoTls)
                .await
                .map_err(|e| describe(&e))?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}
