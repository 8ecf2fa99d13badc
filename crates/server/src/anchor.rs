//! The audit log's tail anchor: what catches lines cut off the end of the audit log while the
//! server was down (the hash chain alone cannot: a log cut back to an earlier checkpoint still
//! verifies).
//!
//! Each node records the sequence number and hash of its last fsynced checkpoint in the vault's
//! sealed records (`audit/anchor/<node>`), at each checkpoint while unsealed. At unseal, before
//! any key is usable, the log must still hold that line; if it does not, the unseal is refused
//! with an error that says so (the refusal is audited like any failed request). Custodians who
//! know of a loss (a disk replaced, a log restored from an older copy) accept it by unsealing
//! with `--accept-audit-gap`: every custodian of that round must, and the acceptance is a line of
//! the log naming them. A restore resets the anchor.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tresor_core::store::Batch;
use tresor_core::{Error, SealedRecords, SealedStore, UnsealGuard, Vault};

use crate::audit::{AuditEvent, AuditLog, Outcome};

const PREFIX: &str = "audit/anchor/";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Anchor {
    seq: u64,
    /// Lowercase hex SHA-256 of the checkpoint line.
    hash: String,
    /// When it was recorded (Unix seconds).
    at: u64,
}

/// Keeps one node's audit log anchored in its vault.
pub struct AuditAnchor {
    log: Arc<AuditLog>,
    store: SealedStore,
    path: String,
}

impl AuditAnchor {
    /// Anchors `log` in `vault` for node `node` (a stable name of this node): every checkpoint
    /// updates the anchor while the vault is unsealed, and every unseal checks it.
    pub fn install(vault: &Vault, log: Arc<AuditLog>, node: &str) -> Arc<AuditAnchor> {
        let anchor = Arc::new(AuditAnchor {
            log: log.clone(),
            store: vault.sealed_store(),
            path: format!("{PREFIX}{node}"),
        });
        let hook = Arc::downgrade(&anchor);
        log.on_checkpoint(Box::new(move |seq, hash| {
            // While sealed there is nothing to write to: the next unseal anchors the newest
            // checkpoint.
            if let Some((anchor, records)) = hook
                .upgrade()
                .and_then(|anchor| anchor.store.records().ok().map(|r| (anchor, r)))
            {
                if let Err(e) = anchor.write(&records, seq, hash) {
                    tracing::warn!(error = %e, "the audit anchor could not be updated");
                }
            }
        }));
        let guard: Arc<dyn UnsealGuard> = anchor.clone();
        vault.set_unseal_guard(&guard);
        anchor
    }

    fn write(&self, records: &SealedRecords, seq: u64, hash: [u8; 32]) -> Result<(), Error> {
        let (current, raw) = match records.get::<Anchor>(&self.path)? {
            Some((anchor, raw)) => (Some(anchor), Some(raw)),
            None => (None, None),
        };
        if current.is_some_and(|a| a.seq >= seq) {
            return Ok(());
        }
        let anchor = Anchor {
            seq,
            hash: tresor_crypto::hex(&hash),
            at: self.store.clock().now(),
        };
        records.commit(
            Batch::new()
                .expect(self.path.clone(), raw)
                .put(self.path.clone(), records.seal(&self.path, &anchor)),
        )
    }

    /// Anchors the newest checkpoint, replacing whatever anchor there was.
    fn reset(&self, records: &SealedRecords) -> Result<(), Error> {
        let raw = records.get::<Anchor>(&self.path)?.map(|(_, raw)| raw);
        let Some((seq, hash)) = self.log.last_checkpoint() else {
            return Ok(());
        };
        let anchor = Anchor {
            seq,
            hash: tresor_crypto::hex(&hash),
            at: self.store.clock().now(),
        };
        records.commit(
            Batch::new()
                .expect(self.path.clone(), raw)
                .put(self.path.clone(), records.seal(&self.path, &anchor)),
        )
    }
}

impl UnsealGuard for AuditAnchor {
    fn check(&self, records: &SealedRecords, accepted_by: Option<&[String]>) -> Result<(), Error> {
        let Some((anchor, _)) = records.get::<Anchor>(&self.path)? else {
            return self.reset(records);
        };
        let found = self.log.line_hash(anchor.seq).map_err(|e| {
            Error::UnsealRefused(format!(
                "the audit log cannot be read to check its anchor: {e}"
            ))
        })?;
        if found.is_some_and(|hash| tresor_crypto::hex(&hash) == anchor.hash) {
            return self.reset(records);
        }
        let what = format!(
            "the audit log no longer holds the checkpoint this node anchored (line {} at {}): lines were cut from its end, or it was replaced, while the server was down",
            anchor.seq,
            tresor_wire::time::rfc3339(anchor.at, 0)
        );
        if self.log.restored_since_unseal().unwrap_or(false) {
            // A restore resets the anchor: the store came from a backup, whose anchor names a
            // checkpoint of the log of the node and the moment it was taken.
            let event = AuditEvent {
                principal: "tresor:unseal".to_owned(),
                operation: "audit-anchor-reset".to_owned(),
                outcome: Some(Outcome::Ok),
                reason: format!(
                    "{what}; the store was restored from a backup since the last unseal (the `restored` line), so the anchor starts again here"
                ),
                ..AuditEvent::default()
            };
            self.log.record(&event).map_err(|e| {
                Error::UnsealRefused(format!("the anchor reset could not be audited: {e}"))
            })?;
            return self.reset(records);
        }
        match accepted_by {
            Some(custodians) => {
                let event = AuditEvent {
                    principal: "tresor:unseal".to_owned(),
                    operation: "audit-gap-accepted".to_owned(),
                    outcome: Some(Outcome::Ok),
                    reason: format!("{what}; accepted by custodians {}", custodians.join(", ")),
                    ..AuditEvent::default()
                };
                self.log.record(&event).map_err(|e| {
                    Error::UnsealRefused(format!("the acceptance could not be audited: {e}"))
                })?;
                tracing::warn!(custodians = %custodians.join(", "), "{what}; the custodians accepted the gap");
                self.reset(records)
            }
            None => Err(Error::UnsealRefused(format!(
                "{what}. Investigate; if the loss is known, every custodian of the next unseal accepts it with `tresor operator unseal --accept-audit-gap` (audited)"
            ))),
        }
    }
}
