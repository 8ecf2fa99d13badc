//! The HTTP API (DESIGN.md §5): routing, authorization, limits and the Vault-compatible
//! envelope. Key operations are wire-compatible with Vault's transit engine with each tenant
//! mounted at `/v1/<tenant>/`; Tresor's own routes live under `/v1/sys/`.
//!
//! One file per operation, each thin: decode the request, call the [`Vault`], shape the answer.

mod datakey;
mod decrypt;
mod encrypt;
mod export;
mod hmac;
mod key_config;
mod keys;
pub(crate) mod operations;
mod params;
mod pins;
pub(crate) mod reply;
mod rewrap;
mod rotate;
mod sys_approvals;
mod sys_custody;
mod sys_health;
mod sys_metrics;
mod sys_tenants;
mod trim;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use self::reply::{ApiError, Reply};
use crate::approvals::Approvals;
use crate::audit::{AuditEvent, AuditHasher, AuditLog, Outcome};
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::policy::{AccessRequest, Decision, DenyReason, Operation, PolicyHandle, Vocabulary};
use crate::services::Services;
use tresor_core::Vault;
use tresor_core::clock::{Clock, SystemClock};

/// Every operation the API declares: what policies may name.
pub(crate) fn vocabulary() -> &'static Vocabulary {
    operations::vocabulary()
}

/// The rows the API counts requests in (the `operation` label of its metrics).
pub(crate) fn metric_rows() -> impl Iterator<Item = &'static str> {
    operations::metric_rows()
}

/// What every request handler shares.
pub(crate) struct ApiState {
    pub(crate) services: Services,
    pub(crate) policies: Arc<PolicyHandle>,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    /// `None` only with `audit = "disabled"`.
    pub(crate) audit: Option<Arc<AuditLog>>,
}

impl ApiState {
    /// The audit hasher, or `None` while sealed.
    pub(crate) fn audit_hasher(&self) -> Option<Arc<AuditHasher>> {
        self.services.audit_key.hasher().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot load the audit HMAC key");
            None
        })
    }
}

/// Who is asking: the principal from the client certificate and the peer address.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) principal: String,
    pub(crate) address: SocketAddr,
    /// `address` as text, made once per connection for the audit lines of its requests.
    pub(crate) source: String,
}

impl Caller {
    pub(crate) fn new(principal: String, address: SocketAddr) -> Caller {
        Caller {
            principal,
            address,
            source: address.to_string(),
        }
    }
}

