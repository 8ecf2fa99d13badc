//! Tresor's own routes under `/v1/sys/`: health and seal status in Vault's shapes, the
//! custodians' routes (docs/custody.md), tenants, approvals, metrics and audit hashes
//! (docs/audit.md).

use super::Route;

/// GET (or HEAD) `sys/health`: Vault's health answer and status codes.
pub const HEALTH: Route = Route::get("sys/health");
/// GET `sys/seal-status`: Vault's seal status, plus custodians and the current unseal key.
pub const SEAL_STATUS: Route = Route::get("sys/seal-status");
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
/// POST `sys/tenants/{tenant}/rotate-kek`.
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
/// GET `sys/metrics`: Prometheus text.
pub const METRICS: Route = Route::get("sys/metrics");
/// POST `sys/audit/hash`: the audit form of a known value.
pub const AUDIT_HASH: Route = Route::post("sys/audit/hash");
