//! Peer unseal (docs/deployment.md, "Unsealing"): a sealed node that custodians enrolled asks an
//! unsealed node of its vault for the root key, which comes back sealed to the asking node's
//! per-boot unseal key.
//!
//! Both messages are signed by a node identity key (the Ed25519 key that signs every seal
//! status): the request by the node asking, so the giving node can check the enrolment of that
//! exact key and that the unseal key is this boot's, asked just now, of it; the grant by the
//! giving node, so the asking node accepts it only from a peer its own configuration names.
//! What each signature covers binds it to one vault, one environment, one unseal key, both
//! nodes and (for the grant) one root generation and the exact sealed bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tresor_crypto::LengthPrefixed;
use tresor_crypto::sign::{SigningKey, VerifyingKey};

/// Purpose of a root key sealed to a node's per-boot unseal key by a peer.
pub const PEER_ROOT_PURPOSE: &str = "tresor-peer-root-v1";

/// How far a request's `issued_at` may be from the giving node's clock, in seconds: a request
/// older than this is refused as replayed, and the giving node remembers those it answered for
/// this long, so none counts twice.
pub const REQUEST_WINDOW: u64 = 60;

/// The body of `POST sys/peer-unseal`: a sealed node asks for the root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerUnsealRequest {
    /// The vault both nodes serve.
    pub vault_id: String,
    /// Its environment.
    pub environment: String,
    /// The asking node's identity key, base64 Ed25519: its fingerprint must be enrolled.
    pub node_key: String,
    /// The asking node's current unseal key, base64 X25519: the root comes back sealed to it.
    pub unseal_key: String,
    /// The fingerprint of the node asked (a request made to one peer is refused by another).
    pub giver: String,
    /// When it was made (Unix seconds, the asking node's clock).
    pub issued_at: u64,
    /// 16 random bytes, base64: two requests in one second differ.
    pub nonce: String,
    /// The asking node's signature (base64) over [`request_message`].
    pub signature: String,
}

/// What the asking node signs: LP("tresor-peer-unseal-request-v1") ‖ LP(vault id) ‖
/// LP(environment) ‖ LP(unseal key) ‖ LP(giver fingerprint) ‖ u64 issued_at ‖ LP(nonce).
pub fn request_message(
    vault_id: &str,
    environment: &str,
    unseal_key: &[u8; 32],
    giver: &str,
    issued_at: u64,
    nonce: &[u8],
) -> Vec<u8> {
    LengthPrefixed::new()
        .bytes(b"tresor-peer-unseal-request-v1")
        .bytes(vault_id.as_bytes())
        .bytes(environment.as_bytes())
        .bytes(unseal_key)
        .bytes(giver.as_bytes())
        .u64(issued_at)
        .bytes(nonce)
        .into_vec()
}

/// What the giving node answers: the root key sealed to the asking node's unseal key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerUnsealGrant {
    /// The vault.
    pub vault_id: String,
    /// The generation of the root key inside.
    pub root_generation: u32,
    /// The giving node's identity key, base64 Ed25519.
    pub giver_key: String,
    /// The sealed box ([`PEER_ROOT_PURPOSE`], context [`root_context`]), base64.
    pub sealed_root: String,
    /// The giving node's signature (base64) over [`grant_message`].
    pub signature: String,
}

/// What the giving node signs: LP("tresor-peer-unseal-grant-v1") ‖ LP(vault id) ‖ u32 root
/// generation ‖ LP(unseal key) ‖ LP(receiver fingerprint) ‖ LP(sealed root).
pub fn grant_message(
    vault_id: &str,
    root_generation: u32,
    unseal_key: &[u8; 32],
    receiver: &str,
    sealed_root: &[u8],
) -> Vec<u8> {
    LengthPrefixed::new()
        .bytes(b"tresor-peer-unseal-grant-v1")
        .bytes(vault_id.as_bytes())
        .u32(root_generation)
        .bytes(unseal_key)
        .bytes(receiver.as_bytes())
        .bytes(sealed_root)
        .into_vec()
}

/// What the sealed root is bound to: the vault, its environment, the root generation, the
/// receiving unseal key and both nodes.
pub fn root_context(
    vault_id: &str,
    environment: &str,
    root_generation: u32,
    unseal_key: &[u8; 32],
    giver: &str,
    receiver: &str,
) -> LengthPrefixed {
    LengthPrefixed::new()
        .bytes(vault_id.as_bytes())
        .bytes(environment.as_bytes())
        .u32(root_generation)
        .bytes(unseal_key)
        .bytes(giver.as_bytes())
        .bytes(receiver.as_bytes())
}