/// A routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Health,
    SealStatus,
    InitStatus,
    ListTenants,
    CreateTenant(String),
    ReadTenant(String),
    ShredTenant(String),
    RotateTenantKek(String),
    Init,
    UnsealShare(String),
    Unseal,
    Seal,
    TenantCustodyBox {
        tenant: String,
        custodian: String,
    },
    UnlockTenant(String),
    LockTenant(String),
    ChangeTenantCustodians(String),
    RotateRoot,
    Rekey,
    ListApprovals,
    ReadApproval(String),
    Approve(String),
    Metrics,
    AuditHash,
    Key {
        tenant: String,
        key: String,
        action: KeyAction,
    },
    ListKeys {
        tenant: String,
    },
    /// `/v1/pins/…`; `target` (`app` or `app/kid`) is what the audit line records as its key.
    Pins {
        action: pins::PinsAction,
        target: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyAction {
    Create,
    Read,
    Delete,
    Configure,
    Rotate,
    Trim,
    Encrypt,
    Decrypt,
    Rewrap,
    DataKey(datakey::Form),
    Hmac(Option<String>),
    Verify(Option<String>),
    Export {
        kind: String,
        version: Option<String>,
    },
}

impl Endpoint {
    /// The operation a policy must grant; `None` for the routes any authenticated client may read.
    fn operation(&self) -> Option<Operation> {
        Some(match self {
            Endpoint::Health | Endpoint::SealStatus | Endpoint::InitStatus => return None,
            Endpoint::ListTenants => operations::LIST_TENANTS,
            Endpoint::CreateTenant(_) => operations::CREATE_TENANT,
            Endpoint::ReadTenant(_) => operations::READ_TENANT,
            Endpoint::ShredTenant(_) => operations::SHRED_TENANT,
            Endpoint::RotateTenantKek(_) => operations::ROTATE_TENANT_KEK,
            Endpoint::Init => operations::INIT,
            Endpoint::UnsealShare(_) | Endpoint::Unseal => operations::UNSEAL,
            Endpoint::Seal => operations::SEAL,
            Endpoint::TenantCustodyBox { .. } | Endpoint::UnlockTenant(_) => {
                operations::UNLOCK_TENANT
            }
            Endpoint::LockTenant(_) => operations::LOCK_TENANT,
            Endpoint::ChangeTenantCustodians(_) => operations::CHANGE_TENANT_CUSTODY,
            Endpoint::RotateRoot => operations::ROTATE_ROOT,
            Endpoint::Rekey => operations::REKEY,
            Endpoint::ListApprovals | Endpoint::ReadApproval(_) => operations::LIST_APPROVALS,
            Endpoint::Approve(_) => operations::APPROVE,
            Endpoint::Metrics => operations::METRICS,
            Endpoint::AuditHash => operations::AUDIT_HASH,
            Endpoint::ListKeys { .. } => operations::LIST_KEYS,
            Endpoint::Pins { action, .. } => action.operation(),
            Endpoint::Key { action, .. } => match action {
                KeyAction::Create => operations::CREATE_KEY,
                KeyAction::Read => operations::READ_KEY,
                KeyAction::Delete => operations::DELETE_KEY,
                KeyAction::Configure => operations::CONFIGURE_KEY,
                KeyAction::Rotate => operations::ROTATE_KEY,
                KeyAction::Trim => operations::TRIM_KEY,
                KeyAction::Encrypt => operations::ENCRYPT,
                KeyAction::Decrypt => operations::DECRYPT,
                KeyAction::Rewrap => operations::REWRAP,
                KeyAction::DataKey(_) => operations::DATAKEY,
                KeyAction::Hmac(_) => operations::HMAC,
                KeyAction::Verify(_) => operations::VERIFY,
                KeyAction::Export { .. } => operations::EXPORT,
            },
        })
    }

    /// The name it is audited under and the metrics row it is counted in.
    fn route(&self) -> &'static str {
        match (self, self.operation()) {
            (_, Some(operation)) => operation.name(),
            (Endpoint::Health, None) => "health",
            (Endpoint::SealStatus, None) => "seal-status",
            _ => "init-status",
        }
    }

    /// Whether serving it changes state: then its audit line is written before the change.
    fn mutates(&self) -> bool {
        match self {
            Endpoint::Key { action, .. } => matches!(
                action,
                KeyAction::Create
                    | KeyAction::Delete
                    | KeyAction::Configure
                    | KeyAction::Rotate
                    | KeyAction::Trim
            ),
            Endpoint::CreateTenant(_)
            | Endpoint::ShredTenant(_)
            | Endpoint::RotateTenantKek(_)
            | Endpoint::Init
            | Endpoint::Unseal
            | Endpoint::Seal
            | Endpoint::UnlockTenant(_)
            | Endpoint::LockTenant(_)
            | Endpoint::ChangeTenantCustodians(_)
            | Endpoint::RotateRoot
            | Endpoint::Rekey
            | Endpoint::Approve(_) => true,
            Endpoint::Pins { action, .. } => action.mutates(),
            _ => false,
        }
    }

    fn tenant(&self) -> Option<&str> {
        match self {
            Endpoint::CreateTenant(t)
            | Endpoint::ReadTenant(t)
            | Endpoint::ShredTenant(t)
            | Endpoint::RotateTenantKek(t)
            | Endpoint::UnlockTenant(t)
            | Endpoint::LockTenant(t)
            | Endpoint::ChangeTenantCustodians(t)
            | Endpoint::TenantCustodyBox { tenant: t, .. } => Some(t),
            Endpoint::Key { tenant, .. } | Endpoint::ListKeys { tenant } => Some(tenant),
            _ => None,
        }
    }

    fn key(&self) -> Option<&str> {
        match self {
            Endpoint::Key { key, .. } => Some(key),
            Endpoint::Pins { target, .. } => target.as_deref(),
            _ => None,
        }
    }

    fn mount_type(&self) -> &'static str {
        match self {
            Endpoint::Key { .. } | Endpoint::ListKeys { .. } => "transit",
            _ => "system",
        }
    }
}

