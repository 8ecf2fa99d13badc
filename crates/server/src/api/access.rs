//! Deny by default: every endpoint but the open status routes needs a policy grant for its
//! operation on the request's tenant and key (docs/policies.md), then the allowing rule's rate
//! limit.

use hyper::StatusCode;

use super::reply::ApiError;
use super::router::Routed;
use super::{ApiState, Caller};
use crate::metrics::{NO_TENANT, OTHER_TENANT};
use crate::policy::{AccessRequest, Decision, DenyReason};

/// Allows the request, or answers 403 (denied) or 429 (rate limited).
pub(crate) fn authorize(
    state: &ApiState,
    caller: &Caller,
    routed: &Routed<'_>,
) -> Result<(), ApiError> {
    let Some(operation) = routed.endpoint.operation() else {
        return Ok(());
    };
    let policies = state.policies.current();
    let key = routed.key();
    let request = AccessRequest {
        principal: &caller.principal,
        operation,
        tenant: routed.tenant(),
        key: key.as_deref(),
        source: Some(caller.address.ip()),
    };
    match policies.authorize(&request) {
        // The allowing rule's rate limit, per principal (a token bucket; none: unlimited).
        Decision::Allow(rule) => policies
            .rate_limiter()
            .check(rule, &caller.principal, std::time::Instant::now())
            .map_err(|retry| {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "rate limit quota exceeded: {} has used up the rate_limit of the policy rule that allows `{operation}`; retry after {}s",
                        caller.principal,
                        retry.header_secs()
                    ),
                );
                error.retry_after = Some(retry.header_secs());
                error
            }),
        Decision::Deny(reason) => {
            let (why, label) = match reason {
                DenyReason::SourceNotAllowed { .. } => {
                    ("not from this address", "source_not_allowed")
                }
                DenyReason::NoMatchingRule | DenyReason::IncompleteRequest => {
                    ("no policy grants it", "no_grant")
                }
            };
            // Counted by tenant and reason; who was denied is in the audit line. Only tenants a
            // policy names get their own label, so request paths cannot grow the label set.
            let tenant = match request.tenant {
                None => NO_TENANT,
                Some(t) if policies.names_tenant(t) => t,
                Some(_) => OTHER_TENANT,
            };
            state.metrics.record_denial(tenant, label);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "permission denied: {} may not `{operation}` on {}: {why}",
                    caller.principal,
                    describe_target(request.tenant, request.key)
                ),
            ))
        }
    }
}

fn describe_target(tenant: Option<&str>, key: Option<&str>) -> String {
    match (tenant, key) {
        (Some(t), Some(k)) => format!("{t}/{k}"),
        (Some(t), None) => format!("tenant {t}"),
        _ => "the vault".to_owned(),
    }
}
