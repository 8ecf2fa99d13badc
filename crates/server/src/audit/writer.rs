//! Appends audit lines to a file: the hash chain, periodic signed checkpoints, size-based
//! rotation that keeps the chain, and self-healing after a failed write.
//!
//! Every line reaches the operating system before [`AuditLog::record`] (or [`AuditLog::write`])
//! returns, so the caller can answer only after its line is in the log. A failed write is rolled
//! back to the last complete line; until a write succeeds again every record fails, and the API
//! answers 503 without acting. Checkpoints are also `fsync`ed: a periodic one after the log's
//! lock is released (the requests whose lines went out with it wait for the disk, the others do
//! not).
//!
//! Group commit: [`AuditLog::write`], the requests' path, queues its line; whichever request
//! finds no one writing lets its worker thread run the other requests it has ready first (their
//! lines join the queue), then writes every queued line, its own and those that arrive
//! meanwhile, in one `write` per group, and answers each waiting request with the group's
//! result. A request waits without holding its thread, so the server goes on reading requests
//! (and queuing their lines) while a group is written. The chain, the checkpoints and the file
//! are exactly those of lines written one by one.
//!
//! Before a write, once per [`PATH_CHECK_INTERVAL`], the writer checks that its open file is
//! still the one at the configured path: when an outside tool (logrotate) has moved it away, the
//! old file gets a signed `rotate` checkpoint and the writer reopens the path, continuing the
//! chain there. Checking once per interval rather than before every write saves two `statx`
//! per group, about 5% of the server's time under load; lines written meanwhile go to the
//! moved-away file, before its closing checkpoint, so the chain is the same.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use tokio::sync::oneshot;

use super::line::{AuditEvent, AuditEventRef, checkpoint_message, hex, hex_into, with_signature};
use super::signing_key::AuditSigningKey;
use tresor_crypto::sha256;

/// How long the writer may go on writing to its open file before it checks again that the
/// file is still the one at the configured path (moved away by logrotate, replaced, or cut
/// short in place). The start and shutdown checkpoints check at once.
pub const PATH_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Where and how to write the log.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The current log file; rotated files get a numeric suffix (`audit.log.000001`, …).
    pub path: PathBuf,
    /// The checkpoint signing key file (created on first start, with a `.pub` beside it).
    pub signing_key: PathBuf,
    /// Rotate once the current file exceeds this many bytes.
    pub max_file_bytes: u64,
    /// Write a signed checkpoint at least every this many lines.
    pub checkpoint_every: u64,
    /// This node's `storage.node_id` (several nodes on PostgreSQL): named in every event line.
    pub node_id: Option<String>,
}

/// An audit line could not be written; the request must fail.
#[derive(Debug, thiserror::Error)]
///
/// Its message says why (the I/O error) itself, so it is not also given as a `source`: an
/// error chain printed in full would say it twice.
#[error("audit log {path} cannot be written: {cause}")]
pub struct AuditWriteError {
    path: PathBuf,
    cause: std::io::Error,
}

/// The audit log of one server.
pub struct AuditLog {
    config: AuditConfig,
    key: AuditSigningKey,
    state: Mutex<State>,
    /// Lines waiting for the next group (see [`AuditLog::write`]).
    queue: Mutex<Queue>,
    failures: AtomicU64,
    /// `write`s of event lines (one per group): how well lines are grouped.
    group_writes: AtomicU64,
    /// Told of every checkpoint once it is on disk (see [`AuditLog::on_checkpoint`]).
    checkpoint_hook: Mutex<Option<CheckpointHook>>,
}

/// Called with the sequence number and line hash of each checkpoint once it is fsynced.
pub type CheckpointHook = Box<dyn Fn(u64, [u8; 32]) + Send + Sync>;

struct State {
    /// `None` after a failure we could not roll back; reopened on the next record.
    file: Option<File>,
    /// Sequence number and hash of the last checkpoint written (fsynced or about to be).
    last_checkpoint: Option<(u64, [u8; 32])>,
    /// Bytes of complete lines in the current file.
    len: u64,
    next_seq: u64,
    prev: [u8; 32],
    since_checkpoint: u64,
    /// The line being written, kept between records so a line costs no allocation for its text.
    buffer: Vec<u8>,
    /// When the open file was last found at the configured path; `None`: check before the
    /// next write.
    path_checked: Option<Instant>,
}

/// A line buffer larger than this (a big batch's line) is not kept for the next record.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

