//! `tresor audit verify`: replays the chain of one or more log files (oldest first) and checks
//! every checkpoint signature. Reports the first line that was altered, removed, reordered or
//! truncated away, naming file and line.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;

use super::line::{checkpoint_message, hex, unhex32};
use super::signing_key::parse_public;
use crate::crypto::kdf::sha256;

/// A log that verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines checked (events and checkpoints).
    pub lines: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// The hash the first file continues from (zeros for the very first file).
    pub starts_from: String,
    /// Lines after the last checkpoint, when allowed (a log still being written).
    pub unsigned_tail: u64,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OK: {} lines, {} signed checkpoints",
            self.lines, self.checkpoints
        )?;
        if self.starts_from != "0".repeat(64) {
            write!(
                f,
                "; continues from an earlier file (hash {})",
                self.starts_from
            )?;
        }
        if self.unsigned_tail > 0 {
            write!(
                f,
                "; {} line(s) after the last checkpoint are not yet signed",
                self.unsigned_tail
            )?;
        }
        Ok(())
    }
}

/// Why a log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The key file cannot be used.
    #[error("{0}: not an audit public key")]
    BadKey(PathBuf),
    /// A file cannot be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A line breaks the log's integrity.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number in that file.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Verifies `files` (oldest first) against the audit public key in `key_file`. With
/// `allow_open_end`, a last file that does not end in a `shutdown` checkpoint (a log still
/// being written) is accepted and its unsigned tail counted.
pub fn verify_files(
    files: &[PathBuf],
    key_file: &Path,
    allow_open_end: bool,
) -> Result<VerifyReport, VerifyError> {
    let key_text = std::fs::read_to_string(key_file).map_err(|e| VerifyError::Read {
        path: key_file.to_owned(),
        message: e.to_string(),
    })?;
    let key = parse_public(&key_text).ok_or_else(|| VerifyError::BadKey(key_file.to_owned()))?;
    let mut prev: Option<[u8; 32]> = None;
    let mut expected_seq: Option<u64> = None;
    let mut report = VerifyReport {
        lines: 0,
        checkpoints: 0,
        starts_from: String::new(),
        unsigned_tail: 0,
    };
    let mut last: Option<(PathBuf, usize, String)> = None;
    for path in files {
        let bytes = std::fs::read(path).map_err(|e| VerifyError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let line = bytes.iter().filter(|b| **b == b'\n').count() + 1;
            return Err(fail(
                path,
                line,
                "the last line is incomplete: the file was truncated",
            ));
        }
        let text = String::from_utf8(bytes).map_err(|_| VerifyError::Read {
            path: path.clone(),
            message: "not UTF-8".into(),
        })?;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let value: Value = serde_json::from_str(line)
                .map_err(|_| fail(path, number, "not a JSON audit line (altered?)"))?;
            let seq = value
                .get("seq")
                .and_then(Value::as_u64)
                .ok_or_else(|| fail(path, number, "no sequence number"))?;
            let line_prev = value
                .get("prev")
                .and_then(Value::as_str)
                .and_then(unhex32)
                .ok_or_else(|| fail(path, number, "no valid `prev` hash"))?;
            match prev {
                None => report.starts_from = hex(&line_prev),
                Some(expected) if expected != line_prev => {
                    return Err(fail(
                        path,
                        number,
                        &format!(
                            "does not follow the line before it: line {} or this line was altered, or lines were removed or reordered between them",
                            number.saturating_sub(1).max(1)
                        ),
                    ));
                }
                Some(_) => {}
            }
            if let Some(expected) = expected_seq {
                if seq != expected {
                    let what = if seq > expected {
                        "missing"
                    } else {
                        "out of order"
                    };
                    return Err(fail(
                        path,
                        number,
                        &format!(
                            "sequence number {seq} where {expected} was expected: lines {what}"
                        ),
                    ));
                }
            }
            if value.get("type").and_then(Value::as_str) == Some("checkpoint") {
                check_signature(&key, &value, seq, &line_prev)
                    .map_err(|reason| fail(path, number, &reason))?;
                report.checkpoints += 1;
                report.unsigned_tail = 0;
            } else {
                report.unsigned_tail += 1;
            }
            prev = Some(sha256(&[line.as_bytes()]));
            expected_seq = Some(seq + 1);
            report.lines += 1;
            last = Some((path.clone(), number, line.to_owned()));
        }
    }
    let Some((path, number, line)) = last else {
        return Err(VerifyError::Read {
            path: files.first().cloned().unwrap_or_default(),
            message: "no audit lines".into(),
        });
    };
    let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    let closed = value.get("type").and_then(Value::as_str) == Some("checkpoint")
        && matches!(
            value.get("reason").and_then(Value::as_str),
            Some("shutdown" | "rotate")
        );
    if !closed && !allow_open_end {
        return Err(fail(
            &path,
            number + 1,
            "the log ends without its closing checkpoint: lines after line {number} were truncated away (or the log is still being written: use --allow-open)",
        ));
    }
    Ok(report)
}

fn check_signature(
    key: &VerifyingKey,
    value: &Value,
    seq: u64,
    prev: &[u8; 32],
) -> Result<(), String> {
    let signature = value
        .get("signature")
        .and_then(Value::as_str)
        .and_then(|s| STANDARD.decode(s).ok())
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or("checkpoint without a valid signature")?;
    key.verify_strict(&checkpoint_message(seq, prev), &signature)
        .map_err(|_| "checkpoint signature does not verify: the chain before it was altered, or another key signed it".to_owned())
}

fn fail(path: &Path, line: usize, reason: &str) -> VerifyError {
    VerifyError::Line {
        path: path.to_owned(),
        line,
        reason: reason.replace("{number}", &line.saturating_sub(1).to_string()),
    }
}
