//! Peer unseal between the nodes of one vault (docs/deployment.md, "Unsealing"), the server's
//! half: which nodes custodians enrolled, the checks a giving node makes before it hands over
//! the root key, and the asking side, which believes only the peers its own configuration names.
//!
//! The enrolment list is a set of barrier-sealed records under `nodes/`, changed only by an
//! approved `enrol-node` or `remove-node` (dual control): whoever can write the store cannot add
//! a node (the barrier and the ledger refuse a record the vault did not write), and a sealed node
//! cannot read the list at all. So the giving node, unsealed, checks the enrolment; the asking
//! node, sealed, trusts nothing the store says and checks the giver against its configuration.
//!
//! The sealed node asks (rather than unsealed nodes pushing to it): it knows when it needs the
//! root (after a restart, or after sealing itself because another node rotated the root), its
//! request is signed by its identity key over this boot's unseal key and a fresh time, and a
//! refusal comes back to it with the reason, where its operators look.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_core::store::Batch;
use tresor_core::{Error, SealedStore, Vault};
use tresor_wire::custody::UnsealProgress;
use tresor_wire::peers::{
    EnrolledNode, PeerUnsealGrant, PeerUnsealRequest, REQUEST_WINDOW, check_fingerprint,
    grant_message,
};

use crate::config::PeerConfig;

const PREFIX: &str = "nodes/";

fn path(fingerprint: &str) -> String {
    format!("{PREFIX}{}", fingerprint.replace(':', ""))
}

/// The nodes enrolled for peer unseal, and the requests this node has answered lately.
#[derive(Clone)]
pub struct Nodes {
    store: SealedStore,
    /// Signatures of requests answered, with when they stop counting: a request is answered
    /// once, however often it is sent within its window.
    answered: Arc<Mutex<HashMap<String, u64>>>,
}

impl Nodes {
    /// The enrolment list of the vault behind `store`.
    pub fn new(store: SealedStore) -> Self {
        Nodes {
            store,
            answered: Arc::default(),
        }
    }

    /// Every enrolled node, by fingerprint.
    pub fn list(&self) -> Result<Vec<EnrolledNode>, Error> {
        Ok(self
            .store
            .records()?
            .scan::<EnrolledNode>(PREFIX)?
            .into_iter()
            .map(|(_, node)| node)
            .collect())
    }

    /// The enrolment of `fingerprint`, if there is one. A record the vault did not write there
    /// (forged, moved from another path, put back after a removal) is an error, never an
    /// enrolment.
    pub fn enrolled(&self, fingerprint: &str) -> Result<Option<EnrolledNode>, Error> {
        let node = self
            .store
            .records()?
            .get::<EnrolledNode>(&path(fingerprint))?
            .map(|(node, _)| node);
        Ok(node.filter(|n| n.fingerprint == fingerprint))
    }

    /// Enrols node `fingerprint` at `address` (an approved `enrol-node`); a node enrolled
    /// already gets the new address.
    pub fn enrol(&self, fingerprint: &str, address: &str) -> Result<EnrolledNode, Error> {
        let fingerprint =
            check_fingerprint(fingerprint).map_err(|e| Error::invalid("fingerprint", e))?;
        let records = self.store.records()?;
        let path = path(&fingerprint);
        let old = records.get::<EnrolledNode>(&path)?.map(|(_, raw)| raw);
        let node = EnrolledNode {
            fingerprint,
            address: address.to_owned(),
            enrolled_at: self.store.clock().now(),
        };
        records.commit(
            Batch::new()
                .expect(path.clone(), old)
                .put(path.clone(), records.seal(&path, &node)),
        )?;
        Ok(node)
    }

    /// Removes node `fingerprint`'s enrolment (an approved `remove-node`).
    pub fn remove(&self, fingerprint: &str) -> Result<(), Error> {
        let fingerprint =
            check_fingerprint(fingerprint).map_err(|e| Error::invalid("fingerprint", e))?;
        let records = self.store.records()?;
        let path = path(&fingerprint);
        let Some((_, raw)) = records.get::<EnrolledNode>(&path)? else {
            return Err(Error::invalid(
                "fingerprint",
                format!("node {fingerprint} is not enrolled"),
            ));
        };
        records.commit(Batch::new().expect(path.clone(), Some(raw)).delete(path))
    }

