//! Dual control (docs/custody.md): a dangerous operation does not run when asked; it becomes a
//! pending approval that k of the vault's custodians must sign, like a bank's TAN. A stolen
//! client certificate alone cannot delete keys, shred tenants, weaken a key, export keys,
//! rotate the root key, rekey or change a tenant's custodians.
//!
//! Each custodian signs, with their Ed25519 identity key, the exact canonical request and its
//! expiry (see [`Approval::signed_message`]). A signature counts once per custodian, only for
//! that approval (the approval id is in the message, so it cannot be replayed onto another),
//! only before it expires, and only while the signer is a custodian. When the threshold is
//! met the operation runs exactly once: the approval is marked executed in the same
//! compare-and-swap that records the last signature, before the operation starts.
//!
//! This module knows the workflow only. What an approved operation does is its [`Runner`]'s
//! business: the API implements it, one operation per file.

use std::sync::Mutex;

use tresor_core::store::Batch;
use tresor_core::{Error, SealedStore};
use tresor_crypto::random_array;
use tresor_wire::approvals::{
    Approval, ApprovalOutcome, ApprovalSignature, ApprovalState, Dangerous,
};

const PREFIX: &str = "approvals/";

/// How long a pending approval waits for signatures by default.
pub const DEFAULT_APPROVAL_TTL: u64 = 3600;

/// Runs an operation once its custodians have approved it.
pub trait Runner {
    /// Does what `request` asks; the text says what was done, the error why it failed.
    fn run(&self, request: &Dangerous) -> Result<String, Error>;
}

/// The approval workflow over a vault's sealed records.
#[derive(Clone)]
pub struct Approvals {
    store: SealedStore,
    ttl: u64,
}

/// Serialises approvals within this process; the store's compare-and-swap covers the rest.
static APPROVALS: Mutex<()> = Mutex::new(());

fn path(id: &str) -> String {
    format!("{PREFIX}{id}")
}

impl Approvals {
    /// Approvals of the vault behind `store`; a new one waits `ttl` seconds for signatures.
    pub fn new(store: SealedStore, ttl: u64) -> Self {
        Approvals { store, ttl }
    }

    /// Records `request` as pending approval by the vault's custodians.
    pub fn propose(&self, request: Dangerous, requested_by: &str) -> Result<Approval, Error> {
        let records = self.store.records()?;
        let threshold = self.store.custodians()?.threshold;
        let now = self.store.clock().now();
        let id = tresor_crypto::hex(&random_array::<12>());
        let approval = Approval {
            id: id.clone(),
            vault_id: records.vault_id().to_owned(),
            request,
            requested_by: requested_by.to_owned(),
            created_at: now,
            expires_at: now + self.ttl,
            required: threshold,
            signatures: Vec::new(),
            state: ApprovalState::Pending,
        };
        let path = path(&id);
        records.commit(
            Batch::new()
                .expect(path.clone(), None)
                .put(path.clone(), records.seal(&path, &approval)),
        )?;
        Ok(approval)
    }

    /// Every approval that has not run, oldest first: those still pending, and those that
    /// expired unsigned (shown as [`ApprovalState::Expired`], so a custodian sees why they can
    /// no longer sign it).
    pub fn open_approvals(&self) -> Result<Vec<Approval>, Error> {
        let now = self.store.clock().now();
        let mut approvals: Vec<Approval> = self
            .store
            .records()?
            .scan::<Approval>(PREFIX)?
            .into_iter()
            .map(|(_, a)| a.seen_at(now))
            .filter(|a| {
                matches!(
                    a.state,
                    ApprovalState::Pending | ApprovalState::Expired { .. }
                )
            })
            .collect();
        approvals.sort_by_key(|a| a.created_at);
        Ok(approvals)
    }

    /// Every approval still waiting for signatures, oldest first.
    pub fn pending_approvals(&self) -> Result<Vec<Approval>, Error> {
        let mut approvals = self.open_approvals()?;
        approvals.retain(|a| a.state == ApprovalState::Pending);
        Ok(approvals)
    }

    /// One approval, in any state (a pending one past its expiry reads as expired).
    pub fn approval(&self, id: &str) -> Result<Approval, Error> {
        check_id(id)?;
        let now = self.store.clock().now();
        self.store
            .records()?
            .get::<Approval>(&path(id))?
            .map(|(a, _)| a.seen_at(now))
            .ok_or_else(|| Error::ApprovalNotFound(id.to_owned()))
    }

