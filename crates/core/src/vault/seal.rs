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

use super::{Unsealed, Vault, commit, lock, write};
use crate::barrier::Barrier;
use crate::store::{Batch, Store, StoredBytes};
use crate::{Error, UnsealError};

pub(crate) const SEAL_CONFIG_PATH: &str = "core/seal";
pub(crate) const ROOT_CHECK_PATH: &str = "core/root-check";
const SHARE_CHECK_LABEL: &[u8] = b"tresor-share-check-v1";

/// The seal configuration: public data only, stored in the clear.
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
            format: 1,
            vault_id: vault_id.to_owned(),
            environment: environment.to_owned(),
            threshold: request.threshold,
            root_generation,
            created_at,
            custodians,
        })
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("serializes")
    }
}

/// Checks 1 ≤ threshold ≤ custodians ≤ 16 and that no name or key appears twice.
pub fn validate_custody(request: &InitRequest) -> Result<(), Error> {
    {
        let n = request.custodians.len();
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

/// The vault's current unseal key: the secret never leaves memory.
pub(crate) type UnsealKey = BoxSecretKey;

/// Shares accepted so far in the current unseal round.
#[derive(Default)]
pub(crate) struct UnsealRound {
    shares: Vec<Share>,
    started_at: u64,
    root_generation: u32,
}

impl UnsealRound {
    pub(crate) fn reset(&mut self) {
        self.shares.clear();
    }
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
        let batch = Batch::new()
            .expect(SEAL_CONFIG_PATH, None)
            .put(SEAL_CONFIG_PATH, config.to_bytes())
            .put(
                ROOT_CHECK_PATH,
                barrier.seal(ROOT_CHECK_PATH, vault_id.as_bytes()),
            );
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
            });
        };
        let submitted = if sealed {
            self.submitted_names(&config)
        } else {
            Vec::new()
        };
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
            unseal_key: STANDARD.encode(self.unseal_public_key()),
        })
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
        if round.shares.len() >= usize::from(config.threshold) {
            let root =
                shamir::combine(&round.shares).map_err(|e| Error::invalid("shares", e.to_string()));
            round.reset();
            self.install_root(&config, root?)?;
            self.renew_unseal_key();
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
    pub fn submit_sealed_share(
        &self,
        custodian: &str,
        sealed: &[u8],
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
        // An expired round's unseal key goes before anything is opened with it.
        self.expire_stale_round(&config, &mut lock(&self.inner.unseal_round));
        let context = submission_context(&config.vault_id, &self.unseal_public_key(), custodian);
        let plain = self.open_submission(SUBMISSION_PURPOSE, context.as_slice(), sealed)?;
        let share = RootShare::from_bytes(&plain).ok_or(UnsealError::Malformed)?;
        if share.index() != entry.index {
            return Err(UnsealError::WrongShare(share.index()).into());
        }
        self.submit_share(share)
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
    pub(crate) fn install_root(&self, config: &SealConfig, root: SecretKey) -> Result<(), Error> {
        let barrier = Barrier::new(&root, &config.vault_id);
        let check = self.store().get(ROOT_CHECK_PATH)?.ok_or(Error::Integrity {
            path: ROOT_CHECK_PATH.into(),
        })?;
        let opened = barrier
            .open(ROOT_CHECK_PATH, &check)
            .map_err(|_| Error::Integrity {
                path: ROOT_CHECK_PATH.into(),
            })?;
        if opened.as_slice() != config.vault_id.as_bytes() {
            return Err(Error::Integrity {
                path: ROOT_CHECK_PATH.into(),
            });
        }
        *write(&self.inner.state) = Some(Arc::new(Unsealed {
            vault_id: config.vault_id.clone(),
            barrier,
            tenants: Default::default(),
            tenants_generation: AtomicU64::new(0),
            session: Default::default(),
        }));
        Ok(())
    }

    fn progress(&self, config: &SealConfig, round: &UnsealRound) -> UnsealProgress {
        let sealed = self.is_sealed();
        UnsealProgress {
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
        let custody = match custody {
            Some(request) => request.clone(),
            None => InitRequest {
                custodians: old.custodians.iter().map(|c| c.custodian.clone()).collect(),
                threshold: old.threshold,
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
        let mut batch = Batch::new()
            .expect(SEAL_CONFIG_PATH, Some(raw_config))
            .put(SEAL_CONFIG_PATH, config.to_bytes());
        for (path, raw) in self.store().scan_prefix("")? {
            if path == SEAL_CONFIG_PATH {
                continue;
            }
            let plain = unsealed.barrier.open(&path, &raw)?;
            batch = batch.expect(path.clone(), Some(raw));
            batch.push_put(path.clone(), barrier.seal(&path, &plain));
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
                    barrier,
                    tenants: std::sync::RwLock::new(tenants),
                    tenants_generation: AtomicU64::new(0),
                    session: Default::default(),
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

fn share_check(vault_id: &str, root_generation: u32, share: &Share) -> [u8; 32] {
    let prefix = LengthPrefixed::new()
        .bytes(SHARE_CHECK_LABEL)
        .bytes(vault_id.as_bytes())
        .u32(root_generation);
    sha256(&[prefix.as_slice(), &[share.index], share.value.expose()])
}
