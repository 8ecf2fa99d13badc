//! The library's error type. Every message names what was wrong with which object, and none
//! carries key material, plaintext or a share.

use crate::store::StoreError;

/// Anything a vault operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault holds no root key in memory; it must be unsealed first.
    #[error("the vault is sealed")]
    Sealed,
    /// `init` has not been run on this storage.
    #[error("the vault is not initialised")]
    NotInitialized,
    /// `init` was run before.
    #[error("the vault is already initialised")]
    AlreadyInitialized,
    /// An unseal attempt was refused; progress is unchanged.
    #[error("unseal refused: {0}")]
    Unseal(#[from] UnsealError),
    /// No tenant by that name.
    #[error("tenant `{0}` does not exist")]
    TenantNotFound(String),
    /// A tenant by that name exists already.
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    /// A level-3 tenant waits for one of its own custodians to unlock it.
    #[error("tenant `{0}` is locked: one of its custodians must unlock it")]
    TenantLocked(String),
    /// No key by that name in the tenant.
    #[error("key `{key}` does not exist in tenant `{tenant}`")]
    KeyNotFound {
        /// Tenant searched.
        tenant: String,
        /// Key name searched.
        key: String,
    },
    /// A key or tenant waits for destruction: unusable until its deletion is cancelled.
    #[error(
        "{what} is scheduled for destruction at {} (deletion window running since {}): it cannot be used; custodians can restore it with `tresor key cancel-deletion` / `tresor tenant cancel-shred` until then",
        tresor_wire::time::rfc3339(*destroy_at, 0),
        tresor_wire::time::rfc3339(*scheduled_at, 0)
    )]
    PendingDeletion {
        /// `key `k` in tenant `t`` or `tenant `t``.
        what: String,
        /// When the deletion was approved (Unix seconds).
        scheduled_at: u64,
        /// When it will be destroyed (Unix seconds).
        destroy_at: u64,
    },
    /// A key by that name exists already.
    #[error("key `{key}` already exists in tenant `{tenant}`")]
    KeyExists {
        /// Tenant.
        tenant: String,
        /// Key name.
        key: String,
    },
    /// A request field is missing, malformed or out of range.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, as named in the API.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No approval by that id (never proposed, or shredded with its records).
    #[error("approval `{0}` does not exist")]
    ApprovalNotFound(String),
    /// A ciphertext or HMAC token cannot be used.
    #[error("invalid ciphertext: {0}")]
    Ciphertext(#[from] CiphertextError),
    /// The operation is well-formed but the key's configuration forbids it.
    #[error("{0}")]
    NotPermitted(String),
    /// A stored record does not authenticate under the barrier.
    #[error(
        "storage record `{path}` failed its integrity check: it was altered, corrupted, or moved from another path"
    )]
    Integrity {
        /// The storage path of the record.
        path: String,
    },
    /// A record is older than the ledger says it should be, or missing (docs/custody.md,
    /// "Rollback").
    #[error(
        "storage record `{path}` was rolled back: {reason}; the vault refuses to use it (restore the store whole from a backup, or investigate who wrote it)"
    )]
    Rollback {
        /// The storage path of the record.
        path: String,
        /// What the ledger found.
        reason: String,
    },
    /// A check of the server refused the unseal (see `UnsealGuard`).
    #[error("unseal refused: {0}")]
    UnsealRefused(String),
    /// A level-3 tenant's custodians or threshold are not what its custody key vouched for.
    #[error(
        "tenant `{0}`'s custodians or threshold were changed outside the vault: they no longer match what its custody key vouched for, so nothing is unlocked or approved with them"
    )]
    TenantCustodiansTampered(String),
    /// The stored seal configuration is not the one the root key vouched for.
    #[error(
        "the seal configuration (custodians, threshold, environment in `core/seal`) was changed outside the vault: it no longer matches what the root key vouched for, so nothing is unsealed, approved or sealed to it; restore it from a backup or investigate who wrote the store"
    )]
    SealConfigTampered,
    /// A custodian's act came from a connection authenticated as another principal.
    #[error(
        "custodian `{custodian}` acts only as {bound}; this request is authenticated as {caller}: each custodian uses their own client certificate"
    )]
    WrongPrincipal {
        /// The custodian named.
        custodian: String,
        /// The principal it is bound to.
        bound: String,
        /// The caller's principal.
        caller: String,
    },
    /// The store was written by a newer release.
    #[error(
        "this store was written by a newer Tresor release (store format {found}; this release reads up to {supported}): upgrade tresor on this node before opening it, and do not downgrade nodes that share a store"
    )]
    StoreFormat {
        /// The store's format.
        found: u32,
        /// The newest this release reads.
        supported: u32,
    },
    /// A stored record authenticates but cannot be decoded: written by an incompatible version.
    #[error("storage record `{path}` cannot be decoded: {reason}")]
    RecordFormat {
        /// The storage path of the record.
        path: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a ciphertext (or HMAC token) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CiphertextError {
    /// Not of the form `tresor:v<N>:<base64>`.
    #[error("expected `tresor:v<version>:<base64>`, got something else")]
    WrongPrefix,
    /// The version field is not a positive decimal integer.
    #[error("version `{0}` is not a positive integer")]
    BadVersion(String),
    /// The payload is not standard base64.
    #[error("payload is not valid base64")]
    NotBase64,
    /// The payload cannot even hold a nonce and a tag.
    #[error("payload is {0} bytes, shorter than the 28 bytes of nonce and tag")]
    TooShort(usize),
    /// A `vault:` ciphertext for a version Tresor made, or a `tresor:` one for a version
    /// imported from Vault/OpenBao: no such ciphertext can be genuine.
    #[error(
        "key version {version} {}",
        if *imported {
            "was imported from Vault/OpenBao: its ciphertexts start with `vault:v`, and it never encrypts"
        } else {
            "is Tresor's own: its ciphertexts start with `tresor:v`, not `vault:v`"
        }
    )]
    WrongOrigin {
        /// Version in the ciphertext.
        version: u32,
        /// Whether that version was imported.
        imported: bool,
    },
    /// The version was never created.
    #[error("key version {version} does not exist (latest is {latest})")]
    UnknownVersion {
        /// Version in the ciphertext.
        version: u32,
        /// Latest version of the key.
        latest: u32,
    },
    /// The version was destroyed by trimming.
    #[error("key version {version} has been destroyed (min_available_version is {min_available})")]
    Trimmed {
        /// Version in the ciphertext.
        version: u32,
        /// Oldest version still held.
        min_available: u32,
    },
    /// The key's `min_decryption_version` excludes this version.
    #[error("key version {version} is below min_decryption_version {min_decryption}")]
    BelowMinDecryption {
        /// Version in the ciphertext.
        version: u32,
        /// The key's minimum decryption version.
        min_decryption: u32,
    },
    /// The tag does not verify.
    #[error(
        "authentication failed: the ciphertext was altered, or it belongs to another tenant, key, environment, context or associated data"
    )]
    Authentication,
}

