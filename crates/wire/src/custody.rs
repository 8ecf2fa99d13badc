//! What custodians and the vault send each other (docs/custody.md): the seal status, root-key
//! shares sealed to a custodian and back to the vault, and level-3 tenant custody keys.
//!
//! Every box is a sealed box (docs/format.md) whose purpose label and context name exactly what
//! it is for, so a box made for one use (a share) can never be accepted as another (a custody
//! key), for another vault, root generation, unseal round or tenant.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tresor_crypto::identity::{CustodianIdentity, IdentityError};
use tresor_crypto::sealed_box::{self, BoxPublicKey, SealedBoxError};
use tresor_crypto::shamir::Share;
use tresor_crypto::{LengthPrefixed, SecretKey};
use zeroize::Zeroizing;

/// Purpose of a root-key share sealed to its custodian.
pub const SHARE_PURPOSE: &str = "tresor-root-share-v1";
/// Purpose of a share on its way back to the vault, sealed to the current unseal key.
pub const SUBMISSION_PURPOSE: &str = "tresor-unseal-submission-v1";
/// Purpose of a level-3 tenant's custody key sealed to one of its custodians.
pub const CUSTODY_PURPOSE: &str = "tresor-tenant-custody-v1";
/// Purpose of a custody key on its way back to the vault, sealed to the current unseal key.
pub const UNLOCK_PURPOSE: &str = "tresor-tenant-unlock-v1";

/// A custodian's share as stored by the vault: only that custodian's identity opens it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedShare {
    /// The vault it belongs to.
    pub vault_id: String,
    /// The root key generation it belongs to.
    pub root_generation: u32,
    /// The custodian it is sealed to.
    pub custodian: String,
    /// The share's index (its x coordinate).
    pub index: u8,
    /// The sealed box, base64.
    pub sealed: String,
}

impl SealedShare {
    /// Opens this share with the custodian's identity.
    pub fn open(&self, identity: &CustodianIdentity) -> Result<RootShare, IdentityError> {
        let bad = |reason: &str| IdentityError::Format {
            kind: "sealed share",
            reason: reason.to_owned(),
        };
        let bytes = STANDARD
            .decode(&self.sealed)
            .map_err(|_| bad("not base64"))?;
        let context = share_context(&self.vault_id, self.root_generation, self.index);
        let plain = identity
            .open(SHARE_PURPOSE, context.as_slice(), &bytes)
            .map_err(|_| {
                bad("it does not open with this identity: sealed to another custodian, or altered")
            })?;
        RootShare::from_bytes(&plain).ok_or_else(|| bad("wrong length"))
    }
}

/// An opened root-key share. Zeroized on drop; never printed.
pub struct RootShare(Share);

impl std::fmt::Debug for RootShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootShare(index {}, [REDACTED])", self.0.index)
    }
}

impl RootShare {
    /// Wraps a share.
    pub fn new(share: Share) -> Self {
        RootShare(share)
    }

    /// The share's index.
    pub fn index(&self) -> u8 {
        self.0.index
    }

    /// The share itself.
    pub fn into_share(self) -> Share {
        self.0
    }

    /// Seals this share for submission to the vault `vault_id` whose current unseal key is
    /// `unseal_key` (from its seal status), on behalf of `custodian`. Only that vault, in that
    /// unseal round, can open it: the share never crosses the wire readable, not even inside TLS.
    pub fn seal_for_submission(
        &self,
        vault_id: &str,
        unseal_key: &[u8; 32],
        custodian: &str,
    ) -> Result<Vec<u8>, SealedBoxError> {
        let context = submission_context(vault_id, unseal_key, custodian);
        sealed_box::seal(
            &BoxPublicKey::from_bytes(*unseal_key)?,
            SUBMISSION_PURPOSE,
            context.as_slice(),
            &self.to_bytes(),
        )
    }

    /// The 33-byte encoding: index, then the 32 value bytes.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(33));
        bytes.push(self.0.index);
        bytes.extend_from_slice(self.0.value.expose());
        bytes
    }

    /// Parses the 33-byte encoding.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 33 {
            return None;
        }
        let value = SecretKey::from_slice(&bytes[1..])?;
        Some(RootShare(Share {
            index: bytes[0],
            value,
        }))
    }
}

/// A level-3 tenant's custody key, opened by one of its custodians. Zeroized on drop.
pub struct TenantCustodyKey(SecretKey);

