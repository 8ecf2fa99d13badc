//! Initialisation, sealing and unsealing: the ceremonies are in docs/custody.md, what is stored
//! in docs/format.md (section 8).
//!
//! The root key is split k-of-n with Shamir; each share is sealed to one custodian's X25519 key
//! and stored, with a check value, in the one record that sits outside the barrier
//! (`core/seal`). Unsealing collects k shares, checks each against its check value (so a wrong
//! share is named and refused without spending progress), combines them, and proves the result
//! by opening `core/root-check` under the barrier.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use tresor_crypto::identity::CustodianPublicKey;
use tresor_crypto::sealed_box::BoxSecretKey;
use tresor_crypto::shamir::{self, Share};
use tresor_crypto::{LengthPrefixed, SecretKey, random, sha256};
use tresor_wire::custody::{
    InitRequest, RootShare, SHARE_PURPOSE, SUBMISSION_PURPOSE, SealStatus, SealedShare,
    UnsealProgress, share_context, submission_context,
};

use super::ledger::{self, Ledger};
use super::{Unsealed, Vault, commit, lock, write};
use crate::barrier::Barrier;
use crate::store::{Batch, Store, StoredBytes};
use crate::{Error, UnsealError};

use crate::keys::records::{ROOT_CHECK_PATH, SEAL_CONFIG_PATH, STORE_FORMAT_PATH};

const SHARE_CHECK_LABEL: &[u8] = b"tresor-share-check-v1";
/// The seal configuration format this release writes (1: release 0.1, no four-eyes setting).
const SEAL_FORMAT: u32 = 2;
/// The store format this release writes and reads. 1: release 0.1 (no `core/format`, a root
/// check that binds the vault id only); 2: no ledger; both migrated at their first unseal
/// (the ledger then trusts the records as they stand); 3: this release, with the ledger.
pub(crate) const STORE_FORMAT: u32 = 3;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFormat {
    format: u32,
}

fn store_format_record() -> Vec<u8> {
    serde_json::to_vec(&StoreFormat {
        format: STORE_FORMAT,
    })
    .expect("serializes")
}

/// The format the store was written in (1 when it does not say: release 0.1).
fn stored_format(store: &dyn Store) -> Result<u32, Error> {
    let Some(raw) = store.get(STORE_FORMAT_PATH)? else {
        return Ok(1);
    };
    let found: StoreFormat = crate::keys::records::decode(STORE_FORMAT_PATH, &raw)?;
    Ok(found.format)
}

/// Refuses a store written by a newer release: this one would misread it.
pub(crate) fn check_store_format(store: &dyn Store) -> Result<(), Error> {
    let found = StoreFormat {
        format: stored_format(store)?,
    };
    if found.format > STORE_FORMAT {
        return Err(Error::StoreFormat {
            found: found.format,
            supported: STORE_FORMAT,
        });
    }
    Ok(())
}

/// The seal configuration: public data only, stored in the clear, and authenticated by the
/// root check (see [`RootCheck`]): whoever can write the store can change it, but the vault then
/// refuses to unseal, to count approvals or to seal shares to it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealConfig {
    pub(crate) format: u32,
    pub(crate) vault_id: String,
    pub(crate) environment: String,
    pub(crate) threshold: u8,
    /// Bumped by every root rotation and rekey: old shares and checks then no longer match.
    pub(crate) root_generation: u32,
    pub(crate) created_at: u64,
    pub(crate) custodians: Vec<CustodianShare>,
    /// Four eyes: a custodian's approval of an operation it asked for does not count. Absent in
    /// format 1 (then on wherever possible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) four_eyes: Option<bool>,
}

/// What the root check (the one record every root key must open) says, format 2: the vault id
/// and the SHA-256 of the seal configuration's stored bytes. Only the root key can make it, so
/// an edited configuration (swapped custodian keys, a lowered threshold, another environment)
/// no longer matches. Format 1 (release 0.1) held the vault id alone.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootCheck {
    format: u32,
    vault_id: String,
    /// Lowercase hex SHA-256 of the `core/seal` value.
    seal_config: String,
}

impl RootCheck {
    fn for_config(vault_id: &str, raw_config: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&RootCheck {
            format: 2,
            vault_id: vault_id.to_owned(),
            seal_config: tresor_crypto::hex(&sha256(&[raw_config])),
        })
        .expect("serializes")
    }
}

/// How the root check that `barrier` opened relates to the stored seal configuration.
enum ConfigCheck {
    /// The configuration is the one the root key vouched for.
    Authentic,
    /// A release 0.1 root check: it proves the root key but says nothing of the configuration.
    Legacy,
}

