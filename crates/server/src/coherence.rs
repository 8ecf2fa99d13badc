//! Several nodes on one PostgreSQL database (docs/deployment.md, "Several nodes on
//! PostgreSQL"): this node follows the change log, drops what it cached of records other nodes
//! changed, and refuses to answer while its view of the log is older than
//! `storage.max_staleness`.

use std::sync::Arc;
use std::time::Duration;

use tresor_core::Vault;
use tresor_postgres::{Change, FollowStatus, Follower, Lease, PgError, PgStore};

/// The name of the lease that decides which node runs the background jobs.
const JOBS: &str = "jobs";

/// The follower of this node, the bound it enforces, and the background-job lease.
pub struct Coherence {
    follower: Follower,
    lease: Lease,
    store: Arc<PgStore>,
    node_id: String,
    max_staleness: Duration,
}

impl Coherence {
    /// Starts following `store`'s change log on behalf of `vault`, and trying for the
    /// background-job lease (`job_lease` at a time).
    pub fn start(
        store: &Arc<PgStore>,
        vault: &Vault,
        max_staleness: Duration,
        job_lease: Duration,
    ) -> Result<Arc<Coherence>, PgError> {
        // The floor under the notifications: several reads per staleness bound, so one slow read
        // does not make the node refuse.
        let poll = (max_staleness / 5).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let follower_vault = vault.clone();
        let follower = store.follow(poll, move |change| match change {
            Change::Paths(paths) => follower_vault.invalidate(paths.iter().map(String::as_str)),
            Change::Everything => follower_vault.invalidate_all(),
        })?;
        // A sealed node never leads the jobs (it could not run them), nor keeps others from it.
        let sealed = vault.clone();
        let lease = store.lease_while(JOBS, job_lease, move || !sealed.is_sealed());
        Ok(Arc::new(Coherence {
            follower,
            lease,
            store: store.clone(),
            node_id: store.node_id().to_owned(),
            max_staleness,
        }))
    }

    /// Where the follower stands.
    pub fn status(&self) -> &FollowStatus {
        self.follower.status()
    }

    /// The background-job lease's epoch while this node holds it.
    pub fn job_epoch(&self) -> Option<i64> {
        self.lease.status().held()
    }

    /// Runs `work` (a background job, on this thread) with every commit it makes fenced by the
    /// job lease at `epoch`: a commit after another node took the lease over fails.
    pub fn fenced<T>(&self, epoch: i64, work: impl FnOnce() -> T) -> T {
        self.store.fenced(JOBS, epoch, work)
    }

    /// This node's `storage.node_id`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// `Ok` while the node's view of the change log is younger than `max_staleness`; why not
    /// otherwise (the API answers 503: never an answer from a possibly stale cache).
    pub fn check(&self) -> Result<(), Stale> {
        let age = self.status().age();
        if age <= self.max_staleness {
            return Ok(());
        }
        Err(Stale(format!(
            "node `{}` has not confirmed the storage change log for {} ms (storage.max_staleness is {} ms): it answers again once it has caught up with the database",
            self.node_id,
            age.as_millis(),
            self.max_staleness.as_millis()
        )))
    }
}

/// This node's view of the shared store is older than `max_staleness`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stale(String);
