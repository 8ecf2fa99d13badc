//! The background half of scheduled deletion (docs/custody.md, "Scheduled deletion"): once a
//! minute the server destroys the keys and tenants whose deletion window has ended, each like
//! an audited request — a `started` line first (if it cannot be written nothing is destroyed),
//! then the outcome. The schedule is in the vault's records, so a restart keeps it.

use std::time::Instant;

use tresor_core::{DueDeletion, Error};

use crate::api::ApiState;
use crate::audit::{AuditEvent, Outcome};

/// The principal audit lines name for destructions at the end of a deletion window.
pub const DELETION_PRINCIPAL: &str = "tresor:scheduled-deletion";

/// Destroys what is due; returns what was destroyed.
pub(crate) fn destroy_due_deletions(api: &ApiState) -> Result<Vec<DueDeletion>, Error> {
    let mut destroyed = Vec::new();
    for due in api.services.vault.due_deletions()? {
        let started = Instant::now();
        let (operation, tenant, key) = match &due {
            DueDeletion::Key { tenant, key } => (
                crate::api::transit::keys_delete::DELETE,
                tenant.clone(),
                Some(key.clone()),
            ),
            DueDeletion::Tenant { tenant } => {
                (crate::api::sys::tenants_shred::SHRED, tenant.clone(), None)
            }
        };
        let mut event = AuditEvent {
            principal: DELETION_PRINCIPAL.to_owned(),
            source: "-".to_owned(),
            operation: operation.name().to_owned(),
            tenant: Some(tenant),
            key,
            outcome: Some(Outcome::Started),
            reason: "deletion window has ended".to_owned(),
            ..AuditEvent::default()
        };
        if let Some(audit) = &api.audit {
            if let Err(e) = audit.record(&event) {
                tracing::error!(error = %e, ?due, "scheduled destruction postponed: its audit line cannot be written");
                continue;
            }
        }
        let result = api
            .services
            .vault
            .destroy_if_due(&due)
            .and_then(|destroyed| {
                // A shredded tenant's transform records go with it (issue 16).
                if let (true, DueDeletion::Tenant { tenant }) = (destroyed, &due) {
                    api.services.purge_transforms(tenant)?;
                }
                Ok(destroyed)
            });
        event.latency_us = started.elapsed().as_micros() as u64;
        match &result {
            Ok(true) => {
                tracing::info!(?due, "destroyed at the end of its deletion window");
                event.outcome = Some(Outcome::Ok);
                event.reason = "destroyed: deletion window ended".to_owned();
            }
            Ok(false) => {
                event.outcome = Some(Outcome::Ok);
                event.reason = "no longer due: cancelled meanwhile".to_owned();
            }
            Err(e) => {
                tracing::error!(error = %e, ?due, "scheduled destruction failed");
                event.outcome = Some(Outcome::Error);
                event.reason = e.to_string();
            }
        }
        if let Some(audit) = &api.audit {
            if let Err(e) = audit.record(&event) {
                tracing::error!(error = %e, "cannot audit the outcome of a scheduled destruction");
            }
        }
        if let Ok(true) = result {
            destroyed.push(due);
        }
    }
    Ok(destroyed)
}