/// The context of a key operation.
pub(crate) struct KeyCtx<'a> {
    pub(crate) vault: &'a Vault,
    pub(crate) approvals: &'a Approvals,
    pub(crate) caller: &'a Caller,
    /// Where the request's inputs are noted (as audit HMACs).
    pub(crate) inputs: &'a InputLog,
    pub(crate) tenant: &'a str,
    pub(crate) key: &'a str,
    pub(crate) limits: &'a Limits,
    /// Whether the caller may create this key (encrypt creates missing keys when allowed).
    pub(crate) may_create: &'a dyn Fn() -> bool,
    /// Writes the request's `started` audit line. Routes that do not always change state call
    /// it before the change they do make (encrypt's upsert creating a key): if the line cannot
    /// be written, the change does not happen.
    pub(crate) before_change: &'a dyn Fn() -> Result<(), ApiError>,
}

impl KeyCtx<'_> {
    fn check_batch(&self, items: usize) -> Result<(), ApiError> {
        check_batch(items, self.limits)
    }
}

/// The context of a tenant-wide operation.
pub(crate) struct TenantCtx<'a> {
    pub(crate) vault: &'a Vault,
    pub(crate) tenant: &'a str,
}

/// Serves one HTTP request.
pub(crate) async fn handle(
    state: Arc<ApiState>,
    caller: Arc<Caller>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, body) = request.into_parts();
    let head = parts.method == Method::HEAD;
    let routed = route(&parts.method, parts.uri.path(), parts.uri.query());
    let endpoint = routed.as_ref().ok();
    let mount_type = endpoint.map_or("", Endpoint::mount_type);
    let inputs = InputLog::new(state.audit.as_ref().and_then(|_| state.audit_hasher()));
    let mut result = async {
        let endpoint = routed.as_ref().map_err(Clone::clone)?;
        authorize(&state, &caller, endpoint)?;
        let bytes = if reads_body(&parts.method) {
            read_body(body, parts.headers.get(CONTENT_LENGTH), &state.limits).await?
        } else {
            Bytes::new()
        };
        // A change is recorded before it is made: if the log cannot take the line, nothing happens.
        let log_started = || {
            audit(
                &state,
                &caller,
                &request_id,
                Some(endpoint),
                None,
                started,
                Vec::new(),
            )
        };
        if endpoint.mutates() {
            log_started()?;
        }
        dispatch(
            &state,
            &caller,
            endpoint,
            parts.uri.query(),
            &bytes,
            &inputs,
            &log_started,
        )
    }
    .await;
    if let Err(error) = &result {
        match error.status {
            StatusCode::FORBIDDEN => state.metrics.record_denial(&caller.principal),
            StatusCode::TOO_MANY_REQUESTS => state.metrics.record_rate_limited(),
            _ => {}
        }
    }
    let hmacs = inputs.into_hmacs();
    if let Err(error) = audit(
        &state,
        &caller,
        &request_id,
        endpoint,
        Some(&result),
        started,
        hmacs,
    ) {
        // Fail closed: an answer whose line is not in the log is not given. (A change was
        // logged before it was made, so its outcome line failing changes nothing here.)
        if !endpoint.is_some_and(Endpoint::mutates) {
            result = Err(error);
        }
    }
    let (status, batch_items) = match &result {
        Ok(reply) => (reply.status, reply.summary.batch_items),
        Err(e) => (e.status, 0),
    };
    state.metrics.record_request(
        metrics_row(&state.metrics, endpoint),
        status.as_u16(),
        started.elapsed(),
        batch_items,
    );
    Ok(respond(result, &request_id, mount_type, head))
}

