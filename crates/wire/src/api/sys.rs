//! Tresor's own routes under `/v1/sys/`: health and seal status in Vault's shapes, the
//! custodians' routes (docs/custody.md), tenants, approvals, metrics and audit hashes
//! (docs/audit.md).

use serde::{Deserialize, Serialize};
use tresor_crypto::identity::CustodianPublicKey;

use super::Route;
use super::params::{Flag, Int, Text};
use crate::approvals::Approval;

/// GET (or HEAD) `sys/health`: Vault's health answer and status codes.
pub const HEALTH: Route = Route::get("sys/health");
/// GET `sys/seal-status`: Vault's seal status, plus custodians and the current unseal key.
pub const SEAL_STATUS: Route = Route::get("sys/seal-status");
/// GET `sys/leader`: Vault's HA leader status (`bao status` reads it).
pub const LEADER: Route = Route::get("sys/leader");
/// GET `sys/mounts`: the tenants the caller may use, as Vault `transit` mounts (`bao secrets
/// list`).
pub const MOUNTS: Route = Route::get("sys/mounts");
/// GET `sys/init`: whether the vault is initialised.
pub const INIT_STATUS: Route = Route::get("sys/init");
/// POST `sys/init`: initialise with custodians and a threshold.
pub const INIT: Route = Route::post("sys/init");
/// GET `sys/unseal-share/{custodian}`: that custodian's share, sealed to their key.
pub const UNSEAL_SHARE: Route = Route::get("sys/unseal-share/{custodian}");
/// POST `sys/unseal`: one share, sealed to the current unseal key.
pub const UNSEAL: Route = Route::post("sys/unseal");
/// POST `sys/seal`.
pub const SEAL: Route = Route::post("sys/seal");
/// POST `sys/rotate-root`: ask for a root key rotation (an approval).
pub const ROTATE_ROOT: Route = Route::post("sys/rotate-root");
/// POST `sys/rekey`: ask for new custodians or threshold (an approval).
pub const REKEY: Route = Route::post("sys/rekey");
/// LIST `sys/tenants`.
pub const LIST_TENANTS: Route = Route::list("sys/tenants");
/// POST `sys/tenants/{tenant}`: create a tenant.
pub const CREATE_TENANT: Route = Route::post("sys/tenants/{tenant}");
/// GET `sys/tenants/{tenant}`.
pub const READ_TENANT: Route = Route::get("sys/tenants/{tenant}");
/// DELETE `sys/tenants/{tenant}`: shred, once custodians approve.
pub const SHRED_TENANT: Route = Route::delete("sys/tenants/{tenant}");
/// POST `sys/tenants/{tenant}/cancel-shred`: restore a tenant whose shred waits for its window
/// to end, once custodians approve.
pub const CANCEL_TENANT_SHRED: Route = Route::post("sys/tenants/{tenant}/cancel-shred");
/// POST `sys/tenants/{tenant}/rotate-kek`: the tenant's next KEK version.
pub const ROTATE_TENANT_KEK: Route = Route::post("sys/tenants/{tenant}/rotate-kek");
/// GET `sys/tenants/{tenant}/custody/{custodian}`: a level-3 tenant's custody key, sealed to
/// that custodian.
pub const TENANT_CUSTODY: Route = Route::get("sys/tenants/{tenant}/custody/{custodian}");
/// POST `sys/tenants/{tenant}/unlock`: the custody key, sealed to the current unseal key.
pub const UNLOCK_TENANT: Route = Route::post("sys/tenants/{tenant}/unlock");
/// POST `sys/tenants/{tenant}/lock`.
pub const LOCK_TENANT: Route = Route::post("sys/tenants/{tenant}/lock");
/// POST `sys/tenants/{tenant}/custodians`: replace a level-3 tenant's custodians (an
/// approval).
pub const CHANGE_TENANT_CUSTODIANS: Route = Route::post("sys/tenants/{tenant}/custodians");
/// LIST `sys/approvals`: approvals that have not run.
pub const LIST_APPROVALS: Route = Route::list("sys/approvals");
/// GET `sys/approvals/{id}`.
pub const READ_APPROVAL: Route = Route::get("sys/approvals/{id}");
/// POST `sys/approvals/{id}/approve`: a custodian's signature.
pub const APPROVE: Route = Route::post("sys/approvals/{id}/approve");
/// POST `sys/approvals/{id}/reject`: a custodian's signed rejection, which ends the approval.
pub const REJECT: Route = Route::post("sys/approvals/{id}/reject");
/// POST `sys/approvals/{id}/cancel`: the principal that asked withdraws it.
pub const CANCEL: Route = Route::post("sys/approvals/{id}/cancel");
/// GET `sys/metrics`: Prometheus text.
pub const METRICS: Route = Route::get("sys/metrics");
/// GET `sys/transfer-key`: this vault's key-transfer key, signed by its node.
pub const TRANSFER_KEY: Route = Route::get("sys/transfer-key");
/// GET `sys/backup`: a signed, consistent copy of the whole store (`tresor_wire::backup`).
pub const BACKUP: Route = Route::get("sys/backup");
/// POST `sys/audit/hash`: the audit form of a known value.
pub const AUDIT_HASH: Route = Route::post("sys/audit/hash");
/// LIST `sys/nodes`: the nodes enrolled for peer unseal.
pub const LIST_NODES: Route = Route::list("sys/nodes");
/// POST `sys/nodes/{fingerprint}`: ask for a node's enrolment (an approval).
pub const ENROL_NODE: Route = Route::post("sys/nodes/{fingerprint}");
/// DELETE `sys/nodes/{fingerprint}`: ask for a node's removal (an approval).
pub const REMOVE_NODE: Route = Route::delete("sys/nodes/{fingerprint}");
/// POST `sys/peer-unseal`: a sealed, enrolled node asks for the root key
/// (`crate::peers::PeerUnsealRequest`).
pub const PEER_UNSEAL: Route = Route::post("sys/peer-unseal");