/// Why a peer-unseal message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// A field is not what it should be.
    #[error("malformed peer-unseal message: {0}")]
    Malformed(&'static str),
    /// The signature does not verify under the key the message names.
    #[error(
        "the signature of node {0} does not verify: the message was altered, or signed by another identity key"
    )]
    BadSignature(String),
    /// Signed by a node this one does not trust for it.
    #[error("signed by node {found}, not by {expected}")]
    WrongNode {
        /// The fingerprint found.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// For another vault or environment.
    #[error("made for vault {found}, not this vault {expected}")]
    WrongVault {
        /// The vault (and environment) found.
        found: String,
        /// This one.
        expected: String,
    },
}

fn decode_key(field: &str, what: &'static str) -> Result<VerifyingKey, PeerError> {
    STANDARD
        .decode(field)
        .ok()
        .and_then(|k| VerifyingKey::from_slice(&k))
        .ok_or(PeerError::Malformed(what))
}

fn decode_32(field: &str, what: &'static str) -> Result<[u8; 32], PeerError> {
    STANDARD
        .decode(field)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or(PeerError::Malformed(what))
}

impl PeerUnsealRequest {
    /// A request signed by `node` for its unseal key `unseal_key`, to the node `giver`.
    pub fn sign(
        node: &SigningKey,
        vault_id: &str,
        environment: &str,
        unseal_key: &[u8; 32],
        giver: &str,
        issued_at: u64,
    ) -> Self {
        let nonce = tresor_crypto::random_array::<16>();
        let message = request_message(vault_id, environment, unseal_key, giver, issued_at, &nonce);
        PeerUnsealRequest {
            vault_id: vault_id.to_owned(),
            environment: environment.to_owned(),
            node_key: STANDARD.encode(node.verifying_key().as_bytes()),
            unseal_key: STANDARD.encode(unseal_key),
            giver: giver.to_owned(),
            issued_at,
            nonce: STANDARD.encode(nonce),
            signature: STANDARD.encode(node.sign(&message)),
        }
    }

    /// The asking node's fingerprint as the request claims it (checked by [`Self::verify`]).
    pub fn claimed_node(&self) -> Result<String, PeerError> {
        Ok(decode_key(&self.node_key, "node_key")?.fingerprint())
    }

    /// The unseal key, once the signature holds under `node_key`: what the giving node then
    /// seals the root to. Freshness and enrolment are the giving node's checks.
    pub fn verify(&self) -> Result<[u8; 32], PeerError> {
        let node = decode_key(&self.node_key, "node_key")?;
        let unseal_key = decode_32(&self.unseal_key, "unseal_key")?;
        let nonce = STANDARD
            .decode(&self.nonce)
            .ok()
            .filter(|n| n.len() == 16)
            .ok_or(PeerError::Malformed("nonce"))?;
        let signature = STANDARD
            .decode(&self.signature)
            .map_err(|_| PeerError::Malformed("signature"))?;
        let message = request_message(
            &self.vault_id,
            &self.environment,
            &unseal_key,
            &self.giver,
            self.issued_at,
            &nonce,
        );
        if !node.verify(&message, &signature) {
            return Err(PeerError::BadSignature(node.fingerprint()));
        }
        Ok(unseal_key)
    }
}

impl PeerUnsealGrant {
    /// The sealed root, once the grant is signed by the node `expected` (a fingerprint the
    /// receiving node's configuration names) for `receiver`'s unseal key `unseal_key`, in
    /// vault `vault_id`.
    pub fn verify(
        &self,
        expected: &str,
        vault_id: &str,
        unseal_key: &[u8; 32],
        receiver: &str,
    ) -> Result<Vec<u8>, PeerError> {
        let giver = decode_key(&self.giver_key, "giver_key")?;
        let found = giver.fingerprint();
        if !found.eq_ignore_ascii_case(expected.trim()) {
            return Err(PeerError::WrongNode {
                found,
                expected: expected.to_owned(),
            });
        }
        if self.vault_id != vault_id {
            return Err(PeerError::WrongVault {
                found: self.vault_id.clone(),
                expected: vault_id.to_owned(),
            });
        }
        let sealed = STANDARD
            .decode(&self.sealed_root)
            .map_err(|_| PeerError::Malformed("sealed_root"))?;
        let signature = STANDARD
            .decode(&self.signature)
            .map_err(|_| PeerError::Malformed("signature"))?;
        let message = grant_message(
            vault_id,
            self.root_generation,
            unseal_key,
            receiver,
            &sealed,
        );
        if !giver.verify(&message, &signature) {
            return Err(PeerError::BadSignature(found));
        }
        Ok(sealed)
    }
}

/// A node enrolled for peer unseal, as `LIST sys/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolledNode {
    /// The node identity key's fingerprint.
    pub fingerprint: String,
    /// Where it serves.
    pub address: String,
    /// When the enrolment ran (Unix seconds).
    pub enrolled_at: u64,
}

