//! Peer unseal, the vault's half (docs/deployment.md, "Unsealing"): an unsealed node seals its
//! root key to another node's per-boot unseal key, and a sealed node unseals with a root key
//! sealed to its own. Who may ask and whom to believe (enrolment, node identities, the
//! configured peers) is the server's business; here the box is bound to the vault, its
//! environment, the root generation, the receiving unseal key and both nodes, and the key that
//! comes out must open the store (the root check, the seal configuration it vouches for, the
//! ledger) before it is used.

use tresor_crypto::SecretKey;
use tresor_crypto::sealed_box::{self, BoxPublicKey};
use tresor_wire::custody::UnsealProgress;
use tresor_wire::peers::{PEER_ROOT_PURPOSE, root_context};

use super::seal::SealConfig;
use super::{Vault, lock};
use crate::{Error, UnsealError};

impl Vault {
    /// The root key in memory, sealed to `unseal_key` (another node's per-boot key) for the node
    /// `receiver`, from this node `giver` (fingerprints), with its root generation. Refused
    /// while sealed, and while this node's root is not the store's (another node rotated it and
    /// this one is about to seal itself).
    pub fn seal_root_for_peer(
        &self,
        unseal_key: &[u8; 32],
        giver: &str,
        receiver: &str,
    ) -> Result<(u32, Vec<u8>), Error> {
        let unsealed = self.unsealed()?;
        let config = SealConfig::load(self.store())?.ok_or(Error::NotInitialized)?;
        if config.root_generation != unsealed.root_generation {
            return Err(Error::NotPermitted(format!(
                "this node holds root generation {}, the store is at {}: the root was rotated on another node; ask a node that holds the new root",
                unsealed.root_generation, config.root_generation
            )));
        }
        let recipient = BoxPublicKey::from_bytes(*unseal_key)
            .map_err(|e| Error::invalid("unseal_key", e.to_string()))?;
        let context = root_context(
            &unsealed.vault_id,
            self.environment(),
            unsealed.root_generation,
            unseal_key,
            giver,
            receiver,
        );
        let sealed = sealed_box::seal(
            &recipient,
            PEER_ROOT_PURPOSE,
            context.as_slice(),
            unsealed.root.expose(),
        )
        .map_err(|e| Error::invalid("unseal_key", e.to_string()))?;
        Ok((unsealed.root_generation, sealed))
    }

    /// Unseals with the root key of generation `root_generation` that node `giver` sealed to
    /// this node's (`receiver`'s) current unseal key. The key must open the store as custodians'
    /// shares must; then the unseal key is renewed, so the box cannot be offered again.
    pub fn unseal_from_peer(
        &self,
        giver: &str,
        receiver: &str,
        root_generation: u32,
        sealed: &[u8],
    ) -> Result<UnsealProgress, Error> {
        let config = SealConfig::load(self.store())?.ok_or(Error::NotInitialized)?;
        let mut round = lock(&self.inner.unseal_round);
        if !self.is_sealed() {
            return Ok(self.progress(&config, &round));
        }
        if root_generation != config.root_generation {
            return Err(Error::NotPermitted(format!(
                "the peer handed root generation {root_generation}, the store is at {}",
                config.root_generation
            )));
        }
        let context = root_context(
            &config.vault_id,
            self.environment(),
            root_generation,
            &self.unseal_public_key(),
            giver,
            receiver,
        );
        let plain = self.open_submission(PEER_ROOT_PURPOSE, context.as_slice(), sealed)?;
        let root = SecretKey::from_slice(&plain).ok_or(UnsealError::Malformed)?;
        round.reset();
        self.install_root(&config, root, None)?;
        self.renew_unseal_key();
        let shredded = self.shred_after_restore()?;
        Ok(UnsealProgress {
            shredded,
            ..self.progress(&config, &round)
        })
    }
}
