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
use tresor_core::{Custodians, Error, SealedStore};
use tresor_crypto::random_array;
use tresor_wire::approvals::{
    Approval, ApprovalOutcome, ApprovalSignature, ApprovalState, Dangerous, Decision,
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
        self.propose_to(request, requested_by, None)
    }

    /// Records `request` as pending approval by the custodians of level-3 tenant `tenant`
    /// (`None`: the vault's).
    pub fn propose_to(
        &self,
        request: Dangerous,
        requested_by: &str,
        tenant: Option<&str>,
    ) -> Result<Approval, Error> {
        let records = self.store.records()?;
        let custodians = self.quorum(tenant)?;
        let now = self.store.clock().now();
        let id = tresor_crypto::hex(&random_array::<12>());
        let approval = Approval {
            id: id.clone(),
            vault_id: records.vault_id().to_owned(),
            request,
            requested_by: requested_by.to_owned(),
            created_at: now,
            expires_at: now + self.ttl,
            required: custodians.threshold,
            signatures: Vec::new(),
            rejections: Vec::new(),
            custodian_set: custodians.set_hash,
            four_eyes: custodians.four_eyes,
            tenant_quorum: tenant.map(str::to_owned),
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

    /// Adds custodian `custodian`'s signed `decision` to approval `id`, sent by `caller` (the
    /// principal of the request's client certificate). When the approvals counted reach the
    /// threshold the operation runs, once; when the rejections counted make the threshold
    /// unreachable the approval ends as rejected.
    ///
    /// What counts: signatures by the current custodians (re-verified against the custodian set
    /// the root key vouches for, which must be the set the approval was asked of), each
    /// custodian once, from that custodian's own principal when it is bound to one; under four
    /// eyes not the approval of the custodian who asked; not the rejection of a custodian the
    /// operation removes (so a custodian cannot veto its own removal).
    pub fn decide(
        &self,
        id: &str,
        decision: Decision,
        signer: Signer<'_>,
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
        check_pending(&approval, now)?;
        let custodians = self.quorum(approval.tenant_quorum.as_deref())?;
        if approval.custodian_set != custodians.set_hash {
            return Err(Error::NotPermitted(format!(
                "approval `{id}` was asked of another custodian set (a rekey happened since, or it predates this release): ask again"
            )));
        }
        let custodian = signer.custodian;
        let key = custodians.get(custodian).ok_or_else(|| {
            Error::NotPermitted(match &approval.tenant_quorum {
                Some(tenant) => format!(
                    "`{custodian}` is not a custodian of tenant `{tenant}`, whose own custodians decide this"
                ),
                None => format!("`{custodian}` is not a custodian of this vault"),
            })
        })?;
        tresor_core::check_principal(key, signer.principal)?;
        if !is_signature(signer.signature) {
            return Err(Error::invalid(
                "signature",
                "not a base64 Ed25519 signature",
            ));
        }
        if !approval.signed_by(key, signer.signature, decision) {
            return Err(Error::NotPermitted(format!(
                "the signature is not `{custodian}`'s {} of approval `{id}` as recorded (wrong identity, or a different or altered request)",
                match decision {
                    Decision::Approve => "approval",
                    Decision::Reject => "rejection",
                }
            )));
        }
        // Only current custodians count, under their current keys: a custodian a rekey removed
        // no longer counts, and a new custodian who reuses an old name is a different signer.
        let signatures = std::mem::take(&mut approval.signatures);
        let rejections = std::mem::take(&mut approval.rejections);
        let current = |list: Vec<ApprovalSignature>, decision| {
            list.into_iter()
                .filter(|s| {
                    custodians
                        .get(&s.custodian)
                        .is_some_and(|c| approval.signed_by(c, &s.signature, decision))
                })
                .collect::<Vec<_>>()
        };
        let (signatures, rejections) = (
            current(signatures, Decision::Approve),
            current(rejections, Decision::Reject),
        );
        approval.signatures = signatures;
        approval.rejections = rejections;
        approval.required = approval.required.max(custodians.threshold);
        let decided = approval
            .signatures
            .iter()
            .chain(&approval.rejections)
            .any(|s| s.custodian == custodian);
        if decided {
            return Ok(ApprovalOutcome {
                approval,
                counted: false,
            });
        }
        let requester = custodians
            .bound_to(&approval.requested_by)
            .map(|c| c.name().to_owned());
        let counts = match decision {
            Decision::Approve => !(approval.four_eyes && requester.as_deref() == Some(custodian)),
            Decision::Reject => !approval.request.removes(key),
        };
        let entry = ApprovalSignature {
            custodian: custodian.to_owned(),
            fingerprint: key.fingerprint(),
            at: now,
            signature: signer.signature.to_owned(),
        };
        match decision {
            Decision::Approve => approval.signatures.push(entry),
            Decision::Reject => approval.rejections.push(entry),
        }
        let tally = Tally::of(&approval, &custodians, requester.as_deref());
        let ready = tally.approvals >= usize::from(approval.required);
        if ready {
            approval.state = ApprovalState::Executed {
                at: now,
                outcome: "running".to_owned(),
            };
        } else if tally.reachable < usize::from(approval.required) {
            approval.state = ApprovalState::Rejected { at: now };
        }
        records.commit(
            Batch::new()
                .expect(path.clone(), Some(raw.clone()))
                .put(path.clone(), records.seal(&path, &approval)),
        )?;
        if !ready {
            return Ok(ApprovalOutcome {
                approval,
                counted: counts,
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

    /// The custodians who decide: the vault's, or a level-3 tenant's own.
    fn quorum(&self, tenant: Option<&str>) -> Result<Custodians, Error> {
        match tenant {
            None => self.store.custodians(),
            Some(tenant) => self.store.tenant_custodians(tenant),
        }
    }

    /// Withdraws pending approval `id`; only the principal that asked for it may.
    pub fn cancel(&self, id: &str, caller: &str) -> Result<Approval, Error> {
        check_id(id)?;
        let _serial = APPROVALS.lock().unwrap_or_else(|p| p.into_inner());
        let records = self.store.records()?;
        let path = path(id);
        let (mut approval, raw) = records
            .get::<Approval>(&path)?
            .ok_or_else(|| Error::ApprovalNotFound(id.to_owned()))?;
        let now = self.store.clock().now();
        check_pending(&approval, now)?;
        if approval.requested_by != caller {
            return Err(Error::NotPermitted(format!(
                "only {} asked for approval `{id}`, so only it may cancel it",
                approval.requested_by
            )));
        }
        approval.state = ApprovalState::Cancelled {
            at: now,
            by: caller.to_owned(),
        };
        records.commit(
            Batch::new()
                .expect(path.clone(), Some(raw))
                .put(path.clone(), records.seal(&path, &approval)),
        )?;
        Ok(approval)
    }
}

/// Who signs a decision: the custodian named, its base64 signature, and the principal the
/// request came from.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The custodian's name.
    pub custodian: &'a str,
    /// The base64 Ed25519 signature over [`Approval::signed_message`].
    pub signature: &'a str,
    /// The principal of the caller's client certificate.
    pub principal: &'a str,
}

/// Approvals that count, and how many approvals could still come.
struct Tally {
    approvals: usize,
    reachable: usize,
}

impl Tally {
    fn of(approval: &Approval, custodians: &Custodians, requester: Option<&str>) -> Tally {
        let excluded = |name: &str| approval.four_eyes && requester == Some(name);
        let approvals = approval
            .signatures
            .iter()
            .filter(|s| !excluded(&s.custodian))
            .count();
        let rejected_by = |name: &str| {
            approval.rejections.iter().any(|r| {
                r.custodian == name
                    && custodians
                        .get(name)
                        .is_some_and(|c| !approval.request.removes(c))
            })
        };
        // Every eligible custodian who has not counted-rejected could still approve.
        let reachable = custodians
            .members
            .iter()
            .filter(|c| !excluded(c.name()) && !rejected_by(c.name()))
            .count();
        Tally {
            approvals,
            reachable,
        }
    }
}

fn check_pending(approval: &Approval, now: u64) -> Result<(), Error> {
    let id = &approval.id;
    match &approval.state {
        ApprovalState::Pending if now >= approval.expires_at => Err(Error::NotPermitted(format!(
            "approval `{id}` expired; ask again"
        ))),
        ApprovalState::Pending => Ok(()),
        ApprovalState::Rejected { .. } => Err(Error::NotPermitted(format!(
            "approval `{id}` was rejected by its custodians; it cannot run"
        ))),
        ApprovalState::Cancelled { by, .. } => Err(Error::NotPermitted(format!(
            "approval `{id}` was cancelled by {by}; it cannot run"
        ))),
        _ => Err(Error::NotPermitted(format!(
            "approval `{id}` has already run; it cannot run twice"
        ))),
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