thread_local! {
    /// Where a request's event is serialized before it joins the queue (one per thread, so no
    /// allocation per request).
    static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Lines of concurrent requests waiting to be written together.
#[derive(Default)]
struct Queue {
    pending: Pending,
    /// The buffers of the last group written, kept for the next one.
    spare: Pending,
    /// Whether a request is writing groups now: the others only queue their lines.
    leading: bool,
}

/// Events waiting for their lines, in arrival order.
#[derive(Default)]
struct Pending {
    /// The events' JSON objects, one after another.
    bodies: Vec<u8>,
    /// Where each event's JSON ends in `bodies`.
    ends: Vec<usize>,
    /// Who waits for each event's line.
    waiters: Vec<oneshot::Sender<Result<(), AuditWriteError>>>,
}

impl Pending {
    fn clear(&mut self) {
        if self.bodies.capacity() > KEEP_BUFFER_BYTES {
            self.bodies = Vec::new();
        }
        self.bodies.clear();
        self.ends.clear();
        self.waiters.clear();
    }
}

/// A group's periodic checkpoint, written and waiting for its `fsync`.
struct Checkpointed {
    file: File,
    seq: u64,
    hash: [u8; 32],
}

/// A checkpoint without its signature, which is appended as the last field.
#[derive(Serialize)]
struct CheckpointLine {
    seq: u64,
    time: String,
    prev: String,
    #[serde(rename = "type")]
    kind: &'static str,
    reason: &'static str,
    key: String,
}

/// Why a checkpoint is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckpointReason {
    Start,
    Periodic,
    Rotate,
    Shutdown,
}

impl CheckpointReason {
    fn name(self) -> &'static str {
        match self {
            CheckpointReason::Start => "start",
            CheckpointReason::Periodic => "periodic",
            CheckpointReason::Rotate => "rotate",
            CheckpointReason::Shutdown => "shutdown",
        }
    }
}

