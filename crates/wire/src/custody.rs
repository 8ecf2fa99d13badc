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
/// Purpose of a level-3 tenant's whole custody key sealed to one of its custodians (tenants
/// made by release 0.1, where any one custodian unlocks).
pub const CUSTODY_PURPOSE: &str = "tresor-tenant-custody-v1";
/// Purpose of one Shamir share of a level-3 tenant's custody key sealed to one of its
/// custodians (k of them unlock).
pub const CUSTODY_SHARE_PURPOSE: &str = "tresor-tenant-custody-share-v1";
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

/// What one of a level-3 tenant's custodians holds of its custody key, opened: the whole key
/// (tenants made by release 0.1) or one Shamir share of it (k of n). Zeroized on drop.
pub struct TenantCustodyKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TenantCustodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantCustodyKey([REDACTED])")
    }
}

impl TenantCustodyKey {
    /// A whole custody key.
    pub fn new(key: SecretKey) -> Self {
        TenantCustodyKey(Zeroizing::new(key.expose().to_vec()))
    }

    /// A whole key (32 bytes) or a share (33 bytes: index, then the value).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        matches!(bytes.len(), 32 | 33).then(|| TenantCustodyKey(Zeroizing::new(bytes.to_vec())))
    }

    /// The whole key, if this is one.
    pub fn secret(&self) -> Option<SecretKey> {
        SecretKey::from_slice(&self.0)
    }

    /// The share, if this is one.
    pub fn share(&self) -> Option<Share> {
        let share = RootShare::from_bytes(&self.0)?;
        Some(share.into_share())
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
        let context = custody_context(vault_id, tenant);
        let plain = [CUSTODY_SHARE_PURPOSE, CUSTODY_PURPOSE]
            .iter()
            .find_map(|purpose| identity.open(purpose, context.as_slice(), &bytes).ok())
            .ok_or_else(|| {
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
            &self.0,
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

/// A vault's key-transfer key: where another vault seals a key it moves here, signed by this
/// vault's node identity so the sender can check whose it is (docs/recovery.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferKey {
    /// The vault's id.
    pub vault_id: String,
    /// Its environment.
    pub environment: String,
    /// The X25519 public key, base64.
    pub key: String,
    /// The node identity key, base64 Ed25519.
    pub node_key: String,
    /// The node's signature (base64) over [`transfer_key_message`].
    pub signature: String,
}

/// What a node signs to vouch for its vault's transfer key: LP("tresor-transfer-key-v1") ‖
/// LP(vault id) ‖ LP(environment) ‖ LP(key).
pub fn transfer_key_message(vault_id: &str, environment: &str, key: &[u8; 32]) -> Vec<u8> {
    LengthPrefixed::new()
        .bytes(b"tresor-transfer-key-v1")
        .bytes(vault_id.as_bytes())
        .bytes(environment.as_bytes())
        .bytes(key)
        .into_vec()
}

impl TransferKey {
    /// The X25519 key, once its signature holds and its node is `node` (a fingerprint).
    pub fn verify(&self, node: &str) -> Result<[u8; 32], String> {
        let key: [u8; 32] = STANDARD
            .decode(&self.key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or("its key is not 32 bytes of base64")?;
        let signer = STANDARD
            .decode(&self.node_key)
            .ok()
            .and_then(|k| tresor_crypto::sign::VerifyingKey::from_slice(&k))
            .ok_or("its node_key is not an Ed25519 key")?;
        if !signer.fingerprint().eq_ignore_ascii_case(node.trim()) {
            return Err(format!(
                "it is signed by node {}, not by {node}",
                signer.fingerprint()
            ));
        }
        let signature = STANDARD
            .decode(&self.signature)
            .map_err(|_| "its signature is not base64")?;
        if !signer.verify(
            &transfer_key_message(&self.vault_id, &self.environment, &key),
            &signature,
        ) {
            return Err("its signature does not verify".to_owned());
        }
        Ok(key)
    }
}

/// How far the store has been written: its ledger's generation (raised by every commit) and the
/// time of its last write. Shown at unseal, so that a store put back whole (a restored backup,
/// a copy of the disk) is seen as older than the one the operators last knew (docs/custody.md,
/// "Rollback").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreGeneration {
    /// Raised by every commit.
    pub generation: u64,
    /// When the last commit was made (Unix seconds).
    pub last_write: u64,
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
    /// Once unsealed: how far the store has been written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreGeneration>,
    /// Tenants this unseal shredded again: a restore found them shredded after its backup was
    /// taken (docs/recovery.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shredded: Vec<String>,
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
    /// The node identity key (base64 Ed25519) that signed `unseal_key`; custodians pin its
    /// fingerprint at init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    /// The node identity key's signature (base64) over [`unseal_key_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseal_key_signature: Option<String>,
    /// Each custodian's fingerprint, in the order of `custodians`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custodian_fingerprints: Vec<String>,
}

/// The bytes a node identity key signs to vouch for its current unseal key:
/// LP("tresor-unseal-key-v1") ‖ LP(vault id) ‖ LP(environment) ‖ LP(unseal key).
pub fn unseal_key_message(vault_id: &str, environment: &str, unseal_key: &[u8; 32]) -> Vec<u8> {
    LengthPrefixed::new()
        .bytes(b"tresor-unseal-key-v1")
        .bytes(vault_id.as_bytes())
        .bytes(environment.as_bytes())
        .bytes(unseal_key)
        .into_vec()
}

/// Why a seal status's unseal key is not trusted: nothing is sealed to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeTrustError {
    /// No node fingerprint is pinned for this custodian.
    #[error(
        "no vault node is pinned for this custodian: pin the fingerprint `tresor operator init` printed (tresor operator trust-node FINGERPRINT --identity …)"
    )]
    NothingPinned,
    /// The answer carries no node signature.
    #[error(
        "the server's seal status is not signed by a node identity key: it may not be the vault (a machine in the path, or a server without [node] identity_key); nothing was sent"
    )]
    Unsigned,
    /// Signed by a key whose fingerprint is not pinned.
    #[error(
        "the server's unseal key is signed by node {0}, which is not one of the nodes pinned for this custodian: nothing was sent (if this is a new node of your vault, check its fingerprint with the operators and pin it)"
    )]
    UnknownNode(String),
    /// The signature does not verify.
    #[error(
        "the server's unseal key signature does not verify under node {0}: the answer was altered or comes from someone else; nothing was sent"
    )]
    BadSignature(String),
    /// A field is not what it should be.
    #[error("the server's seal status is malformed: {0}")]
    Malformed(&'static str),
}

