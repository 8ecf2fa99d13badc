//! POST `sys/unseal`: one custodian's share, sealed to the vault's current unseal key
//! (docs/custody.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_wire::api::sys;

use crate::api::acts;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Submit an unseal share (and fetch one's own, sealed).
pub(crate) const UNSEAL: Operation = Operation::new("unseal", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::UNSEAL, UNSEAL, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::UnsealRequest = params::body(call.body)?;
    let sealed = STANDARD
        .decode(&body.sealed_share)
        .map_err(|_| ApiError::bad_request("invalid sealed_share: not base64"))?;
    let vault = call.vault();
    let (progress, custodian) = blocking(|| {
        let progress = vault.submit_sealed_share(
            &body.custodian,
            &call.caller.principal,
            &sealed,
            body.accept_audit_gap,
        )?;
        Ok::<_, tresor_core::Error>((progress, vault.custodian(&body.custodian)?))
    })
    .map_err(ApiError::from_native)?;
    let reply = Reply::data(&progress).acted_by(custodian.as_ref().map(acts::custodian));
    if progress.sealed {
        return Ok(reply);
    }
    report_store_rollback(call, progress.store);
    if !progress.shredded.is_empty() {
        record(
            call,
            "shredded-after-restore",
            format!(
                "tenants shredded after the restored backup was taken were shredded again: {}",
                progress.shredded.join(", ")
            ),
            None,
        );
    }
    Ok(reply.seal_change("unsealed").store(progress.store))
}

/// A store older than the one this node's audit log last saw unsealed (a restored backup, a
/// disk put back whole) cannot be refused — that is what a restore is — but it is said: a
/// warning in the server log and a `store-rolled-back` line naming both generations.
fn report_store_rollback(call: &Call<'_>, now: Option<tresor_core::StoreGeneration>) {
    let (Some(log), Some(now)) = (call.state.audit.as_deref(), now) else {
        return;
    };
    let last = match log.last_store() {
        Ok(Some(last)) if last.generation > now.generation => last,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the audit log to compare store generations");
            return;
        }
    };
    let reason = format!(
        "the store is at generation {} (last written {}), older than generation {} (last written {}) that this node's audit log saw: it was put back from an earlier copy",
        now.generation,
        tresor_wire::time::rfc3339(now.last_write, 0),
        last.generation,
        tresor_wire::time::rfc3339(last.last_write, 0)
    );
    tracing::warn!("{reason}");
    record(call, "store-rolled-back", reason, Some(now));
}

/// A line the server writes about what an unseal found.
fn record(
    call: &Call<'_>,
    operation: &str,
    reason: String,
    store: Option<tresor_core::StoreGeneration>,
) {
    let event = crate::audit::AuditEvent {
        reason,
        store,
        ..crate::api::server_line(operation, &call.caller.source)
    };
    crate::api::record_server_line(call.state, &event);
}