impl AuditLog {
    /// Opens (or creates) the log, continuing the chain of what is already there, and writes a
    /// signed `start` checkpoint. Fails if the log cannot be written: the server must not start
    /// without its audit trail.
    pub fn open(config: AuditConfig) -> Result<AuditLog, AuditWriteError> {
        let error = |cause| AuditWriteError {
            path: config.path.clone(),
            cause,
        };
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(error)?;
        }
        let key = AuditSigningKey::load_or_create(&config.signing_key).map_err(|cause| {
            AuditWriteError {
                path: config.signing_key.clone(),
                cause,
            }
        })?;
        let (file, len, last) = open_current(&config.path).map_err(error)?;
        let last = match last {
            Some(line) => Some(line),
            None => last_line_of_rotated(&config.path).map_err(error)?,
        };
        let (next_seq, prev) = match last {
            Some(line) => (
                seq_of(&line).map_or(0, |s| s + 1),
                sha256(&[line.as_bytes()]),
            ),
            None => (0, [0u8; 32]),
        };
        let log = AuditLog {
            config,
            key,
            state: Mutex::new(State {
                file: Some(file),
                last_checkpoint: None,
                len,
                next_seq,
                prev,
                since_checkpoint: 0,
                buffer: Vec::new(),
                path_checked: None,
            }),
            queue: Mutex::new(Queue::default()),
            failures: AtomicU64::new(0),
            group_writes: AtomicU64::new(0),
            checkpoint_hook: Mutex::new(None),
        };
        log.checkpoint(CheckpointReason::Start)?;
        Ok(log)
    }

    /// Calls `hook` with each checkpoint once it is on disk (the server anchors it in the vault).
    pub fn on_checkpoint(&self, hook: CheckpointHook) {
        *self
            .checkpoint_hook
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// The sequence number and hash of the last checkpoint written.
    pub fn last_checkpoint(&self) -> Option<(u64, [u8; 32])> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_checkpoint
    }

    /// The hash of the line numbered `seq` in this log's files (current or rotated), if it is
    /// still there.
    pub fn line_hash(&self, seq: u64) -> std::io::Result<Option<[u8; 32]>> {
        let mut files = rotated_files(&self.config.path)?;
        files.push(self.config.path.clone());
        for file in files.iter().rev() {
            let text = match fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut lines = text.lines().filter(|l| !l.is_empty());
            let Some(first) = lines.clone().next() else {
                continue;
            };
            if seq_of(first).is_some_and(|s| s > seq) {
                continue;
            }
            for line in lines.by_ref() {
                if seq_of(line) == Some(seq) {
                    return Ok(Some(sha256(&[line.as_bytes()])));
                }
            }
        }
        Ok(None)
    }

    /// The store generation on the last line of this log's files that records one (an
    /// `unsealed` line), newest file first; `None` if no file holds one.
    pub fn last_store(&self) -> std::io::Result<Option<tresor_core::StoreGeneration>> {
        #[derive(serde::Deserialize)]
        struct WithStore {
            store: Option<tresor_core::StoreGeneration>,
        }
        let mut files = rotated_files(&self.config.path)?;
        files.push(self.config.path.clone());
        for file in files.iter().rev() {
            let text = match fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let found = text
                .lines()
                .rev()
                .filter(|line| line.contains("\"store\":"))
                .find_map(|line| serde_json::from_str::<WithStore>(line).ok()?.store);
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Whether `tresor operator restore` wrote a `restored` line into the current file since the
    /// last `unsealed` line: the store then comes from a backup, and its audit anchor may name
    /// a checkpoint of another log.
    pub fn restored_since_unseal(&self) -> std::io::Result<bool> {
        let text = match fs::read_to_string(&self.config.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        for line in text.lines().rev() {
            if line.contains("\"operation\":\"unsealed\"") {
                return Ok(false);
            }
            if line.contains("\"operation\":\"restored\"") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn notify_checkpoint(&self, checkpoint: Option<(u64, [u8; 32])>) {
        if let Some((seq, hash)) = checkpoint {
            if let Some(hook) = &*self
                .checkpoint_hook
                .lock()
                .unwrap_or_else(|p| p.into_inner())
            {
                hook(seq, hash);
            }
        }
    }

    /// Appends one event. On error nothing was added and the caller must fail the request.
    pub fn record(&self, event: &AuditEvent) -> Result<(), AuditWriteError> {
        self.record_ref(&event.as_ref())
    }

    /// Appends one event given by reference, on this thread, waiting for the disk when its line
    /// brings a checkpoint. On error nothing was added and the caller must fail the request.
    pub fn record_ref(&self, event: &AuditEventRef<'_>) -> Result<(), AuditWriteError> {
        let body = serde_json::to_vec(event).expect("audit lines serialize");
        let checkpointed = self.write_group(&body, &[body.len()])?;
        match checkpointed {
            Some(checkpointed) => self.sync(checkpointed),
            None => Ok(()),
        }
    }

    /// Appends one event with those of the requests writing at the same time (group commit,
    /// see the module's description), returning once its line is written: on error nothing of
    /// this event was added and the caller must fail the request. Every event of a group that
    /// fails is refused.
    pub async fn write(self: &Arc<Self>, event: &AuditEventRef<'_>) -> Result<(), AuditWriteError> {
        let (done, answer) = oneshot::channel();
        // Serialized before the queue is locked: the other worker's requests queue their lines
        // meanwhile instead of waiting for this one's JSON.
        let lead = BODY.with_borrow_mut(|body| {
            body.clear();
            serde_json::to_writer(&mut *body, event).expect("audit lines serialize");
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let pending = &mut queue.pending;
            pending.bodies.extend_from_slice(body);
            pending.ends.push(pending.bodies.len());
            pending.waiters.push(done);
            let lead = !std::mem::replace(&mut queue.leading, true);
            drop(queue);
            if body.capacity() > KEEP_BUFFER_BYTES {
                *body = Vec::new();
            }
            lead
        });
        if lead {
            /// Leads when dropped: also when the request is dropped while it waits to lead, so
            /// the lines queued behind it are not left without a writer.
            struct Lead<'a>(&'a Arc<AuditLog>);
            impl Drop for Lead<'_> {
                fn drop(&mut self) {
                    self.0.lead();
                }
            }
            let lead = Lead(self);
            // Let this worker first run the other requests it has ready: their lines join this
            // group. Without it a worker wrote its own line before it could read the next
            // request, and groups held about one line; with it, about four under `-c 16`
            // (docs/benchmarks.md). The cost is this request's wait for the others' work.
            tokio::task::yield_now().await;
            drop(lead);
        }
        answer.await.unwrap_or_else(|_| {
            Err(self.failed(std::io::Error::other(
                "the audit writer stopped before this line was written",
            )))
        })
    }

    /// Writes groups until no line waits.
    fn lead(self: &Arc<Self>) {
        /// Hands the lead back if writing panics: later lines must not wait for a writer that
        /// is gone (the waiters of the lost group see their answer dropped: refused).
        struct Leading<'a>(&'a Mutex<Queue>);
        impl Drop for Leading<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.lock().unwrap_or_else(|p| p.into_inner()).leading = false;
                }
            }
        }
        let _leading = Leading(&self.queue);
        let mut group = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut queue.spare)
        };
        loop {
            {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.pending.waiters.is_empty() {
                    queue.spare = group;
                    queue.leading = false;
                    return;
                }
                std::mem::swap(&mut queue.pending, &mut group);
            }
            match self.write_group(&group.bodies, &group.ends) {
                Ok(None) => self.answer(group.waiters.drain(..), Ok(())),
                Ok(Some(checkpointed)) => {
                    // The fsync (about a millisecond here) runs on a blocking thread: the next
                    // group need not wait for the disk, only this one's requests do.
                    let waiters = std::mem::take(&mut group.waiters);
                    let log = Arc::clone(self);
                    let finish = move || {
                        let synced = log.sync(checkpointed);
                        log.answer(waiters.into_iter(), synced);
                    };
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => drop(runtime.spawn_blocking(finish)),
                        Err(_) => finish(),
                    }
                }
                Err(error) => self.answer(group.waiters.drain(..), Err(error)),
            }
            group.clear();
        }
    }

    /// Writes the lines of `bodies` (JSON objects ending at `ends`) in one `write`, with a
    /// periodic checkpoint after the line that reaches `checkpoint_every`, and returns that
    /// checkpoint for its `fsync`. On error nothing was written.
    fn write_group(
        &self,
        bodies: &[u8],
        ends: &[usize],
    ) -> Result<Option<Checkpointed>, AuditWriteError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.follow_path(&mut state)?;
        let time = now_rfc3339();
        let mut text = std::mem::take(&mut state.buffer);
        text.clear();
        let (mut seq, mut prev, mut since) = (state.next_seq, state.prev, state.since_checkpoint);
        let mut checkpoint = None;
        let mut start = 0;
        for &end in ends {
            let line = text.len();
            self.event_line(&mut text, seq, &time, &prev, &bodies[start..end]);
            prev = sha256(&[&text[line..]]);
            text.push(b'\n');
            (seq, since, start) = (seq + 1, since + 1, end);
            if since >= self.config.checkpoint_every {
                let line = self.checkpoint_text(seq, &prev, CheckpointReason::Periodic);
                let hash = sha256(&[line.as_bytes()]);
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
                checkpoint = Some((seq, hash));
                (seq, prev, since) = (seq + 1, hash, 0);
            }
        }
        self.group_writes.fetch_add(1, Ordering::Relaxed);
        let written = self.append_lines(&mut state, &text);
        if text.capacity() <= KEEP_BUFFER_BYTES {
            state.buffer = text;
        }
        written?;
        (state.next_seq, state.prev, state.since_checkpoint) = (seq, prev, since);
        let mut checkpointed = None;
        if let Some((seq, hash)) = checkpoint {
            state.last_checkpoint = checkpoint;
            if let Some(file) = &state.file {
                let file = file.try_clone().map_err(|source| self.failed(source))?;
                checkpointed = Some(Checkpointed { file, seq, hash });
            }
        }
        if state.len >= self.config.max_file_bytes {
            self.rotate(&mut state)?;
        }
        Ok(checkpointed)
    }

    /// An event line: the chain's fields, then the event's (`body`, a JSON object).
    fn event_line(&self, text: &mut Vec<u8>, seq: u64, time: &str, prev: &[u8; 32], body: &[u8]) {
        text.extend_from_slice(b"{\"seq\":");
        text.extend_from_slice(itoa_u64(seq, &mut [0u8; 20]));
        text.extend_from_slice(b",\"time\":\"");
        text.extend_from_slice(time.as_bytes());
        text.extend_from_slice(b"\",\"prev\":\"");
        let mut hex = [0u8; 64];
        hex_into(prev, &mut hex);
        text.extend_from_slice(&hex);
        text.push(b'"');
        if let Some(node) = &self.config.node_id {
            text.extend_from_slice(b",\"node\":");
            serde_json::to_writer(&mut *text, node).expect("strings serialize");
        }
        // Every event has fields (`source`, `operation`, `outcome`, `latency_us` always), so
        // its object is `{` then at least one field.
        text.push(b',');
        text.extend_from_slice(&body[1..]);
    }

    /// Fsyncs a checkpoint's file and tells the hook.
    fn sync(&self, checkpointed: Checkpointed) -> Result<(), AuditWriteError> {
        checkpointed
            .file
            .sync_data()
            .map_err(|source| self.failed(source))?;
        self.notify_checkpoint(Some((checkpointed.seq, checkpointed.hash)));
        Ok(())
    }

    /// Answers every request of a group with its result: a failure refuses them all (each
    /// counted: each is a line that could not be written).
    fn answer(
        &self,
        mut waiters: impl Iterator<Item = oneshot::Sender<Result<(), AuditWriteError>>>,
        result: Result<(), AuditWriteError>,
    ) {
        let first = waiters.next();
        for waiter in waiters {
            let again = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(self.failed(std::io::Error::new(
                    error.cause.kind(),
                    error.cause.to_string(),
                ))),
            };
            let _ = waiter.send(again);
        }
        if let Some(first) = first {
            let _ = first.send(result);
        }
    }

    /// Writes a signed checkpoint now (`Shutdown` on the way out).
    pub(crate) fn checkpoint(&self, reason: CheckpointReason) -> Result<(), AuditWriteError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Rare, and the last line of a file at shutdown: always to the file at the path.
        state.path_checked = None;
        self.follow_path(&mut state)?;
        self.write_checkpoint(&mut state, reason)?;
        let checkpointed = state.last_checkpoint;
        drop(state);
        self.notify_checkpoint(checkpointed);
        Ok(())
    }

    /// Closes the log with a signed `shutdown` checkpoint.
    pub fn close(&self) -> Result<(), AuditWriteError> {
        self.checkpoint(CheckpointReason::Shutdown)
    }

    /// The checkpoint key's public half, base64.
    pub fn public_key(&self) -> String {
        self.key.public_base64()
    }

    /// Lines that could not be written since start.
    pub fn write_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// `write`s of event lines since start: one per group of lines.
    pub fn group_writes(&self) -> u64 {
        self.group_writes.load(Ordering::Relaxed)
    }

    /// The current log file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Writes a checkpoint line and fsyncs the file.
    fn write_checkpoint(
        &self,
        state: &mut State,
        reason: CheckpointReason,
    ) -> Result<(), AuditWriteError> {
        self.checkpoint_line(state, reason)?;
        if let Some(file) = &state.file {
            file.sync_data().map_err(|source| self.failed(source))?;
        }
        Ok(())
    }

    /// Writes a checkpoint line (not yet fsynced).
    fn checkpoint_line(
        &self,
        state: &mut State,
        reason: CheckpointReason,
    ) -> Result<(), AuditWriteError> {
        let signed = self.checkpoint_text(state.next_seq, &state.prev, reason);
        let seq = state.next_seq;
        self.append(state, &mut signed.into_bytes())?;
        state.since_checkpoint = 0;
        state.last_checkpoint = Some((seq, state.prev));
        Ok(())
    }

    /// A signed checkpoint line numbered `seq` after the line hashed `prev`.
    fn checkpoint_text(&self, seq: u64, prev: &[u8; 32], reason: CheckpointReason) -> String {
        let line = CheckpointLine {
            seq,
            time: now_rfc3339(),
            prev: hex(prev),
            kind: "checkpoint",
            reason: reason.name(),
            key: self.key.public_base64(),
        };
        let unsigned = serde_json::to_string(&line).expect("serializes");
        let signature = self.key.sign(&checkpoint_message(unsigned.as_bytes()));
        with_signature(&unsigned, &STANDARD.encode(signature))
    }

    /// Makes sure the next line goes to the file now at the configured path, checked at most
    /// every [`PATH_CHECK_INTERVAL`]. If the open file was moved away (rotated by an outside
    /// tool, or replaced), it is closed with a signed `rotate` checkpoint (when it still takes
    /// one) and the path is opened afresh; the chain continues there.
    fn follow_path(&self, state: &mut State) -> Result<(), AuditWriteError> {
        let now = Instant::now();
        if state.file.is_some()
            && state
                .path_checked
                .is_some_and(|at| now.saturating_duration_since(at) < PATH_CHECK_INTERVAL)
        {
            return Ok(());
        }
        if let Some(file) = &state.file {
            // Two `stat`s per check: the path's and the open file's (reused below).
            let open = file.metadata();
            let at_path = fs::metadata(&self.config.path);
            if let (Ok(open), Ok(at_path)) = (&open, &at_path) {
                if open.dev() == at_path.dev() && open.ino() == at_path.ino() {
                    // Cut short in place (logrotate's copytruncate): the lines continue at its
                    // real end, and a failed write must be rolled back to there, not to the old
                    // length.
                    if open.is_file() && open.len() < state.len {
                        state.len = open.len();
                    }
                    state.path_checked = Some(now);
                    return Ok(());
                }
            }
            tracing::info!(path = %self.config.path.display(), "audit log was moved away; reopening the path");
            // A device (say /dev/full, rehearsing a full disk) has no file to close.
            let regular = open.is_ok_and(|m| m.is_file());
            if regular
                && self
                    .write_checkpoint(state, CheckpointReason::Rotate)
                    .is_err()
            {
                tracing::warn!("the moved-away audit log did not take its closing checkpoint");
            }
            state.file = None;
        }
        let (file, len, _) =
            open_current(&self.config.path).map_err(|source| self.failed(source))?;
        state.file = Some(file);
        state.len = len;
        state.path_checked = Some(now);
        Ok(())
    }

    /// After a failed write: cuts off whatever part of it got through.
    fn roll_back(state: &mut State) {
        let Some(file) = state.file.as_mut() else {
            return;
        };
        let cut = match file.metadata() {
            // Cut short in place (copytruncate) since the last check of the path: its complete
            // lines end at its last newline, not at the old length (which would pad it with
            // zeros).
            Ok(open) if open.is_file() && open.len() < state.len => {
                complete_len(file).and_then(|len| file.set_len(len).map(|()| len))
            }
            _ => file.set_len(state.len).map(|()| state.len),
        };
        match cut {
            Ok(len) => state.len = len,
            // If even cutting fails, reopen and repair on the next attempt.
            Err(_) => state.file = None,
        }
    }

    /// Writes `text` and a newline in one `write`, or rolls back to the last complete line.
    fn append(&self, state: &mut State, text: &mut Vec<u8>) -> Result<(), AuditWriteError> {
        let Some(file) = state.file.as_mut() else {
            return Err(self.failed(std::io::Error::other(
                "the audit log is not open (it could not be reopened)",
            )));
        };
        let hash = sha256(&[text.as_slice()]);
        text.push(b'\n');
        match file.write_all(text) {
            Ok(()) => {
                state.len += text.len() as u64;
                state.prev = hash;
                state.next_seq += 1;
                state.since_checkpoint += 1;
                Ok(())
            }
            Err(source) => {
                Self::roll_back(state);
                Err(self.failed(source))
            }
        }
    }

    /// Writes complete lines (each with its newline) in one `write`, or rolls back to the last
    /// complete line before them.
    fn append_lines(&self, state: &mut State, text: &[u8]) -> Result<(), AuditWriteError> {
        let Some(file) = state.file.as_mut() else {
            return Err(self.failed(std::io::Error::other(
                "the audit log is not open (it could not be reopened)",
            )));
        };
        match file.write_all(text) {
            Ok(()) => {
                state.len += text.len() as u64;
                Ok(())
            }
            Err(source) => {
                Self::roll_back(state);
                Err(self.failed(source))
            }
        }
    }

    fn rotate(&self, state: &mut State) -> Result<(), AuditWriteError> {
        self.write_checkpoint(state, CheckpointReason::Rotate)?;
        let rotated = next_rotated_name(&self.config.path).map_err(|source| self.failed(source))?;
        fs::rename(&self.config.path, &rotated).map_err(|source| self.failed(source))?;
        let (file, len, _) =
            open_current(&self.config.path).map_err(|source| self.failed(source))?;
        state.file = Some(file);
        state.len = len;
        Ok(())
    }

    fn failed(&self, cause: std::io::Error) -> AuditWriteError {
        self.failures.fetch_add(1, Ordering::Relaxed);
        AuditWriteError {
            path: self.config.path.clone(),
            cause,
        }
    }
}