/// Refuses a request the server has no room for: an HTTP/2 stream beyond its connection's
/// first while every slot of `limits.max_connections` is taken (see `server.rs`). Routed only to
/// name it in the audit line; nothing runs. Audited, counted as a refused connection, answered
/// 503 with `Retry-After`.
pub(crate) fn refuse_over_capacity(
    state: &ApiState,
    caller: &Caller,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let request_id = new_request_id();
    let routed = route(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let endpoint = routed.as_ref().ok();
    let mut error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "server busy: the connections and requests in flight have reached limits.max_connections ({}); retry later",
            state.limits.max_connections
        ),
    );
    error.retry_after = Some(1);
    let result = Err(error);
    // Nothing was done, so the answer is the same whether or not its line is written.
    let _ = audit(
        state,
        caller,
        &request_id,
        endpoint,
        Some(&result),
        started,
        Vec::new(),
    );
    state.metrics.record_refused_connection();
    state.metrics.record_request(
        metrics_row(&state.metrics, endpoint),
        StatusCode::SERVICE_UNAVAILABLE.as_u16(),
        started.elapsed(),
        0,
    );
    respond(
        result,
        &request_id,
        endpoint.map_or("", Endpoint::mount_type),
        request.method() == Method::HEAD,
    )
}

/// The name of requests that match no route, in audit lines and metrics.
const UNROUTED: &str = "unrouted";

fn metrics_row(metrics: &Metrics, endpoint: Option<&Endpoint>) -> crate::metrics::Row {
    let name = endpoint.map_or(UNROUTED, Endpoint::route);
    metrics
        .row(name)
        .expect("every route has a metrics row (operations::metric_rows)")
}

/// Writes one audit line: the attempt (`result` is `None`, before a change is made) or the
/// outcome. An error means the line is not in the log and the request must fail (503).
fn audit(
    state: &ApiState,
    caller: &Caller,
    request_id: &str,
    endpoint: Option<&Endpoint>,
    result: Option<&Result<Reply, ApiError>>,
    started: Instant,
    input_hmacs: Vec<String>,
) -> Result<(), ApiError> {
    let Some(log) = &state.audit else {
        return Ok(());
    };
    let mut event = AuditEvent {
        request_id: request_id.to_owned(),
        principal: caller.principal.clone(),
        source: caller.source.clone(),
        operation: endpoint.map_or(UNROUTED, Endpoint::route).to_owned(),
        tenant: endpoint.and_then(Endpoint::tenant).map(str::to_owned),
        key: endpoint.and_then(Endpoint::key).map(str::to_owned),
        latency_us: started.elapsed().as_micros() as u64,
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
    log.record(&event).map_err(|e| {
        tracing::error!(error = %e, "audit line not written; the request fails");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit log cannot be written, so the request was not performed",
        )
    })
}

/// HMACs of a request's inputs for its audit line; nothing is kept when the audit trail is off
/// or the vault is sealed.
pub(crate) struct InputLog {
    hasher: Option<Arc<AuditHasher>>,
    hmacs: std::sync::Mutex<Vec<String>>,
}