/// Why a share was refused during unseal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsealError {
    /// Fewer shares than the threshold were offered to a one-shot unseal.
    #[error("{given} share(s) given, {threshold} needed")]
    NotEnoughShares {
        /// Shares given.
        given: usize,
        /// The threshold.
        threshold: u8,
    },
    /// The share's index matches no custodian of this vault.
    #[error("share {0} belongs to no custodian of this vault")]
    UnknownShare(u8),
    /// The share does not match its check value: wrong vault, old root key, or corrupted.
    #[error("share {0} is not a valid share of this vault's current root key")]
    WrongShare(u8),
    /// That custodian's share was already accepted in this round.
    #[error("share {0} was already submitted")]
    Duplicate(u8),
    /// A share is not 33 bytes.
    #[error("a share must be 33 bytes (index and value)")]
    Malformed,
    /// The shares combine into a key that is not this vault's root key.
    #[error(
        "the shares given do not open this vault's root check: fewer were given than its real threshold, or the seal configuration (threshold, shares, check values) or the root check record `core/root-check` was altered; the vault stays sealed"
    )]
    RootMismatch,
}

/// What kind of failure an [`Error`] is: how an API maps it to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller sent something wrong (HTTP 400).
    InvalidInput,
    /// The named object does not exist (HTTP 404).
    NotFound,
    /// The object exists already, or changed concurrently (HTTP 409 / 400 in Vault's API).
    Conflict,
    /// The vault or tenant cannot serve now: sealed, uninitialised or locked (HTTP 503).
    Unavailable,
    /// Storage is damaged or failing (HTTP 500).
    Internal,
    /// The caller is not the one allowed to do it (HTTP 403).
    Forbidden,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Sealed | Error::NotInitialized | Error::TenantLocked(_) => {
                ErrorKind::Unavailable
            }
            Error::TenantNotFound(_) | Error::KeyNotFound { .. } | Error::ApprovalNotFound(_) => {
                ErrorKind::NotFound
            }
            Error::AlreadyInitialized | Error::TenantExists(_) | Error::KeyExists { .. } => {
                ErrorKind::Conflict
            }
            Error::Store(StoreError::Conflict { .. }) => ErrorKind::Conflict,
            Error::Unseal(_)
            | Error::UnsealRefused(_)
            | Error::InvalidInput { .. }
            | Error::Ciphertext(_)
            | Error::NotPermitted(_)
            | Error::PendingDeletion { .. } => ErrorKind::InvalidInput,
            Error::Integrity { .. }
            | Error::Rollback { .. }
            | Error::RecordFormat { .. }
            | Error::Store(_)
            | Error::SealConfigTampered
            | Error::TenantCustodiansTampered(_)
            | Error::StoreFormat { .. } => ErrorKind::Internal,
            Error::WrongPrincipal { .. } => ErrorKind::Forbidden,
        }
    }

    /// An [`Error::InvalidInput`] naming `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}
