//! Issue 4, dual control, root rotation, rekey and level-3 tenants, against a real server over
//! mutual TLS on a real sled store: every dangerous operation waits for k distinct custodian
//! signatures and runs once; expired and tampered approvals are refused; rotate-root and rekey
//! keep every ciphertext decryptable and retire the old shares; a seal during a rotation wins;
//! a level-3 tenant opens only for its own custodians.

use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tresor_client::CryptoOptions;
use tresor_core::Store;
use tresor_crypto::identity::CustodianIdentity;
use tresor_wire::approvals::{Approval, Dangerous};

use crate::common::custody::{
    CustodyOptions, CustodyServer, PausingStore, StoreWrapper, assert_all_decrypt, encrypt_some,
};
use crate::common::server::{b64, call, error_message, unb64};

/// Signs `approval` with `identity` and submits the signature for approval `id`.
async fn sign(
    server: &CustodyServer,
    id: &str,
    approval: &Approval,
    identity: &CustodianIdentity,
) -> (StatusCode, Value) {
    let body = json!({ "custodian": identity.name(), "signature": approval.sign(identity) });
    call(
        &server.admin(),
        Method::POST,
        &format!("sys/approvals/{id}/approve"),
        Some(body),
    )
    .await
}

#[derive(Debug, Clone, Copy)]
enum Op {
    DeleteKey,
    TrimKey,
    ShredTenant,
    LowerMinDecryption,
    MakeExportable,
    RotateRoot,
    ChangeTenantCustodians,
    Rekey,
}

struct Ctx {
    server: CustodyServer,
    /// The level-3 tenant's custodians (2 of 3), and the two (2 of 2) they are changed to.
    tenant_custodians: Vec<CustodianIdentity>,
    new_tenant_custodians: Vec<CustodianIdentity>,
    /// The custodian set a rekey hands the root key to: c1 stays, d1 and d2 join.
    rekey_to: Vec<CustodianIdentity>,
}

impl Ctx {
    /// Who decides `op` (two to approve, a third to try after it ran): the level-3 tenant's
    /// own custodians for a change of them, the vault's for everything else.
    fn approvers(&self, op: Op) -> [&CustodianIdentity; 3] {
        match op {
            Op::ChangeTenantCustodians => {
                let t = &self.tenant_custodians;
                [&t[0], &t[1], &t[2]]
            }
            // After a rekey the set is the new one; any third signature meets an executed
            // approval.
            Op::Rekey => [
                self.server.custodian(0),
                self.server.custodian(1),
                &self.rekey_to[0],
            ],
            _ => [
                self.server.custodian(0),
                self.server.custodian(1),
                self.server.custodian(2),
            ],
        }
    }

    /// Asks for the operation: status and body.
    async fn propose(&self, op: Op) -> (StatusCode, Value) {
        let admin = self.server.admin();
        match op {
            Op::DeleteKey => call(&admin, Method::DELETE, "ops/keys/doomed", None).await,
            Op::ShredTenant => call(&admin, Method::DELETE, "sys/tenants/doomed", None).await,
            Op::TrimKey => {
                call(
                    &admin,
                    Method::POST,
                    "ops/keys/trimmed/trim",
                    Some(json!({"min_available_version": 2})),
                )
                .await
            }
            Op::LowerMinDecryption => {
                call(
                    &admin,
                    Method::POST,
                    "ops/keys/k/config",
                    Some(json!({"min_decryption_version": 1})),
                )
                .await
            }
            Op::MakeExportable => {
                call(
                    &admin,
                    Method::POST,
                    "ops/keys/k/config",
                    Some(json!({"exportable": true})),
                )
                .await
            }
            Op::RotateRoot => call(&admin, Method::POST, "sys/rotate-root", None).await,
            Op::ChangeTenantCustodians => {
                let custodians: Vec<_> = self
                    .new_tenant_custodians
                    .iter()
                    .map(|c| c.public().clone())
                    .collect();
                let body = json!({ "custodians": custodians, "threshold": 2 });
                call(
                    &admin,
                    Method::POST,
                    "sys/tenants/level3/custodians",
                    Some(body),
                )
                .await
            }
            Op::Rekey => {
                let custodians: Vec<_> = self.rekey_to.iter().map(|c| c.public().clone()).collect();
                let body = json!({ "custodians": custodians, "threshold": 2 });
                call(&admin, Method::POST, "sys/rekey", Some(body)).await
            }
        }
    }