/// Opens the current file for appending, cutting off a partial last line (a crash mid-write),
/// and returns it with its length and its last complete line.
fn open_current(path: &Path) -> std::io::Result<(File, u64, Option<String>)> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    // A device or pipe (say /dev/full, to rehearse a full disk) has no history to continue.
    if !file.metadata()?.is_file() {
        return Ok((file, 0, None));
    }
    let (complete, bytes) = read_complete(&mut file)?;
    if complete < bytes.len() {
        file.set_len(complete as u64)?;
    }
    let body = &bytes[..complete];
    let last = body
        .strip_suffix(b"\n")
        .map(|b| b.rsplit(|c| *c == b'\n').next().unwrap_or(b))
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned());
    Ok((file, complete as u64, last))
}

/// The file's bytes, and how many of them are complete lines (up to the last newline).
fn read_complete(file: &mut File) -> std::io::Result<(usize, Vec<u8>)> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Ok((complete, bytes))
}

/// The length of the file's complete lines.
fn complete_len(file: &mut File) -> std::io::Result<u64> {
    Ok(read_complete(file)?.0 as u64)
}

/// Rotated files, oldest first.
pub(crate) fn rotated_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{name}.");
    let mut numbered: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file_name = e.file_name().into_string().ok()?;
            let number = file_name.strip_prefix(&prefix)?.parse::<u64>().ok()?;
            Some((number, e.path()))
        })
        .collect();
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, p)| p).collect())
}

