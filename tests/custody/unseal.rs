//! Issue 4, init and unseal over the API, against a real server over mutual TLS on a real sled
//! store: k-of-n unseal after a restart, shares that only their custodian opens, replayed
//! submissions, progress that refused shares do not consume and that expires, shares that never
//! cross the wire readable, and secrets kept out of Debug output and error messages.

use crate::common::process::Bounded;
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tresor_client::Client;
use tresor_core::SledStore;
use tresor_core::Vault;
use tresor_core::VaultOptions;
use tresor_crypto::identity::CustodianIdentity;
use tresor_crypto::identity::IdentityError;

use crate::common::custody::{
    CustodyOptions, CustodyServer, assert_all_decrypt, contains, encrypt_some,
    open_custody_share_independently, open_share_independently, readable_forms,
};
use crate::common::recording::RecordingProxy;
use crate::common::server::{ADMIN, b64, error_message};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A decrypt attempt's status (503 while sealed).
async fn decrypt_status(admin: &Client, tenant: &str, ciphertext: &str) -> StatusCode {
    admin
        .raw(
            Method::POST,
            &format!("{tenant}/decrypt/k"),
            Some(&json!({ "ciphertext": ciphertext })),
        )
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_unseal_after_restart_and_every_ciphertext_decrypts() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unsealed()).await;
    let data = encrypt_some(&server.admin(), "payments", 5).await;
    let status = server.seal_status().await;
    assert_eq!(
        (status["t"].as_u64(), status["n"].as_u64()),
        (Some(2), Some(3))
    );

    server.restart().await;
    let admin = server.admin();
    let (code, health) = admin.health().await.unwrap();
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["sealed"], true);
    assert_eq!(
        decrypt_status(&admin, "payments", &data[0].1).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "a restarted vault serves nothing until k custodians unseal it"
    );

    // One custodian is not enough: still sealed, still 503, and the progress says who.
    let progress = server.unseal_by(0).await;
    assert!(progress.sealed);
    assert_eq!(progress.submitted, vec!["c1"]);
    assert_eq!(server.submitted().await, vec!["c1"]);
    assert_eq!(
        admin.health().await.unwrap().0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        decrypt_status(&admin, "payments", &data[0].1).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The second (any second: here the third custodian) unseals it.
    let progress = server.unseal_by(2).await;
    assert!(!progress.sealed);
    assert_eq!(admin.health().await.unwrap().0, StatusCode::OK);
    assert_all_decrypt(&admin, "payments", &data).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_opens_only_with_its_own_custodian_and_passphrase() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3)).await;
    let admin = server.admin();
    let share_of_c1: tresor_wire::custody::SealedShare = admin
        .data(Method::GET, "sys/unseal-share/c1", None)
        .await
        .unwrap();
    // B's identity does not open A's share, and says why.
    let error = share_of_c1.open(server.custodian(1)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not open with this identity"),
        "{error}"
    );
    assert!(share_of_c1.open(server.custodian(0)).is_ok());

    // B cannot pass their own share off as A's either: refused, and no progress is made.
    let mut as_c1 = server.submission(1).await;
    as_c1["custodian"] = json!("c1");
    let (status, body) = server.submit(&as_c1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(server.submitted().await.is_empty(), "nothing counted");

    // An unknown custodian has no share to fetch.
    let (status, body) = admin
        .raw(Method::GET, "sys/unseal-share/mallory", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("not a custodian"), "{body}");

    // The identity file opens with its passphrase only; the error is clear and says nothing
    // of the passphrase or the keys.
    let file = server
        .custodian(0)
        .to_encrypted_json(b"correct horse battery staple")
        .unwrap();
    let wrong = CustodianIdentity::from_encrypted_json(&file, b"correct horse battery stapler")
        .unwrap_err();
    assert!(matches!(wrong, IdentityError::WrongPassphrase), "{wrong:?}");
    let message = wrong.to_string();
    assert_eq!(
        message,
        "wrong passphrase, or the identity file was altered"
    );
    assert!(!message.contains("staple"));
    let opened =
        CustodianIdentity::from_encrypted_json(&file, b"correct horse battery staple").unwrap();
    assert_eq!(opened.public(), server.custodian(0).public());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_submissions_are_refused_across_boots_rounds_and_expiry() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unseal_timeout(300)).await;

    // Within a round: the same submission twice counts once.
    let first_boot = server.submission(0).await;
    assert_eq!(server.submit(&first_boot).await.0, StatusCode::OK);
    let (status, body) = server.submit(&first_boot).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(server.submitted().await, vec!["c1"], "counted once");

    // A previous boot's submission: refused after the restart, and it counts for nothing.
    server.restart().await;
    assert!(
        server.submitted().await.is_empty(),
        "progress does not survive a restart"
    );
    let (status, body) = server.submit(&first_boot).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).contains("not sealed to this vault's current unseal key"),
        "{body}"
    );
    assert!(
        server.submitted().await.is_empty(),
        "the replay counted for nothing"
    );

    // A previous round's submission (unsealed, then sealed again): refused.
    let previous_round = server.submission(0).await;
    assert_eq!(server.submit(&previous_round).await.0, StatusCode::OK);
    assert!(!server.unseal_by(1).await.sealed);
    server.admin().seal().await.unwrap();
    let (status, body) = server.submit(&previous_round).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(server.submitted().await.is_empty());

    // An expired round's submission: the round's unseal key expires with it, so the captured
    // submission cannot start the next round.
    let key_before = server.seal_status().await["unseal_key"].clone();
    let expired_round = server.submission(0).await;
    assert_eq!(server.submit(&expired_round).await.0, StatusCode::OK);
    server.clock.advance(301);
    assert!(server.submitted().await.is_empty(), "the round expired");
    assert_ne!(
        server.seal_status().await["unseal_key"],
        key_before,
        "an expired round takes its unseal key with it"
    );
    let (status, body) = server.submit(&expired_round).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        server.submitted().await.is_empty(),
        "the replayed share from the expired round did not count"
    );
    // Still sealed after one fresh share: the replay really did not count.
    assert!(server.unseal_by(1).await.sealed);
    assert!(!server.unseal_by(2).await.sealed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_shares_do_not_consume_progress() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3)).await;
    assert_eq!(
        server.submit(&server.submission(0).await).await.0,
        StatusCode::OK
    );
    let status = server.seal_status().await;
    let vault_id = status["cluster_id"].as_str().unwrap().to_owned();
    let unseal_key: [u8; 32] = crate::common::server::unb64(status["unseal_key"].as_str().unwrap())
        .try_into()
        .unwrap();

    // A wrong share: c2's genuine share of *another* vault with the same custodians, sealed
    // properly to this vault's unseal key. It fails its check value.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Vault::open(
        std::sync::Arc::new(SledStore::open(other_dir.path().join("data")).unwrap()),
        VaultOptions::new("test"),
    )
    .unwrap();
    other
        .init(&tresor_wire::custody::InitRequest {
            custodians: server
                .custodians
                .iter()
                .map(|c| c.public().clone())
                .collect(),
            threshold: 2,
            four_eyes: None,
        })
        .unwrap();
    let foreign = other
        .sealed_share("c2")
        .unwrap()
        .open(server.custodian(1))
        .unwrap();
    let wrong = json!({
        "custodian": "c2",
        "sealed_share": b64(foreign.seal_for_submission(&vault_id, &unseal_key, "c2").unwrap()),
    });
    let (status, body) = server.submit(&wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).contains("not a valid share of this vault's current root key"),
        "{body}"
    );

    // An unknown custodian, garbage, a malformed body: all refused.
    let mut unknown = server.submission(1).await;
    unknown["custodian"] = json!("mallory");
    let (status, body) = server.submit(&unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("not a custodian"), "{body}");
    for bad in [
        json!({"custodian": "c2", "sealed_share": b64([7u8; 94])}),
        json!({"custodian": "c2", "sealed_share": "not base64!"}),
        json!({"custodian": "c2"}),
        json!({"custodian": "c2", "sealed_share": b64([7u8; 94]), "extra": 1}),
    ] {
        let (status, body) = server.submit(&bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    // None of that consumed progress: c1 is still counted, and one more good share unseals.
    assert_eq!(server.submitted().await, vec!["c1"]);
    assert!(server.seal_status().await["sealed"].as_bool().unwrap());
    assert!(!server.unseal_by(1).await.sealed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_resets_after_the_timeout_and_on_restart() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unseal_timeout(60)).await;

    // Within the timeout progress holds…
    server.unseal_by(0).await;
    server.clock.advance(60);
    assert_eq!(server.submitted().await, vec!["c1"]);
    // …past it, it is gone: a second share alone does not unseal.
    server.clock.advance(1);
    assert!(server.submitted().await.is_empty());
    let progress = server.unseal_by(1).await;
    assert!(
        progress.sealed,
        "c1's expired share must not count: {progress:?}"
    );
    assert_eq!(progress.submitted, vec!["c2"]);

    // A restart drops progress too.
    server.restart().await;
    assert!(server.submitted().await.is_empty());
    let progress = server.unseal_by(2).await;
    assert!(progress.sealed, "{progress:?}");
    assert_eq!(progress.submitted, vec!["c3"]);
    assert!(!server.unseal_by(0).await.sealed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_share_never_crosses_the_wire_readable() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 2)).await;
    let admin = server.admin();
    // The identity files on disk, as custodians keep them.
    let passphrase = "passphrase of the custodians";
    let tenant_custodian = CustodianIdentity::generate("t1").unwrap();
    let mut files = Vec::new();
    for identity in [server.custodian(0), server.custodian(1), &tenant_custodian] {
        let json = identity.to_encrypted_json(passphrase.as_bytes()).unwrap();
        let path = server.path(&format!("{}.key", identity.name()));
        std::fs::write(&path, &json).unwrap();
        // The node each custodian pinned at init, beside their identity.
        std::fs::write(path.with_extension("nodes"), server.pinned().join("\n")).unwrap();
        files.push((json, path));
    }
    // The share bytes, found independently of the library from the identity files.
    let mut secrets = Vec::new();
    for (i, name) in ["c1", "c2"].iter().enumerate() {
        let sealed: Value = admin
            .data(Method::GET, &format!("sys/unseal-share/{name}"), None)
            .await
            .unwrap();
        let share = open_share_independently(&files[i].0, passphrase.as_bytes(), &sealed);
        secrets.push(share[1..].to_vec());
        secrets.push(share);
    }

    let upstream = server.url.trim_start_matches("https://").parse().unwrap();
    let proxy_cert = server.ca.issue_client(ADMIN, DAY).unwrap();
    let proxy = RecordingProxy::start(&server.ca, upstream, &proxy_cert).await;
    let tresor_cli = |args: Vec<String>| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(args)
            .env("TRESOR_ADDR", &proxy.url)
            .env("TRESOR_CACERT", server.path("ca.pem"))
            .env("TRESOR_CLIENT_CERT", &server.admin_files.cert)
            .env("TRESOR_CLIENT_KEY", &server.admin_files.key)
            .env("TRESOR_PASSPHRASE", passphrase)
            .bounded_output();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    // One custodian through the library's client, the other through the tresor binary.
    let through_proxy = server.client_at(&proxy.url, &server.admin_files);
    let progress = through_proxy
        .unseal_with(server.custodian(0), &server.pinned())
        .await
        .unwrap();
    assert_eq!(
        progress.submitted,
        vec!["c1"],
        "the unseal went through the proxy"
    );
    let c2_key = files[1].1.display().to_string();
    let out = tokio::task::block_in_place(|| {
        tresor_cli(vec![
            "operator".into(),
            "unseal".into(),
            "--identity".into(),
            c2_key,
        ])
    });
    assert_eq!(out.trim(), "unsealed");

    // A level-3 tenant's custody key travels the same way.
    admin
        .create_tenant("vault3", 3, &[tenant_custodian.public().clone()])
        .await
        .unwrap();
    let custody: Value = admin
        .data(Method::GET, "sys/tenants/vault3/custody/t1", None)
        .await
        .unwrap();
    let custody_share = open_custody_share_independently(
        &files[2].0,
        passphrase.as_bytes(),
        custody["vault_id"].as_str().unwrap(),
        "vault3",
        custody["sealed_custody_key"].as_str().unwrap(),
    );
    secrets.push(custody_share[1..].to_vec());
    secrets.push(custody_share);
    let t1_key = files[2].1.display().to_string();
    tokio::task::block_in_place(|| {
        tresor_cli(vec![
            "tenant".into(),
            "unlock".into(),
            "vault3".into(),
            "--identity".into(),
            t1_key,
        ])
    });
    assert!(!admin.tenant("vault3").await.unwrap().locked);

    let recorded = proxy.recorded();
    for route in [
        &b"POST /v1/sys/unseal"[..],
        b"POST /v1/sys/tenants/vault3/unlock",
    ] {
        assert_eq!(
            recorded
                .windows(route.len())
                .filter(|w| w == &route)
                .count(),
            if route.ends_with(b"unseal") { 2 } else { 1 },
            "the proxy saw every submission"
        );
    }
    for secret in &secrets {
        for form in readable_forms(secret) {
            assert!(
                !contains(&recorded, &form),
                "a secret appears in what the client sent: {:?}",
                String::from_utf8_lossy(&form)
            );
        }
    }
    // The recording holds the bodies themselves (so the search above looked where a share
    // would be): the sealed submissions are there.
    assert!(contains(&recorded, b"\"sealed_share\":\""));
    assert!(contains(&recorded, b"\"sealed_custody_key\":\""));
    // Nor did the server write them anywhere: not in the data directory, not in the audit log.
    for secret in &secrets {
        for form in readable_forms(secret) {
            assert!(
                !crate::common::dir_contains(server.dir.path(), &form),
                "a secret was written under {}",
                server.dir.path().display()
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_stay_out_of_debug_output_and_error_messages() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 2)).await;
    let passphrase = b"passphrase of c1";
    let identity_file = server.custodian(0).to_encrypted_json(passphrase).unwrap();
    let sealed_json: Value = server
        .admin()
        .data(Method::GET, "sys/unseal-share/c1", None)
        .await
        .unwrap();
    let bytes = open_share_independently(&identity_file, passphrase, &sealed_json);
    let sealed: tresor_wire::custody::SealedShare = serde_json::from_value(sealed_json).unwrap();
    let share = sealed.open(server.custodian(0)).unwrap();
    let identity = CustodianIdentity::from_encrypted_json(&identity_file, passphrase).unwrap();

    let mut texts = vec![
        format!("{share:?}"),
        format!("{share:#?}"),
        format!("{identity:?}"),
        format!("{:?}", server.custodian(0)),
    ];
    // Errors on the way in: a share sealed to a stale key, and one refused by the library.
    let status = server.seal_status().await;
    let vault_id = status["cluster_id"].as_str().unwrap();
    let stale = share
        .seal_for_submission(vault_id, &[9u8; 32], "c1")
        .unwrap();
    let (code, body) = server
        .submit(&json!({"custodian": "c1", "sealed_share": b64(&stale)}))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    texts.push(body.to_string());
    let error = server
        .vault()
        .submit_sealed_share("c2", "spiffe://test.tresor.local/admin", &stale, false)
        .unwrap_err();
    texts.push(error.to_string());
    texts.push(format!("{error:?}"));
    texts.push(sealed.open(server.custodian(1)).unwrap_err().to_string());
    let value = &bytes[1..];
    let mut forms = readable_forms(value);
    forms.push(format!("{value:?}").into_bytes());
    forms.push(
        format!("{:?}", &value[..8])
            .trim_end_matches(']')
            .as_bytes()
            .to_vec(),
    );
    for text in &texts {
        for form in &forms {
            assert!(!contains(text.as_bytes(), form), "share bytes in {text:?}");
        }
    }
    assert!(texts[0].contains("[REDACTED]"), "{}", texts[0]);
    server.shutdown().await;
}