    /// What the operation changes, as seen through the API.
    async fn observe(&self, op: Op) -> Value {
        let admin = self.server.admin();
        match op {
            // An approved deletion starts the deletion window: the key reads as pending.
            Op::DeleteKey => {
                let (status, body) = call(&admin, Method::GET, "ops/keys/doomed", None).await;
                json!([status.as_u16(), body["data"]["state"]])
            }
            Op::ShredTenant => {
                let (status, body) = call(&admin, Method::GET, "sys/tenants/doomed", None).await;
                json!([status.as_u16(), body["data"]["destroy_at"]])
            }
            Op::TrimKey => {
                let key = admin.read_key("ops", "trimmed").await.unwrap();
                json!([key["min_available_version"], key["keys"]])
            }
            Op::LowerMinDecryption => {
                admin.read_key("ops", "k").await.unwrap()["min_decryption_version"].clone()
            }
            Op::MakeExportable => admin.read_key("ops", "k").await.unwrap()["exportable"].clone(),
            Op::RotateRoot => self.server.seal_status().await["root_generation"].clone(),
            Op::ChangeTenantCustodians => json!(admin.tenant("level3").await.unwrap().custodians),
            Op::Rekey => self.server.seal_status().await["custodians"].clone(),
        }
    }
}

/// Every step of dual control for `op`: refused without approvals (202, pending, nothing
/// changed), an expired approval refused and listed as expired, tampered signatures refused,
/// a custodian counting once, the operation running after k distinct approvals, and never twice.
async fn dual_control(ctx: &Ctx, op: Op) {
    let server = &ctx.server;
    let [first, second, third] = ctx.approvers(op);
    let before = ctx.observe(op).await;
    let propose = || async {
        let (status, body) = ctx.propose(op).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{op:?} must wait for approval: {body}"
        );
        assert_eq!(body["data"]["state"]["state"], "pending", "{op:?}: {body}");
        assert_eq!(body["data"]["required"], 2);
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        let approval = server.admin().approval(&id).await.unwrap();
        (id, approval)
    };

    // Expired: refused, shown as expired (not pending), nothing ran.
    let (expired_id, expired) = propose().await;
    assert_eq!(
        ctx.observe(op).await,
        before,
        "{op:?}: asking changed nothing"
    );
    server.clock.advance(server.options.approval_ttl + 1);
    let listed = server.admin().approvals().await.unwrap();
    let entry = listed.iter().find(|a| a.id == expired_id).expect("listed");
    let entry_json = serde_json::to_value(entry).unwrap();
    assert_eq!(
        entry_json["state"]["state"], "expired",
        "{op:?}: {entry_json}"
    );
    let (status, body) = sign(server, &expired_id, &expired, first).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{op:?}: {body}");
    assert!(error_message(&body).contains("expired"), "{body}");
    let (status, body) = sign(server, &expired_id, &expired, second).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{op:?}: {body}");
    assert_eq!(
        ctx.observe(op).await,
        before,
        "{op:?}: an expired approval ran"
    );

    // Tampered: a signature over other bytes (a later expiry, another request, another id)
    // does not verify, and does not count.
    let (tampered_id, genuine) = propose().await;
    let mut later = genuine.clone();
    later.expires_at += 3600;
    let mut other_request = genuine.clone();
    other_request.request = match genuine.request {
        Dangerous::RotateRoot => Dangerous::ShredTenant {
            tenant: "ops".into(),
            deletion_window: None,
        },
        _ => Dangerous::RotateRoot,
    };
    let mut other_id = genuine.clone();
    other_id.id = expired_id.clone();
    for (what, tampered) in [
        ("expiry", later),
        ("request", other_request),
        ("id", other_id),
    ] {
        for signer in [first, second] {
            let (status, body) = sign(server, &tampered_id, &tampered, signer).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{op:?}, altered {what}: {body}"
            );
            assert!(error_message(&body).contains("signature"), "{body}");
        }
    }
    // A stranger who takes the first approver's name is not them.
    let impostor = CustodianIdentity::generate(first.name()).unwrap();
    let (status, body) = sign(server, &tampered_id, &genuine, &impostor).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        server
            .admin()
            .approval(&tampered_id)
            .await
            .unwrap()
            .signatures
            .is_empty()
    );
    assert_eq!(
        ctx.observe(op).await,
        before,
        "{op:?}: a tampered approval ran"
    );

    // The real thing: one custodian twice is one signature; the second distinct one runs it.
    let (id, approval) = propose().await;
    let (status, body) = sign(server, &id, &approval, first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["counted"], true);
    let (status, body) = sign(server, &id, &approval, first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["counted"], false, "a custodian counts once");
    let pending = server.admin().approval(&id).await.unwrap();
    assert_eq!(pending.signatures.len(), 1);
    assert_eq!(
        serde_json::to_value(&pending.state).unwrap()["state"],
        "pending"
    );
    assert_eq!(
        ctx.observe(op).await,
        before,
        "{op:?}: ran on one signature"
    );
    let (status, body) = sign(server, &id, &approval, second).await;
    assert_eq!(status, StatusCode::OK, "{op:?}: {body}");
    assert_eq!(
        body["data"]["approval"]["state"]["state"], "executed",
        "{op:?}: {body}"
    );
    let after = ctx.observe(op).await;
    assert_ne!(after, before, "{op:?} did not run");

    // Never twice: a third signature is refused and nothing changes again.
    let (status, body) = sign(server, &id, &approval, third).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{op:?}: {body}");
    assert!(error_message(&body).contains("cannot run twice"), "{body}");
    assert_eq!(ctx.observe(op).await, after, "{op:?} ran twice");
    assert!(
        !server
            .admin()
            .approvals()
            .await
            .unwrap()
            .iter()
            .any(|a| a.id == id),
        "an executed approval is no longer listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dangerous_operation_needs_k_distinct_fresh_approvals_and_runs_once() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unsealed()).await;
    let admin = server.admin();
    let tenant_custodians: Vec<_> = ["tc1", "tc2", "tc3"]
        .iter()
        .map(|name| CustodianIdentity::generate(name).unwrap())
        .collect();
    let new_tenant_custodians: Vec<_> = ["tc4", "tc5"]
        .iter()
        .map(|name| CustodianIdentity::generate(name).unwrap())
        .collect();
    let rekey_to = vec![
        CustodianIdentity::generate("c1").unwrap(),
        CustodianIdentity::generate("d1").unwrap(),
        CustodianIdentity::generate("d2").unwrap(),
    ];
    // What the operations act on.
    let ops_data = encrypt_some(&admin, "ops", 4).await;
    admin
        .create_key("ops", "doomed", &Default::default())
        .await
        .unwrap();
    admin.rotate_key("ops", "k").await.unwrap();
    admin.rotate_key("ops", "k").await.unwrap();
    let raised = admin
        .configure_key(
            "ops",
            "k",
            &tresor_wire::keys::KeyConfigUpdate {
                min_decryption_version: Some(3),
                deletion_allowed: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(raised, tresor_client::Configured::Applied(_)),
        "raising is not dangerous"
    );
    admin
        .configure_key(
            "ops",
            "doomed",
            &tresor_wire::keys::KeyConfigUpdate {
                deletion_allowed: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    admin
        .create_key("ops", "trimmed", &Default::default())
        .await
        .unwrap();
    admin.rotate_key("ops", "trimmed").await.unwrap();
    admin.rotate_key("ops", "trimmed").await.unwrap();
    admin
        .configure_key(
            "ops",
            "trimmed",
            &tresor_wire::keys::KeyConfigUpdate {
                min_decryption_version: Some(3),
                min_encryption_version: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    admin.create_tenant("doomed", 2, &[]).await.unwrap();
    let public: Vec<_> = tenant_custodians.iter().map(|c| c.public()).collect();
    let (status, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/level3",
        Some(json!({"level": 3, "custodians": public, "threshold": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for custodian in &tenant_custodians[..2] {
        admin
            .unlock_tenant_with("level3", custodian, &server.pinned())
            .await
            .unwrap();
    }
    assert!(!admin.tenant("level3").await.unwrap().locked);
    // The old custodians' shares of the custody key, as they could keep copies of them.
    let mut old_shares = Vec::new();
    let mut vault_id = String::new();
    for custodian in &tenant_custodians[..2] {
        let old_box: Value = admin
            .data(
                Method::GET,
                &format!("sys/tenants/level3/custody/{}", custodian.name()),
                None,
            )
            .await
            .unwrap();
        vault_id = old_box["vault_id"].as_str().unwrap().to_owned();
        old_shares.push(
            tresor_wire::custody::TenantCustodyKey::open(
                custodian,
                &vault_id,
                "level3",
                old_box["sealed_custody_key"].as_str().unwrap(),
            )
            .unwrap(),
        );
    }

    // An unknown approval is 404, a malformed id 400.
    let missing = "0123456789abcdef01234567";
    let (status, body) = call(
        &admin,
        Method::GET,
        &format!("sys/approvals/{missing}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &admin,
        Method::POST,
        &format!("sys/approvals/{missing}/approve"),
        Some(json!({"custodian": "c1", "signature": b64([0u8; 64])})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = call(&admin, Method::GET, "sys/approvals/nope", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let ctx = Ctx {
        server,
        tenant_custodians,
        new_tenant_custodians,
        rekey_to,
    };
    for op in [
        Op::DeleteKey,
        Op::TrimKey,
        Op::ShredTenant,
        Op::LowerMinDecryption,
        Op::MakeExportable,
        Op::RotateRoot,
        Op::ChangeTenantCustodians,
        Op::Rekey,
    ] {
        dual_control(&ctx, op).await;
    }
    // What ran, ran as asked: the deletion and the shred wait for their windows.
    let admin = ctx.server.admin();
    let (status, key) = call(&admin, Method::GET, "ops/keys/doomed", None).await;
    assert_eq!(
        (status, &key["data"]["state"]),
        (StatusCode::OK, &json!("pending-deletion"))
    );
    let (status, tenant) = call(&admin, Method::GET, "sys/tenants/doomed", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tenant["data"]["destroy_at"].is_u64(), "{tenant}");
    let key = admin.read_key("ops", "k").await.unwrap();
    assert_eq!(
        (
            key["min_decryption_version"].as_u64(),
            key["exportable"].as_bool()
        ),
        (Some(1), Some(true))
    );
    assert_eq!(
        ctx.server.seal_status().await["root_generation"],
        3,
        "rotate-root and rekey ran once each"
    );
    assert_all_decrypt(&admin, "ops", &ops_data).await;
    // The level-3 tenant's old custodians are out, the new ones in.
    admin.lock_tenant("level3").await.unwrap();
    assert!(
        admin
            .unlock_tenant_with("level3", &ctx.tenant_custodians[0], &ctx.server.pinned())
            .await
            .is_err()
    );
    // Two old custodians pooling their kept shares, submitted in the new custodians' names,
    // unlock nothing: the KEK is wrapped under a fresh custody key now.
    let mut last = (StatusCode::OK, Value::Null);
    for (old_share, new_custodian) in old_shares.iter().zip(["tc4", "tc5"]) {
        let new_box: Value = admin
            .data(
                Method::GET,
                &format!("sys/tenants/level3/custody/{new_custodian}"),
                None,
            )
            .await
            .unwrap();
        let unseal_key: [u8; 32] = unb64(new_box["unseal_key"].as_str().unwrap())
            .try_into()
            .unwrap();
        let replay = old_share
            .seal_for_unlock(&vault_id, &unseal_key, "level3", new_custodian)
            .unwrap();
        last = call(
            &admin,
            Method::POST,
            "sys/tenants/level3/unlock",
            Some(json!({"custodian": new_custodian, "sealed_custody_key": b64(replay)})),
        )
        .await;
    }
    let (status, body) = last;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("does not unlock"), "{body}");
    assert!(admin.tenant("level3").await.unwrap().locked);
    for custodian in &ctx.new_tenant_custodians {
        admin
            .unlock_tenant_with("level3", custodian, &ctx.server.pinned())
            .await
            .unwrap();
    }
    assert!(!admin.tenant("level3").await.unwrap().locked);
    ctx.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_root_and_rekey_keep_data_and_retire_old_shares() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unsealed()).await;
    let admin = server.admin();
    let before = encrypt_some(&admin, "payments", 4).await;
    let old_share: tresor_wire::custody::SealedShare = admin
        .data(Method::GET, "sys/unseal-share/c1", None)
        .await
        .unwrap();

    // Rotate the root: data stays, the old generation's share is refused.
    let approval = admin.rotate_root().await.unwrap();
    server.approve_by(&approval.id, &[0, 2]).await;
    assert_eq!(server.seal_status().await["root_generation"], 2);
    assert_all_decrypt(&admin, "payments", &before).await;
    server.restart().await;
    let status = server.seal_status().await;
    let key: [u8; 32] = unb64(status["unseal_key"].as_str().unwrap())
        .try_into()
        .unwrap();
    let stale = old_share
        .open(server.custodian(0))
        .unwrap()
        .seal_for_submission(status["cluster_id"].as_str().unwrap(), &key, "c1")
        .unwrap();
    let (code, body) = server
        .submit(&json!({"custodian": "c1", "sealed_share": b64(stale)}))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("not a valid share"), "{body}");
    assert!(server.submitted().await.is_empty());
    server.unseal_all().await;
    let admin = server.admin();
    assert_all_decrypt(&admin, "payments", &before).await;

    // Rekey to a new set (2-of-2): data stays; after a restart the old identities cannot
    // unseal, the new ones can.
    let new_set = [
        CustodianIdentity::generate("n1").unwrap(),
        CustodianIdentity::generate("n2").unwrap(),
    ];
    let approval = admin
        .rekey(
            &new_set
                .iter()
                .map(|c| c.public().clone())
                .collect::<Vec<_>>(),
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        server.seal_status().await["custodians"],
        json!(["c1", "c2", "c3"]),
        "not before approval"
    );
    server.approve_by(&approval.id, &[1, 2]).await;
    assert_eq!(
        server.seal_status().await["custodians"],
        json!(["n1", "n2"])
    );
    assert_all_decrypt(&admin, "payments", &before).await;
    server.restart().await;
    let admin = server.admin();
    for old in &server.custodians {
        let error = admin
            .unseal_with(old, &server.pinned())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a custodian"), "{error}");
    }
    assert!(server.submitted().await.is_empty());
    assert!(
        admin
            .unseal_with(&new_set[0], &server.pinned())
            .await
            .unwrap()
            .sealed
    );
    assert!(
        !admin
            .unseal_with(&new_set[1], &server.pinned())
            .await
            .unwrap()
            .sealed
    );
    assert_all_decrypt(&admin, "payments", &before).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seal_during_rotate_root_is_not_undone() {
    let slot: Arc<Mutex<Option<Arc<PausingStore>>>> = Arc::default();
    let wrapper: StoreWrapper = {
        let slot = slot.clone();
        Arc::new(move |inner: Arc<dyn Store>| {
            let pausing = Arc::new(PausingStore::new(inner));
            *slot.lock().unwrap() = Some(pausing.clone());
            pausing as Arc<dyn Store>
        })
    };
    let server =
        CustodyServer::start_wrapped(CustodyOptions::k_of_n(2, 3).unsealed(), Some(wrapper)).await;
    let pausing = slot.lock().unwrap().clone().unwrap();
    let admin = server.admin();
    let before = encrypt_some(&admin, "payments", 4).await;
    let approval = admin.rotate_root().await.unwrap();
    server.approve_by(&approval.id, &[0]).await;

    // The second signature runs the rotation; it pauses after taking the unsealed state…
    pausing
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let approver = server.admin();
    let last = approval.sign(server.custodian(1));
    let id = approval.id.clone();
    let running = tokio::spawn(async move {
        approver
            .raw(
                Method::POST,
                &format!("sys/approvals/{id}/approve"),
                Some(&json!({"custodian": "c2", "signature": last})),
            )
            .await
            .unwrap()
    });
    pausing.wait_paused().await;
    // …an operator seals meanwhile…
    admin.seal().await.unwrap();
    assert_eq!(
        admin.health().await.unwrap().0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // …and the rotation finishes.
    pausing
        .released
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = running.await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the signer learns the rotation ran: {body}"
    );
    assert_eq!(
        body["data"]["approval"]["state"]["state"], "executed",
        "{body}"
    );

    // The seal stands: no key in memory, nothing served.
    let (code, health) = admin.health().await.unwrap();
    assert_eq!(
        code,
        StatusCode::SERVICE_UNAVAILABLE,
        "the rotation undid the seal: {health}"
    );
    let (code, _) = call(
        &admin,
        Method::POST,
        "payments/decrypt/k",
        Some(json!({"ciphertext": before[0].1})),
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    // The rotation itself was committed: the custodians unseal the new generation.
    assert_eq!(server.seal_status().await["root_generation"], 2);
    server.unseal_all().await;
    assert_all_decrypt(&admin, "payments", &before).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_3_tenant_opens_only_for_its_own_custodians() {
    let mut server = CustodyServer::start(CustodyOptions::k_of_n(1, 1).unsealed()).await;
    let admin = server.admin();
    let own = CustodianIdentity::generate("own").unwrap();
    let other = CustodianIdentity::generate("other").unwrap();
    admin
        .create_tenant("vault3", 3, &[own.public().clone()])
        .await
        .unwrap();
    admin
        .create_tenant("other3", 3, &[other.public().clone()])
        .await
        .unwrap();
    let locked = |body: &Value| error_message(body).contains("is locked");

    // Locked from the start.
    let info = admin.tenant("vault3").await.unwrap();
    assert!(info.locked);
    let (code, body) = call(&admin, Method::POST, "vault3/keys/k", Some(json!({}))).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(locked(&body), "{body}");
    // Its custodians cannot be changed while it is locked: refused at once, nothing to sign.
    let body = json!({ "custodians": [other.public()] });
    let (code, reply) = call(
        &admin,
        Method::POST,
        "sys/tenants/vault3/custodians",
        Some(body),
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(locked(&reply), "{reply}");
    assert!(admin.approvals().await.unwrap().is_empty());

    // Neither another tenant's custodian nor a vault custodian unlocks it.
    let error = admin
        .unlock_tenant_with("vault3", &other, &server.pinned())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("not a custodian of tenant `vault3`"),
        "{error}"
    );
    let error = admin
        .unlock_tenant_with("vault3", server.custodian(0), &server.pinned())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("not a custodian of tenant `vault3`"),
        "{error}"
    );
    // Nor does the other custodian's own custody key, submitted in `own`'s name.
    admin
        .unlock_tenant_with("other3", &other, &server.pinned())
        .await
        .unwrap();
    let custody: Value = admin
        .data(Method::GET, "sys/tenants/other3/custody/other", None)
        .await
        .unwrap();
    let vault_id = custody["vault_id"].as_str().unwrap();
    let key = tresor_wire::custody::TenantCustodyKey::open(
        &other,
        vault_id,
        "other3",
        custody["sealed_custody_key"].as_str().unwrap(),
    )
    .unwrap();
    let status = server.seal_status().await;
    let unseal_key: [u8; 32] = unb64(status["unseal_key"].as_str().unwrap())
        .try_into()
        .unwrap();
    let forged = key
        .seal_for_unlock(vault_id, &unseal_key, "vault3", "own")
        .unwrap();
    let (code, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/vault3/unlock",
        Some(json!({"custodian": "own", "sealed_custody_key": b64(forged)})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        admin.tenant("vault3").await.unwrap().locked,
        "still locked after every attempt"
    );

    // Its own custodian unlocks it; it serves.
    assert!(
        !admin
            .unlock_tenant_with("vault3", &own, &server.pinned())
            .await
            .unwrap()
            .locked
    );
    admin
        .create_key("vault3", "k", &Default::default())
        .await
        .unwrap();
    let sealed = admin
        .encrypt("vault3", "k", b"level three", &CryptoOptions::default())
        .await
        .unwrap();
    let decrypt = || {
        call(
            &admin,
            Method::POST,
            "vault3/decrypt/k",
            Some(json!({"ciphertext": sealed.ciphertext})),
        )
    };
    assert_eq!(decrypt().await.0, StatusCode::OK);

    // `tenant lock` relocks at once; a replay of the unlock submission does not reopen it.
    let custody: Value = admin
        .data(Method::GET, "sys/tenants/vault3/custody/own", None)
        .await
        .unwrap();
    let own_key = tresor_wire::custody::TenantCustodyKey::open(
        &own,
        vault_id,
        "vault3",
        custody["sealed_custody_key"].as_str().unwrap(),
    )
    .unwrap();
    let unseal_key: [u8; 32] = unb64(custody["unseal_key"].as_str().unwrap())
        .try_into()
        .unwrap();
    let submission = json!({
        "custodian": "own",
        "sealed_custody_key": b64(own_key.seal_for_unlock(vault_id, &unseal_key, "vault3", "own").unwrap()),
    });
    let (code, _) = call(
        &admin,
        Method::POST,
        "sys/tenants/vault3/unlock",
        Some(submission.clone()),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    admin.lock_tenant("vault3").await.unwrap();
    let (code, body) = decrypt().await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(locked(&body), "{body}");
    let (code, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/vault3/unlock",
        Some(submission),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a replayed unlock: {body}");
    assert!(admin.tenant("vault3").await.unwrap().locked);

    // Seal and unseal: locked again until its custodian comes.
    admin
        .unlock_tenant_with("vault3", &own, &server.pinned())
        .await
        .unwrap();
    assert_eq!(decrypt().await.0, StatusCode::OK);
    admin.seal().await.unwrap();
    server.unseal_all().await;
    let (code, body) = decrypt().await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(locked(&body), "{body}");
    admin
        .unlock_tenant_with("vault3", &own, &server.pinned())
        .await
        .unwrap();
    assert_eq!(decrypt().await.0, StatusCode::OK);

    // And after a restart.
    server.restart().await;
    server.unseal_all().await;
    let admin = server.admin();
    let (code, body) = call(
        &admin,
        Method::POST,
        "vault3/decrypt/k",
        Some(json!({"ciphertext": sealed.ciphertext})),
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(locked(&body), "{body}");
    assert!(
        admin
            .unlock_tenant_with("vault3", server.custodian(0), &server.pinned())
            .await
            .is_err()
    );
    admin
        .unlock_tenant_with("vault3", &own, &server.pinned())
        .await
        .unwrap();
    let opened = admin
        .decrypt("vault3", "k", &sealed.ciphertext, &CryptoOptions::default())
        .await
        .unwrap();
    assert_eq!(opened.as_slice(), b"level three");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_removed_by_a_rekey_no_longer_counts_towards_approvals() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unsealed()).await;
    let admin = server.admin();
    admin.create_tenant("ops", 2, &[]).await.unwrap();
    admin
        .create_key("ops", "doomed", &Default::default())
        .await
        .unwrap();
    admin
        .configure_key(
            "ops",
            "doomed",
            &tresor_wire::keys::KeyConfigUpdate {
                deletion_allowed: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // An approved deletion starts the key's deletion window: it then reads as pending.
    let key_status = || async {
        let (status, body) = call(&server.admin(), Method::GET, "ops/keys/doomed", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["state"].as_str().unwrap().to_owned()
    };

    // c3 (about to be removed, say because their identity was stolen) signs a deletion.
    let deletion = admin.delete_key("ops", "doomed").await.unwrap();
    server.approve_by(&deletion.id, &[2]).await;
    // The others rekey c3 out.
    let newcomer = CustodianIdentity::generate("n1").unwrap();
    let new_set = vec![
        server.custodian(0).public().clone(),
        server.custodian(1).public().clone(),
        newcomer.public().clone(),
    ];
    let rekey = admin.rekey(&new_set, 2).await.unwrap();
    server.approve_by(&rekey.id, &[0, 1]).await;

    // One current custodian's signature is now one of two: c3's no longer counts.
    // The approval was asked of the old set, and every signature binds that set: it cannot
    // complete under the new one, whoever signs.
    for signer in [server.custodian(0), &newcomer] {
        let (status, body) = sign(&server, &deletion.id, &deletion, signer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error_message(&body).contains("asked of another custodian set"),
            "{body}"
        );
    }
    assert_eq!(key_status().await, "active", "not deleted");
    // Asked again, c3 is no custodian at all, and two current custodians are needed.
    let deletion = admin.delete_key("ops", "doomed").await.unwrap();
    let (status, body) = sign(&server, &deletion.id, &deletion, server.custodian(2)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("not a custodian"), "{body}");
    let (status, body) = sign(&server, &deletion.id, &deletion, server.custodian(0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["approval"]["state"]["state"], "pending");
    assert_eq!(key_status().await, "active", "not deleted");
    let (status, body) = sign(&server, &deletion.id, &deletion, &newcomer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["approval"]["state"]["state"], "executed");
    assert_eq!(key_status().await, "pending-deletion");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_action_needs_both_the_certificate_and_the_identity() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3)).await;
    server.write_policy(
        "custodians.toml",
        r#"
[[operator]]
principals = ["spiffe://test.tresor.local/custodians/*"]
operations = ["unseal", "approval-list", "approval-approve"]
"#,
    );
    let custodian_cert = server.client("spiffe://test.tresor.local/custodians/c1");
    let stranger = server.client("spiffe://test.tresor.local/ops/jane");

    // The identity without a certificate the policies accept: 403, nothing counted.
    let error = stranger
        .unseal_with(server.custodian(0), &server.pinned())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
    assert!(server.submitted().await.is_empty());
    // The certificate without the identity cannot make a share: garbage is refused.
    let (status, body) = custodian_cert
        .raw(
            Method::POST,
            "sys/unseal",
            Some(&json!({"custodian": "c1", "sealed_share": b64([1u8; 94])})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(server.submitted().await.is_empty());
    // Both: counted.
    let progress = custodian_cert
        .unseal_with(server.custodian(0), &server.pinned())
        .await
        .unwrap();
    assert_eq!(progress.submitted, vec!["c1"]);
    let progress = custodian_cert
        .unseal_with(server.custodian(1), &server.pinned())
        .await
        .unwrap();
    assert!(!progress.sealed);

    // Approving: the stranger is refused even with a custodian's identity; the custodian's
    // certificate may approve but not ask for the dangerous operation itself.
    let approval = server.admin().rotate_root().await.unwrap();
    let error = stranger
        .approve_with(&approval, server.custodian(0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
    assert!(
        server
            .admin()
            .approval(&approval.id)
            .await
            .unwrap()
            .signatures
            .is_empty()
    );
    let error = custodian_cert.rotate_root().await.unwrap_err();
    assert!(error.to_string().contains("403"), "{error}");
    let outcome = custodian_cert
        .approve_with(&approval, server.custodian(0))
        .await
        .unwrap();
    assert!(outcome.counted);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotate_root_no_record_sealed_under_the_old_root_is_left_on_disk() {
    let slot: Arc<Mutex<Option<Arc<dyn Store>>>> = Arc::default();
    let wrapper: StoreWrapper = {
        let slot = slot.clone();
        Arc::new(move |inner: Arc<dyn Store>| {
            *slot.lock().unwrap() = Some(inner.clone());
            inner
        })
    };
    let server =
        CustodyServer::start_wrapped(CustodyOptions::k_of_n(2, 3).unsealed(), Some(wrapper)).await;
    let store = slot.lock().unwrap().clone().unwrap();
    let admin = server.admin();
    let before = encrypt_some(&admin, "payments", 4).await;
    // Every record as stored under the old root (the seal configuration included: its sealed
    // shares are the old generation's).
    let old_records = store.scan_prefix("").unwrap();
    assert!(old_records.len() >= 4, "{}", old_records.len());
    let approval = admin.rotate_root().await.unwrap();
    server.approve_by(&approval.id, &[0, 1]).await;
    assert_all_decrypt(&admin, "payments", &before).await;
    let data_dir = server.path("data");
    for (path, raw) in &old_records {
        if path == "core/seal" {
            // Public keys and names stay the same; the old generation's sealed shares must go.
            let config: Value = serde_json::from_slice(raw).unwrap();
            for custodian in config["custodians"].as_array().unwrap() {
                let share = custodian["sealed_share"].as_str().unwrap();
                assert!(share.len() > 100, "{share}");
                assert_eq!(
                    crate::common::find_any_chunk(&data_dir, share.as_bytes()),
                    None,
                    "an old sealed share is still in the data directory"
                );
            }
            continue;
        }
        if path == "core/format" {
            // Public and the same under every root: the store's format number.
            continue;
        }
        assert!(raw.len() >= 32, "{path}");
        assert_eq!(
            crate::common::find_any_chunk(&data_dir, raw),
            None,
            "`{path}` as sealed under the old root is still in the data directory"
        );
    }
    server.shutdown().await;
}

/// Issue 11.2: a level-3 tenant's own custodians (k of n) unlock it and decide what touches
/// its custody; the vault's custodians cannot, however many of them sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_3_tenant_s_own_quorum_unlocks_it_and_decides_its_custody() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).unsealed()).await;
    let admin = server.admin();
    let own: Vec<_> = ["t1", "t2", "t3"]
        .iter()
        .map(|name| CustodianIdentity::generate(name).unwrap())
        .collect();
    let public: Vec<_> = own.iter().map(|c| c.public()).collect();
    // A threshold above the number of custodians, or zero, is refused and creates nothing.
    for threshold in [0, 4] {
        let (status, body) = call(
            &admin,
            Method::POST,
            "sys/tenants/level3",
            Some(json!({"level": 3, "custodians": public, "threshold": threshold})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{threshold}: {body}");
        assert!(error_message(&body).contains("threshold"), "{body}");
    }
    assert!(
        !admin
            .list_tenants()
            .await
            .unwrap()
            .contains(&"level3".to_owned())
    );
    let (status, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/level3",
        Some(json!({"level": 3, "custodians": public, "threshold": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["threshold"], 2);

    // k of n unlock: one share is not enough, the same custodian twice counts once.
    admin
        .unlock_tenant_with("level3", &own[0], &server.pinned())
        .await
        .unwrap();
    let info = admin.tenant("level3").await.unwrap();
    assert!(info.locked, "one of two shares unlocked the tenant");
    assert_eq!(info.submitted, vec!["t1"]);
    let error = admin
        .unlock_tenant_with("level3", &own[0], &server.pinned())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("already given"), "{error}");
    assert!(admin.tenant("level3").await.unwrap().locked);
    // Vault custodians hold no share of it.
    let error = admin
        .unlock_tenant_with("level3", server.custodian(1), &server.pinned())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("not a custodian of tenant `level3`"),
        "{error}"
    );
    admin
        .unlock_tenant_with("level3", &own[2], &server.pinned())
        .await
        .unwrap();
    assert!(!admin.tenant("level3").await.unwrap().locked);
    admin
        .create_key("level3", "k", &Default::default())
        .await
        .unwrap();

    // Making a level-3 key exportable: the vault's custodians' signatures do not count.
    let (status, body) = call(
        &admin,
        Method::POST,
        "level3/keys/k/config",
        Some(json!({"exportable": true})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["data"]["tenant_quorum"], "level3");
    assert_eq!(body["data"]["required"], 2);
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let approval = admin.approval(&id).await.unwrap();
    for vault_custodian in 0..3 {
        let (status, body) = sign(&server, &id, &approval, server.custodian(vault_custodian)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error_message(&body).contains("not a custodian of tenant `level3`"),
            "{body}"
        );
    }
    let exportable =
        || async { admin.read_key("level3", "k").await.unwrap()["exportable"].clone() };
    assert_eq!(exportable().await, false);
    assert!(admin.approval(&id).await.unwrap().signatures.is_empty());
    // The tenant's own two do.
    let (status, body) = sign(&server, &id, &approval, &own[1]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sign(&server, &id, &approval, &own[2]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["approval"]["state"]["state"], "executed",
        "{body}"
    );
    assert_eq!(exportable().await, true);

    // Changing its custodians: the same.
    let newcomer = CustodianIdentity::generate("t4").unwrap();
    let (status, body) = call(
        &admin,
        Method::POST,
        "sys/tenants/level3/custodians",
        Some(json!({"custodians": [own[0].public(), newcomer.public()], "threshold": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let approval = admin.approval(&id).await.unwrap();
    for vault_custodian in 0..2 {
        let (status, body) = sign(&server, &id, &approval, server.custodian(vault_custodian)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(
        admin.tenant("level3").await.unwrap().custodians,
        ["t1", "t2", "t3"]
    );
    for signer in [&own[0], &own[1]] {
        let (status, body) = sign(&server, &id, &approval, signer).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let info = admin.tenant("level3").await.unwrap();
    assert_eq!(info.custodians, ["t1", "t4"]);
    assert_eq!(info.threshold, 2);
    server.shutdown().await;
}
