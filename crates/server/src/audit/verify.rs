//! `tresor audit verify`: replays the chain of one or more log files (oldest first) and checks
//! every checkpoint signature. Reports the first line that was altered, removed, reordered or
//! truncated away, naming file and line.
//!
//! Where the chain breaks between lines N-1 and N, the line after decides which one changed: if
//! N is intact (a checkpoint whose signature verifies, or the next line's `prev` is N's hash),
//! then N-1 was altered; otherwise N itself was. A gap or step back in sequence numbers names the
//! line where lines are missing or out of order.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tresor_crypto::sign::VerifyingKey;

use super::line::{checkpoint_message, hex, split_signature, unhex32};
use super::signing_key::parse_public;
use tresor_crypto::sha256;

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
    /// The last line is a `rotate` checkpoint: later files exist but were not given.
    pub ends_at_rotation: bool,
}

/// What `verify_files` accepts besides a complete log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The log may end without its closing `shutdown` checkpoint (it is still being written, or
    /// the files after a rotation are not given).
    pub allow_open_end: bool,
    /// The first file may start after sequence number 0 (earlier files are not given).
    pub allow_partial_start: bool,
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
        if self.ends_at_rotation {
            write!(
                f,
                "; ends at a rotation (the files after it were not given)"
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
    /// A file cannot be read, or holds no lines.
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

/// One line of the log, as read.
struct Entry<'a> {
    file: usize,
    number: usize,
    text: &'a str,
}

/// What a line says about its place in the chain.
struct Parsed {
    seq: u64,
    prev: [u8; 32],
    /// `Some(reason)` for a checkpoint (whose signature has been checked).
    checkpoint: Option<String>,
}

/// Verifies `files` (oldest first) against the audit public key in `key_file`.
///
/// A log verifies when every line is a JSON audit line, each line's `prev` is the hash of the
/// line before it and its `seq` one more, the first line is sequence 0 with a zero `prev`
/// (unless `allow_partial_start`), every checkpoint's signature verifies under the key, and the
/// last line is a `shutdown` checkpoint (unless `allow_open_end`).
pub fn verify_files(
    files: &[PathBuf],
    key_file: &Path,
    options: VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let key_text = std::fs::read_to_string(key_file).map_err(|e| VerifyError::Read {
        path: key_file.to_owned(),
        message: e.to_string(),
    })?;
    let key = parse_public(&key_text).ok_or_else(|| VerifyError::BadKey(key_file.to_owned()))?;
    if files.is_empty() {
        return Err(VerifyError::Read {
            path: PathBuf::new(),
            message: "no log files given".into(),
        });
    }
    let mut contents = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(path).map_err(|e| VerifyError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if bytes.is_empty() {
            return Err(VerifyError::Read {
                path: path.clone(),
                message: "empty: no audit lines (the file was truncated, or is not an audit log)"
                    .into(),
            });
        }
        contents.push(bytes);
    }
    let mut entries = Vec::new();
    for (file, bytes) in contents.iter().enumerate() {
        let path = &files[file];
        // Split on `\n` only: a `\r` (or any other byte) added to a line is part of the line
        // and changes its hash.
        let mut rest: &[u8] = bytes;
        let mut number = 0;
        while !rest.is_empty() {
            number += 1;
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                return Err(fail(
                    path,
                    number,
                    "the last line is incomplete: the file was truncated (or the line altered)",
                ));
            };
            let text = std::str::from_utf8(&rest[..end])
                .map_err(|_| fail(path, number, "not UTF-8 text: this line was altered"))?;
            entries.push(Entry { file, number, text });
            rest = &rest[end + 1..];
        }
    }

    let mut report = VerifyReport {
        lines: 0,
        checkpoints: 0,
        starts_from: String::new(),
        unsigned_tail: 0,
        ends_at_rotation: false,
    };
    let mut before: Option<(Parsed, [u8; 32])> = None;
    for (index, entry) in entries.iter().enumerate() {
        let path = &files[entry.file];
        let here = |reason: &str| fail(path, entry.number, reason);
        let parsed = parse(&key, entry.text).map_err(|reason| here(&reason))?;
        let hash = sha256(&[entry.text.as_bytes()]);
        match &before {
            None => {
                report.starts_from = hex(&parsed.prev);
                if parsed.seq == 0 && parsed.prev != [0u8; 32] {
                    return Err(here(
                        "the first line (sequence 0) must have a zero `prev`: this line was altered",
                    ));
                }
                if parsed.seq != 0 && !options.allow_partial_start {
                    return Err(here(&format!(
                        "the log starts at sequence number {}, not 0: the lines before it are missing (give every file, oldest first, or --allow-partial-start to check only these)",
                        parsed.seq
                    )));
                }
            }
            Some((last, last_hash)) => {
                let expected = last.seq.saturating_add(1);
                if parsed.seq != expected && parsed.prev == *last_hash {
                    return Err(here(&format!(
                        "sequence number {} where {expected} was expected, though the line is chained to the one before it: this line was altered",
                        parsed.seq
                    )));
                }
                if parsed.seq > expected {
                    let comes_later = entries[index + 1..]
                        .iter()
                        .any(|later| seq_of(later.text) == Some(expected));
                    return Err(here(&if comes_later {
                        format!(
                            "sequence number {} where {expected} was expected, and {expected} comes later: lines were reordered here",
                            parsed.seq
                        )
                    } else {
                        format!(
                            "sequence number {} where {expected} was expected: {} line(s) before this one were removed",
                            parsed.seq,
                            parsed.seq - expected
                        )
                    }));
                }
                if parsed.seq < expected {
                    return Err(here(&format!(
                        "sequence number {} after {}: lines were reordered or repeated here",
                        parsed.seq, last.seq
                    )));
                }
                if parsed.prev != *last_hash {
                    // Which side of the break changed? This line is intact if it is a signed
                    // checkpoint, or if the next line follows it.
                    let intact = parsed.checkpoint.is_some()
                        || entries
                            .get(index + 1)
                            .is_some_and(|next| prev_of(next.text).is_some_and(|p| p == hash));
                    let previous = &entries[index - 1];
                    return Err(if intact {
                        fail(
                            &files[previous.file],
                            previous.number,
                            "this line was altered: the line after it was chained to different contents",
                        )
                    } else if index + 1 < entries.len() {
                        here(
                            "this line was altered: its `prev` is not the hash of the line before it",
                        )
                    } else {
                        here(
                            "does not follow the line before it: this line or the one before it was altered",
                        )
                    });
                }
            }
        }
        if parsed.checkpoint.is_some() {
            report.checkpoints += 1;
            report.unsigned_tail = 0;
        } else {
            report.unsigned_tail += 1;
        }
        report.lines += 1;
        before = Some((parsed, hash));
    }
    let (last, _) = before.expect("at least one line");
    let last_entry = entries.last().expect("at least one line");
    match last.checkpoint.as_deref() {
        Some("shutdown") => {}
        Some("rotate") if options.allow_open_end => report.ends_at_rotation = true,
        _ if options.allow_open_end => {}
        _ => {
            return Err(fail(
                &files[last_entry.file],
                last_entry.number,
                "the log ends after this line without its closing checkpoint: lines after it were truncated away, or this line was altered (a log still being written, or files after a rotation not given: --allow-open)",
            ));
        }
    }
    Ok(report)
}