/// Checks the stored configuration `raw_config` against the root check under `barrier`.
fn check_config(
    store: &dyn Store,
    barrier: &Barrier,
    vault_id: &str,
    raw_config: &[u8],
) -> Result<ConfigCheck, Error> {
    let integrity = || Error::Integrity {
        path: ROOT_CHECK_PATH.into(),
    };
    let sealed = store.get(ROOT_CHECK_PATH)?.ok_or_else(integrity)?;
    let opened = barrier
        .open(ROOT_CHECK_PATH, &sealed)
        .map_err(|_| Error::Unseal(UnsealError::RootMismatch))?;
    if opened.as_slice() == vault_id.as_bytes() {
        return Ok(ConfigCheck::Legacy);
    }
    let check: RootCheck = serde_json::from_slice(&opened).map_err(|_| integrity())?;
    if check.format != 2 || check.vault_id != vault_id {
        return Err(integrity());
    }
    let actual = tresor_crypto::hex(&sha256(&[raw_config]));
    if !tresor_crypto::mac::ct_eq(actual.as_bytes(), check.seal_config.as_bytes()) {
        return Err(Error::SealConfigTampered);
    }
    Ok(ConfigCheck::Authentic)
}

/// One custodian's sealed share and its check value.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustodianShare {
    pub(crate) custodian: CustodianPublicKey,
    pub(crate) index: u8,
    pub(crate) sealed_share: StoredBytes,
    /// SHA-256(LP(label) ‖ LP(vault id) ‖ u32(generation) ‖ index ‖ share value).
    pub(crate) check: StoredBytes,
}

impl SealConfig {
    pub(crate) fn load(store: &dyn Store) -> Result<Option<SealConfig>, Error> {
        match store.get(SEAL_CONFIG_PATH)? {
            None => Ok(None),
            Some(raw) => Ok(Some(crate::keys::records::decode(SEAL_CONFIG_PATH, &raw)?)),
        }
    }

    fn share(&self, index: u8) -> Option<&CustodianShare> {
        self.custodians.iter().find(|c| c.index == index)
    }