// What travels on these routes. These are Tresor's own routes: unknown fields are refused.

/// The body of [`CREATE_TENANT`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Protection level, 1 (default) to 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Int>,
    /// Level 3: the tenant's own custodians.
    #[serde(default)]
    pub custodians: Vec<CustodianPublicKey>,
    /// Level 3: how many of them unlock it and approve what touches its custody (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Int>,
    /// Seconds between an approved shred and destruction (default 7 days, at most 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_window: Option<super::params::Seconds>,
}

/// The body of [`INIT`] and [`REKEY`]: custodians and how many of them unseal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyRequest {
    /// The custodians' public keys.
    #[serde(default)]
    pub custodians: Vec<CustodianPublicKey>,
    /// How many of them unseal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Int>,
    /// Four eyes: whoever asks for a dangerous operation cannot also approve it (default: on
    /// wherever n − 1 ≥ k).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub four_eyes: Option<Flag>,
}

/// The body of [`UNSEAL`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    /// The custodian submitting.
    pub custodian: String,
    /// The share sealed to the vault's current unseal key, base64.
    pub sealed_share: String,
    /// This custodian accepts a known gap at the end of the audit log (docs/audit.md); every
    /// custodian of the round must.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_audit_gap: bool,
}

/// The answer of [`TENANT_CUSTODY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustodyBox {
    /// The vault the key belongs to.
    pub vault_id: String,
    /// The tenant.
    pub tenant: String,
    /// The custodian it is sealed to.
    pub custodian: String,
    /// The tenant's custody key sealed to the custodian, base64.
    pub sealed_custody_key: String,
    /// The vault's current unseal key (X25519, base64), to seal the custody key back to.
    pub unseal_key: String,
}

/// The body of [`UNLOCK_TENANT`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockTenantRequest {
    /// The tenant custodian unlocking.
    pub custodian: String,
    /// The custody key sealed to the vault's current unseal key, base64.
    pub sealed_custody_key: String,
}

/// The body of [`CHANGE_TENANT_CUSTODIANS`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCustodiansRequest {
    /// The new custodians.
    pub custodians: Vec<CustodianPublicKey>,
    /// The new threshold (absent: unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Int>,
}

/// The answer of [`LIST_APPROVALS`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApprovalList {
    /// Approvals that have not run.
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

/// The body of [`APPROVE`] and [`REJECT`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The custodian signing.
    pub custodian: String,
    /// Ed25519 signature over the approval's signed message, base64.
    pub signature: String,
}

/// The body of [`AUDIT_HASH`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHashRequest<'a> {
    /// The value, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input: Text<'a>,
}

/// The answer of [`AUDIT_HASH`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditHash {
    /// The value's HMAC under the audit key, as audit lines show it.
    pub hmac: String,
}

/// The answer of [`INIT_STATUS`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct InitStatus {
    /// Whether the vault is initialised.
    pub initialized: bool,
}
