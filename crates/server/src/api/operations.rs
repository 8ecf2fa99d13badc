//! The operations the API performs, as policies name them. Their order is the vocabulary's
//! (policy error messages list them in it).

use std::sync::LazyLock;

use crate::policy::{Operation, Scope, Vocabulary};

pub(crate) const CREATE_KEY: Operation = Operation::new("create", Scope::Key);
pub(crate) const READ_KEY: Operation = Operation::new("read", Scope::Key);
pub(crate) const LIST_KEYS: Operation = Operation::new("list", Scope::Tenant);
pub(crate) const DELETE_KEY: Operation = Operation::new("delete", Scope::Key);
pub(crate) const CONFIGURE_KEY: Operation = Operation::new("config", Scope::Key);
pub(crate) const ROTATE_KEY: Operation = Operation::new("rotate", Scope::Key);
pub(crate) const TRIM_KEY: Operation = Operation::new("trim", Scope::Key);
pub(crate) const ENCRYPT: Operation = Operation::new("encrypt", Scope::Key);
pub(crate) const DECRYPT: Operation = Operation::new("decrypt", Scope::Key);
pub(crate) const REWRAP: Operation = Operation::new("rewrap", Scope::Key);
pub(crate) const DATAKEY: Operation = Operation::new("datakey", Scope::Key);
pub(crate) const HMAC: Operation = Operation::new("hmac", Scope::Key);
pub(crate) const VERIFY: Operation = Operation::new("verify", Scope::Key);
pub(crate) const EXPORT: Operation = Operation::new("export", Scope::Key);
pub(crate) const READ_TENANT: Operation = Operation::new("tenant-read", Scope::Tenant);
pub(crate) const LOCK_TENANT: Operation = Operation::new("tenant-lock", Scope::Tenant);
pub(crate) const UNLOCK_TENANT: Operation = Operation::new("tenant-unlock", Scope::Tenant);
pub(crate) const ROTATE_TENANT_KEK: Operation = Operation::new("tenant-rotate-kek", Scope::Tenant);
pub(crate) const CHANGE_TENANT_CUSTODY: Operation = Operation::new("tenant-custody", Scope::Tenant);
pub(crate) const SHRED_TENANT: Operation = Operation::new("tenant-shred", Scope::Tenant);
pub(crate) const CREATE_TENANT: Operation = Operation::new("tenant-create", Scope::Vault);
pub(crate) const LIST_TENANTS: Operation = Operation::new("tenant-list", Scope::Vault);
pub(crate) const INIT: Operation = Operation::new("init", Scope::Vault);
pub(crate) const UNSEAL: Operation = Operation::new("unseal", Scope::Vault);
pub(crate) const SEAL: Operation = Operation::new("seal", Scope::Vault);
pub(crate) const ROTATE_ROOT: Operation = Operation::new("rotate-root", Scope::Vault);
pub(crate) const REKEY: Operation = Operation::new("rekey", Scope::Vault);
pub(crate) const LIST_APPROVALS: Operation = Operation::new("approval-list", Scope::Vault);
pub(crate) const APPROVE: Operation = Operation::new("approval-approve", Scope::Vault);
pub(crate) const METRICS: Operation = Operation::new("metrics", Scope::Vault);
pub(crate) const AUDIT_HASH: Operation = Operation::new("audit-hash", Scope::Vault);
pub(crate) const READ_PINS: Operation = Operation::new("pins-read", Scope::Vault);
pub(crate) const MANAGE_PINS: Operation = Operation::new("pins-manage", Scope::Vault);
pub(crate) const DELIVER_PIN_KEY: Operation = Operation::new("pins-deliver", Scope::Vault);

const ALL: [Operation; 34] = [
    CREATE_KEY,
    READ_KEY,
    LIST_KEYS,
    DELETE_KEY,
    CONFIGURE_KEY,
    ROTATE_KEY,
    TRIM_KEY,
    ENCRYPT,
    DECRYPT,
    REWRAP,
    DATAKEY,
    HMAC,
    VERIFY,
    EXPORT,
    READ_TENANT,
    LOCK_TENANT,
    UNLOCK_TENANT,
    ROTATE_TENANT_KEK,
    CHANGE_TENANT_CUSTODY,
    SHRED_TENANT,
    CREATE_TENANT,
    LIST_TENANTS,
    INIT,
    UNSEAL,
    SEAL,
    ROTATE_ROOT,
    REKEY,
    LIST_APPROVALS,
    APPROVE,
    METRICS,
    AUDIT_HASH,
    READ_PINS,
    MANAGE_PINS,
    DELIVER_PIN_KEY,
];

/// Routes counted without a policy operation, after the operations.
pub(crate) const OPEN_ROUTES: [&str; 4] = ["health", "seal-status", "init-status", "unrouted"];

static VOCABULARY: LazyLock<Vocabulary> =
    LazyLock::new(|| Vocabulary::new(ALL).expect("the API declares a valid vocabulary"));

/// Every operation the API declares.
pub(crate) fn vocabulary() -> &'static Vocabulary {
    &VOCABULARY
}

/// The metrics rows: every operation, then the routes without one.
pub(crate) fn metric_rows() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|op| op.name()).chain(OPEN_ROUTES)
}