fn next_rotated_name(path: &Path) -> std::io::Result<PathBuf> {
    let last = rotated_files(path)?
        .last()
        .and_then(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .and_then(|e| e.parse::<u64>().ok())
        })
        .unwrap_or(0);
    Ok(PathBuf::from(format!("{}.{:06}", path.display(), last + 1)))
}

fn last_line_of_rotated(path: &Path) -> std::io::Result<Option<String>> {
    let Some(newest) = rotated_files(path)?.pop() else {
        return Ok(None);
    };
    let text = fs::read_to_string(newest)?;
    Ok(text
        .lines()
        .rev()
        .find(|l| !l.is_empty())
        .map(str::to_owned))
}

fn seq_of(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// `n` in decimal, in `buffer`.
fn itoa_u64(mut n: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

/// The current time as RFC 3339 UTC with milliseconds.
pub(crate) fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    tresor_wire::time::rfc3339(now.as_secs(), now.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `files` checked as `tresor audit verify` checks them, with the key beside them in `dir`.
    fn verified(dir: &Path, files: &[PathBuf]) -> super::super::VerifyReport {
        super::super::verify_files(
            files,
            &dir.join("audit.pub"),
            super::super::VerifyOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn periodic_checkpoints_fsynced_outside_the_lock_keep_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(AuditConfig {
            path: dir.path().join("audit.log"),
            signing_key: dir.path().join("audit.key"),
            max_file_bytes: 1 << 20,
            checkpoint_every: 3,
            node_id: None,
        })
        .unwrap();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let log = &log;
                scope.spawn(move || {
                    for i in 0..25 {
                        let event = AuditEvent {
                            request_id: format!("{t}-{i}"),
                            operation: "encrypt".into(),
                            ..AuditEvent::default()
                        };
                        log.record(&event).unwrap();
                    }
                });
            }
        });
        log.close().unwrap();
        let text = fs::read_to_string(dir.path().join("audit.log")).unwrap();
        let periodic = text.lines().filter(|l| l.contains("\"periodic\"")).count();
        assert!(periodic >= 100 / 3, "{periodic} periodic checkpoints");
        let report = verified(dir.path(), &[dir.path().join("audit.log")]);
        assert_eq!(report.lines, text.lines().count() as u64);
    }

    fn open_log(dir: &Path, checkpoint_every: u64) -> Arc<AuditLog> {
        Arc::new(
            AuditLog::open(AuditConfig {
                path: dir.join("audit.log"),
                signing_key: dir.join("audit.key"),
                max_file_bytes: 1 << 30,
                checkpoint_every,
                node_id: Some("node \"a\"".into()),
            })
            .unwrap(),
        )
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Starts `count` requests writing their lines while the log is held, and returns once
    /// every one has queued its line (all but the first wait in the queue; the first leads and
    /// waits for the log): so they are written as two groups when the log is let go.
    fn queue_while_held(
        runtime: &tokio::runtime::Runtime,
        log: &Arc<AuditLog>,
        count: usize,
        prefix: &'static str,
    ) -> Vec<tokio::task::JoinHandle<(String, Result<(), AuditWriteError>)>> {
        let spawn = |i: usize| {
            let log = Arc::clone(log);
            runtime.spawn(async move {
                let id = format!("{prefix}-{i}");
                let event = AuditEventRef {
                    request_id: &id,
                    source: "127.0.0.1:1",
                    operation: "encrypt",
                    ..AuditEventRef::default()
                };
                let result = log.write(&event).await;
                (id, result)
            })
        };
        let wait = |what: &str, done: &dyn Fn(&Queue) -> bool| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !done(&log.queue.lock().unwrap()) {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        // The first leads alone: once it has taken its own line and waits for the log, the
        // others queue behind it (spawned together, some could otherwise join its group).
        let mut tasks = vec![spawn(0)];
        wait("the first request did not lead", &|q| {
            q.leading && q.pending.waiters.is_empty()
        });
        tasks.extend((1..count).map(spawn));
        wait("requests did not queue", &|q| {
            q.pending.waiters.len() == count - 1
        });
        tasks
    }

    /// Issue 18: many concurrent requests, their lines written in groups: the chain and the
    /// checkpoints verify, and every answered request's line is in the log, once.
    #[test]
    fn concurrent_lines_written_in_groups_keep_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), 7);
        let runtime = runtime();
        let before = log.group_writes();
        let held = log.state.lock().unwrap();
        let tasks = queue_while_held(&runtime, &log, 40, "held");
        drop(held);
        let mut answered = Vec::new();
        for task in tasks {
            let (id, result) = runtime.block_on(task).unwrap();
            result.unwrap();
            answered.push(id);
        }
        assert_eq!(
            log.group_writes() - before,
            2,
            "40 queued lines, two groups"
        );
        // Then free-running: 16 tasks of 50 lines each.
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let log = Arc::clone(&log);
                runtime.spawn(async move {
                    let mut ids = Vec::new();
                    for i in 0..50 {
                        let id = format!("run-{t}-{i}");
                        let event = AuditEventRef {
                            request_id: &id,
                            source: "127.0.0.1:2",
                            operation: "decrypt",
                            input_hmacs: super::super::InputHmacs::Raw(&[[0xab; 16]]),
                            ..AuditEventRef::default()
                        };
                        log.write(&event).await.unwrap();
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        for task in tasks {
            answered.extend(runtime.block_on(task).unwrap());
        }
        drop(runtime);
        log.close().unwrap();
        let text = fs::read_to_string(dir.path().join("audit.log")).unwrap();
        let report = verified(dir.path(), &[dir.path().join("audit.log")]);
        assert_eq!(report.lines, text.lines().count() as u64);
        let periodic = text.lines().filter(|l| l.contains("\"periodic\"")).count();
        assert_eq!(periodic, 840 / 7, "a periodic checkpoint every 7 lines");
        let ids: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let line: serde_json::Value = serde_json::from_str(l).unwrap();
                line["request_id"].as_str().map(str::to_owned)
            })
            .collect();
        assert_eq!(ids.len(), answered.len());
        let mut sorted_ids = ids.clone();
        sorted_ids.sort();
        answered.sort();
        assert_eq!(
            sorted_ids, answered,
            "each answered request has its line, once"
        );
    }

    /// Issue 18: a group whose `write` fails refuses every request in it, and none of their
    /// lines is in the log; the log takes lines again once the disk does.
    #[test]
    fn a_failed_group_write_refuses_every_request_of_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), 1000);
        let runtime = runtime();
        let path = dir.path().join("audit.log");
        let moved = dir.path().join("audit.log.moved");
        let held = log.state.lock().unwrap();
        let tasks = queue_while_held(&runtime, &log, 20, "refused");
        // The disk is full: the path now leads to /dev/full, which the writer sees at its next
        // check of the path.
        fs::rename(&path, &moved).unwrap();
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        std::thread::sleep(PATH_CHECK_INTERVAL + std::time::Duration::from_millis(20));
        drop(held);
        for task in tasks {
            let (id, result) = runtime.block_on(task).unwrap();
            let error = result.expect_err(&id).to_string();
            assert!(error.contains("cannot be written"), "{error}");
        }
        assert_eq!(log.write_failures(), 20);
        fs::remove_file(&path).unwrap();
        let event = AuditEventRef {
            request_id: "after",
            source: "127.0.0.1:3",
            operation: "encrypt",
            ..AuditEventRef::default()
        };
        runtime.block_on(log.write(&event)).unwrap();
        log.close().unwrap();
        let files = [moved, path];
        let mut text = String::new();
        for file in &files {
            text.push_str(&fs::read_to_string(file).unwrap());
        }
        assert!(!text.contains("refused-"), "{text}");
        assert!(text.contains("\"request_id\":\"after\""), "{text}");
        verified(dir.path(), &files);
    }

    fn write_line(runtime: &tokio::runtime::Runtime, log: &Arc<AuditLog>, id: &str) {
        let event = AuditEventRef {
            request_id: id,
            source: "127.0.0.1:4",
            operation: "encrypt",
            ..AuditEventRef::default()
        };
        runtime.block_on(log.write(&event)).unwrap();
    }

    fn request_ids(file: &Path) -> Vec<String> {
        fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let line: serde_json::Value = serde_json::from_str(l).unwrap();
                line["request_id"].as_str().map(str::to_owned)
            })
            .collect()
    }

    /// Issue 18: the path is checked once per interval, not before every write. A log moved
    /// away takes the lines written before the check is due, then its `rotate` checkpoint; the
    /// first write after the interval goes to the file at the path. The chain runs through both.
    #[test]
    fn a_moved_log_is_followed_at_the_next_check_of_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), 1000);
        let runtime = runtime();
        let path = dir.path().join("audit.log");
        let moved = dir.path().join("audit.log.1");
        write_line(&runtime, &log, "before");
        // Not due (as if just checked, for as long as the test takes).
        log.state.lock().unwrap().path_checked =
            Some(Instant::now() + std::time::Duration::from_secs(3600));
        fs::rename(&path, &moved).unwrap();
        write_line(&runtime, &log, "not-due");
        assert!(
            !path.exists(),
            "the path was reopened before the check was due"
        );
        // Checked now, and the interval passes.
        log.state.lock().unwrap().path_checked = Some(Instant::now());
        std::thread::sleep(PATH_CHECK_INTERVAL + std::time::Duration::from_millis(20));
        write_line(&runtime, &log, "due");
        drop(runtime);
        log.close().unwrap();
        assert_eq!(request_ids(&moved), ["before", "not-due"]);
        assert_eq!(request_ids(&path), ["due"]);
        let closing: serde_json::Value =
            serde_json::from_str(fs::read_to_string(&moved).unwrap().lines().last().unwrap())
                .unwrap();
        assert_eq!(closing["reason"], "rotate", "{closing}");
        verified(dir.path(), &[moved, path]);
    }

    /// Issue 18: a request that would lead its group is dropped (its connection closed) while
    /// it lets the others queue: it writes the group as it goes, so the requests queued behind
    /// it are answered, not left waiting for a writer that is gone.
    #[test]
    fn a_leader_dropped_before_it_writes_still_writes_its_group() {
        use std::task::{Context, Poll, Waker};
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), 1000);
        let mut context = Context::from_waker(Waker::noop());
        let event = |id| AuditEventRef {
            request_id: id,
            source: "127.0.0.1:5",
            operation: "encrypt",
            ..AuditEventRef::default()
        };
        let (first, second) = (event("dropped-leader"), event("queued"));
        let mut leader = Box::pin(log.write(&first));
        assert!(
            leader.as_mut().poll(&mut context).is_pending(),
            "led at once"
        );
        let mut queued = Box::pin(log.write(&second));
        assert!(queued.as_mut().poll(&mut context).is_pending());
        assert_eq!(log.queue.lock().unwrap().pending.waiters.len(), 2);
        drop(leader);
        match queued.as_mut().poll(&mut context) {
            Poll::Ready(result) => result.unwrap(),
            Poll::Pending => panic!("the queued line was left without a writer"),
        }
        drop(queued);
        log.close().unwrap();
        let path = dir.path().join("audit.log");
        assert_eq!(request_ids(&path), ["dropped-leader", "queued"]);
        assert!(!log.queue.lock().unwrap().leading);
    }

    /// The line format is that of the chain fields and the event flattened into one object, as
    /// lines have always been written.
    #[test]
    fn an_event_line_is_the_chain_fields_then_the_event() {
        #[derive(Serialize)]
        struct Flattened<'a> {
            seq: u64,
            time: &'a str,
            prev: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            node: Option<&'a str>,
            #[serde(flatten)]
            event: &'a AuditEvent,
        }
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), 1000);
        let event = AuditEvent {
            request_id: "r\"1".into(),
            principal: "spiffe://x/y".into(),
            source: "[::1]:5".into(),
            operation: "approval-executed".into(),
            tenant: Some("t".into()),
            key: Some("k/é".into()),
            key_version: Some(3),
            batch_items: 2,
            batch_errors: 1,
            outcome: Some(super::super::Outcome::Ok),
            status: 207,
            reason: "why\n".into(),
            latency_us: 42,
            input_hmacs: vec!["00ff".into()],
            custodian: Some(super::super::CustodianRef {
                name: "alice".into(),
                fingerprint: "ab:cd".into(),
            }),
            approval: None,
            store: None,
        };
        let body = serde_json::to_vec(&event.as_ref()).unwrap();
        let prev = [7u8; 32];
        let mut line = Vec::new();
        log.event_line(&mut line, 12345, "2026-12-07T10:00:00.000Z", &prev, &body);
        let expected = serde_json::to_vec(&Flattened {
            seq: 12345,
            time: "2026-12-07T10:00:00.000Z",
            prev: &hex(&prev),
            node: log.config.node_id.as_deref(),
            event: &event,
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        // A bare event: only the fields that are always there.
        let bare = AuditEventRef::default();
        let body = serde_json::to_vec(&bare).unwrap();
        assert_eq!(
            body,
            br#"{"source":"","operation":"","outcome":null,"latency_us":0}"#
        );
    }
}
