//! Dual control (DESIGN.md §4): a dangerous operation does not run when asked; it becomes a
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

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

use super::{CustodianIdentity, CustodianPublicKey};
use crate::crypto::{LengthPrefixed, random_array};
use crate::keys::KeyConfigUpdate;
use crate::store::Batch;
use crate::{Error, InitRequest, Vault};

const SIGNATURE_LABEL: &[u8] = b"tresor-approval-v1";
const PREFIX: &str = "approvals/";

/// How long a pending approval waits for signatures by default.
pub const DEFAULT_APPROVAL_TTL: u64 = 3600;

/// An operation that needs custodian approval, with every parameter that decides what it does.
/// Its JSON is the canonical form custodians sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Dangerous {
    /// Delete a key and with it every ciphertext it protects.
    DeleteKey {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
    },
    /// Destroy a key's versions below `min_available_version` (Vault's trim): ciphertexts
    /// under them can never be decrypted again.
    TrimKey {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
        /// The lowest version that stays.
        min_available_version: u32,
    },
    /// Shred a tenant and every key in it.
    ShredTenant {
        /// Tenant.
        tenant: String,
    },
    /// A key configuration change that weakens protection (lowers `min_decryption_version`
    /// or makes the key exportable).
    ConfigureKey {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
        /// The whole change, applied as one.
        update: KeyConfigUpdate,
    },
    /// Replace the root key, keeping custodians and threshold.
    RotateRoot,
    /// Replace the root key and hand its shares to a new custodian set and/or threshold.
    Rekey {
        /// The new custodians.
        custodians: Vec<CustodianPublicKey>,
        /// The new threshold.
        threshold: u8,
    },
    /// Replace a level-3 tenant's own custodians.
    ChangeTenantCustodians {
        /// Tenant.
        tenant: String,
        /// The new custodians.
        custodians: Vec<CustodianPublicKey>,
    },
    /// Activate a pinned key before it has been published for the app's `max_update_lag`:
    /// apps that have not updated since may not know its pin yet and would refuse the server.
    ActivatePinEarly {
        /// Pinning app.
        app: String,
        /// Key id.
        kid: String,
    },
}