impl SealStatus {
    /// The unseal key, once its node signature verifies under a node whose fingerprint is in
    /// `pinned`: the only key a custodian may seal a share or custody key to.
    pub fn verified_unseal_key(&self, pinned: &[String]) -> Result<[u8; 32], NodeTrustError> {
        verify_unseal_key(
            &SignedUnsealKey {
                vault_id: &self.vault_id,
                environment: &self.environment,
                unseal_key: &self.unseal_key,
                node_key: self.node_key.as_deref(),
                signature: self.unseal_key_signature.as_deref(),
            },
            pinned,
        )
    }
}

/// The fields of a seal status that vouch for its unseal key (all base64 but the names).
#[derive(Debug, Clone, Copy)]
pub struct SignedUnsealKey<'a> {
    /// The vault id.
    pub vault_id: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// The unseal key.
    pub unseal_key: &'a str,
    /// The node identity key.
    pub node_key: Option<&'a str>,
    /// Its signature over [`unseal_key_message`].
    pub signature: Option<&'a str>,
}

/// The unseal key of `status`, once its node signature verifies under a node whose fingerprint
/// is in `pinned`. Custodians call this before sealing anything to the key.
pub fn verify_unseal_key(
    status: &SignedUnsealKey<'_>,
    pinned: &[String],
) -> Result<[u8; 32], NodeTrustError> {
    {
        if pinned.is_empty() {
            return Err(NodeTrustError::NothingPinned);
        }
        let (Some(node_key), Some(signature)) = (status.node_key, status.signature) else {
            return Err(NodeTrustError::Unsigned);
        };
        let node = STANDARD
            .decode(node_key)
            .ok()
            .and_then(|b| tresor_crypto::sign::VerifyingKey::from_slice(&b))
            .ok_or(NodeTrustError::Malformed("node_key"))?;
        let fingerprint = node.fingerprint();
        if !pinned.iter().any(|p| p.eq_ignore_ascii_case(&fingerprint)) {
            return Err(NodeTrustError::UnknownNode(fingerprint));
        }
        let unseal_key: [u8; 32] = STANDARD
            .decode(status.unseal_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(NodeTrustError::Malformed("unseal_key"))?;
        let signature = STANDARD
            .decode(signature)
            .map_err(|_| NodeTrustError::Malformed("unseal_key_signature"))?;
        let message = unseal_key_message(status.vault_id, status.environment, &unseal_key);
        if !node.verify(&message, &signature) {
            return Err(NodeTrustError::BadSignature(fingerprint));
        }
        Ok(unseal_key)
    }
}

/// Who holds the root key, and how many of them are needed.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// The custodians, one share each.
    pub custodians: Vec<tresor_crypto::identity::CustodianPublicKey>,
    /// How many shares unseal (k of n).
    pub threshold: u8,
    /// Four eyes: the custodian who asks for a dangerous operation does not count among its
    /// approvers. `None`: on wherever it can be (n − 1 ≥ k).
    pub four_eyes: Option<bool>,
}