impl InputLog {
    fn new(hasher: Option<Arc<AuditHasher>>) -> Self {
        InputLog {
            hasher,
            hmacs: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Records `value` (a ciphertext, HMAC input, context or associated data) as its audit HMAC.
    pub(crate) fn note(&self, value: &[u8]) {
        if let Some(hasher) = &self.hasher {
            self.hmacs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(hasher.hash(value));
        }
    }

    /// Records an optional value.
    pub(crate) fn note_some(&self, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.note(value);
        }
    }

    fn into_hmacs(self) -> Vec<String> {
        self.hmacs.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

fn reads_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT)
}

/// Maps method and path to an endpoint, or to Vault's 404/405 answers.
fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Endpoint, ApiError> {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Err(ApiError::unsupported_path());
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ApiError::unsupported_path());
    }
    let list = method.as_str() == "LIST" || (*method == Method::GET && query_flag(query, "list"));
    let get = *method == Method::GET && !list;
    let post = matches!(*method, Method::POST | Method::PUT);
    let delete = *method == Method::DELETE;
    let owned = |s: &str| s.to_owned();
    let endpoint = match segments.as_slice() {
        ["sys", "health"] if get || *method == Method::HEAD => Endpoint::Health,
        ["sys", "seal-status"] if get => Endpoint::SealStatus,
        ["sys", "init"] if get => Endpoint::InitStatus,
        ["sys", "tenants"] if list => Endpoint::ListTenants,
        ["sys", "tenants", name] if post => Endpoint::CreateTenant(owned(name)),
        ["sys", "tenants", name] if get => Endpoint::ReadTenant(owned(name)),
        ["sys", "tenants", name] if delete => Endpoint::ShredTenant(owned(name)),
        ["sys", "tenants", name, "rotate-kek"] if post => Endpoint::RotateTenantKek(owned(name)),
        ["sys", "tenants", name, "custody", custodian] if get => Endpoint::TenantCustodyBox {
            tenant: owned(name),
            custodian: owned(custodian),
        },
        ["sys", "tenants", name, "unlock"] if post => Endpoint::UnlockTenant(owned(name)),
        ["sys", "tenants", name, "lock"] if post => Endpoint::LockTenant(owned(name)),
        ["sys", "tenants", name, "custodians"] if post => {
            Endpoint::ChangeTenantCustodians(owned(name))
        }
        ["sys", "init"] if post => Endpoint::Init,
        ["sys", "unseal-share", custodian] if get => Endpoint::UnsealShare(owned(custodian)),
        ["sys", "unseal"] if post => Endpoint::Unseal,
        ["sys", "seal"] if post => Endpoint::Seal,
        ["sys", "rotate-root"] if post => Endpoint::RotateRoot,
        ["sys", "rekey"] if post => Endpoint::Rekey,
        ["sys", "approvals"] if list => Endpoint::ListApprovals,
        ["sys", "approvals", id] if get => Endpoint::ReadApproval(owned(id)),
        ["sys", "approvals", id, "approve"] if post => Endpoint::Approve(owned(id)),
        ["sys", "metrics"] if get => Endpoint::Metrics,
        ["sys", "audit", "hash"] if post => Endpoint::AuditHash,
        ["pins", rest @ ..] => {
            let action = pins::route(get, post, list, rest)?;
            let target = action.target();
            Endpoint::Pins { action, target }
        }
        [
            "sys",
            "health" | "seal-status" | "init" | "tenants" | "unseal-share" | "unseal" | "seal"
            | "rotate-root" | "rekey" | "approvals" | "metrics" | "audit",
            ..,
        ] => {
            return Err(ApiError::unsupported_operation());
        }
        [reserved, ..] if tresor_core::keys::RESERVED_TENANT_NAMES.contains(reserved) => {
            return Err(ApiError::unsupported_path());
        }
        [tenant, rest @ ..] => {
            if tresor_core::keys::validate_tenant_name(tenant).is_err() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no handler for route \"{}\": not a tenant mount",
                        path.chars().take(128).collect::<String>()
                    ),
                ));
            }
            return tenant_route(method, list, tenant, rest);
        }
        [] => return Err(ApiError::unsupported_path()),
    };
    Ok(endpoint)
}

fn tenant_route(
    method: &Method,
    list: bool,
    tenant: &str,
    rest: &[&str],
) -> Result<Endpoint, ApiError> {
    let get = *method == Method::GET && !list;
    let post = matches!(*method, Method::POST | Method::PUT);
    let delete = *method == Method::DELETE;
    let tenant = tenant.to_owned();
    let action = match rest {
        ["keys"] if list => return Ok(Endpoint::ListKeys { tenant }),
        ["keys", _] if post => KeyAction::Create,
        ["keys", _] if get => KeyAction::Read,
        ["keys", _] if delete => KeyAction::Delete,
        ["keys", _, "config"] if post => KeyAction::Configure,
        ["keys", _, "rotate"] if post => KeyAction::Rotate,
        ["keys", _, "trim"] if post => KeyAction::Trim,
        ["encrypt", _] if post => KeyAction::Encrypt,
        ["decrypt", _] if post => KeyAction::Decrypt,
        ["rewrap", _] if post => KeyAction::Rewrap,
        ["datakey", form, _] if post => KeyAction::DataKey(datakey::Form::parse(form)?),
        ["hmac", _] if post => KeyAction::Hmac(None),
        ["hmac", _, algorithm] if post => KeyAction::Hmac(Some((*algorithm).to_owned())),
        ["verify", _] if post => KeyAction::Verify(None),
        ["verify", _, algorithm] if post => KeyAction::Verify(Some((*algorithm).to_owned())),
        ["export", kind, _] if get => KeyAction::Export {
            kind: (*kind).to_owned(),
            version: None,
        },
        ["export", kind, _, version] if get => KeyAction::Export {
            kind: (*kind).to_owned(),
            version: Some((*version).to_owned()),
        },
        ["keys"]
        | ["keys", _]
        | ["keys", _, "config" | "rotate" | "trim"]
        | ["encrypt" | "decrypt" | "rewrap", _]
        | ["datakey", _, _]
        | ["hmac" | "verify", _]
        | ["hmac" | "verify", _, _]
        | ["export", _, _]
        | ["export", _, _, _] => return Err(ApiError::unsupported_operation()),
        _ => return Err(ApiError::unsupported_path()),
    };
    let key = match rest {
        ["keys", key, ..] | [_, key] | ["hmac" | "verify", key, _] => *key,
        ["datakey" | "export", _, key] | ["export", _, key, _] => *key,
        _ => unreachable!("every routed shape names a key"),
    };
    tresor_core::keys::validate_key_name(key).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid key name `{}`",
            key.chars().take(64).collect::<String>()
        ))
    })?;
    Ok(Endpoint::Key {
        tenant,
        key: key.to_owned(),
        action,
    })
}

