//! A request's audit lines (docs/audit.md): the `started` line written before a change, the
//! outcome line after, and the HMACs of the inputs they record. A line that cannot be written
//! fails the request (503): an answer whose line is not in the log is not given.

use std::time::Instant;

use hyper::StatusCode;

use super::reply::{ApiError, Reply};
use super::router::Routed;
use super::{ApiState, Caller};
use crate::audit::{AuditEvent, Outcome};

/// The name of requests that match no route, in audit lines and metrics.
pub(crate) const UNROUTED: &str = "unrouted";

/// Writes one request's audit lines.
pub(crate) struct Trail<'a> {
    state: &'a ApiState,
    caller: &'a Caller,
    request_id: &'a str,
    routed: Option<&'a Routed<'a>>,
    started: Instant,
}

impl<'a> Trail<'a> {
    pub(crate) fn new(
        state: &'a ApiState,
        caller: &'a Caller,
        request_id: &'a str,
        routed: Option<&'a Routed<'a>>,
        started: Instant,
    ) -> Self {
        Trail {
            state,
            caller,
            request_id,
            routed,
            started,
        }
    }

    /// The attempt, before a change is made: if it cannot be written, nothing happens.
    pub(crate) fn started(&self) -> Result<(), ApiError> {
        self.write(None, Vec::new())
    }

    /// The outcome, with the HMACs of the request's inputs.
    pub(crate) fn outcome(
        &self,
        result: &Result<Reply, ApiError>,
        input_hmacs: Vec<String>,
    ) -> Result<(), ApiError> {
        self.write(Some(result), input_hmacs)
    }

    fn write(
        &self,
        result: Option<&Result<Reply, ApiError>>,
        input_hmacs: Vec<String>,
    ) -> Result<(), ApiError> {
        let Some(log) = &self.state.audit else {
            return Ok(());
        };
        let mut event = AuditEvent {
            request_id: self.request_id.to_owned(),
            principal: self.caller.principal.clone(),
            source: self.caller.source.clone(),
            operation: self
                .routed
                .map_or(UNROUTED, |r| r.endpoint.name())
                .to_owned(),
            tenant: self.routed.and_then(Routed::tenant).map(str::to_owned),
            key: self.routed.and_then(Routed::key).map(|k| k.into_owned()),
            latency_us: self.started.elapsed().as_micros() as u64,
            input_hmacs,
            ..AuditEvent::default()
        };
        match result {
            None => event.outcome = Some(Outcome::Started),
            Some(Ok(reply)) => {
                event.outcome = Some(Outcome::Ok);
                event.status = reply.status.as_u16();
                event.key_version = reply.summary.key_version;
                event.batch_items = reply.summary.batch_items;
                event.batch_errors = reply.summary.batch_errors;
                event.custodian = reply.summary.custodian.clone();
            }
            Some(Err(error)) => {
                event.outcome = Some(match error.status {
                    StatusCode::FORBIDDEN => Outcome::Denied,
                    StatusCode::TOO_MANY_REQUESTS => Outcome::RateLimited,
                    _ => Outcome::Error,
                });
                event.status = error.status.as_u16();
                event.reason = error.message.clone();
            }
        }
        let follow_ups = match result {
            Some(Ok(reply)) => follow_ups(&event, &reply.summary),
            _ => Vec::new(),
        };
        for event in std::iter::once(&event).chain(&follow_ups) {
            log.record(event).map_err(|e| {
                tracing::error!(error = %e, "audit line not written; the request fails");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the audit log cannot be written, so the request was not performed",
                )
            })?;
        }
        Ok(())
    }
}

/// The principal of lines the server writes about itself (seal changes, ended approvals).
pub(crate) const SERVER_PRINCIPAL: &str = "tresor:server";

/// A line the server writes about itself, seen from `source` (the request's peer, or `-`): what
/// it did or found without a request asking for exactly that.
pub(crate) fn server_line(operation: &str, source: &str) -> AuditEvent {
    AuditEvent {
        principal: SERVER_PRINCIPAL.to_owned(),
        source: source.to_owned(),
        operation: operation.to_owned(),
        outcome: Some(Outcome::Ok),
        ..AuditEvent::default()
    }
}

/// Writes `event` if the trail is on. A line that cannot be written is logged: what it records
/// has happened already.
pub(crate) fn record_server_line(state: &ApiState, event: &AuditEvent) {
    if let Some(log) = &state.audit {
        if let Err(e) = log.record(event) {
            tracing::error!(error = %e, operation = %event.operation, "audit line not written");
        }
    }
}

/// Lines of their own for what a request set off: an approval that ended (`approval-executed`,
/// `-failed`, `-rejected`, `-cancelled`, naming the operation, its target and every signer)
/// and a seal-state change. They carry the request's id, so a reader joins them to it.
fn follow_ups(request: &AuditEvent, summary: &super::reply::Summary) -> Vec<AuditEvent> {
    let line = |operation: String| AuditEvent {
        request_id: request.request_id.clone(),
        tenant: request.tenant.clone(),
        ..server_line(&operation, &request.source)
    };
    let mut lines = Vec::new();
    if let Some(approval) = &summary.approval {
        lines.push(AuditEvent {
            reason: format!("asked by {}", approval.requested_by),
            approval: Some(approval.clone()),
            ..line(format!("approval-{}", approval.state))
        });
    }
    if let Some(change) = summary.seal_change {
        lines.push(AuditEvent {
            store: summary.store,
            reason: summary
                .store
                .map(|s| {
                    format!(
                        "store generation {}, last written {}",
                        s.generation,
                        tresor_wire::time::rfc3339(s.last_write, 0)
                    )
                })
                .unwrap_or_default(),
            ..line(change.to_owned())
        });
    }
    lines
}
