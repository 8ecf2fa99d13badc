//! A request's audit lines (docs/audit.md): the `started` line written before a change, the
//! outcome line after, and the HMACs of the inputs they record. A line that cannot be written
//! fails the request (503): an answer whose line is not in the log is not given.

use std::time::Instant;

use hyper::StatusCode;

use super::reply::{ApiError, Reply};
use super::router::Routed;
use super::{ApiState, Caller};
use crate::audit::{AuditEvent, AuditEventRef, AuditLog, AuditWriteError, InputHmacs, Outcome};

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
        let Some(log) = &self.state.audit else {
            return Ok(());
        };
        let key = self.routed.and_then(Routed::key);
        let event = AuditEventRef {
            outcome: Some(Outcome::Started),
            ..self.event(key.as_deref())
        };
        log.record_ref(&event).map_err(refused)
    }

    /// The outcome, with the HMACs of the request's inputs, written with the lines of the
    /// requests finishing at the same time (group commit); then the lines of what it set off.
    pub(crate) async fn outcome(
        &self,
        result: &Result<Reply, ApiError>,
        input_hmacs: &[[u8; 16]],
    ) -> Result<(), ApiError> {
        let Some(log) = &self.state.audit else {
            return Ok(());
        };
        let key = self.routed.and_then(Routed::key);
        let event = self.outcome_event(key.as_deref(), result, input_hmacs);
        log.write(&event).await.map_err(refused)?;
        self.follow_ups(log, &event, result)
    }

    /// The outcome of a request refused before anything ran, written on this thread.
    pub(crate) fn outcome_now(&self, result: &Result<Reply, ApiError>) -> Result<(), ApiError> {
        let Some(log) = &self.state.audit else {
            return Ok(());
        };
        let key = self.routed.and_then(Routed::key);
        let event = self.outcome_event(key.as_deref(), result, &[]);
        log.record_ref(&event).map_err(refused)?;
        self.follow_ups(log, &event, result)
    }

    /// What every line of this request says, borrowed from the request.
    fn event<'e>(&'e self, key: Option<&'e str>) -> AuditEventRef<'e> {
        AuditEventRef {
            request_id: self.request_id,
            principal: &self.caller.principal,
            source: &self.caller.source,
            operation: self.routed.map_or(UNROUTED, |r| r.endpoint.name()),
            tenant: self.routed.and_then(Routed::tenant),
            key,
            latency_us: self.started.elapsed().as_micros() as u64,
            ..AuditEventRef::default()
        }
    }

    fn outcome_event<'e>(
        &'e self,
        key: Option<&'e str>,
        result: &'e Result<Reply, ApiError>,
        input_hmacs: &'e [[u8; 16]],
    ) -> AuditEventRef<'e> {
        let event = AuditEventRef {
            input_hmacs: InputHmacs::Raw(input_hmacs),
            ..self.event(key)
        };
        match result {
            Ok(reply) => AuditEventRef {
                outcome: Some(Outcome::Ok),
                status: reply.status.as_u16(),
                key_version: reply.summary.key_version,
                batch_items: reply.summary.batch_items,
                batch_errors: reply.summary.batch_errors,
                custodian: reply.summary.custodian.as_ref(),
                ..event
            },
            Err(error) => AuditEventRef {
                outcome: Some(match error.status {
                    StatusCode::FORBIDDEN => Outcome::Denied,
                    StatusCode::TOO_MANY_REQUESTS => Outcome::RateLimited,
                    _ => Outcome::Error,
                }),
                status: error.status.as_u16(),
                reason: &error.message,
                ..event
            },
        }
    }

    /// The lines of what a served request set off, after its own.
    fn follow_ups(
        &self,
        log: &AuditLog,
        event: &AuditEventRef<'_>,
        result: &Result<Reply, ApiError>,
    ) -> Result<(), ApiError> {
        let Ok(reply) = result else {
            return Ok(());
        };
        for line in follow_ups(event, &reply.summary) {
            log.record(&line).map_err(refused)?;
        }
        Ok(())
    }
}

/// The answer to a request whose line could not be written.
fn refused(error: AuditWriteError) -> ApiError {
    tracing::error!(error = %error, "audit line not written; the request fails");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the audit log cannot be written, so the request was not performed",
    )
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
fn follow_ups(request: &AuditEventRef<'_>, summary: &super::reply::Summary) -> Vec<AuditEvent> {
    if summary.approval.is_none() && summary.seal_change.is_none() {
        return Vec::new();
    }
    let line = |operation: String| AuditEvent {
        request_id: request.request_id.to_owned(),
        tenant: request.tenant.map(str::to_owned),
        ..server_line(&operation, request.source)
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
