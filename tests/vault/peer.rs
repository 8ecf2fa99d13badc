//! Peer unseal, the core's half (docs/deployment.md, "Unsealing"): an unsealed node seals its
//! root to another node's per-boot unseal key; the other node opens it with that key only, for
//! the vault, root generation and nodes it was made for, and only a root that opens the store
//! is used.

use std::sync::Arc;

use tresor_core::{Error, KeySpec, ProtectionLevel, UnsealError, Vault, VaultOptions};
use tresor_crypto::sealed_box::{self, BoxPublicKey};
use tresor_wire::peers::{PEER_ROOT_PURPOSE, root_context};

use crate::common::TestVault;

/// A second node of `a`'s vault: another `Vault` on the same store, sealed.
fn second_node(a: &TestVault) -> Vault {
    Vault::open(a.store.clone(), VaultOptions::new(a.environment.clone())).unwrap()
}

#[test]
fn a_node_unseals_with_the_root_a_peer_sealed_to_its_unseal_key() {
    let a = TestVault::new();
    a.tenant("t", ProtectionLevel::Two);
    a.key("t", "k", KeySpec::default());
    let ciphertext = a.encrypt("t", "k", b"hello");
    let b = second_node(&a);
    assert!(b.is_sealed());

    let (generation, sealed) = a
        .vault
        .seal_root_for_peer(&b.unseal_public_key(), "node-a", "node-b")
        .unwrap();
    assert_eq!(generation, 1);
    // Made for node-b from node-a: named otherwise, it does not open, and nothing changes.
    for (giver, receiver) in [("node-c", "node-b"), ("node-a", "node-c")] {
        let refused = b.unseal_from_peer(giver, receiver, generation, &sealed);
        assert!(
            matches!(refused, Err(Error::NotPermitted(_))),
            "{refused:?}"
        );
        assert!(b.is_sealed());
    }
    // Another root generation than the store's.
    let refused = b.unseal_from_peer("node-a", "node-b", 2, &sealed);
    assert!(
        matches!(&refused, Err(Error::NotPermitted(m)) if m.contains("generation 2")),
        "{refused:?}"
    );
    // Tampered: one byte anywhere.
    for at in [1, sealed.len() / 2, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[at] ^= 1;
        let refused = b.unseal_from_peer("node-a", "node-b", generation, &tampered);
        assert!(
            matches!(refused, Err(Error::NotPermitted(_))),
            "{refused:?}"
        );
        assert!(b.is_sealed());
    }

    let progress = b
        .unseal_from_peer("node-a", "node-b", generation, &sealed)
        .unwrap();
    assert!(!progress.sealed);
    assert_eq!(
        crate::common::decrypt(&b, "t", "k", &ciphertext).unwrap(),
        b"hello"
    );
    // The unseal key was renewed: the same box cannot be offered again after a seal.
    b.seal();
    let replayed = b.unseal_from_peer("node-a", "node-b", generation, &sealed);
    assert!(
        matches!(replayed, Err(Error::NotPermitted(_))),
        "{replayed:?}"
    );
    assert!(b.is_sealed());
}

#[test]
fn a_root_that_does_not_open_the_store_is_refused() {
    let a = TestVault::new();
    let b = second_node(&a);
    let vault_id = a.vault.vault_id().unwrap();
    let unseal_key = b.unseal_public_key();
    // Sealed exactly as a peer would, but another key inside: the root check refuses it.
    let context = root_context(&vault_id, "test", 1, &unseal_key, "node-a", "node-b");
    let sealed = sealed_box::seal(
        &BoxPublicKey::from_bytes(unseal_key).unwrap(),
        PEER_ROOT_PURPOSE,
        context.as_slice(),
        &[9u8; 32],
    )
    .unwrap();
    let refused = b.unseal_from_peer("node-a", "node-b", 1, &sealed);
    assert!(
        matches!(refused, Err(Error::Unseal(UnsealError::RootMismatch))),
        "{refused:?}"
    );
    assert!(b.is_sealed());
}

#[test]
fn a_sealed_node_or_one_behind_a_root_rotation_hands_nothing() {
    let a = TestVault::new();
    let b = second_node(&a);
    let key = b.unseal_public_key();
    a.vault.seal();
    assert!(matches!(
        a.vault.seal_root_for_peer(&key, "node-a", "node-b"),
        Err(Error::Sealed)
    ));
    a.unseal();
    // A third node rotates the root: `a` still holds the old one and must not hand it out.
    let c = Arc::new(second_node(&a));
    let (generation, sealed) = a
        .vault
        .seal_root_for_peer(&c.unseal_public_key(), "node-a", "node-c")
        .unwrap();
    c.unseal_from_peer("node-a", "node-c", generation, &sealed)
        .unwrap();
    c.rotate_root(None).unwrap();
    let refused = a.vault.seal_root_for_peer(&key, "node-a", "node-b");
    assert!(
        matches!(&refused, Err(Error::NotPermitted(m)) if m.contains("generation 1, the store is at 2")),
        "{refused:?}"
    );
}