impl Dangerous {
    /// One line saying what will happen, for the custodian deciding whether to sign.
    pub fn describe(&self) -> String {
        match self {
            Dangerous::DeleteKey { tenant, key } => {
                format!("delete key {tenant}/{key}: its ciphertexts can never be decrypted again")
            }
            Dangerous::TrimKey {
                tenant,
                key,
                min_available_version,
            } => format!(
                "trim key {tenant}/{key}: versions below {min_available_version} are destroyed and their ciphertexts can never be decrypted again"
            ),
            Dangerous::ShredTenant { tenant } => {
                format!(
                    "shred tenant {tenant}: every key in it and every ciphertext under them is lost"
                )
            }
            Dangerous::ConfigureKey {
                tenant,
                key,
                update,
            } => {
                format!(
                    "change key {tenant}/{key}: {}",
                    serde_json::to_string(update).unwrap_or_default()
                )
            }
            Dangerous::RotateRoot => {
                "rotate the root key (custodians and threshold stay)".to_owned()
            }
            Dangerous::Rekey {
                custodians,
                threshold,
            } => format!(
                "rekey: new root key shared {threshold}-of-{} among {}; the current shares stop working",
                custodians.len(),
                custodians
                    .iter()
                    .map(|c| format!("{} ({})", c.name(), c.fingerprint()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Dangerous::ChangeTenantCustodians { tenant, custodians } => format!(
                "tenant {tenant}: custodians become {}",
                custodians
                    .iter()
                    .map(|c| format!("{} ({})", c.name(), c.fingerprint()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Dangerous::ActivatePinEarly { app, kid } => format!(
                "activate pinned key {kid} of app {app} before max_update_lag has passed: app installs that have not updated since its pin was published will fail to connect"
            ),
        }
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ApprovalState {
    /// Waiting for signatures.
    Pending,
    /// The threshold was met and the operation ran.
    Executed {
        /// When.
        at: u64,
        /// What it did.
        outcome: String,
    },
    /// Not enough signatures before `expires_at`; it can no longer be signed or run. Never
    /// stored: a pending approval reads as expired once its time has passed.
    Expired {
        /// When it expired (its `expires_at`).
        at: u64,
    },
    /// The threshold was met but the operation failed (it will not be retried).
    Failed {
        /// When.
        at: u64,
        /// Why.
        error: String,
    },
}

/// One custodian's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSignature {
    /// The custodian.
    pub custodian: String,
    /// When it was accepted.
    pub at: u64,
    /// Ed25519 signature, base64.
    pub signature: String,
}

/// A pending (or finished) dangerous operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Random identifier.
    pub id: String,
    /// The vault it belongs to.
    pub vault_id: String,
    /// What will run.
    pub request: Dangerous,
    /// The principal that asked.
    pub requested_by: String,
    /// When it was asked (Unix seconds).
    pub created_at: u64,
    /// Signatures after this time are refused (Unix seconds).
    pub expires_at: u64,
    /// Signatures needed (the vault's threshold when asked).
    pub required: u8,
    /// Signatures accepted so far.
    pub signatures: Vec<ApprovalSignature>,
    /// Pending, executed or failed.
    pub state: ApprovalState,
}

impl Approval {
    /// The exact bytes a custodian signs: LP("tresor-approval-v1") ‖ LP(vault id) ‖
    /// LP(approval id) ‖ LP(canonical request JSON) ‖ LP(requested by) ‖ u64 expires_at.
    pub fn signed_message(&self) -> Vec<u8> {
        let canonical = serde_json::to_vec(&self.request).expect("serializes");
        let mut message = LengthPrefixed::new()
            .bytes(SIGNATURE_LABEL)
            .bytes(self.vault_id.as_bytes())
            .bytes(self.id.as_bytes())
            .bytes(&canonical)
            .bytes(self.requested_by.as_bytes())
            .into_vec();
        message.extend_from_slice(&self.expires_at.to_be_bytes());
        message
    }
}

impl Approval {
    /// The approval as it stands at `now`: a pending one whose time has passed is expired.
    fn seen_at(mut self, now: u64) -> Approval {
        if self.state == ApprovalState::Pending && now >= self.expires_at {
            self.state = ApprovalState::Expired {
                at: self.expires_at,
            };
        }
        self
    }
}

impl CustodianIdentity {
    /// Signs `approval` (base64 Ed25519 signature over [`Approval::signed_message`]).
    pub fn sign_approval(&self, approval: &Approval) -> String {
        let signature: Signature = self.signing_key().sign(&approval.signed_message());
        STANDARD.encode(signature.to_bytes())
    }
}

/// What an approval call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalOutcome {
    /// The approval after this signature.
    pub approval: Approval,
    /// False if this custodian had signed already (a custodian counts once).
    pub counted: bool,
}

/// Serialises approvals within this process; the store's compare-and-swap covers the rest.
static APPROVALS: Mutex<()> = Mutex::new(());

fn path(id: &str) -> String {
    format!("{PREFIX}{id}")
}

impl Vault {
    /// Records `request` as pending approval by the vault's custodians.
    pub fn propose(&self, request: Dangerous, requested_by: &str) -> Result<Approval, Error> {
        let records = self.sealed_records()?;
        let status = self.seal_status()?;
        let now = self.clock().now();
        let id = crate::crypto::hex(&random_array::<12>());
        let approval = Approval {
            id: id.clone(),
            vault_id: records.vault_id().to_owned(),
            request,
            requested_by: requested_by.to_owned(),
            created_at: now,
            expires_at: now + self.approval_ttl(),
            required: status.threshold,
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
        let now = self.clock().now();
        let mut approvals: Vec<Approval> = self
            .sealed_records()?
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
        let now = self.clock().now();
        self.sealed_records()?
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
    ) -> Result<ApprovalOutcome, Error> {
        check_id(id)?;
        let _serial = APPROVALS.lock().unwrap_or_else(|p| p.into_inner());
        let records = self.sealed_records()?;
        let path = path(id);
        let (mut approval, raw) = records
            .get::<Approval>(&path)?
            .ok_or_else(|| Error::ApprovalNotFound(id.to_owned()))?;
        let now = self.clock().now();
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
        let signer = self.custodian(custodian)?.ok_or_else(|| {
            Error::NotPermitted(format!("`{custodian}` is not a custodian of this vault"))
        })?;
        let signature = decode_signature(signature_b64)
            .ok_or_else(|| Error::invalid("signature", "not a base64 Ed25519 signature"))?;
        let message = approval.signed_message();
        signer.ed25519().verify_strict(&message, &signature).map_err(|_| {
            Error::NotPermitted(format!(
                "the signature is not `{custodian}`'s over approval `{id}` as recorded (wrong identity, or a different or altered request)"
            ))
        })?;
        // Only current custodians count, under their current keys and threshold: a custodian a
        // rekey removed (a lost or compromised one, say) no longer counts towards k, and a new
        // custodian who reuses an old name is a different signer.
        let mut current = Vec::with_capacity(approval.signatures.len());
        for earlier in std::mem::take(&mut approval.signatures) {
            if self
                .custodian(&earlier.custodian)?
                .is_some_and(|c| verifies(&c, &message, &earlier.signature))
            {
                current.push(earlier);
            }
        }
        approval.signatures = current;
        approval.required = approval.required.max(self.seal_status()?.threshold);
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
        approval.state = match self.execute(&approval.request) {
            Ok(outcome) => ApprovalState::Executed { at: now, outcome },
            Err(e) => ApprovalState::Failed {
                at: now,
                error: e.to_string(),
            },
        };
        // The root key may have changed (rotate-root, rekey): seal the record afresh. If the
        // vault was sealed meanwhile the record keeps its "running" mark (it cannot be written
        // without the root key) and still never runs again; the signer learns what happened.
        let records = match self.sealed_records() {
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

    fn execute(&self, request: &Dangerous) -> Result<String, Error> {
        match request {
            Dangerous::DeleteKey { tenant, key } => self
                .delete_key(tenant, key)
                .map(|()| format!("key {tenant}/{key} deleted")),
            Dangerous::TrimKey {
                tenant,
                key,
                min_available_version,
            } => self
                .trim_key(tenant, key, *min_available_version)
                .map(|info| {
                    format!(
                        "key {tenant}/{key} trimmed below version {}",
                        info.config.min_available_version
                    )
                }),
            Dangerous::ShredTenant { tenant } => self
                .shred_tenant(tenant)
                .map(|()| format!("tenant {tenant} shredded")),
            Dangerous::ConfigureKey {
                tenant,
                key,
                update,
            } => self
                .configure_key(tenant, key, update)
                .map(|_| format!("key {tenant}/{key} reconfigured")),
            Dangerous::RotateRoot => self
                .rotate_root(None)
                .map(|s| format!("root key rotated (generation {})", s.root_generation)),
            Dangerous::Rekey {
                custodians,
                threshold,
            } => self
                .rotate_root(Some(&InitRequest {
                    custodians: custodians.clone(),
                    threshold: *threshold,
                }))
                .map(|s| {
                    format!(
                        "rekeyed: {}-of-{}, generation {}",
                        s.threshold, s.shares, s.root_generation
                    )
                }),
            Dangerous::ChangeTenantCustodians { tenant, custodians } => self
                .change_tenant_custodians(tenant, custodians)
                .map(|t| format!("tenant {tenant} custodians: {}", t.custodians.join(", "))),
            Dangerous::ActivatePinEarly { app, kid } => self
                .activate_pin_key(app, kid, crate::pins::ActivationMode::Override)
                .map(|c| {
                    format!(
                        "pinned key {kid} of app {app} active early (manifest version {})",
                        c.manifest_version.map_or("none".into(), |v| v.to_string())
                    )
                }),
        }
    }
}

/// An Ed25519 signature from its base64 text.
fn decode_signature(signature_b64: &str) -> Option<Signature> {
    STANDARD
        .decode(signature_b64)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
}

/// True if `signature_b64` is `custodian`'s Ed25519 signature over `message`.
fn verifies(custodian: &CustodianPublicKey, message: &[u8], signature_b64: &str) -> bool {
    decode_signature(signature_b64).is_some_and(|signature| {
        custodian
            .ed25519()
            .verify_strict(message, &signature)
            .is_ok()
    })
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