/// Reads one line: JSON with `seq` and `prev`, and for a checkpoint a valid signature.
fn parse(key: &VerifyingKey, text: &str) -> Result<Parsed, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|_| "not a JSON audit line: this line was altered".to_owned())?;
    let seq = value
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("no sequence number: this line was altered")?;
    let prev = value
        .get("prev")
        .and_then(Value::as_str)
        .and_then(unhex32)
        .ok_or("no valid `prev` hash: this line was altered")?;
    let checkpoint = match value.get("type") {
        None => None,
        Some(Value::String(kind)) if kind == "checkpoint" => {
            check_signature(key, text)?;
            Some(
                value
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
        Some(_) => return Err("unknown line type: this line was altered".to_owned()),
    };
    Ok(Parsed {
        seq,
        prev,
        checkpoint,
    })
}

fn seq_of(text: &str) -> Option<u64> {
    serde_json::from_str::<Value>(text)
        .ok()?
        .get("seq")?
        .as_u64()
}

fn prev_of(text: &str) -> Option<[u8; 32]> {
    serde_json::from_str::<Value>(text)
        .ok()?
        .get("prev")
        .and_then(Value::as_str)
        .and_then(unhex32)
}

/// Checks the signature over the whole line without its signature field.
fn check_signature(key: &VerifyingKey, line: &str) -> Result<(), String> {
    let (unsigned, signature) = split_signature(line)
        .ok_or("checkpoint without a valid signature: this line was altered")?;
    let signature = STANDARD
        .decode(signature)
        .ok()
        .filter(|b| b.len() == tresor_crypto::sign::SIGNATURE_LEN)
        .ok_or("checkpoint without a valid signature: this line was altered")?;
    if key.verify(&checkpoint_message(unsigned.as_bytes()), &signature) {
        Ok(())
    } else {
        Err(
            "checkpoint signature does not verify: this line was altered, or another key signed it"
                .to_owned(),
        )
    }
}

fn fail(path: &Path, line: usize, reason: &str) -> VerifyError {
    VerifyError::Line {
        path: path.to_owned(),
        line,
        reason: reason.to_owned(),
    }
}