    /// Answers a sealed node's request for the root key, after checking, in this order: the
    /// request is for this vault and environment and addressed to this node; the asking key's
    /// fingerprint is enrolled; the request is signed by that key over its unseal key; it was
    /// made within [`REQUEST_WINDOW`] of this node's clock and not answered before. Then the
    /// root is sealed to the asking node's unseal key and the grant signed by this node.
    pub fn grant(&self, vault: &Vault, request: &PeerUnsealRequest) -> Result<Granted, Error> {
        let refuse = |why: String| Error::NotPermitted(format!("peer unseal refused: {why}"));
        let node = vault
            .node_identity()
            .ok_or_else(|| refuse("this node has no identity key".into()))?;
        let own = node.verifying_key().fingerprint();
        let vault_id = vault.vault_id()?;
        if request.vault_id != vault_id || request.environment != vault.environment() {
            return Err(refuse(format!(
                "the request is for vault {} ({}), this is vault {vault_id} ({})",
                request.vault_id,
                request.environment,
                vault.environment()
            )));
        }
        if !request.giver.eq_ignore_ascii_case(&own) {
            return Err(refuse(format!(
                "the request is addressed to node {}, this is node {own}",
                request.giver
            )));
        }
        let asking = request.claimed_node().map_err(|e| refuse(e.to_string()))?;
        if asking == own {
            return Err(refuse("a node cannot unseal itself".into()));
        }
        if self.enrolled(&asking)?.is_none() {
            return Err(refuse(format!(
                "node {asking} is not enrolled (custodians enrol it with `tresor operator enrol-node`)"
            )));
        }
        let unseal_key = request.verify().map_err(|e| refuse(e.to_string()))?;
        let now = self.store.clock().now();
        if now.abs_diff(request.issued_at) > REQUEST_WINDOW {
            return Err(refuse(format!(
                "the request of node {asking} was made at {}, {} s from this node's clock (at most {REQUEST_WINDOW} s): an old request replayed, or a clock to fix",
                request.issued_at,
                now.abs_diff(request.issued_at)
            )));
        }
        {
            let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
            answered.retain(|_, until| *until > now);
            if answered.contains_key(&request.signature) {
                return Err(refuse(format!(
                    "this request of node {asking} was answered already: a replay"
                )));
            }
            answered.insert(request.signature.clone(), now + 2 * REQUEST_WINDOW + 1);
        }
        let (root_generation, sealed) = vault.seal_root_for_peer(&unseal_key, &own, &asking)?;
        let signature = node.sign(&grant_message(
            &vault_id,
            root_generation,
            &unseal_key,
            &asking,
            &sealed,
        ));
        Ok(Granted {
            node: asking,
            grant: PeerUnsealGrant {
                vault_id,
                root_generation,
                giver_key: STANDARD.encode(node.verifying_key().as_bytes()),
                sealed_root: STANDARD.encode(sealed),
                signature: STANDARD.encode(signature),
            },
        })
    }
}

/// A grant, and the node it is for.
pub struct Granted {
    /// The asking node's fingerprint.
    pub node: String,
    /// What it gets.
    pub grant: PeerUnsealGrant,
}

/// The asking side: this node's configured peers, and the client it reaches them with.
pub struct Peers {
    peers: Vec<(PeerConfig, tresor_client::Client)>,
}

/// Why a peer did not unseal this node.
#[derive(Debug, thiserror::Error)]
pub enum PeerUnsealError {
    /// The client for the peer cannot be made (certificate files).
    #[error("peer unseal: {0}")]
    Client(#[from] tresor_client::ClientError),
    /// This node has no identity key.
    #[error("peer unseal needs a node identity key")]
    NoIdentity,
}

impl Peers {
    /// Clients for `peers`, presenting `cert`/`key`, checking the peers' certificates against
    /// `ca`.
    pub fn new(
        peers: &[PeerConfig],
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Peers, PeerUnsealError> {
        let peers = peers
            .iter()
            .map(|peer| {
                let client = tresor_client::Client::new(&tresor_client::ClientSettings {
                    addr: peer.address.clone(),
                    ca_cert: ca.to_owned(),
                    client_cert: cert.to_owned(),
                    client_key: key.to_owned(),
                })?
                .with_timeout(std::time::Duration::from_secs(5));
                Ok((peer.clone(), client))
            })
            .collect::<Result<_, PeerUnsealError>>()?;
        Ok(Peers { peers })
    }

    /// The configured peers.
    pub fn configured(&self) -> impl Iterator<Item = &PeerConfig> {
        self.peers.iter().map(|(peer, _)| peer)
    }

    /// Asks peer `index` for the root key and unseals `vault` with it. The grant must be signed
    /// by the fingerprint configured for that peer, for this node's current unseal key; the
    /// root inside must open the store.
    pub async fn ask(&self, index: usize, vault: &Vault) -> Result<UnsealProgress, String> {
        let (peer, client) = &self.peers[index];
        let node = vault
            .node_identity()
            .ok_or_else(|| PeerUnsealError::NoIdentity.to_string())?;
        let own = node.verifying_key().fingerprint();
        let vault_id = vault.vault_id().map_err(|e| e.to_string())?;
        let unseal_key = vault.unseal_public_key();
        let now = tresor_core::clock::Clock::now(&tresor_core::SystemClock);
        let request = PeerUnsealRequest::sign(
            &node,
            &vault_id,
            vault.environment(),
            &unseal_key,
            &peer.fingerprint,
            now,
        );
        let grant = client
            .peer_unseal(&request)
            .await
            .map_err(|e| format!("peer {} ({}) refused: {e}", peer.fingerprint, peer.address))?;
        let sealed = grant
            .verify(&peer.fingerprint, &vault_id, &unseal_key, &own)
            .map_err(|e| {
                format!(
                    "the answer of {} is not trusted: {e}; nothing was used",
                    peer.address
                )
            })?;
        let vault = vault.clone();
        let giver = peer.fingerprint.clone();
        let generation = grant.root_generation;
        tokio::task::spawn_blocking(move || {
            vault.unseal_from_peer(&giver, &own, generation, &sealed)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "the root key peer {} ({}) handed does not unseal this node: {e}",
                peer.fingerprint, peer.address
            )
        })
    }
}
