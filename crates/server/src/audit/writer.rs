//! Appends audit lines to a file: the hash chain, periodic signed checkpoints, size-based
//! rotation that keeps the chain, and self-healing after a failed write.
//!
//! Every line reaches the operating system (one `write`) before [`AuditLog::record`] returns,
//! so the caller can answer only after its line is in the log. A failed write is rolled back to
//! the last complete line; until a write succeeds again every record fails, and the API answers
//! 503 without acting. Checkpoints are also `fsync`ed: a periodic one after the log's lock is
//! released (the request that wrote it waits for the disk, the others do not).
//!
//! Before each line the writer checks that its open file is still the one at the configured
//! path: when an outside tool (logrotate) has moved it away, the old file gets a signed `rotate`
//! checkpoint and the writer reopens the path, continuing the chain there.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::line::{AuditEvent, checkpoint_message, hex, with_signature};
use super::signing_key::AuditSigningKey;
use tresor_crypto::sha256;

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
    failures: AtomicU64,
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
}

/// A line buffer larger than this (a big batch's line) is not kept for the next record.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Serialize)]
struct EventLine<'a> {
    seq: u64,
    time: &'a str,
    prev: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(flatten)]
    event: &'a AuditEvent,
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
            }),
            failures: AtomicU64::new(0),
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
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.follow_path(&mut state)?;
        let time = now_rfc3339();
        let prev = hex(&state.prev);
        let mut text = std::mem::take(&mut state.buffer);
        text.clear();
        let line = EventLine {
            seq: state.next_seq,
            time: &time,
            prev: &prev,
            node: self.config.node_id.as_deref(),
            event,
        };
        serde_json::to_writer(&mut text, &line).expect("audit lines serialize");
        let appended = self.append(&mut state, &mut text);
        if text.capacity() <= KEEP_BUFFER_BYTES {
            state.buffer = text;
        }
        appended?;
        let mut sync = None;
        let mut checkpointed = None;
        if state.since_checkpoint >= self.config.checkpoint_every {
            self.checkpoint_line(&mut state, CheckpointReason::Periodic)?;
            // The fsync (about a millisecond here) runs after the lock is released: every other
            // request would otherwise wait for the disk. This request still waits for it.
            sync = match &state.file {
                Some(file) => Some(file.try_clone().map_err(|source| self.failed(source))?),
                None => None,
            };
            checkpointed = state.last_checkpoint;
        }
        if state.len >= self.config.max_file_bytes {
            self.rotate(&mut state)?;
        }
        drop(state);
        if let Some(file) = sync {
            file.sync_data().map_err(|source| self.failed(source))?;
        }
        self.notify_checkpoint(checkpointed);
        Ok(())
    }

    /// Writes a signed checkpoint now (`Shutdown` on the way out).
    pub(crate) fn checkpoint(&self, reason: CheckpointReason) -> Result<(), AuditWriteError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
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
        let line = CheckpointLine {
            seq: state.next_seq,
            time: now_rfc3339(),
            prev: hex(&state.prev),
            kind: "checkpoint",
            reason: reason.name(),
            key: self.key.public_base64(),
        };
        let unsigned = serde_json::to_string(&line).expect("serializes");
        let signature = self.key.sign(&checkpoint_message(unsigned.as_bytes()));
        let signed = with_signature(&unsigned, &STANDARD.encode(signature));
        let seq = state.next_seq;
        self.append(state, &mut signed.into_bytes())?;
        state.since_checkpoint = 0;
        state.last_checkpoint = Some((seq, state.prev));
        Ok(())
    }

    /// Makes sure the next line goes to the file now at the configured path. If the open file
    /// was moved away (rotated by an outside tool, or replaced), it is closed with a signed
    /// `rotate` checkpoint (when it still takes one) and the path is opened afresh; the chain
    /// continues there.
    fn follow_path(&self, state: &mut State) -> Result<(), AuditWriteError> {
        if let Some(file) = &state.file {
            // Two `stat`s per line: the path's and the open file's (reused below).
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
        Ok(())
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
                // Cut off whatever part of the line got through; if even that fails, reopen and
                // repair on the next attempt.
                if file.set_len(state.len).is_err() {
                    state.file = None;
                }
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
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
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
        let report = super::super::verify_files(
            &[dir.path().join("audit.log")],
            &dir.path().join("audit.pub"),
            super::super::VerifyOptions::default(),
        )
        .unwrap();
        assert_eq!(report.lines, text.lines().count() as u64);
    }
}
