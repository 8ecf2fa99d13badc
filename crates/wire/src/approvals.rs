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

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tresor_crypto::LengthPrefixed;
use tresor_crypto::identity::{CustodianIdentity, CustodianPublicKey};

use crate::keys::KeyConfigUpdate;

/// Version 2 binds the signer (name, fingerprint, principal), the decision and the custodian set;
/// signatures made under version 1 no longer count.
const SIGNATURE_LABEL: &[u8] = b"tresor-approval-v2";

/// What a custodian's signature says about an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it run.
    Approve,
    /// Do not let it run.
    Reject,
}

impl Decision {
    fn label(self) -> &'static [u8] {
        match self {
            Decision::Approve => b"approve",
            Decision::Reject => b"reject",
        }
    }
}

/// An operation that needs custodian approval, with every parameter that decides what it does.
/// Its JSON is the canonical form custodians sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Dangerous {
    /// Delete a key and with it every ciphertext it protects: after its deletion window, or
    /// at once with a window of 0 (docs/custody.md, "Scheduled deletion").
    DeleteKey {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
        /// The window asked for, in seconds (absent: the key's `deletion_window`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deletion_window: Option<u64>,
    },
    /// Cancel a key's scheduled deletion: it is restored with every version.
    CancelKeyDeletion {
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
    /// Shred a tenant and every key in it: after its deletion window, or at once with 0.
    ShredTenant {
        /// Tenant.
        tenant: String,
        /// The window asked for, in seconds (absent: the tenant's `deletion_window`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deletion_window: Option<u64>,
    },
    /// Cancel a tenant's scheduled shred: it is restored with every key.
    CancelTenantShred {
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
    /// Create an exportable key: its material may leave the vault from the start, so creating
    /// it needs the approval that making an existing key exportable needs.
    CreateExportableKey {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
        /// A key per context.
        #[serde(default)]
        derived: bool,
        /// Deterministic encryption (needs `derived`).
        #[serde(default)]
        convergent_encryption: bool,
        /// Seconds between automatic rotations (0: never).
        #[serde(default)]
        auto_rotate_period: u64,
    },
    /// Replace the root key, keeping custodians and threshold.
    RotateRoot,
    /// Replace the root key and hand its shares to a new custodian set and/or threshold.
    Rekey {
        /// The new custodians.
        custodians: Vec<CustodianPublicKey>,
        /// The new threshold.
        threshold: u8,
        /// Four eyes for the new set (absent: on wherever the new set allows it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        four_eyes: Option<bool>,
    },
    /// Replace a level-3 tenant's own custodians (and threshold).
    ChangeTenantCustodians {
        /// Tenant.
        tenant: String,
        /// The new custodians.
        custodians: Vec<CustodianPublicKey>,
        /// The new threshold (absent: unchanged).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<u8>,
    },
    /// Seal a key (configuration and every version) to another vault's transfer key.
    TransferKey {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
        /// The receiving vault's id.
        to_vault: String,
        /// Its transfer key (base64 X25519), checked against its node when asked.
        to_key: String,
    },
    /// Store a key another vault sealed to this one.
    ReceiveKey {
        /// Tenant.
        tenant: String,
        /// Key.
        key: String,
        /// The sending vault's id.
        from_vault: String,
        /// The sealed package, base64.
        package: String,
        /// Replace an existing key of that name.
        replace: bool,
    },
    /// Activate a pinned key before it has been published for the app's `max_update_lag`:
    /// apps that have not updated since may not know its pin yet and would refuse the server.
    ActivatePinEarly {
        /// Pinning app.
        app: String,
        /// Key id.
        kid: String,
    },
    /// Enrol a node's identity key for peer unseal: an unsealed node then hands the root key
    /// to that node, sealed to its per-boot key, whenever it restarts (docs/custody.md).
    EnrolNode {
        /// The node identity key's fingerprint (as `tresor status` and `NODE.pub` show it).
        fingerprint: String,
        /// Where the node serves, so custodians see which machine they let in.
        address: String,
    },
    /// Remove a node's enrolment: it then needs custodians to unseal it again.
    RemoveNode {
        /// The node identity key's fingerprint.
        fingerprint: String,
    },
}

/// In the outcome of an executed [`Dangerous::TransferKey`], what precedes the sealed package
/// (base64), which the requester hands to the receiving vault.
pub const PACKAGE_MARK: &str = "; package: ";

impl Dangerous {
    /// The operation's name, as in its JSON `operation` tag (`rotate-root`, `delete-key`, …).
    pub fn operation(&self) -> &'static str {
        match self {
            Dangerous::DeleteKey { .. } => "delete-key",
            Dangerous::CancelKeyDeletion { .. } => "cancel-key-deletion",
            Dangerous::CancelTenantShred { .. } => "cancel-tenant-shred",
            Dangerous::TrimKey { .. } => "trim-key",
            Dangerous::ShredTenant { .. } => "shred-tenant",
            Dangerous::ConfigureKey { .. } => "configure-key",
            Dangerous::CreateExportableKey { .. } => "create-exportable-key",
            Dangerous::RotateRoot => "rotate-root",
            Dangerous::Rekey { .. } => "rekey",
            Dangerous::ChangeTenantCustodians { .. } => "change-tenant-custodians",
            Dangerous::TransferKey { .. } => "transfer-key",
            Dangerous::ReceiveKey { .. } => "receive-key",
            Dangerous::ActivatePinEarly { .. } => "activate-pin-early",
            Dangerous::EnrolNode { .. } => "enrol-node",
            Dangerous::RemoveNode { .. } => "remove-node",
        }
    }

    /// What it acts on: `tenant/key`, a tenant, `pins/<app>/<kid>`, or `vault`.
    pub fn target(&self) -> String {
        match self {
            Dangerous::DeleteKey { tenant, key, .. }
            | Dangerous::CancelKeyDeletion { tenant, key }
            | Dangerous::TrimKey { tenant, key, .. }
            | Dangerous::ConfigureKey { tenant, key, .. }
            | Dangerous::CreateExportableKey { tenant, key, .. }
            | Dangerous::TransferKey { tenant, key, .. }
            | Dangerous::ReceiveKey { tenant, key, .. } => format!("{tenant}/{key}"),
            Dangerous::ShredTenant { tenant, .. }
            | Dangerous::CancelTenantShred { tenant }
            | Dangerous::ChangeTenantCustodians { tenant, .. } => tenant.clone(),
            Dangerous::RotateRoot | Dangerous::Rekey { .. } => "vault".to_owned(),
            Dangerous::ActivatePinEarly { app, kid } => format!("pins/{app}/{kid}"),
            Dangerous::EnrolNode { fingerprint, .. } | Dangerous::RemoveNode { fingerprint } => {
                format!("nodes/{fingerprint}")
            }
        }
    }

    /// True if this operation removes `custodian` from the vault's custodians (a rekey without
    /// them): their rejection does not count, so no one can veto their own removal.
    pub fn removes(&self, custodian: &CustodianPublicKey) -> bool {
        match self {
            Dangerous::Rekey { custodians, .. } => !custodians.iter().any(|c| {
                c.name() == custodian.name() && c.fingerprint() == custodian.fingerprint()
            }),
            _ => false,
        }
    }

    /// One line saying what will happen, for the custodian deciding whether to sign.
    pub fn describe(&self) -> String {
        match self {
            Dangerous::DeleteKey {
                tenant,
                key,
                deletion_window,
            } => format!(
                "delete key {tenant}/{key}{}: its ciphertexts can never be decrypted again",
                window_words(*deletion_window)
            ),
            Dangerous::CancelKeyDeletion { tenant, key } => format!(
                "cancel the scheduled deletion of key {tenant}/{key}: it is usable again with every version"
            ),
            Dangerous::CancelTenantShred { tenant } => format!(
                "cancel the scheduled shred of tenant {tenant}: it is usable again with every key"
            ),
            Dangerous::TrimKey {
                tenant,
                key,
                min_available_version,
            } => format!(
                "trim key {tenant}/{key}: versions below {min_available_version} are destroyed and their ciphertexts can never be decrypted again"
            ),
            Dangerous::ShredTenant {
                tenant,
                deletion_window,
            } => {
                format!(
                    "shred tenant {tenant}{}: every key in it and every ciphertext under them is lost",
                    window_words(*deletion_window)
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
            Dangerous::CreateExportableKey {
                tenant,
                key,
                derived,
                convergent_encryption,
                auto_rotate_period,
            } => format!(
                "create key {tenant}/{key} exportable (derived {derived}, convergent {convergent_encryption}, auto_rotate_period {auto_rotate_period}s): its material may be exported at once"
            ),
            Dangerous::RotateRoot => {
                "rotate the root key (custodians and threshold stay)".to_owned()
            }
            Dangerous::TransferKey {
                tenant,
                key,
                to_vault,
                ..
            } => format!(
                "seal key {tenant}/{key}, every version, to vault {to_vault}: that vault can then serve it"
            ),
            Dangerous::ReceiveKey {
                tenant,
                key,
                from_vault,
                replace,
                ..
            } => format!(
                "store key {tenant}/{key} as vault {from_vault} sealed it{}",
                if *replace {
                    ", REPLACING the existing key of that name (its versions are lost)"
                } else {
                    ""
                }
            ),
            Dangerous::Rekey {
                custodians,
                threshold,
                four_eyes,
            } => format!(
                "rekey: new root key shared {threshold}-of-{} among {}, four eyes {}; the current shares stop working",
                custodians.len(),
                custodians
                    .iter()
                    .map(|c| format!(
                        "{} ({}{})",
                        c.name(),
                        c.fingerprint(),
                        c.principal().map(|p| format!(", {p}")).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                match four_eyes.unwrap_or(custodians.len() > usize::from(*threshold)) {
                    true => "on",
                    false => "off",
                }
            ),
            Dangerous::ChangeTenantCustodians {
                tenant,
                custodians,
                threshold,
            } => format!(
                "tenant {tenant}: custodians become {}{}; its custody key, KEK and every key get new versions",
                threshold
                    .map(|k| format!("{k}-of-{} ", custodians.len()))
                    .unwrap_or_default(),
                custodians
                    .iter()
                    .map(|c| format!(
                        "{} ({}{})",
                        c.name(),
                        c.fingerprint(),
                        c.principal().map(|p| format!(", {p}")).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Dangerous::ActivatePinEarly { app, kid } => format!(
                "activate pinned key {kid} of app {app} before max_update_lag has passed: app installs that have not updated since its pin was published will fail to connect"
            ),
            Dangerous::EnrolNode {
                fingerprint,
                address,
            } => format!(
                "enrol node {fingerprint} ({address}) for peer unseal: after every restart it gets the root key from an unsealed node, without custodians; whoever holds its identity key file and the store can do the same"
            ),
            Dangerous::RemoveNode { fingerprint } => format!(
                "remove node {fingerprint} from peer unseal: after its next restart or root rotation, custodians must unseal it"
            ),
        }
    }
}

/// How a deletion's window reads in its description.
fn window_words(window: Option<u64>) -> String {
    match window {
        None => {
            " after its deletion window (unusable meanwhile, cancellable until then)".to_owned()
        }
        Some(0) => " IMMEDIATELY, with no deletion window to cancel it in".to_owned(),
        Some(seconds) => format!(
            " after a deletion window of {seconds} seconds (unusable meanwhile, cancellable until then)"
        ),
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
    /// Enough custodians rejected it that the threshold can no longer be met.
    Rejected {
        /// When the deciding rejection came.
        at: u64,
    },
    /// The principal that asked withdrew it.
    Cancelled {
        /// When.
        at: u64,
        /// Who (the requester's principal).
        by: String,
    },
}

/// One custodian's signature (an approval or a rejection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSignature {
    /// The custodian.
    pub custodian: String,
    /// The custodian's fingerprint when it signed.
    #[serde(default)]
    pub fingerprint: String,
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
    /// Rejections accepted so far.
    #[serde(default)]
    pub rejections: Vec<ApprovalSignature>,
    /// Hash of the custodian set (custodians, keys, principals, threshold) the approval was
    /// asked of; part of every signature, so a signature never counts under another set.
    #[serde(default)]
    pub custodian_set: String,
    /// Four eyes: the custodian who asked does not count among the approvers.
    #[serde(default)]
    pub four_eyes: bool,
    /// Whose custodians decide: the vault's (absent), or a level-3 tenant's own, for what
    /// touches that tenant's custody (its custodians, an exportable key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_quorum: Option<String>,
    /// Pending, executed or failed.
    pub state: ApprovalState,
}

impl Approval {
    /// The exact bytes `custodian` signs to take `decision`: LP("tresor-approval-v2") ‖
    /// LP(vault id) ‖ LP(approval id) ‖ LP(canonical request JSON) ‖ LP(requested by) ‖
    /// u64 expires_at ‖ LP(custodian set) ‖ LP(decision) ‖ LP(custodian name) ‖
    /// LP(custodian fingerprint) ‖ LP(custodian principal, empty if unbound).
    pub fn signed_message(&self, custodian: &CustodianPublicKey, decision: Decision) -> Vec<u8> {
        let canonical = serde_json::to_vec(&self.request).expect("serializes");
        LengthPrefixed::new()
            .bytes(SIGNATURE_LABEL)
            .bytes(self.vault_id.as_bytes())
            .bytes(self.id.as_bytes())
            .bytes(&canonical)
            .bytes(self.requested_by.as_bytes())
            .u64(self.expires_at)
            .bytes(self.custodian_set.as_bytes())
            .bytes(self.tenant_quorum.as_deref().unwrap_or_default().as_bytes())
            .bytes(decision.label())
            .bytes(custodian.name().as_bytes())
            .bytes(custodian.fingerprint().as_bytes())
            .bytes(custodian.principal().unwrap_or_default().as_bytes())
            .into_vec()
    }
}

impl Approval {
    /// The approval as it stands at `now`: a pending one whose time has passed is expired.
    pub fn seen_at(mut self, now: u64) -> Approval {
        if self.state == ApprovalState::Pending && now >= self.expires_at {
            self.state = ApprovalState::Expired {
                at: self.expires_at,
            };
        }
        self
    }
}

impl Approval {
    /// `identity`'s approval of this operation (base64 Ed25519 over
    /// [`Approval::signed_message`]), for a custodian to submit.
    pub fn sign(&self, identity: &CustodianIdentity) -> String {
        self.sign_decision(identity, Decision::Approve)
    }

    /// `identity`'s signature of `decision`.
    pub fn sign_decision(&self, identity: &CustodianIdentity, decision: Decision) -> String {
        STANDARD.encode(identity.sign(&self.signed_message(identity.public(), decision)))
    }

    /// True if `signature_b64` is `custodian`'s signature of `decision` on this approval.
    pub fn signed_by(
        &self,
        custodian: &CustodianPublicKey,
        signature_b64: &str,
        decision: Decision,
    ) -> bool {
        STANDARD.decode(signature_b64).is_ok_and(|signature| {
            custodian.verifies(&self.signed_message(custodian, decision), &signature)
        })
    }
}

/// What an approval or rejection call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalOutcome {
    /// The approval after this signature.
    pub approval: Approval,
    /// False if this custodian had decided already (a custodian counts once), or does not count
    /// (the requester under four eyes, or a custodian the operation removes rejecting it).
    pub counted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit log names operations by `Dangerous::operation`; it must be the JSON tag that
    /// approvals carry, for every variant.
    #[test]
    fn operation_names_are_the_json_tags() {
        let alice = CustodianIdentity::generate("alice")
            .unwrap()
            .public()
            .clone();
        let all = [
            Dangerous::DeleteKey {
                tenant: "t".into(),
                key: "k".into(),
                deletion_window: Some(0),
            },
            Dangerous::CancelKeyDeletion {
                tenant: "t".into(),
                key: "k".into(),
            },
            Dangerous::CancelTenantShred { tenant: "t".into() },
            Dangerous::TrimKey {
                tenant: "t".into(),
                key: "k".into(),
                min_available_version: 2,
            },
            Dangerous::ShredTenant {
                tenant: "t".into(),
                deletion_window: None,
            },
            Dangerous::ConfigureKey {
                tenant: "t".into(),
                key: "k".into(),
                update: KeyConfigUpdate::default(),
            },
            Dangerous::CreateExportableKey {
                tenant: "t".into(),
                key: "k".into(),
                derived: false,
                convergent_encryption: false,
                auto_rotate_period: 0,
            },
            Dangerous::RotateRoot,
            Dangerous::Rekey {
                custodians: vec![alice.clone()],
                threshold: 1,
                four_eyes: None,
            },
            Dangerous::ChangeTenantCustodians {
                tenant: "t".into(),
                custodians: vec![alice],
                threshold: None,
            },
            Dangerous::ActivatePinEarly {
                app: "a".into(),
                kid: "k1".into(),
            },
            Dangerous::EnrolNode {
                fingerprint: "aa".into(),
                address: "https://b:8200".into(),
            },
            Dangerous::RemoveNode {
                fingerprint: "aa".into(),
            },
            Dangerous::TransferKey {
                tenant: "t".into(),
                key: "k".into(),
                to_vault: "v".into(),
                to_key: "a2V5".into(),
            },
            Dangerous::ReceiveKey {
                tenant: "t".into(),
                key: "k".into(),
                from_vault: "v".into(),
                package: "cGFja2FnZQ==".into(),
                replace: false,
            },
        ];
        for request in all {
            let json = serde_json::to_value(&request).unwrap();
            assert_eq!(json["operation"], request.operation(), "{json}");
        }
    }
}
