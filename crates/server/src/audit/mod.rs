//! The audit trail (docs/audit.md): one JSON line per request and per refused attempt,
//! hash-chained, with checkpoints signed by the vault's Ed25519 audit key, verified by
//! `tresor audit verify`.
//!
//! Secrets and plaintext never appear in a line. Ciphertexts, HMAC inputs, contexts and
//! associated data appear only as HMAC-SHA256 under the audit HMAC key (`tresor audit hash
//! VALUE` computes the same, so an investigator can search for a known value).
//!
//! The log is written before a response leaves: if a line cannot be written the request fails
//! with 503 and has no effect (fail closed), and the writer heals itself once the disk does.

mod hasher;
mod key;
mod line;
mod signing_key;
mod verify;
mod writer;

pub use hasher::AuditHasher;
pub use key::AuditKey;
pub use line::{ApprovalRef, AuditEvent, AuditEventRef, CustodianRef, InputHmacs, Outcome};
pub use signing_key::AuditSigningKey;
pub use verify::{VerifyError, VerifyOptions, VerifyReport, verify_files};
pub use writer::{AuditConfig, AuditLog, AuditWriteError, PATH_CHECK_INTERVAL};