/// Deny by default: every endpoint but health and seal status needs a policy grant.
fn authorize(state: &ApiState, caller: &Caller, endpoint: &Endpoint) -> Result<(), ApiError> {
    let Some(operation) = endpoint.operation() else {
        return Ok(());
    };
    let policies = state.policies.current();
    let request = AccessRequest {
        principal: &caller.principal,
        operation,
        tenant: endpoint.tenant(),
        key: endpoint.key(),
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
            let why = match reason {
                DenyReason::SourceNotAllowed { .. } => "not from this address",
                DenyReason::NoMatchingRule | DenyReason::IncompleteRequest => "no policy grants it",
            };
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "permission denied: {} may not `{operation}` on {}: {why}",
                    caller.principal,
                    describe_target(endpoint.tenant(), endpoint.key())
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

fn may(state: &ApiState, caller: &Caller, operation: Operation, tenant: &str, key: &str) -> bool {
    let request = AccessRequest {
        principal: &caller.principal,
        operation,
        tenant: Some(tenant),
        key: Some(key),
        source: Some(caller.address.ip()),
    };
    matches!(
        state.policies.current().authorize(&request),
        Decision::Allow(_)
    )
}

async fn read_body(
    body: Incoming,
    length: Option<&HeaderValue>,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than the limit of {} bytes (limits.max_body_bytes)",
                limits.max_body_bytes
            ),
        )
    };
    if length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limits.max_body_bytes)
    {
        return Err(too_large());
    }
    let limited = Limited::new(body, limits.max_body_bytes);
    // A small body usually arrives with the head: take it without arming a timer (a timer per
    // request is a measurable share of a small request's cost). Only a body still on its way
    // gets the timeout.
    let mut collect = std::pin::pin!(limited.collect());
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(collect.as_mut(), cx))
    })
    .await;
    let collected = match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => {
            tokio::time::timeout(Duration::from_secs(limits.body_read_timeout), collect).await
        }
    };
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::bad_request("request body could not be read")),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {}s (limits.body_read_timeout)",
                limits.body_read_timeout
            ),
        )),
    }
}

