//! The trust root (docs/custody.md, "Threat model"): custodians seal their shares and custody
//! keys only to an unseal key signed by a node they pinned, so a machine that can answer TLS
//! for the vault gets nothing; and the seal configuration is authenticated by the root key, so
//! whoever can write the store cannot swap custodians, thresholds or environments.

use crate::common::process::Bounded;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::StatusCode;
use serde_json::Value;
use tresor_core::Store;
use tresor_crypto::identity::CustodianIdentity;

use crate::common::custody::{CustodyOptions, CustodyServer};
use crate::common::impostor::Impostor;
use crate::common::server::error_message;

const PASSPHRASE: &str = "correct horse battery staple";

/// Writes custodian `i`'s identity file and the node pins `tresor operator init` would have
/// written beside it.
fn custodian_files(server: &CustodyServer, identity: &CustodianIdentity) -> String {
    let path = server.path(&format!("{}.key", identity.name()));
    std::fs::write(
        &path,
        identity.to_encrypted_json(PASSPHRASE.as_bytes()).unwrap(),
    )
    .unwrap();
    std::fs::write(path.with_extension("nodes"), server.pinned().join("\n")).unwrap();
    path.display().to_string()
}

/// Runs the CLI against `url` as the admin client; its stderr and success.
fn tresor(server: &CustodyServer, url: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(args)
        .env("TRESOR_ADDR", url)
        .env("TRESOR_CACERT", server.path("ca.pem"))
        .env("TRESOR_CLIENT_CERT", &server.admin_files.cert)
        .env("TRESOR_CLIENT_KEY", &server.admin_files.key)
        .env("TRESOR_PASSPHRASE", PASSPHRASE)
        .bounded_output();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The real seal status with the unseal key replaced by the impostor's (and the node key and
/// signature as `node` says).
fn forged(real: &Value, node: Forgery) -> Value {
    let mut status = real.clone();
    let impostor_box = tresor_crypto::sealed_box::BoxSecretKey::generate();
    let unseal_key = STANDARD.encode(impostor_box.public().as_bytes());
    status["unseal_key"] = Value::String(unseal_key.clone());
    match node {
        Forgery::OwnNodeKey => {
            let key = tresor_crypto::sign::SigningKey::generate();
            let message = tresor_wire::custody::unseal_key_message(
                status["cluster_id"].as_str().unwrap(),
                status["environment"].as_str().unwrap(),
                impostor_box.public().as_bytes(),
            );
            status["node_key"] = Value::String(STANDARD.encode(key.verifying_key().as_bytes()));
            status["unseal_key_signature"] = Value::String(STANDARD.encode(key.sign(&message)));
        }
        Forgery::RealNodeKey => {}
        Forgery::Unsigned => {
            let object = status.as_object_mut().unwrap();
            object.remove("node_key");
            object.remove("unseal_key_signature");
        }
    }
    status
}

#[derive(Clone, Copy, Debug)]
enum Forgery {
    /// Signed by the impostor's own node key (not pinned).
    OwnNodeKey,
    /// The real node's key and signature, over another unseal key.
    RealNodeKey,
    /// No signature at all.
    Unsigned,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_that_answers_tls_for_the_vault_gets_nothing_sealed_to_it() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(2, 3)).await;
    let c1 = custodian_files(&server, server.custodian(0));
    // A level-3 tenant whose custodian would unlock it.
    server.unseal_all().await;
    let tenant_custodian = CustodianIdentity::generate("t1").unwrap();
    let t1 = custodian_files(&server, &tenant_custodian);
    server
        .admin()
        .create_tenant("vault3", 3, &[tenant_custodian.public().clone()])
        .await
        .unwrap();
    server.restart().await;
    let real = server.seal_status().await;
    assert!(real["node_key"].is_string() && real["unseal_key_signature"].is_string());

    for forgery in [Forgery::OwnNodeKey, Forgery::RealNodeKey, Forgery::Unsigned] {
        let impostor = Impostor::start(&server.ca, forged(&real, forgery)).await;
        let expected = match forgery {
            Forgery::OwnNodeKey => "not one of the nodes pinned",
            Forgery::RealNodeKey => "does not verify",
            Forgery::Unsigned => "not signed by a node identity key",
        };
        let (ok, stderr) = tresor(
            &server,
            &impostor.url,
            &["operator", "unseal", "--identity", &c1],
        );
        assert!(!ok, "{forgery:?}: unseal went through");
        assert!(stderr.contains(expected), "{forgery:?}: {stderr}");
        assert!(stderr.contains("nothing was sent"), "{forgery:?}: {stderr}");
        let (ok, stderr) = tresor(
            &server,
            &impostor.url,
            &["tenant", "unlock", "vault3", "--identity", &t1],
        );
        assert!(!ok, "{forgery:?}: unlock went through");
        assert!(stderr.contains(expected), "{forgery:?}: {stderr}");
        // Not even the sealed share or custody box was asked for, let alone a submission.
        assert_eq!(impostor.requests(), Vec::<String>::new(), "{forgery:?}");
    }
    // The real vault, through the same CLI, is unsealed by the same files.
    for i in 0..2 {
        let path = custodian_files(&server, server.custodian(i));
        let (ok, stderr) = tresor(
            &server,
            &server.url,
            &["operator", "unseal", "--identity", &path],
        );
        assert!(ok, "{stderr}");
    }
    let (ok, stderr) = tresor(
        &server,
        &server.url,
        &["tenant", "unlock", "vault3", "--identity", &t1],
    );
    assert!(ok, "{stderr}");
    server.shutdown().await;
}

