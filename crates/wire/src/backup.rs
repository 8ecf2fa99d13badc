//! The backup file (docs/format.md, section 10): a whole store as it was at one moment, in a
//! form no backend owns, signed by the node that took it.
//!
//! ```text
//! {"format":"tresor-backup-v1", …header…}                       one line
//! {"path":"<store path>","value":"<base64 of the stored bytes>"}  one line per record, in path order
//! {"signature":"<base64 Ed25519>"}                               the last line
//! ```
//!
//! The signature is the node identity key's, over LP("tresor-backup-v1") ‖ SHA-256(every byte
//! before the signature line). The records are the store's bytes as they are: barrier-sealed,
//! so the file is useless without k custodians of the backup's custodian set. A changed,
//! truncated or spliced file fails the signature (or the record count the header names) and is
//! refused before anything is written.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tresor_crypto::sign::VerifyingKey;
use tresor_crypto::{LengthPrefixed, sha256};

use crate::custody::StoreGeneration;

/// The first field of every backup file, and the signature's label.
pub const FORMAT: &str = "tresor-backup-v1";

/// What a backup says about itself, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// The vault's id.
    pub vault_id: String,
    /// The environment the vault serves (bound into every ciphertext).
    pub environment: String,
    /// The store format of the records.
    pub store_format: u32,
    /// The store's generation and last write when the backup was taken.
    pub store: StoreGeneration,
    /// When the backup was taken (Unix seconds).
    pub taken_at: u64,
    /// The custodians whose shares open the backup's root key: `name (fingerprint)`.
    pub custodians: Vec<String>,
    /// Shares needed (k).
    pub threshold: u8,
    /// The tenants it holds.
    pub tenants: Vec<String>,
    /// The audit log's last checkpoint on the node that took it, `seq:hex-hash`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_checkpoint: Option<String>,
    /// How many record lines follow.
    pub records: u64,
    /// The node identity key that signed the file (base64 Ed25519).
    pub node_key: String,
}

/// A backup that was read and whose signature holds.
#[derive(Debug)]
pub struct Backup {
    /// Its header.
    pub header: BackupHeader,
    /// Every record: store path and stored bytes, in path order.
    pub records: Vec<(String, Vec<u8>)>,
}