/// The answer of `LIST sys/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeList {
    /// The enrolled nodes, by fingerprint.
    pub nodes: Vec<EnrolledNode>,
}

/// The body of `POST sys/nodes/{fingerprint}`: ask for a node's enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// Where the node serves.
    pub address: String,
}

/// Checks the form of a node fingerprint (16 colon-separated lowercase hex pairs, as
/// [`VerifyingKey::fingerprint`] writes it) and returns it lowercased.
pub fn check_fingerprint(fingerprint: &str) -> Result<String, String> {
    let lower = fingerprint.trim().to_ascii_lowercase();
    let pairs: Vec<&str> = lower.split(':').collect();
    let ok = pairs.len() == 16
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "`{fingerprint}` is not a node fingerprint (16 hex pairs separated by colons, as NODE.pub and `tresor status` show it)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_verifies_only_as_signed() {
        let node = SigningKey::generate();
        let unseal = [7u8; 32];
        let request = PeerUnsealRequest::sign(&node, "v", "prod", &unseal, "aa", 100);
        assert_eq!(request.verify().unwrap(), unseal);
        assert_eq!(
            request.claimed_node().unwrap(),
            node.verifying_key().fingerprint()
        );
        // Each signed field, changed, breaks it.
        let tampers: [fn(&mut PeerUnsealRequest); 6] = [
            |r: &mut PeerUnsealRequest| r.vault_id.push('x'),
            |r: &mut PeerUnsealRequest| r.environment.push('x'),
            |r: &mut PeerUnsealRequest| r.giver.push('x'),
            |r: &mut PeerUnsealRequest| r.issued_at += 1,
            |r: &mut PeerUnsealRequest| r.unseal_key = STANDARD.encode([8u8; 32]),
            |r: &mut PeerUnsealRequest| r.nonce = STANDARD.encode([0u8; 16]),
        ];
        for tamper in tampers {
            let mut changed = request.clone();
            tamper(&mut changed);
            assert!(
                matches!(changed.verify(), Err(PeerError::BadSignature(_))),
                "{changed:?}"
            );
        }
        // Another identity's key named as the signer.
        let other = SigningKey::generate();
        let mut swapped = request.clone();
        swapped.node_key = STANDARD.encode(other.verifying_key().as_bytes());
        assert!(matches!(swapped.verify(), Err(PeerError::BadSignature(_))));
        let mut malformed = request;
        malformed.node_key = "not base64!".into();
        assert_eq!(malformed.verify(), Err(PeerError::Malformed("node_key")));
    }

    #[test]
    fn a_grant_verifies_only_from_the_expected_node_for_this_receiver() {
        let giver = SigningKey::generate();
        let unseal = [7u8; 32];
        let sealed = b"sealed root".to_vec();
        let grant = PeerUnsealGrant {
            vault_id: "v".into(),
            root_generation: 2,
            giver_key: STANDARD.encode(giver.verifying_key().as_bytes()),
            sealed_root: STANDARD.encode(&sealed),
            signature: STANDARD.encode(giver.sign(&grant_message("v", 2, &unseal, "bb", &sealed))),
        };
        let fp = giver.verifying_key().fingerprint();
        assert_eq!(grant.verify(&fp, "v", &unseal, "bb").unwrap(), sealed);
        assert!(matches!(
            grant.verify(
                &SigningKey::generate().verifying_key().fingerprint(),
                "v",
                &unseal,
                "bb"
            ),
            Err(PeerError::WrongNode { .. })
        ));
        assert!(matches!(
            grant.verify(&fp, "w", &unseal, "bb"),
            Err(PeerError::WrongVault { .. })
        ));
        assert!(matches!(
            grant.verify(&fp, "v", &[8u8; 32], "bb"),
            Err(PeerError::BadSignature(_))
        ));
        assert!(matches!(
            grant.verify(&fp, "v", &unseal, "cc"),
            Err(PeerError::BadSignature(_))
        ));
        let mut tampered = grant.clone();
        tampered.sealed_root = STANDARD.encode(b"sealed roou");
        assert!(matches!(
            tampered.verify(&fp, "v", &unseal, "bb"),
            Err(PeerError::BadSignature(_))
        ));
        let mut older = grant;
        older.root_generation = 1;
        assert!(matches!(
            older.verify(&fp, "v", &unseal, "bb"),
            Err(PeerError::BadSignature(_))
        ));
    }

    #[test]
    fn fingerprints_are_checked_and_lowercased() {
        let fp = SigningKey::generate().verifying_key().fingerprint();
        assert_eq!(check_fingerprint(&fp.to_uppercase()).unwrap(), fp);
        for bad in [
            "",
            "aa:bb",
            &fp[1..],
            &format!("{fp}:00"),
            &fp.replace(':', ""),
        ] {
            assert!(check_fingerprint(bad).is_err(), "{bad}");
        }
    }
}