impl std::fmt::Debug for TenantCustodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantCustodyKey([REDACTED])")
    }
}

impl TenantCustodyKey {
    /// Wraps key material.
    pub fn new(key: SecretKey) -> Self {
        TenantCustodyKey(key)
    }

    /// The key from 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        SecretKey::from_slice(bytes).map(TenantCustodyKey)
    }

    /// The key material.
    pub fn secret(&self) -> &SecretKey {
        &self.0
    }

    /// Opens the custody key of level-3 tenant `tenant` of vault `vault_id`, sealed to this
    /// custodian (`sealed` is the base64 box from the vault's tenant custody route).
    pub fn open(
        identity: &CustodianIdentity,
        vault_id: &str,
        tenant: &str,
        sealed: &str,
    ) -> Result<TenantCustodyKey, IdentityError> {
        let bad = |reason: &str| IdentityError::Format {
            kind: "sealed custody key",
            reason: reason.to_owned(),
        };
        let bytes = STANDARD.decode(sealed).map_err(|_| bad("not base64"))?;
        let plain = identity
            .open(
                CUSTODY_PURPOSE,
                custody_context(vault_id, tenant).as_slice(),
                &bytes,
            )
            .map_err(|_| {
                bad("it does not open with this identity: sealed to someone else, for another tenant, or altered")
            })?;
        TenantCustodyKey::from_slice(&plain).ok_or_else(|| bad("wrong length"))
    }

    /// Seals this key for unlocking tenant `tenant` on the vault `vault_id` whose current
    /// unseal key is `unseal_key`: only that vault, until its unseal key changes, can open it.
    pub fn seal_for_unlock(
        &self,
        vault_id: &str,
        unseal_key: &[u8; 32],
        tenant: &str,
        custodian: &str,
    ) -> Result<Vec<u8>, SealedBoxError> {
        let context = unlock_context(vault_id, unseal_key, tenant, custodian);
        sealed_box::seal(
            &BoxPublicKey::from_bytes(*unseal_key)?,
            UNLOCK_PURPOSE,
            context.as_slice(),
            self.0.expose(),
        )
    }
}

/// What a share sealed to its custodian is bound to.
pub fn share_context(vault_id: &str, root_generation: u32, index: u8) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(vault_id.as_bytes())
        .u32(root_generation)
        .bytes(&[index])
}

/// What a share submitted to the vault is bound to.
pub fn submission_context(
    vault_id: &str,
    unseal_key: &[u8; 32],
    custodian: &str,
) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(vault_id.as_bytes())
        .bytes(unseal_key)
        .bytes(custodian.as_bytes())
}

/// What a custody key sealed to a tenant custodian is bound to.
pub fn custody_context(vault_id: &str, tenant: &str) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(vault_id.as_bytes())
        .bytes(tenant.as_bytes())
}

/// What a custody key submitted to unlock a tenant is bound to.
pub fn unlock_context(
    vault_id: &str,
    unseal_key: &[u8; 32],
    tenant: &str,
    custodian: &str,
) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(vault_id.as_bytes())
        .bytes(unseal_key)
        .bytes(tenant.as_bytes())
        .bytes(custodian.as_bytes())
}

/// Where unsealing stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealProgress {
    /// True until the threshold is reached.
    pub sealed: bool,
    /// Shares needed (k).
    pub threshold: u8,
    /// Custodians (n).
    pub shares: u8,
    /// Custodians whose shares were accepted in the current round.
    pub submitted: Vec<String>,
}

/// The vault's state as shown to anyone who asks (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    /// `init` has run.
    pub initialized: bool,
    /// The root key is not in memory.
    pub sealed: bool,
    /// Environment name.
    pub environment: String,
    /// Vault identifier (empty before init).
    pub vault_id: String,
    /// Root key generation.
    pub root_generation: u32,
    /// Shares needed.
    pub threshold: u8,
    /// Custodians.
    pub shares: u8,
    /// Custodian names, in share order.
    pub custodians: Vec<String>,
    /// Custodians whose shares were accepted in the current round.
    pub submitted: Vec<String>,
    /// The X25519 key (base64) to seal share submissions and tenant custody keys to.
    pub unseal_key: String,
}

/// Who holds the root key, and how many of them are needed.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// The custodians, one share each.
    pub custodians: Vec<tresor_crypto::identity::CustodianPublicKey>,
    /// How many shares unseal (k of n).
    pub threshold: u8,
}