fn dispatch(
    state: &ApiState,
    caller: &Caller,
    endpoint: &Endpoint,
    query: Option<&str>,
    body: &[u8],
    inputs: &InputLog,
    before_change: &dyn Fn() -> Result<(), ApiError>,
) -> Result<Reply, ApiError> {
    let vault = &state.services.vault;
    match endpoint {
        Endpoint::Health => sys_health::health(vault, query, SystemClock.now()),
        Endpoint::SealStatus => sys_health::seal_status(vault, state.audit.as_deref()),
        Endpoint::InitStatus => sys_health::init_status(vault),
        Endpoint::ListTenants => sys_tenants::list(vault),
        Endpoint::CreateTenant(name) => sys_tenants::create(vault, name, body),
        Endpoint::ReadTenant(name) => sys_tenants::read(vault, name),
        Endpoint::ShredTenant(name) => {
            sys_tenants::shred(vault, &state.services.approvals, caller, name)
        }
        Endpoint::RotateTenantKek(name) => sys_tenants::rotate_kek(vault, name),
        Endpoint::Init => sys_custody::init(vault, body),
        Endpoint::UnsealShare(custodian) => sys_custody::unseal_share(vault, custodian),
        Endpoint::Unseal => sys_custody::unseal(vault, body),
        Endpoint::Seal => sys_custody::seal(vault),
        Endpoint::TenantCustodyBox { tenant, custodian } => {
            sys_custody::custody_box(vault, tenant, custodian)
        }
        Endpoint::UnlockTenant(tenant) => sys_custody::unlock(vault, tenant, body),
        Endpoint::LockTenant(tenant) => sys_custody::lock(vault, tenant),
        Endpoint::ChangeTenantCustodians(tenant) => {
            sys_custody::change_custodians(vault, &state.services.approvals, caller, tenant, body)
        }
        Endpoint::RotateRoot => sys_custody::rotate_root(&state.services.approvals, caller),
        Endpoint::Rekey => sys_custody::rekey(&state.services.approvals, caller, body),
        Endpoint::ListApprovals => sys_approvals::list(&state.services.approvals),
        Endpoint::ReadApproval(id) => sys_approvals::read(&state.services.approvals, id),
        Endpoint::Approve(id) => sys_approvals::approve(&state.services, id, body),
        Endpoint::Metrics => sys_metrics::metrics(state),
        Endpoint::AuditHash => sys_metrics::audit_hash(state, body),
        Endpoint::ListKeys { tenant } => keys::list(&TenantCtx { vault, tenant }),
        Endpoint::Pins { action, .. } => pins::handle(state, caller, action, body),
        Endpoint::Key {
            tenant,
            key,
            action,
        } => {
            let may_create = || may(state, caller, operations::CREATE_KEY, tenant, key);
            let ctx = KeyCtx {
                vault,
                approvals: &state.services.approvals,
                caller,
                inputs,
                tenant,
                key,
                limits: &state.limits,
                may_create: &may_create,
                before_change,
            };
            match action {
                KeyAction::Create => keys::create(&ctx, body),
                KeyAction::Read => keys::read(&ctx),
                KeyAction::Delete => keys::delete(&ctx),
                KeyAction::Configure => key_config::handle(&ctx, body),
                KeyAction::Rotate => rotate::handle(&ctx),
                KeyAction::Trim => trim::handle(&ctx, body),
                KeyAction::Encrypt => encrypt::handle(&ctx, body),
                KeyAction::Decrypt => decrypt::handle(&ctx, body),
                KeyAction::Rewrap => rewrap::handle(&ctx, body),
                KeyAction::DataKey(form) => datakey::handle(&ctx, *form, body),
                KeyAction::Hmac(algorithm) => hmac::hmac(&ctx, algorithm.as_deref(), body),
                KeyAction::Verify(algorithm) => hmac::verify(&ctx, algorithm.as_deref(), body),
                KeyAction::Export { kind, version } => {
                    export::handle(&ctx, kind, version.as_deref())
                }
            }
        }
    }
}

fn respond(
    result: Result<Reply, ApiError>,
    request_id: &str,
    mount_type: &str,
    head: bool,
) -> Response<Full<Bytes>> {
    let (status, content_type, body, retry_after) = match result {
        Ok(reply) => (
            reply.status,
            reply.content_type(),
            reply.into_bytes(request_id, mount_type),
            None,
        ),
        Err(error) => (
            error.status,
            "application/json",
            error.body(),
            error.retry_after,
        ),
    };
    let mut response = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    }));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // Exactly `application/json`: hvac reads error messages only then.
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    if let Some(seconds) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Runs storage work (which may fsync) off the async worker when on a multi-threaded runtime.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Puts a batch back in order: `decoded` holds every item (refused at decoding, or valid), and
/// `outcomes` the vault's results for the valid ones, in order.
pub(crate) fn merge_batch<D, T>(
    decoded: &[Result<D, ApiError>],
    outcomes: Vec<Result<T, tresor_core::Error>>,
) -> Vec<Result<T, ApiError>> {
    let mut outcomes = outcomes.into_iter();
    decoded
        .iter()
        .map(|item| match item {
            Ok(_) => outcomes
                .next()
                .expect("one outcome per valid item")
                .map_err(ApiError::from),
            Err(e) => Err(e.clone()),
        })
        .collect()
}

/// The `batch_results` of a batch reply.
#[derive(serde::Serialize)]
pub(crate) struct BatchResults<T> {
    pub(crate) batch_results: Vec<T>,
}