/// Rewrites the stored seal configuration (`core/seal`, JSON in the clear) with `edit`.
fn tamper(store: &dyn Store, edit: impl FnOnce(&mut Value)) {
    let raw = store.get("core/seal").unwrap().unwrap();
    let mut config: Value = serde_json::from_slice(&raw).unwrap();
    edit(&mut config);
    store
        .put("core/seal", &serde_json::to_vec_pretty(&config).unwrap())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_seal_configuration_is_refused_at_unseal_and_approval() {
    let attacker = CustodianIdentity::generate("mallory").unwrap();
    let attacker_public: Value = serde_json::from_str(&attacker.public().to_json()).unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "threshold 1",
            Box::new(|c: &mut Value| c["threshold"] = Value::from(1)),
        ),
        (
            "a custodian's Ed25519 key swapped",
            Box::new(move |c: &mut Value| {
                c["custodians"][2]["custodian"]["ed25519"] = attacker_public["ed25519"].clone()
            }),
        ),
        (
            "a custodian's X25519 key swapped",
            Box::new({
                let x =
                    serde_json::from_str::<Value>(&attacker.public().to_json()).unwrap()["x25519"]
                        .clone();
                move |c: &mut Value| c["custodians"][2]["custodian"]["x25519"] = x.clone()
            }),
        ),
        (
            "the environment changed",
            Box::new(|c: &mut Value| c["environment"] = Value::from("production")),
        ),
    ];
    for (what, edit) in edits {
        let mut server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unsealed()).await;
        let before = server.vault_store_raw("core/seal");
        // While unsealed: an approval cannot be counted, a rotation seals nothing to it.
        tamper(server.store().as_ref(), &edit);
        let admin = server.admin();
        let rotation = admin.rotate_root().await;
        match rotation {
            Err(error) => assert!(
                error.to_string().contains("seal configuration"),
                "{what}: {error}"
            ),
            Ok(approval) => {
                let (status, body) = server.sign_raw(&approval, 0).await;
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{what}: {body}");
                assert!(
                    error_message(&body).contains("seal configuration"),
                    "{what}: {body}"
                );
            }
        }
        assert_ne!(server.vault_store_raw("core/seal"), before, "{what}");
        // After a restart: the custodians' shares do not unseal it, naming why.
        if what == "the environment changed" {
            // The process runs as `test`; the data now claims `production`: refused at open.
            server.shutdown().await;
            continue;
        }
        server.restart().await;
        let admin = server.admin();
        let mut refusal = None;
        for i in 0..2 {
            if let Err(error) = admin
                .unseal_with(server.custodian(i), &server.pinned())
                .await
            {
                refusal = Some(error.to_string());
                break;
            }
        }
        let error = refusal.unwrap_or_else(|| panic!("{what}: unsealed"));
        assert!(error.contains("seal configuration"), "{what}: {error}");
        assert_eq!(server.seal_status().await["sealed"], true, "{what}");
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_cut_short_while_the_server_was_down_refuses_to_unseal() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unsealed()).await;
    let admin = server.admin();
    admin.create_tenant("ops", 2, &[]).await.unwrap();
    // A restart anchors the new run's start checkpoint at unseal.
    server.restart().await;
    server.unseal_all().await;
    let anchored = std::fs::read_to_string(server.path("audit.log")).unwrap();
    let lines: Vec<&str> = anchored.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains("\"reason\":\"start\""))
        .expect("a start checkpoint");
    // While the server is down, someone cuts the log back to before that checkpoint.
    server
        .restart_after(|dir| {
            std::fs::write(dir.join("audit.log"), lines[..start].join("\n") + "\n").unwrap();
        })
        .await;
    let admin = server.admin();
    admin
        .unseal_with(server.custodian(0), &server.pinned())
        .await
        .unwrap();
    let error = admin
        .unseal_with(server.custodian(1), &server.pinned())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no longer holds the checkpoint this node anchored"),
        "{error}"
    );
    assert!(error.contains("--accept-audit-gap"), "{error}");
    assert_eq!(server.seal_status().await["sealed"], true);
    // One custodian accepting is not enough: the round takes every one of them.
    admin
        .unseal_accepting_audit_gap(server.custodian(0), &server.pinned())
        .await
        .unwrap();
    assert!(
        admin
            .unseal_with(server.custodian(1), &server.pinned())
            .await
            .is_err()
    );
    assert_eq!(server.seal_status().await["sealed"], true);
    // Both accept: unsealed, and the log says who accepted what.
    admin
        .unseal_accepting_audit_gap(server.custodian(0), &server.pinned())
        .await
        .unwrap();
    let progress = admin
        .unseal_accepting_audit_gap(server.custodian(1), &server.pinned())
        .await
        .unwrap();
    assert!(!progress.sealed);
    let log = std::fs::read_to_string(server.path("audit.log")).unwrap();
    let accepted = log
        .lines()
        .find(|l| l.contains("audit-gap-accepted"))
        .expect("the acceptance is audited");
    assert!(accepted.contains("c1, c2"), "{accepted}");
    // The refused attempts are in the log too.
    assert!(log.contains("no longer holds the checkpoint"), "{log}");
    // The next restart is clean again.
    server.restart().await;
    server.unseal_all().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_key_that_cannot_be_loaded_withholds_answers_with_inputs() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(1, 1).unsealed()).await;
    let admin = server.admin();
    admin.create_tenant("ops", 1, &[]).await.unwrap();
    let options = tresor_client::CryptoOptions::default();
    let sealed = admin
        .encrypt("ops", "k1", b"secret", &options)
        .await
        .unwrap();
    // While sealed, someone overwrites the stored audit HMAC key with bytes that do not open.
    server.restart().await;
    server
        .store()
        .put("core/audit-hmac-key", &[7u8; 80])
        .unwrap();
    server.unseal_all().await;
    let admin = server.admin();
    let error = admin
        .decrypt("ops", "k1", &sealed.ciphertext, &options)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("503"), "{error}");
    assert!(
        error.contains("the audit HMAC key cannot be loaded"),
        "{error}"
    );
    // Requests without inputs to record still work, so operators can look and seal.
    assert_eq!(admin.list_tenants().await.unwrap(), vec!["ops".to_owned()]);
    let entries = server.audit_entries();
    let refused = entries
        .iter()
        .rev()
        .find(|e| e["operation"] == "decrypt")
        .unwrap();
    assert_eq!(refused["status"], 503, "{refused}");
    admin.seal().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_store_put_back_is_reported_at_unseal_and_in_the_audit_log() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(1, 1).unsealed()).await;
    let snapshot = server.store().scan_prefix("").unwrap();
    let first = server.audit_entries();
    let then = first
        .iter()
        .rev()
        .find(|e| e["operation"] == "unsealed")
        .expect("an unsealed line")["store"]
        .clone();
    assert!(then["generation"].as_u64().unwrap() >= 1, "{then}");
    server.admin().create_tenant("ops", 2, &[]).await.unwrap();
    server.restart().await;
    let latest = server.unseal_by(0).await.store.unwrap();
    // While it is sealed, the store is put back whole, as it was at the first unseal.
    server.restart().await;
    let store = server.store();
    for (path, _) in store.scan_prefix("").unwrap() {
        store.delete(&path).unwrap();
    }
    for (path, raw) in &snapshot {
        store.put(path, raw).unwrap();
    }
    let progress = server.unseal_by(0).await;
    assert!(!progress.sealed);
    let now = progress.store.expect("the store's generation");
    assert!(now.generation >= then["generation"].as_u64().unwrap());
    assert!(now.generation < latest.generation, "{now:?} {latest:?}");
    let entries = server.audit_entries();
    let reported = entries
        .iter()
        .find(|e| e["operation"] == "store-rolled-back")
        .expect("the rollback is audited");
    let reason = reported["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("the store is at generation {}", now.generation)),
        "{reason}"
    );
    assert!(reason.contains("put back from an earlier copy"), "{reason}");
    // What was written after the copy is gone, as a restore means.
    assert!(server.admin().list_tenants().await.unwrap().is_empty());
    server.shutdown().await;
}