/// Why a backup file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Not a backup file of this format, or a line that does not parse.
    #[error("not a Tresor backup file: {0}")]
    Malformed(String),
    /// The file ends before its signature, or holds another number of records than its header.
    #[error("the backup file is truncated or spliced: {0}")]
    Truncated(String),
    /// The signature does not verify with the node key the header names.
    #[error("the backup file's signature does not verify: it was changed after the node signed it")]
    BadSignature,
    /// Signed by a node nobody vouched for.
    #[error(
        "the backup was signed by node {found}, which is not among the trusted nodes ({trusted}): pass the fingerprint the custodians pinned at init with --node"
    )]
    UntrustedNode {
        /// The signer's fingerprint.
        found: String,
        /// The fingerprints given.
        trusted: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    path: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureLine {
    signature: String,
}

/// What the node signs: LP([`FORMAT`]) ‖ LP(SHA-256 of the file before its signature line).
pub fn signed_message(body: &[u8]) -> Vec<u8> {
    LengthPrefixed::new()
        .bytes(FORMAT.as_bytes())
        .bytes(&sha256(&[body]))
        .into_vec()
}

/// The file for `header` and `records` (in path order), signed by `sign` (the node identity
/// key over [`signed_message`]).
pub fn write(
    header: &BackupHeader,
    records: &[(String, Vec<u8>)],
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> String {
    let mut out = serde_json::to_string(header).expect("serializes");
    out.push('\n');
    for (path, value) in records {
        let line = RecordLine {
            path: path.clone(),
            value: STANDARD.encode(value),
        };
        out.push_str(&serde_json::to_string(&line).expect("serializes"));
        out.push('\n');
    }
    let signature = sign(&signed_message(out.as_bytes()));
    let line = SignatureLine {
        signature: STANDARD.encode(signature),
    };
    out.push_str(&serde_json::to_string(&line).expect("serializes"));
    out.push('\n');
    out
}

/// Reads a backup file and checks it whole: header, every record line, the record count and
/// the signature. Nothing is trusted before this returns.
pub fn read(file: &[u8]) -> Result<Backup, BackupError> {
    let text = std::str::from_utf8(file)
        .map_err(|_| BackupError::Malformed("it is not UTF-8 text".into()))?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|at| at + 1)
        .ok_or_else(|| BackupError::Truncated("it has no signature line".into()))?;
    let (body, last) = text.split_at(body_end);
    let mut lines = body.lines();
    let first = lines
        .next()
        .ok_or_else(|| BackupError::Malformed("it is empty".into()))?;
    let header: BackupHeader = serde_json::from_str(first).map_err(|e| {
        BackupError::Malformed(format!("the first line is not a backup header ({e})"))
    })?;
    if header.format != FORMAT {
        return Err(BackupError::Malformed(format!(
            "format `{}`, this release reads `{FORMAT}`",
            header.format
        )));
    }
    let signature: SignatureLine = serde_json::from_str(last.trim_end_matches('\n'))
        .map_err(|_| BackupError::Truncated("its last line is not the signature".into()))?;
    let key = STANDARD
        .decode(&header.node_key)
        .ok()
        .and_then(|bytes| VerifyingKey::from_slice(&bytes))
        .ok_or_else(|| BackupError::Malformed("the header's node_key is not a key".into()))?;
    let signature = STANDARD
        .decode(&signature.signature)
        .map_err(|_| BackupError::BadSignature)?;
    if !key.verify(&signed_message(body.as_bytes()), &signature) {
        return Err(BackupError::BadSignature);
    }
    let mut records = Vec::new();
    for (n, line) in lines.enumerate() {
        let record: RecordLine = serde_json::from_str(line)
            .map_err(|e| BackupError::Malformed(format!("record line {} ({e})", n + 2)))?;
        let value = STANDARD.decode(&record.value).map_err(|_| {
            BackupError::Malformed(format!("record line {}: value is not base64", n + 2))
        })?;
        records.push((record.path, value));
    }
    if records.len() as u64 != header.records {
        return Err(BackupError::Truncated(format!(
            "the header names {} records, the file holds {}",
            header.records,
            records.len()
        )));
    }
    Ok(Backup { header, records })
}

impl Backup {
    /// The fingerprint of the node key that signed it.
    pub fn node_fingerprint(&self) -> String {
        STANDARD
            .decode(&self.header.node_key)
            .ok()
            .and_then(|bytes| VerifyingKey::from_slice(&bytes))
            .map(|key| key.fingerprint())
            .unwrap_or_default()
    }

    /// Refuses a backup whose signer is not among `trusted` (node fingerprints).
    pub fn check_node(&self, trusted: &[String]) -> Result<(), BackupError> {
        let found = self.node_fingerprint();
        if trusted.iter().any(|t| t.eq_ignore_ascii_case(&found)) {
            return Ok(());
        }
        Err(BackupError::UntrustedNode {
            found,
            trusted: if trusted.is_empty() {
                "none given".to_owned()
            } else {
                trusted.join(", ")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_crypto::sign::SigningKey;

    fn sample(node: &SigningKey) -> String {
        let header = BackupHeader {
            format: FORMAT.into(),
            vault_id: "v".into(),
            environment: "test".into(),
            store_format: 3,
            store: StoreGeneration {
                generation: 7,
                last_write: 1,
            },
            taken_at: 2,
            custodians: vec!["alice (ab:cd)".into()],
            threshold: 1,
            tenants: vec!["t".into()],
            audit_checkpoint: None,
            records: 2,
            node_key: STANDARD.encode(node.verifying_key().as_bytes()),
        };
        let records = vec![
            ("core/seal".to_owned(), b"{}".to_vec()),
            ("keys/t/k".to_owned(), vec![1, 2, 3]),
        ];
        write(&header, &records, |m| node.sign(m))
    }

    #[test]
    fn a_written_backup_reads_back_from_its_trusted_node() {
        let node = SigningKey::generate();
        let backup = read(sample(&node).as_bytes()).unwrap();
        assert_eq!(backup.records[1], ("keys/t/k".to_owned(), vec![1, 2, 3]));
        backup
            .check_node(&[node.verifying_key().fingerprint()])
            .unwrap();
        let other = SigningKey::generate().verifying_key().fingerprint();
        assert!(matches!(
            backup.check_node(&[other]),
            Err(BackupError::UntrustedNode { .. })
        ));
    }

    #[test]
    fn every_change_truncation_and_splice_is_refused() {
        let node = SigningKey::generate();
        let file = sample(&node);
        // Any byte of the body changed.
        let flipped = file.replacen("AQID", "AQIE", 1);
        assert!(matches!(
            read(flipped.as_bytes()),
            Err(BackupError::BadSignature)
        ));
        let renamed = file.replacen("keys/t/k", "keys/t/x", 1);
        assert!(matches!(
            read(renamed.as_bytes()),
            Err(BackupError::BadSignature)
        ));
        // Cut before the signature, or a record dropped.
        let lines: Vec<&str> = file.lines().collect();
        let cut = lines[..3].join("\n") + "\n";
        assert!(matches!(
            read(cut.as_bytes()),
            Err(BackupError::Truncated(_))
        ));
        let dropped = [lines[0], lines[2], lines[3]].join("\n") + "\n";
        assert!(matches!(
            read(dropped.as_bytes()),
            Err(BackupError::BadSignature)
        ));
        // Re-signed by another node: reads, but is not trusted.
        let impostor = SigningKey::generate();
        let resigned = read(sample(&impostor).as_bytes()).unwrap();
        assert!(
            resigned
                .check_node(&[node.verifying_key().fingerprint()])
                .is_err()
        );
        assert!(matches!(
            read(b"hello\n"),
            Err(BackupError::Truncated(_) | BackupError::Malformed(_))
        ));
    }
}