    /// Adds custodian `custodian`'s signature to approval `id`; when the threshold is met, runs
    /// the operation once.
    pub fn approve(
        &self,
        id: &str,
        custodian: &str,
        signature_b64: &str,
        runner: &dyn Runner,
    ) -> Result<ApprovalOutcome, Error> {
        check_id(id)?;
        let _serial = APPROVALS.lock().unwrap_or_else(|p| p.into_inner());
        let records = self.store.records()?;
        let path = path(id);
        let (mut approval, raw) = records
            .get::<Approval>(&path)?
            .ok_or_else(|| Error::ApprovalNotFound(id.to_owned()))?;
        let now = self.store.clock().now();
        if approval.state != ApprovalState::Pending {
            return Err(Error::NotPermitted(format!(
                "approval `{id}` has already run; it cannot run twice"
            )));
        }
        if now >= approval.expires_at {
            return Err(Error::NotPermitted(format!(
                "approval `{id}` expired; ask again"
            )));
        }
        let custodians = self.store.custodians()?;
        let signer = custodians.get(custodian).ok_or_else(|| {
            Error::NotPermitted(format!("`{custodian}` is not a custodian of this vault"))
        })?;
        if !is_signature(signature_b64) {
            return Err(Error::invalid(
                "signature",
                "not a base64 Ed25519 signature",
            ));
        }
        if !approval.signed_by(signer, signature_b64) {
            return Err(Error::NotPermitted(format!(
                "the signature is not `{custodian}`'s over approval `{id}` as recorded (wrong identity, or a different or altered request)"
            )));
        }
        // Only current custodians count, under their current keys and threshold: a custodian a
        // rekey removed (a lost or compromised one, say) no longer counts towards k, and a new
        // custodian who reuses an old name is a different signer.
        let earlier = std::mem::take(&mut approval.signatures);
        approval.signatures = earlier
            .into_iter()
            .filter(|s| {
                custodians
                    .get(&s.custodian)
                    .is_some_and(|c| approval.signed_by(c, &s.signature))
            })
            .collect();
        approval.required = approval.required.max(custodians.threshold);
        if approval.signatures.iter().any(|s| s.custodian == custodian) {
            return Ok(ApprovalOutcome {
                approval,
                counted: false,
            });
        }
        approval.signatures.push(ApprovalSignature {
            custodian: custodian.to_owned(),
            at: now,
            signature: signature_b64.to_owned(),
        });
        let ready = approval.signatures.len() >= usize::from(approval.required);
        if ready {
            approval.state = ApprovalState::Executed {
                at: now,
                outcome: "running".to_owned(),
            };
        }
        records.commit(
            Batch::new()
                .expect(path.clone(), Some(raw.clone()))
                .put(path.clone(), records.seal(&path, &approval)),
        )?;
        if !ready {
            return Ok(ApprovalOutcome {
                approval,
                counted: true,
            });
        }
        // Marked executed before running: a crash here leaves it not run rather than run twice.
        approval.state = match runner.run(&approval.request) {
            Ok(outcome) => ApprovalState::Executed { at: now, outcome },
            Err(e) => ApprovalState::Failed {
                at: now,
                error: e.to_string(),
            },
        };
        // The root key may have changed (rotate-root, rekey): seal the record afresh. If the
        // vault was sealed meanwhile the record keeps its "running" mark (it cannot be written
        // without the root key) and still never runs again; the signer learns what happened.
        let records = match self.store.records() {
            Ok(records) => records,
            Err(Error::Sealed) => {
                return Ok(ApprovalOutcome {
                    approval,
                    counted: true,
                });
            }
            Err(e) => return Err(e),
        };
        let (_, raw) = records
            .get::<Approval>(&path)?
            .ok_or_else(|| Error::Integrity { path: path.clone() })?;
        records.commit(
            Batch::new()
                .expect(path.clone(), Some(raw))
                .put(path.clone(), records.seal(&path, &approval)),
        )?;
        Ok(ApprovalOutcome {
            approval,
            counted: true,
        })
    }
}

/// True if `signature_b64` has the form of an Ed25519 signature (whose it is is checked later).
fn is_signature(signature_b64: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(signature_b64)
        .is_ok_and(|b| b.len() == tresor_crypto::sign::SIGNATURE_LEN)
}

fn check_id(id: &str) -> Result<(), Error> {
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "approval",
            "an approval id is 24 hex digits",
        ))
    }
}
