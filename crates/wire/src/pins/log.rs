//! The hash-chained log of signed manifests, and its verification by anyone who holds it.

use serde::{Deserialize, Serialize};
use tresor_crypto::{LengthPrefixed, hex, sha256};

const LOG_LABEL: &[u8] = b"tresor-pin-log-v1";

/// One entry of the hash-chained log of signed manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Position, from 1.
    pub seq: u64,
    /// App.
    pub app: String,
    /// Manifest version.
    pub version: u64,
    /// Manifest hash.
    pub manifest_hash: String,
    /// Its issued_at.
    pub issued_at: u64,
    /// Hash of the previous entry (`sha256:` and 64 zeros for the first).
    pub prev: String,
    /// `sha256:` hex SHA-256(LP(label) ‖ LP(prev) ‖ u64 seq ‖ LP(app) ‖ u64 version ‖
    /// LP(manifest_hash) ‖ u64 issued_at).
    pub hash: String,
}

impl LogEntry {
    /// The hash this entry must carry, computed from its other fields.
    pub fn compute_hash(&self) -> String {
        let encoded = LengthPrefixed::new()
            .bytes(LOG_LABEL)
            .bytes(self.prev.as_bytes())
            .u64(self.seq)
            .bytes(self.app.as_bytes())
            .u64(self.version)
            .bytes(self.manifest_hash.as_bytes())
            .u64(self.issued_at);
        format!("sha256:{}", hex(&sha256(&[encoded.as_slice()])))
    }
}

/// Why a log of signed manifests does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An entry is out of sequence, does not chain to the one before, or its hash is wrong.
    #[error("log entry {0} is out of sequence, altered, or does not chain to the entry before")]
    Broken(u64),
    /// Two entries for one app and version name different manifests: the signer equivocated.
    #[error("log entry {seq}: app {app} version {version} was logged before with another manifest")]
    Equivocation {
        /// The later entry.
        seq: u64,
        /// App.
        app: String,
        /// Version.
        version: u64,
    },
    /// An app's versions do not strictly increase along the log.
    #[error("log entry {seq}: app {app} version {version} does not follow version {previous}")]
    VersionOrder {
        /// The entry.
        seq: u64,
        /// App.
        app: String,
        /// Its version.
        version: u64,
        /// The app's version before it in the log.
        previous: u64,
    },
}

impl LogError {
    /// The entry it concerns.
    pub fn seq(&self) -> u64 {
        match self {
            LogError::Broken(seq)
            | LogError::Equivocation { seq, .. }
            | LogError::VersionOrder { seq, .. } => *seq,
        }
    }
}

/// Verifies a log of signed manifests as fetched from `GET /v1/pins/sys/log`: sequence, hash
/// chain, and per app strictly increasing versions with one manifest per version. Returns the
/// hash of the last entry (compare it with a previously seen head to detect truncation).
pub fn verify_log(entries: &[LogEntry]) -> Result<String, LogError> {
    let mut prev = zero_hash();
    let mut seen: std::collections::HashMap<&str, (u64, &str)> = std::collections::HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.seq != i as u64 + 1 || entry.prev != prev || entry.compute_hash() != entry.hash {
            return Err(LogError::Broken(i as u64 + 1));
        }
        if let Some((previous, hash)) = seen.get(entry.app.as_str()) {
            if *previous == entry.version && *hash != entry.manifest_hash {
                return Err(LogError::Equivocation {
                    seq: entry.seq,
                    app: entry.app.clone(),
                    version: entry.version,
                });
            }
            if entry.version <= *previous {
                return Err(LogError::VersionOrder {
                    seq: entry.seq,
                    app: entry.app.clone(),
                    version: entry.version,
                    previous: *previous,
                });
            }
        }
        seen.insert(&entry.app, (entry.version, &entry.manifest_hash));
        prev = entry.hash.clone();
    }
    Ok(prev)
}

/// The `prev` of the first entry: `sha256:` and 64 zeros.
pub fn zero_hash() -> String {
    format!("sha256:{}", "0".repeat(64))
}