fn check_batch(items: usize, limits: &Limits) -> Result<(), ApiError> {
    if items == 0 {
        return Err(ApiError::bad_request("missing batch input to process"));
    }
    if items > limits.max_batch_items {
        return Err(ApiError::bad_request(format!(
            "batch_input has {items} items, more than the limit of {} (limits.max_batch_items)",
            limits.max_batch_items
        )));
    }
    Ok(())
}

/// Tresor derives nonces itself (random, or from the message for convergent keys); a caller's
/// nonce is refused rather than ignored.
fn refuse_nonce(nonce: Option<&str>) -> Result<(), ApiError> {
    match nonce {
        Some(n) if !n.is_empty() => Err(ApiError::bad_request(
            "provided nonce not allowed for this key: Tresor chooses nonces itself (convergent keys derive them from the input)",
        )),
        _ => Ok(()),
    }
}

/// The caller's status for a batch that failed in part: one that can carry the batch results,
/// so not a 1xx (not a final answer: it breaks the connection) nor 204, 205 or 304 (no body).
fn partial_failure_code(code: Option<params::Int>) -> Result<Option<u16>, ApiError> {
    match code {
        None => Ok(None),
        Some(params::Int(c)) if (200..=599).contains(&c) && !matches!(c, 204 | 205 | 304) => {
            Ok(Some(c as u16))
        }
        Some(params::Int(c)) => Err(ApiError::bad_request(format!(
            "invalid partial_failure_response_code {c}: use 200 to 599 (not 204, 205 or 304, which carry no body)"
        ))),
    }
}

/// The version in `tresor:v<N>:…` (0 if the text is not of that form).
fn version_of(text: &str) -> u32 {
    text.strip_prefix("tresor:v")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(v, _)| v.parse().ok())
        .unwrap_or(0)
}

fn query_flag(query: Option<&str>, name: &str) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|pair| match pair.split_once('=') {
            Some((k, v)) => k == name && matches!(v, "true" | "1" | "t"),
            None => false,
        })
}

/// A random (version 4) UUID in its text form, written digit by digit (no formatting machinery
/// on the per-request path).
fn new_request_id() -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = tresor_crypto::random_array();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(DIGITS[usize::from(byte >> 4)]));
        id.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Method {
        Method::from_bytes(b"LIST").unwrap()
    }

    #[test]
    fn routes_like_vault() {
        let key = |action| Endpoint::Key {
            tenant: "payments".into(),
            key: "card".into(),
            action,
        };
        assert_eq!(
            route(&Method::POST, "/v1/payments/encrypt/card", None),
            Ok(key(KeyAction::Encrypt))
        );
        assert_eq!(
            route(&Method::PUT, "/v1/payments/decrypt/card", None),
            Ok(key(KeyAction::Decrypt))
        );
        assert_eq!(
            route(&Method::GET, "/v1/payments/keys/card", None),
            Ok(key(KeyAction::Read))
        );
        assert_eq!(
            route(&list(), "/v1/payments/keys", None),
            Ok(Endpoint::ListKeys {
                tenant: "payments".into()
            })
        );
        assert_eq!(
            route(&Method::GET, "/v1/payments/keys/", Some("list=true")),
            Ok(Endpoint::ListKeys {
                tenant: "payments".into()
            })
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/hmac/card/sha2-512", None),
            Ok(key(KeyAction::Hmac(Some("sha2-512".into()))))
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/datakey/wrapped/card", None),
            Ok(key(KeyAction::DataKey(datakey::Form::Wrapped)))
        );
        assert_eq!(
            route(&Method::HEAD, "/v1/sys/health", None),
            Ok(Endpoint::Health)
        );
    }

    #[test]
    fn vault_refusals() {
        assert_eq!(
            route(&Method::DELETE, "/v1/payments/encrypt/card", None)
                .unwrap_err()
                .status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/nope/card", None)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/v2/payments/encrypt/card", None)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/v1/Payments/encrypt/card", None)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/encrypt/bad%2Fname", None)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments//card", None)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/datakey/both/card", None)
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            route(&Method::POST, "/v1/audit/encrypt/card", None)
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23]);
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn version_of_ciphertexts() {
        assert_eq!(version_of("tresor:v12:abc"), 12);
        assert_eq!(version_of("vault:v1:abc"), 0);
    }
}
