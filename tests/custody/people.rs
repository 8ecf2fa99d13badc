//! Dual control needs two people (issue 12): custodians bound to their own certificates, four
//! eyes, rejections and cancels, and an audit log that names who did what.

use serde_json::Value;
use tresor_wire::approvals::ApprovalState;

use crate::common::custody::{CustodyOptions, CustodyServer, custodian_principal};

/// Audit lines whose `operation` is `name`.
fn lines_of<'a>(entries: &'a [Value], name: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["operation"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_holding_two_identities_reaches_no_threshold() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).bound()).await;
    let c1 = server.custodian_client(0);

    // c1's certificate with c2's identity: refused, audited as a denial, nothing counted.
    let error = c1
        .unseal_with(server.custodian(1), &server.pinned())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("403"), "{error}");
    assert!(
        error.contains("custodian `c2` acts only as spiffe://test.tresor.local/custodians/c2"),
        "{error}"
    );
    assert!(server.submitted().await.is_empty());
    let entries = server.audit_entries();
    let denied = lines_of(&entries, "unseal");
    let last = denied.last().unwrap();
    assert_eq!(last["outcome"], "denied", "{last}");
    assert_eq!(last["principal"], custodian_principal("c1"));

    // Each with their own certificate: unsealed, and the log names each custodian.
    assert!(server.unseal_by(0).await.sealed);
    assert!(!server.unseal_by(1).await.sealed);
    let entries = server.audit_entries();
    let counted: Vec<&Value> = lines_of(&entries, "unseal")
        .into_iter()
        .filter(|e| e["outcome"] == "ok" && e["custodian"].is_object())
        .collect();
    assert_eq!(counted.len(), 2);
    for (line, i) in counted.iter().zip([0, 1]) {
        let me = server.custodian(i);
        assert_eq!(line["custodian"]["name"], me.name());
        assert_eq!(
            line["custodian"]["fingerprint"],
            me.public().fingerprint().as_str()
        );
        assert_eq!(line["principal"], custodian_principal(me.name()));
    }
    let unsealed = lines_of(&entries, "unsealed");
    assert_eq!(unsealed.len(), 1, "{entries:?}");
    assert_eq!(unsealed[0]["principal"], "tresor:server");
    assert_eq!(unsealed[0]["request_id"], counted[1]["request_id"]);

    // Approvals: c1 cannot sign as c2 either.
    let approval = server.admin().rotate_root().await.unwrap();
    let error = c1
        .approve_with(&approval, server.custodian(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("403"), "{error}");
    let approval = server.admin().approval(&approval.id).await.unwrap();
    assert!(approval.signatures.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_does_not_count_and_rejections_end_an_approval() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).bound().unsealed()).await;
    let generation = |s: &Value| s["root_generation"].as_u64().unwrap();
    let before = generation(&server.seal_status().await);

    // c1 asks; its own signature is taken but does not count (four eyes).
    let asked = server.custodian_client(0).rotate_root().await.unwrap();
    let own = server
        .custodian_client(0)
        .approve_with(&asked, server.custodian(0))
        .await
        .unwrap();
    assert!(!own.counted, "{own:?}");
    assert_eq!(own.approval.state, ApprovalState::Pending);
    let outcome = server.approve_by(&asked.id, &[1]).await;
    assert_eq!(
        outcome.approval.state,
        ApprovalState::Pending,
        "{outcome:?}"
    );
    // c2 and c3 reach it.
    let outcome = server.approve_by(&asked.id, &[2]).await;
    assert!(
        matches!(outcome.approval.state, ApprovalState::Executed { .. }),
        "{outcome:?}"
    );
    assert_eq!(generation(&server.seal_status().await), before + 1);

    // Rejections: with 2 of 3 needed, two rejections (n - k + 1) make it unreachable.
    let asked = server.admin().rotate_root().await.unwrap();
    let c2 = server.custodian_client(1);
    let first = c2.reject_with(&asked, server.custodian(1)).await.unwrap();
    assert!(first.counted);
    assert_eq!(first.approval.state, ApprovalState::Pending);
    let second = server
        .custodian_client(2)
        .reject_with(&asked, server.custodian(2))
        .await
        .unwrap();
    assert!(
        matches!(second.approval.state, ApprovalState::Rejected { .. }),
        "{second:?}"
    );
    // Rejected is final: a late approval is refused and nothing runs.
    let late = server
        .custodian_client(0)
        .approve_with(&asked, server.custodian(0))
        .await
        .unwrap_err()
        .to_string();
    assert!(late.contains("rejected"), "{late}");
    assert_eq!(generation(&server.seal_status().await), before + 1);

    // Cancel: only the requester may, and then it is over.
    let asked = server.custodian_client(0).rotate_root().await.unwrap();
    let error = server
        .custodian_client(1)
        .cancel_approval(&asked.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("only"), "{error}");
    let cancelled = server
        .custodian_client(0)
        .cancel_approval(&asked.id)
        .await
        .unwrap();
    assert!(
        matches!(cancelled.state, ApprovalState::Cancelled { .. }),
        "{cancelled:?}"
    );
    let error = server
        .acting_for(1)
        .approve_with(&asked, server.custodian(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("cancelled"), "{error}");
    assert_eq!(generation(&server.seal_status().await), before + 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custodian_cannot_veto_its_own_removal() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).bound().unsealed()).await;
    // A rekey to c1 and c2 only: c3's rejection does not count, so c1 and c2 carry it.
    let keep: Vec<_> = (0..2)
        .map(|i| server.custodian(i).public().clone())
        .collect();
    let asked = server.admin().rekey(&keep, 2).await.unwrap();
    let veto = server
        .custodian_client(2)
        .reject_with(&asked, server.custodian(2))
        .await
        .unwrap();
    assert!(!veto.counted, "{veto:?}");
    assert_eq!(veto.approval.state, ApprovalState::Pending);
    let outcome = server.approve_by(&asked.id, &[0, 1]).await;
    assert!(
        matches!(outcome.approval.state, ApprovalState::Executed { .. }),
        "{outcome:?}"
    );
    assert_eq!(server.seal_status().await["n"], 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_the_requester_every_signer_and_what_ran() {
    let server = CustodyServer::start(CustodyOptions::k_of_n(2, 3).bound().unsealed()).await;
    let asked = server.admin().rotate_root().await.unwrap();
    server.approve_by(&asked.id, &[0, 2]).await;
    server.write_policy(
        "extra.toml",
        "[[operator]]\nprincipals = [\"spiffe://test.tresor.local/ops/*\"]\noperations = [\"tenant-list\"]\n",
    );
    std::fs::write(server.path("policies/broken.toml"), "[[operator]\n").unwrap();
    assert!(server.reload_policies().policies.is_err());
    server.admin().seal().await.unwrap();

    let entries = server.audit_entries();
    let approvals: Vec<&Value> = lines_of(&entries, "approval-approve")
        .into_iter()
        .filter(|e| e["outcome"] == "ok")
        .collect();
    assert_eq!(approvals.len(), 2);
    for (line, i) in approvals.iter().zip([0, 2]) {
        assert_eq!(line["custodian"]["name"], server.custodian(i).name());
        assert_eq!(
            line["custodian"]["fingerprint"],
            server.custodian(i).public().fingerprint().as_str()
        );
    }
    let executed = lines_of(&entries, "approval-executed");
    assert_eq!(executed.len(), 1, "{entries:?}");
    let approval = &executed[0]["approval"];
    assert_eq!(approval["id"], asked.id.as_str());
    assert_eq!(approval["operation"], "rotate-root");
    assert_eq!(approval["target"], "vault");
    assert_eq!(approval["requested_by"], "spiffe://test.tresor.local/admin");
    assert_eq!(approval["state"], "executed");
    let signers: Vec<(&str, &str)> = approval["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["fingerprint"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(&str, String)> = [0, 2]
        .iter()
        .map(|&i| {
            (
                server.custodian(i).name(),
                server.custodian(i).public().fingerprint(),
            )
        })
        .collect();
    assert_eq!(
        signers,
        expected
            .iter()
            .map(|(n, f)| (*n, f.as_str()))
            .collect::<Vec<_>>()
    );
    assert!(
        approval["result"]
            .as_str()
            .unwrap()
            .starts_with("root key rotated"),
        "{approval}"
    );
    assert_eq!(executed[0]["request_id"], approvals[1]["request_id"]);

    let loads = lines_of(&entries, "policy-load");
    assert_eq!(
        loads.len(),
        3,
        "at start, the reload, the refused reload: {loads:?}"
    );
    assert_eq!(loads[1]["outcome"], "ok");
    assert!(
        loads[1]["reason"].as_str().unwrap().contains("extra.toml"),
        "{}",
        loads[1]
    );
    assert_eq!(loads[2]["outcome"], "error");
    assert!(
        loads[2]["reason"].as_str().unwrap().contains("broken.toml"),
        "{}",
        loads[2]
    );
    assert_eq!(lines_of(&entries, "sealed").len(), 1);
    server.shutdown().await;
}