    /// Seals fresh shares of `root` to `custodians`, for a new root generation.
    pub(crate) fn new(
        vault_id: &str,
        environment: &str,
        root_generation: u32,
        created_at: u64,
        root: &SecretKey,
        request: &InitRequest,
    ) -> Result<SealConfig, Error> {
        validate_custody(request)?;
        let shares = shamir::split(root, request.threshold, request.custodians.len() as u8)
            .map_err(|e| Error::invalid("threshold", e.to_string()))?;
        let custodians = request
            .custodians
            .iter()
            .zip(shares)
            .map(|(custodian, share)| {
                let context = share_context(vault_id, root_generation, share.index);
                let share = RootShare::new(share);
                let sealed = custodian
                    .seal(SHARE_PURPOSE, context.as_slice(), &share.to_bytes())
                    .map_err(|e| {
                        Error::invalid("custodians", format!("{}: {e}", custodian.name()))
                    })?;
                let share = share.into_share();
                Ok(CustodianShare {
                    custodian: custodian.clone(),
                    index: share.index,
                    sealed_share: StoredBytes::new(sealed),
                    check: StoredBytes::new(
                        share_check(vault_id, root_generation, &share).to_vec(),
                    ),
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(SealConfig {
            format: SEAL_FORMAT,
            vault_id: vault_id.to_owned(),
            environment: environment.to_owned(),
            threshold: request.threshold,
            root_generation,
            created_at,
            custodians,
            four_eyes: Some(four_eyes(request)),
        })
    }

    /// Whether four eyes applies.
    pub(crate) fn four_eyes(&self) -> bool {
        self.four_eyes
            .unwrap_or(self.custodians.len() > usize::from(self.threshold))
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("serializes")
    }
}

/// Checks 1 ≤ threshold ≤ custodians ≤ 16 and that no name or key appears twice.
pub fn validate_custody(request: &InitRequest) -> Result<(), Error> {
    {
        let n = request.custodians.len();
        if request.four_eyes == Some(true) && n <= usize::from(request.threshold) {
            return Err(Error::invalid(
                "four_eyes",
                format!(
                    "four eyes needs more custodians than the threshold ({} of {n}): the requester's own approval does not count, so {n} − 1 others could never reach {}; add custodians or set four_eyes false",
                    request.threshold, request.threshold
                ),
            ));
        }
        if n == 0 || n > usize::from(shamir::MAX_SHARES) {
            return Err(Error::invalid(
                "custodians",
                format!("{n} given: need between 1 and 16"),
            ));
        }
        if request.threshold == 0 || usize::from(request.threshold) > n {
            return Err(Error::invalid(
                "threshold",
                format!(
                    "{} is invalid for {n} custodian(s): need 1 ≤ threshold ≤ {n}",
                    request.threshold
                ),
            ));
        }
        for (i, c) in request.custodians.iter().enumerate() {
            for other in &request.custodians[..i] {
                if other.name() == c.name() {
                    return Err(Error::invalid(
                        "custodians",
                        format!("name `{}` appears twice", c.name()),
                    ));
                }
                if other.principal().is_some() && other.principal() == c.principal() {
                    return Err(Error::invalid(
                        "custodians",
                        format!(
                            "`{}` and `{}` are bound to the same principal: one person would act as two custodians",
                            other.name(),
                            c.name()
                        ),
                    ));
                }
                if other.box_key() == c.box_key() || other.verifying_key() == c.verifying_key() {
                    return Err(Error::invalid(
                        "custodians",
                        format!(
                            "`{}` and `{}` share a key: one person would hold two shares",
                            other.name(),
                            c.name()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `request` asks for four eyes (by default: wherever n − 1 ≥ k).
fn four_eyes(request: &InitRequest) -> bool {
    request
        .four_eyes
        .unwrap_or(request.custodians.len() > usize::from(request.threshold))
}

/// The vault's current unseal key: the secret never leaves memory.
pub(crate) type UnsealKey = BoxSecretKey;

/// Shares accepted so far in the current unseal round.
#[derive(Default)]
pub(crate) struct UnsealRound {
    shares: Vec<Share>,
    started_at: u64,
    root_generation: u32,
    /// Custodians of this round who accepted a known gap in the audit log's tail.
    accepting_gap: Vec<String>,
}

impl UnsealRound {
    pub(crate) fn reset(&mut self) {
        self.shares.clear();
        self.accepting_gap.clear();
    }
}

/// A check that may refuse an unseal once the root key is proven and before any key is usable
/// (the server checks that its audit log still holds its last anchored checkpoint).
pub trait UnsealGuard: Send + Sync {
    /// Refuses the unseal with an error that says why. `accepted_by` names the round's
    /// custodians when every one of them accepted a known gap in the audit log (dual control).
    fn check(
        &self,
        records: &super::SealedRecords,
        accepted_by: Option<&[String]>,
    ) -> Result<(), Error>;
}

impl Vault {
    /// Creates the root key, splits it among `request.custodians` and stores the sealed shares.
    /// The vault stays sealed: k custodians must unseal it.
    pub fn init(&self, request: &InitRequest) -> Result<SealStatus, Error> {
        let _writer = self.writer();
        if SealConfig::load(self.store())?.is_some() {
            return Err(Error::AlreadyInitialized);
        }
        let vault_id = tresor_crypto::hex(&random::array::<16>());
        let root = SecretKey::random();
        let config = SealConfig::new(&vault_id, self.environment(), 1, self.now(), &root, request)?;
        let barrier = Barrier::new(&root, &vault_id);
        let raw_config = config.to_bytes();
        let (ledger_path, ledger_root) = Ledger::empty(self.now()).root_write(&barrier);
        let batch = Batch::new()
            .expect(SEAL_CONFIG_PATH, None)
            .put(STORE_FORMAT_PATH, store_format_record())
            .put(ledger_path, ledger_root)
            .put(
                ROOT_CHECK_PATH,
                barrier.seal(
                    ROOT_CHECK_PATH,
                    &RootCheck::for_config(&vault_id, &raw_config),
                ),
            )
            .put(SEAL_CONFIG_PATH, raw_config);
        commit(self.store(), batch).map_err(|e| match e {
            Error::Store(crate::store::StoreError::Conflict { .. }) => Error::AlreadyInitialized,
            other => other,
        })?;
        drop(_writer);
        self.seal_status()
    }

    /// The seal state, for anyone.
    pub fn seal_status(&self) -> Result<SealStatus, Error> {
        let sealed = self.is_sealed();
        let Some(config) = SealConfig::load(self.store())? else {
            return Ok(SealStatus {
                initialized: false,
                sealed: true,
                environment: self.environment().to_owned(),
                vault_id: String::new(),
                root_generation: 0,
                threshold: 0,
                shares: 0,
                custodians: Vec::new(),
                submitted: Vec::new(),
                unseal_key: STANDARD.encode(self.unseal_public_key()),
                node_key: None,
                unseal_key_signature: None,
                custodian_fingerprints: Vec::new(),
            });
        };
        let submitted = if sealed {
            self.submitted_names(&config)
        } else {
            Vec::new()
        };
        let unseal_key = self.unseal_public_key();
        let (node_key, unseal_key_signature) = self.sign_unseal_key(&config.vault_id, &unseal_key);
        Ok(SealStatus {
            initialized: true,
            sealed,
            environment: config.environment.clone(),
            vault_id: config.vault_id.clone(),
            root_generation: config.root_generation,
            threshold: config.threshold,
            shares: config.custodians.len() as u8,
            custodians: config
                .custodians
                .iter()
                .map(|c| c.custodian.name().to_owned())
                .collect(),
            submitted,
            node_key,
            unseal_key_signature,
            custodian_fingerprints: config
                .custodians
                .iter()
                .map(|c| c.custodian.fingerprint())
                .collect(),
            unseal_key: STANDARD.encode(unseal_key),
        })
    }

    /// The node identity key's signature over the current unseal key (see
    /// [`tresor_wire::custody::unseal_key_message`]), if this node has an identity key.
    fn sign_unseal_key(
        &self,
        vault_id: &str,
        unseal_key: &[u8; 32],
    ) -> (Option<String>, Option<String>) {
        match &self.inner.options.node_identity {
            Some(node) => {
                let message = tresor_wire::custody::unseal_key_message(
                    vault_id,
                    self.environment(),
                    unseal_key,
                );
                (
                    Some(STANDARD.encode(node.verifying_key().as_bytes())),
                    Some(STANDARD.encode(node.sign(&message))),
                )
            }
            None => (None, None),
        }
    }

    /// The share sealed to `custodian`, for that custodian to open.
    pub fn sealed_share(&self, custodian: &str) -> Result<SealedShare, Error> {
        let config = SealConfig::load(self.store())?.ok_or(Error::NotInitialized)?;
        let share = config
            .custodians
            .iter()
            .find(|c| c.custodian.name() == custodian)
            .ok_or_else(|| {
                Error::invalid(
                    "custodian",
                    format!("`{custodian}` is not a custodian of this vault"),
                )
            })?;
        Ok(SealedShare {
            vault_id: config.vault_id.clone(),
            root_generation: config.root_generation,
            custodian: custodian.to_owned(),
            index: share.index,
            sealed: STANDARD.encode(&share.sealed_share.0),
        })
    }

    /// Offers one share. A share that fails its check, belongs to no custodian, or was already
    /// given is refused and the round is unchanged. When the threshold is reached the vault
    /// unseals.
    pub fn submit_share(&self, share: RootShare) -> Result<UnsealProgress, Error> {
        self.submit_share_from(share, None)
    }

    /// As [`Vault::submit_share`], from custodian `accepting_gap` when that custodian accepts a
    /// known gap in the audit log's tail.
    fn submit_share_from(
        &self,
        share: RootShare,
        accepting_gap: Option<&str>,
    ) -> Result<UnsealProgress, Error> {
        let config = SealConfig::load(self.store())?.ok_or(Error::NotInitialized)?;
        let mut round = lock(&self.inner.unseal_round);
        if !self.is_sealed() {
            return Ok(self.progress(&config, &round));
        }
        self.expire_stale_round(&config, &mut round);
        let now = self.now();
        let share = share.into_share();
        let entry = config
            .share(share.index)
            .ok_or(UnsealError::UnknownShare(share.index))?;
        let expected = share_check(&config.vault_id, config.root_generation, &share);
        if !tresor_crypto::mac::ct_eq(&expected[..], entry.check.0.as_slice()) {
            return Err(UnsealError::WrongShare(share.index).into());
        }
        if round.shares.iter().any(|s| s.index == share.index) {
            return Err(UnsealError::Duplicate(share.index).into());
        }
        if round.shares.is_empty() {
            round.started_at = now;
            round.root_generation = config.root_generation;
        }
        round.shares.push(share);
        if let Some(custodian) = accepting_gap {
            round.accepting_gap.push(custodian.to_owned());
        }
        if round.shares.len() >= usize::from(config.threshold) {
            let root =
                shamir::combine(&round.shares).map_err(|e| Error::invalid("shares", e.to_string()));
            let accepted_by = (round.accepting_gap.len() == round.shares.len())
                .then(|| round.accepting_gap.clone());
            round.reset();
            self.install_root(&config, root?, accepted_by.as_deref())?;
            self.renew_unseal_key();
            let shredded = self.shred_after_restore()?;
            return Ok(UnsealProgress {
                shredded,
                ..self.progress(&config, &round)
            });
        }
        Ok(self.progress(&config, &round))
    }

    /// Discards a round whose progress has timed out (or belongs to an older root generation),
    /// and with it the unseal key its shares were sealed to: a submission captured in an
    /// expired round must not count in the next one.
    fn expire_stale_round(&self, config: &SealConfig, round: &mut UnsealRound) {
        let stale = round.root_generation != config.root_generation
            || self.now().saturating_sub(round.started_at) > self.inner.options.unseal_timeout;
        if stale && !round.shares.is_empty() {
            round.reset();
            self.renew_unseal_key();
        }
    }

    /// The public key custodians seal their submissions to (shares, custody keys).
    pub fn unseal_public_key(&self) -> [u8; 32] {
        lock(&self.inner.unseal_key).public().to_bytes()
    }

    /// Replaces the unseal key: earlier submissions no longer open.
    pub(crate) fn renew_unseal_key(&self) {
        *lock(&self.inner.unseal_key) = UnsealKey::generate();
    }

    /// Opens a submission sealed to the current unseal key for `purpose` and `context`.
    pub(crate) fn open_submission(
        &self,
        purpose: &str,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        let key = lock(&self.inner.unseal_key);
        key.open(purpose, context, sealed).map_err(|_| {
            Error::NotPermitted(
                "the submission is not sealed to this vault's current unseal key (fetch the key again from \
                 seal-status: it changes on every restart, unseal, seal, tenant unlock and lock)"
                    .to_owned(),
            )
        })
    }

    /// Accepts a share sealed with [`RootShare::seal_for_submission`] by custodian `custodian`.
    /// The share must be that custodian's; otherwise as [`Vault::submit_share`].
    ///
    /// `principal` is the caller's (from its client certificate): a custodian bound to a
    /// principal submits only from a connection authenticated as that principal.
    ///
    /// `accept_audit_gap`: this custodian accepts a known loss at the end of the audit log (the
    /// unseal guard's override; it takes every custodian of the round).
    pub fn submit_sealed_share(
        &self,
        custodian: &str,
        principal: &str,
        sealed: &[u8],
        accept_audit_gap: bool,
    ) -> Result<UnsealProgress, Error> {
        let config = SealConfig::load(self.store())?.ok_or(Error::NotInitialized)?;
        let entry = config
            .custodians
            .iter()
            .find(|c| c.custodian.name() == custodian)
            .ok_or_else(|| {
                Error::invalid(
                    "custodian",
                    format!("`{custodian}` is not a custodian of this vault"),
                )
            })?;
        check_principal(&entry.custodian, principal)?;
        // An expired round's unseal key goes before anything is opened with it.
        self.expire_stale_round(&config, &mut lock(&self.inner.unseal_round));
        let context = submission_context(&config.vault_id, &self.unseal_public_key(), custodian);
        let plain = self.open_submission(SUBMISSION_PURPOSE, context.as_slice(), sealed)?;
        let share = RootShare::from_bytes(&plain).ok_or(UnsealError::Malformed)?;
        if share.index() != entry.index {
            return Err(UnsealError::WrongShare(share.index()).into());
        }
        self.submit_share_from(share, accept_audit_gap.then_some(custodian))
    }

    /// Unseals with `shares` in one call (each is checked as by [`Vault::submit_share`]). A
    /// refused call withdraws the shares it gave, so progress is unchanged and the same set can
    /// be offered again.
    pub fn unseal(&self, shares: Vec<RootShare>) -> Result<UnsealProgress, Error> {
        let mut accepted = Vec::with_capacity(shares.len());
        let mut progress = None;
        for share in shares {
            let index = share.index();
            match self.submit_share(share) {
                Ok(next) => {
                    accepted.push(index);
                    progress = Some(next);
                }
                Err(e) => {
                    self.withdraw_shares(&accepted);
                    return Err(e);
                }
            }
        }
        let progress = match progress {
            Some(progress) => progress,
            None => {
                let config = SealConfig::load(self.store())?.ok_or(Error::NotInitialized)?;
                self.progress(&config, &lock(&self.inner.unseal_round))
            }
        };
        if progress.sealed {
            self.withdraw_shares(&accepted);
            return Err(UnsealError::NotEnoughShares {
                given: progress.submitted.len(),
                threshold: progress.threshold,
            }
            .into());
        }
        Ok(progress)
    }

    /// Removes the shares with these indices from the current round.
    fn withdraw_shares(&self, indices: &[u8]) {
        if !indices.is_empty() {
            lock(&self.inner.unseal_round)
                .shares
                .retain(|s| !indices.contains(&s.index));
        }
    }

    /// Proves `root` against the root check and makes it the live root key.
    ///
    /// The seal configuration must be the one the root key vouches for: an edited one (custodian
    /// keys, threshold, environment) refuses to unseal with [`Error::SealConfigTampered`]. A
    /// release 0.1 root check vouched for nothing but the vault id; the first unseal after the
    /// upgrade binds the configuration as it stands (trust on first use, logged).
    pub(crate) fn install_root(
        &self,
        config: &SealConfig,
        root: SecretKey,
        accepted_gap_by: Option<&[String]>,
    ) -> Result<(), Error> {
        let barrier = Barrier::new(&root, &config.vault_id);
        let raw_config = self
            .store()
            .get(SEAL_CONFIG_PATH)?
            .ok_or(Error::NotInitialized)?;
        let format = stored_format(self.store())?;
        match check_config(self.store(), &barrier, &config.vault_id, &raw_config)? {
            ConfigCheck::Authentic => {}
            ConfigCheck::Legacy => {
                let old_check = self.store().get(ROOT_CHECK_PATH)?;
                commit(
                    self.store(),
                    Batch::new()
                        .expect(SEAL_CONFIG_PATH, Some(raw_config.clone()))
                        .expect(ROOT_CHECK_PATH, old_check)
                        .put(STORE_FORMAT_PATH, store_format_record())
                        .put(
                            ROOT_CHECK_PATH,
                            barrier.seal(
                                ROOT_CHECK_PATH,
                                &RootCheck::for_config(&config.vault_id, &raw_config),
                            ),
                        ),
                )?;
                tracing::warn!(
                    vault_id = %config.vault_id,
                    "release 0.1 root check upgraded: the seal configuration as it stands is now bound to the root key"
                );
            }
        }
        let ledger = self.open_ledger(&barrier, format)?;
        let unsealed = Arc::new(Unsealed {
            vault_id: config.vault_id.clone(),
            root_generation: config.root_generation,
            root,
            barrier,
            tenants: Default::default(),
            tenants_generation: AtomicU64::new(0),
            session: Default::default(),
            ledger: std::sync::Mutex::new(ledger),
            clock: self.inner.options.clock.clone(),
        });
        // The guard sees the records before any key is usable; a refusal leaves the vault sealed.
        let guard = lock(&self.inner.unseal_guard)
            .as_ref()
            .and_then(std::sync::Weak::upgrade);
        if let Some(guard) = guard {
            let records = super::sealed_records::SealedRecords::over(
                unsealed.clone(),
                self.inner.store.clone(),
            );
            guard.check(&records, accepted_gap_by)?;
        }
        *write(&self.inner.state) = Some(unsealed);
        Ok(())
    }

    /// The store's ledger, opened with `barrier`. A store written before the ledger existed
    /// (format 1 or 2) gets one now, of its records as they stand (trust on first use, like the
    /// seal configuration of release 0.1); a format-3 store without one was tampered with.
    fn open_ledger(&self, barrier: &Barrier, format: u32) -> Result<Ledger, Error> {
        if let Some(ledger) = Ledger::load(self.store(), barrier)? {
            return Ok(ledger);
        }
        if format >= 3 {
            return Err(Error::Rollback {
                path: ledger::ROOT_PATH.to_owned(),
                reason: "the ledger is missing from a store that had one".to_owned(),
            });
        }
        let records: Vec<(String, Vec<u8>)> = self
            .store()
            .scan_prefix("")?
            .into_iter()
            .filter(|(path, _)| ledger::covers(path))
            .collect();
        // Only records this barrier sealed for their path are vouched for.
        for (path, raw) in &records {
            barrier.open(path, raw)?;
        }
        let (ledger, mut batch) =
            Ledger::of_contents(self.store(), barrier, &records, 1, self.now())?;
        batch.push_expect(ledger::ROOT_PATH, None);
        for (path, raw) in &records {
            batch.push_expect(path.clone(), Some(raw.clone()));
        }
        batch.push_put(STORE_FORMAT_PATH, store_format_record());
        commit(self.store(), batch)?;
        tracing::warn!(
            records = records.len(),
            "store format {format} upgraded to {STORE_FORMAT}: the ledger now vouches for the records as they stand"
        );
        Ok(ledger)
    }

    pub(crate) fn progress(&self, config: &SealConfig, round: &UnsealRound) -> UnsealProgress {
        let sealed = self.is_sealed();
        UnsealProgress {
            shredded: Vec::new(),
            store: super::read(&self.inner.state)
                .as_ref()
                .map(|unsealed| lock(&unsealed.ledger).generation()),
            sealed,
            threshold: config.threshold,
            shares: config.custodians.len() as u8,
            submitted: if sealed {
                names_of(config, round)
            } else {
                Vec::new()
            },
        }
    }

    fn submitted_names(&self, config: &SealConfig) -> Vec<String> {
        let mut round = lock(&self.inner.unseal_round);
        self.expire_stale_round(config, &mut round);
        names_of(config, &round)
    }

    /// Replaces the root key: every record is re-sealed under a barrier derived from a fresh
    /// root key, and the new key's shares are sealed to `custody` (a rekey: new custodians and/or
    /// threshold) or to the current custodians. One atomic commit, so a crash leaves either the
    /// old or the new root in force; then storage is purged, so records sealed under the old
    /// root leave the data directory and old shares open nothing that remains. No ciphertext
    /// changes. Callers must have custodian approval (the API enforces it).
    pub fn rotate_root(&self, custody: Option<&InitRequest>) -> Result<SealStatus, Error> {
        let _writer = self.writer();
        let unsealed = self.unsealed()?;
        let raw_config = self
            .store()
            .get(SEAL_CONFIG_PATH)?
            .ok_or(Error::NotInitialized)?;
        let old: SealConfig = crate::keys::records::decode(SEAL_CONFIG_PATH, &raw_config)?;
        // Nothing is re-sealed to custodians the root key did not vouch for.
        check_config(self.store(), &unsealed.barrier, &old.vault_id, &raw_config)?;
        let custody = match custody {
            Some(request) => request.clone(),
            None => InitRequest {
                custodians: old.custodians.iter().map(|c| c.custodian.clone()).collect(),
                threshold: old.threshold,
                four_eyes: Some(old.four_eyes()),
            },
        };
        let root = SecretKey::random();
        let config = SealConfig::new(
            &old.vault_id,
            &old.environment,
            old.root_generation + 1,
            old.created_at,
            &root,
            &custody,
        )?;
        let barrier = Barrier::new(&root, &old.vault_id);
        let new_config = config.to_bytes();
        let mut batch = Batch::new()
            .expect(SEAL_CONFIG_PATH, Some(raw_config))
            .put(
                ROOT_CHECK_PATH,
                barrier.seal(
                    ROOT_CHECK_PATH,
                    &RootCheck::for_config(&old.vault_id, &new_config),
                ),
            )
            .put(SEAL_CONFIG_PATH, new_config);
        let mut resealed = Vec::new();
        for (path, raw) in self.store().scan_prefix("")? {
            // The records outside the barrier: public, and re-sealed by nothing.
            if path == SEAL_CONFIG_PATH || path == STORE_FORMAT_PATH {
                continue;
            }
            // The root check was written above; the ledger is made anew below.
            if !ledger::covers(&path) {
                batch.push_expect(path, Some(raw));
                continue;
            }
            // Checked against the ledger: a record put back is not blessed by the new root.
            let plain = unsealed.open(self.store(), &path, &raw)?;
            batch = batch.expect(path.clone(), Some(raw));
            let sealed = barrier.seal(&path, &plain);
            batch.push_put(path.clone(), sealed.clone());
            resealed.push((path, sealed));
        }
        let generation = lock(&unsealed.ledger).generation().generation + 1;
        let (ledger, ledger_writes) =
            Ledger::of_contents(self.store(), &barrier, &resealed, generation, self.now())?;
        for (path, value) in ledger_writes.writes() {
            match value {
                Some(value) => batch.push_put(path, value.to_vec()),
                None => batch.push_delete(path),
            }
        }
        commit(self.store(), batch)?;
        // The unwrapped tenant KEKs and data keys do not depend on the root key: keep them, so
        // unlocked level-3 tenants stay unlocked.
        let tenants = super::read(&unsealed.tenants).clone();
        {
            let mut state = write(&self.inner.state);
            // A seal that arrived while the rotation ran wins: the vault stays sealed (the new
            // root is committed, so the custodians unseal with the new shares). Installing the
            // new root regardless would undo the seal. Anything else in the state now is not
            // the root this rotation replaced, so it must not stay in force either.
            let still_ours = state
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, &unsealed));
            *state = if still_ours {
                Some(Arc::new(Unsealed {
                    vault_id: old.vault_id.clone(),
                    root_generation: config.root_generation,
                    root,
                    barrier,
                    tenants: std::sync::RwLock::new(tenants),
                    tenants_generation: AtomicU64::new(0),
                    session: Default::default(),
                    ledger: std::sync::Mutex::new(ledger),
                    clock: self.inner.options.clock.clone(),
                }))
            } else {
                None
            };
        }
        drop(unsealed);
        lock(&self.inner.unseal_round).reset();
        self.store().purge_stale()?;
        drop(_writer);
        self.seal_status()
    }

    /// The current custodian named `name`, if there is one.
    pub fn custodian(&self, name: &str) -> Result<Option<CustodianPublicKey>, Error> {
        let config = SealConfig::load(self.store())?.ok_or(Error::NotInitialized)?;
        Ok(config
            .custodians
            .into_iter()
            .map(|c| c.custodian)
            .find(|c| c.name() == name))
    }

    /// The vault identifier, once initialised.
    pub fn vault_id(&self) -> Result<String, Error> {
        Ok(SealConfig::load(self.store())?
            .ok_or(Error::NotInitialized)?
            .vault_id)
    }
}

fn names_of(config: &SealConfig, round: &UnsealRound) -> Vec<String> {
    let by_index: HashMap<u8, &str> = config
        .custodians
        .iter()
        .map(|c| (c.index, c.custodian.name()))
        .collect();
    round
        .shares
        .iter()
        .filter_map(|s| by_index.get(&s.index).map(|n| (*n).to_owned()))
        .collect()
}

/// The vault's custodians: who holds a share of the root key, and how many are needed.
#[derive(Debug, Clone)]
pub struct Custodians {
    /// Shares needed to unseal, and signatures needed to approve (k).
    pub threshold: u8,
    /// Four eyes: a custodian's approval of what it asked for does not count.
    pub four_eyes: bool,
    /// Hex SHA-256 of the set (vault, threshold, four eyes, and every custodian's name, keys and
    /// principal): what approvals bind their signatures to. A root rotation keeps it; a rekey
    /// changes it.
    pub set_hash: String,
    /// The custodians, in share order.
    pub members: Vec<CustodianPublicKey>,
}

impl Custodians {
    /// The custodian called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&CustodianPublicKey> {
        self.members.iter().find(|c| c.name() == name)
    }

    /// The custodian bound to `principal`, if there is one.
    pub fn bound_to(&self, principal: &str) -> Option<&CustodianPublicKey> {
        self.members
            .iter()
            .find(|c| c.principal() == Some(principal))
    }
}

impl super::SealedStore {
    /// The vault's current custodians and threshold, checked against what the root key vouched
    /// for (so it needs the vault unsealed): approvals count signatures against these only.
    pub fn custodians(&self) -> Result<Custodians, Error> {
        let vault = self.vault();
        let unsealed = vault.unsealed()?;
        authentic_custodians(vault.store(), &unsealed.barrier)
    }
}

/// The current custodians, after checking that the stored configuration is the one the root
/// key (behind `barrier`) vouched for.
pub(crate) fn authentic_custodians(
    store: &dyn Store,
    barrier: &Barrier,
) -> Result<Custodians, Error> {
    let raw = store.get(SEAL_CONFIG_PATH)?.ok_or(Error::NotInitialized)?;
    let config: SealConfig = crate::keys::records::decode(SEAL_CONFIG_PATH, &raw)?;
    match check_config(store, barrier, &config.vault_id, &raw)? {
        ConfigCheck::Authentic => {}
        // Unsealing upgrades a legacy root check before anything can ask for custodians.
        ConfigCheck::Legacy => return Err(Error::SealConfigTampered),
    }
    let four_eyes = config.four_eyes();
    let members: Vec<CustodianPublicKey> =
        config.custodians.into_iter().map(|c| c.custodian).collect();
    let mut set = LengthPrefixed::new()
        .bytes(b"tresor-custodian-set-v1")
        .bytes(config.vault_id.as_bytes())
        .u32(u32::from(config.threshold))
        .bytes(&[u8::from(four_eyes)]);
    for member in &members {
        set.push_bytes(member.name().as_bytes());
        set.push_bytes(member.box_key().as_bytes());
        set.push_bytes(member.verifying_key().as_bytes());
        set.push_bytes(member.principal().unwrap_or_default().as_bytes());
    }
    Ok(Custodians {
        threshold: config.threshold,
        four_eyes,
        set_hash: tresor_crypto::hex(&sha256(&[set.as_slice()])),
        members,
    })
}

/// Refuses an act of `custodian` from a connection authenticated as someone else. Custodians
/// not bound to a principal (written by release 0.1, until a rekey binds them) are accepted from
/// any principal the policy allows.
pub fn check_principal(custodian: &CustodianPublicKey, principal: &str) -> Result<(), Error> {
    match custodian.principal() {
        Some(bound) if bound != principal => Err(Error::WrongPrincipal {
            custodian: custodian.name().to_owned(),
            bound: bound.to_owned(),
            caller: principal.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn share_check(vault_id: &str, root_generation: u32, share: &Share) -> [u8; 32] {
    let prefix = LengthPrefixed::new()
        .bytes(SHARE_CHECK_LABEL)
        .bytes(vault_id.as_bytes())
        .u32(root_generation);
    sha256(&[prefix.as_slice(), &[share.index], share.value.expose()])
}
