//! The lease check a background job's commits carry (see the `lease` module): set for the
//! job's thread by `PgStore::fenced`, read by `PgStore::commit`.

use std::cell::RefCell;

/// A lease check a commit carries.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    pub(crate) name: String,
    pub(crate) holder: String,
    pub(crate) epoch: i64,
}

thread_local! {
    /// The fence of the job running on this thread, if any (see `PgStore::fenced`).
    pub(crate) static FENCE: RefCell<Option<Fence>> = const { RefCell::new(None) };
}

/// The fence the current thread's commits must carry.
pub(crate) fn current_fence() -> Option<Fence> {
    FENCE.with(|f| f.borrow().clone())
}
