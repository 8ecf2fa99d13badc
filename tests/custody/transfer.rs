//! Issue 14, point 4: one key moves to another vault, sealed to that vault's transfer key, with
//! custodians approving at both ends; it is never in the clear outside a vault.

use tresor_client::{CreateKeyOptions, CryptoOptions, transfer_package};
use tresor_wire::approvals::ApprovalState;

use crate::common::custody::{CustodyOptions, CustodyServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_moves_to_another_vault_sealed_and_approved_at_both_ends() {
    let from = CustodyServer::start(CustodyOptions::k_of_n(1, 2).unsealed()).await;
    let to = CustodyServer::start(CustodyOptions::k_of_n(1, 1).unsealed()).await;
    let third = CustodyServer::start(CustodyOptions::k_of_n(1, 1).unsealed()).await;
    let (a, b) = (from.admin(), to.admin());
    for client in [&a, &b, &third.admin()] {
        client.create_tenant("payments", 2, &[]).await.unwrap();
    }
    a.create_key("payments", "card", &CreateKeyOptions::default())
        .await
        .unwrap();
    let options = CryptoOptions::default();
    let old = a
        .encrypt("payments", "card", b"under v1", &options)
        .await
        .unwrap();
    a.rotate_key("payments", "card").await.unwrap();
    let new = a
        .encrypt("payments", "card", b"under v2", &options)
        .await
        .unwrap();

    // The receiving vault's transfer key, checked against its node.
    let recipient = b.transfer_key().await.unwrap();
    let node = to.vault().node_fingerprint().unwrap();
    let wrong_node = third.vault().node_fingerprint().unwrap();
    let error = a
        .request_key_transfer("payments", "card", &recipient, &wrong_node)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("invalid recipient: it is signed by node"),
        "{error}"
    );
    let mut forged = recipient.clone();
    forged.key = third.admin().transfer_key().await.unwrap().key;
    let error = a
        .request_key_transfer("payments", "card", &forged, &node)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("signature does not verify"), "{error}");

    // Asked, approved by a custodian of the sending vault: the outcome carries the package.
    let asked = a
        .request_key_transfer("payments", "card", &recipient, &node)
        .await
        .unwrap();
    assert_eq!(asked.state, ApprovalState::Pending);
    let done = from.approve_by(&asked.id, &[0]).await;
    let package = transfer_package(&done.approval)
        .expect("the executed transfer carries its package")
        .to_owned();
    let from_id = from.vault().vault_id().unwrap();

    // Another vault cannot use it; nor can the receiver under another name.
    let stolen = third
        .admin()
        .request_key_receipt("payments", "card", &package, &from_id, false)
        .await
        .unwrap();
    let outcome = third.approve_by(&stolen.id, &[0]).await;
    assert!(
        matches!(&outcome.approval.state, ApprovalState::Failed { error, .. } if error.contains("does not open")),
        "{:?}",
        outcome.approval.state
    );
    let renamed = b
        .request_key_receipt("payments", "other", &package, &from_id, false)
        .await
        .unwrap();
    let outcome = to.approve_by(&renamed.id, &[0]).await;
    assert!(matches!(
        outcome.approval.state,
        ApprovalState::Failed { .. }
    ));

    // Received and approved: both versions decrypt there, and new data uses version 2.
    let asked = b
        .request_key_receipt("payments", "card", &package, &from_id, false)
        .await
        .unwrap();
    let outcome = to.approve_by(&asked.id, &[0]).await;
    assert!(
        matches!(outcome.approval.state, ApprovalState::Executed { .. }),
        "{:?}",
        outcome.approval.state
    );
    for (sealed, plaintext) in [(&old, &b"under v1"[..]), (&new, &b"under v2"[..])] {
        let opened = b
            .decrypt("payments", "card", &sealed.ciphertext, &options)
            .await
            .unwrap();
        assert_eq!(opened.as_slice(), plaintext);
    }
    let again = b
        .encrypt("payments", "card", b"there", &options)
        .await
        .unwrap();
    assert_eq!(again.key_version, 2);
    // A second receipt of the same name is refused unless replacing is asked (and approved).
    let error = b
        .request_key_receipt("payments", "card", &package, &from_id, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("exists already"), "{error}");
    for server in [from, to, third] {
        server.shutdown().await;
    }
}
