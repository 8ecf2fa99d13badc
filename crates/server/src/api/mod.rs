//! The HTTP API (README.md): Vault's transit engine with each tenant mounted at `/v1/<tenant>/`,
//! and Tresor's own routes under `/v1/sys/` and `/v1/pins/`.
//!
//! Each operation is declared once, in its own file under `transit/`, `sys/` or `pins/` (where
//! its unit tests go too: `testing` serves requests in process): its route (shared with the
//! client through `tresor_wire::api`), the policy operation it needs, whether it changes state,
//! and its handler. The registry below lists them; the router, authorization, the audit trail,
//! the metrics rows and the policy vocabulary are derived from it. Adding an operation is
//! writing its file and adding its line here.
//!
//! A request goes: route, authorize, read the body, write the `started` audit line (if it
//! changes state), handle, write the outcome line, count, respond.

mod access;
mod acts;
mod batch;
mod body;
mod endpoint;
mod inputs;
mod params;
mod path_values;
pub(crate) mod reply;
mod respond;
mod router;
#[cfg(test)]
pub(crate) mod testing;
mod trail;

pub(crate) use trail::{record_server_line, server_line};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use self::endpoint::{Call, Endpoint, Mount};
use self::inputs::InputLog;
use self::reply::{ApiError, Reply};
use self::router::{Routed, Router};
use self::trail::{Trail, UNROUTED};
use crate::audit::{AuditHasher, AuditLog};
use crate::config::Limits;
use crate::metrics::{Metrics, Row};
use crate::policy::{PolicyHandle, Vocabulary};
use crate::services::Services;

/// Declares each group's modules (its `mount.rs` and one file per endpoint, each exporting an
/// `ENDPOINT`) and lists the endpoints, group by group, in [`REGISTRY`].
macro_rules! registry {
    ($( $(#[$doc:meta])* $group:ident { $($endpoint:ident),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            pub(crate) mod $group {
                pub(crate) mod mount;
                $( pub(crate) mod $endpoint; )*
            }
        )*

        /// Every endpoint, by mount, in registration order.
        static REGISTRY: &[(&Mount, &[&Endpoint])] = &[
            $( (&$group::mount::MOUNT, &[ $( &$group::$endpoint::ENDPOINT ),* ]), )*
        ];
    };
}

// The order of first appearance of the policy operations is the vocabulary's: policy error
// messages list the operations in it.
registry! {
    /// Transit: each tenant is a Vault transit mount at `/v1/<tenant>/`.
    transit {
        keys_create,
        keys_read,
        keys_list,
        keys_delete,
        keys_config,
        keys_rotate,
        keys_trim,
        encrypt,
        decrypt,
        rewrap,
        datakey,
        hmac,
        verify,
        sign,
        export,
        keys_transfer,
        keys_receive,
        // Issue 17: scheduled deletion.
        keys_cancel_deletion,
        // Issue 17: bring your own key in Vault's wire format.
        wrapping_key,
        wrapping_key_rotate,
        keys_import,
        keys_import_version,
    }
    /// Tresor's own routes under `/v1/sys/`: tenants, custody, approvals, metrics, status.
    sys {
        tenants_read,
        tenants_lock,
        tenants_unlock,
        tenants_custody,
        tenants_rotate_kek,
        tenants_custodians,
        tenants_shred,
        tenants_create,
        tenants_list,
        init,
        unseal_share,
        unseal,
        seal,
        rotate_root,
        rekey,
        approvals_list,
        approvals_read,
        approvals_approve,
        approvals_reject,
        approvals_cancel,
        backup,
        transfer_key,
        metrics,
        audit_hash,
        health,
        seal_status,
        init_status,
        leader,
        mounts,
        // Issue 17: scheduled deletion.
        tenants_cancel_shred,
        // Issue 13: peer unseal and node enrolment.
        nodes_list,
        nodes_enrol,
        nodes_remove,
        peer_unseal,
    }
    /// Certificate pinning under `/v1/pins/` (docs/pinning.md).
    pins {
        apps_list,
        apps_read,
        manifest,
        export,
        manifest_key,
        log,
        apps_create,
        keys_generate,
        keys_import,
        keys_activate,
        keys_retire,
        keys_compromise,
        keys_csr,
        reissue,
        manifest_key_rotate,
        keys_deliver,
    }
    /// Issue 16: Vault's Transform engine on each tenant at `/v1/<tenant>/transform/`
    /// (docs/anonymize.md).
    transform {
        role_write,
        role_read,
        role_list,
        role_delete,
        transformation_write,
        transformation_read,
        transformation_list,
        transformation_delete,
        template_write,
        template_read,
        template_list,
        template_delete,
        encode,
        decode,
    }
}

static ROUTER: LazyLock<Router> = LazyLock::new(|| Router::new(REGISTRY));

static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(|| {
    Vocabulary::new(endpoints().filter_map(Endpoint::operation))
        .expect("the endpoints declare a valid vocabulary")
});

/// Every endpoint, in registration order.
fn endpoints() -> impl Iterator<Item = &'static Endpoint> {
    REGISTRY
        .iter()
        .flat_map(|(_, endpoints)| endpoints.iter().copied())
}

/// Every operation the endpoints declare: what policies may name.
pub(crate) fn vocabulary() -> &'static Vocabulary {
    &VOCABULARY
}

/// The rows requests are counted in (the `operation` label of the metrics): the operations,
/// the open routes, and requests no route serves.
fn metric_rows() -> Vec<&'static str> {
    let mut rows = vocabulary().names();
    rows.extend(
        endpoints()
            .filter(|e| e.operation().is_none())
            .map(Endpoint::name),
    );
    rows.push(UNROUTED);
    rows
}

/// Routes a request (see [`Router::route`]).
fn route<'p>(method: &Method, path: &'p str, query: Option<&str>) -> Result<Routed<'p>, ApiError> {
    ROUTER.route(method, path, query)
}

/// What every request handler shares.
pub(crate) struct ApiState {
    pub(crate) services: Services,
    pub(crate) policies: Arc<PolicyHandle>,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    /// `None` only with `audit = "disabled"`.
    pub(crate) audit: Option<Arc<AuditLog>>,
    /// On PostgreSQL: the change-log follower and the staleness bound every answer keeps to.
    pub(crate) coherence: Option<Arc<crate::coherence::Coherence>>,
    /// The metrics row of each endpoint by registry position, then of unrouted requests.
    rows: Box<[Row]>,
}

impl ApiState {
    pub(crate) fn new(
        services: Services,
        policies: Arc<PolicyHandle>,
        limits: Limits,
        audit: Option<Arc<AuditLog>>,
    ) -> ApiState {
        let metrics = Metrics::new(metric_rows());
        let rows = endpoints()
            .map(Endpoint::name)
            .chain([UNROUTED])
            .map(|name| metrics.row(name).expect("every route has a metrics row"))
            .collect();
        ApiState {
            services,
            policies,
            limits,
            metrics: Arc::new(metrics),
            audit,
            coherence: None,
            rows,
        }
    }

    /// The same state following a shared store's change log (PostgreSQL).
    pub(crate) fn with_coherence(
        mut self,
        coherence: Option<Arc<crate::coherence::Coherence>>,
    ) -> ApiState {
        self.coherence = coherence;
        self
    }

    /// The audit hasher, or `None` while sealed.
    /// The hasher for inputs: `None` while sealed; an error if the vault is unsealed and the
    /// key cannot be loaded.
    pub(crate) fn audit_hasher(&self) -> Result<Option<Arc<AuditHasher>>, tresor_core::Error> {
        self.services.audit_key.hasher()
    }

    /// Counts a request in its route's row.
    fn count(
        &self,
        routed: Option<&Routed<'_>>,
        result: &Result<Reply, ApiError>,
        started: Instant,
    ) {
        let (status, batch_items) = match result {
            Ok(reply) => (reply.status, reply.summary.batch_items),
            Err(e) => (e.status, 0),
        };
        let row = self.rows[routed.map_or(self.rows.len() - 1, |r| r.index)];
        self.metrics
            .record_request(row, status.as_u16(), started.elapsed(), batch_items);
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

/// Serves one HTTP request (hyper's `Incoming` body, or any other in tests).
pub(crate) async fn handle<B>(
    state: Arc<ApiState>,
    caller: Arc<Caller>,
    request: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let request_id = respond::new_request_id();
    let (parts, body) = request.into_parts();
    let routed = route(&parts.method, parts.uri.path(), parts.uri.query());
    let trail = Trail::new(&state, &caller, &request_id, routed.as_ref().ok(), started);
    let inputs = InputLog::new(&state);
    let mut unread = Some(body);
    let mut result = async {
        check_host(&parts)?;
        let routed = routed.as_ref().map_err(Clone::clone)?;
        access::authorize(&state, &caller, routed)?;
        // A node whose view of a shared store may be stale answers nothing from it; the
        // metrics stay readable, so operators can see why.
        if let Some(coherence) = &state.coherence {
            if routed.endpoint.name() != "metrics" {
                coherence.check().map_err(|stale| {
                    let mut error =
                        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, stale.to_string());
                    error.retry_after = Some(1);
                    error
                })?;
            }
        }
        refuse_wrapping(&parts.headers)?;
        let body = match unread.take() {
            Some(body) => body::read(&parts, body, &state.limits).await?,
            None => Bytes::new(),
        };
        // A change is recorded before it is made: if the log cannot take the line, nothing
        // happens.
        if routed.endpoint.mutates {
            trail.started()?;
        }
        (routed.endpoint.handler)(&Call {
            state: &state,
            caller: &caller,
            params: &routed.params,
            query: parts.uri.query(),
            body: &body,
            inputs: &inputs,
            before_change: &|| trail.started(),
        })
        .and_then(|reply| inputs.check().map(|()| reply))
    }
    .await;
    // Denials are counted where they are decided (`access`), with their tenant and reason.
    if matches!(&result, Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS) {
        state.metrics.record_rate_limited();
    }
    // An answer given before the body was read (a refusal, a route that takes no body) goes out
    // once the body has arrived: over HTTP/2 the stream is otherwise reset under the client
    // while it still sends, and common clients (curl 7.88) then drop the answer.
    if let Some(body) = unread {
        body::drain(&parts, body, &state.limits).await;
    }
    let routed = routed.as_ref().ok();
    if let Err(error) = trail.outcome(&result, &inputs.into_hmacs()).await {
        // Fail closed: an answer whose line is not in the log is not given. (A change was
        // logged before it was made, so its outcome line failing changes nothing here.)
        if !routed.is_some_and(|r| r.endpoint.mutates) {
            result = Err(error);
        }
    }
    state.count(routed, &result, started);
    let mount_type = routed.map_or("", |r| r.mount.mount_type);
    Ok(respond::respond(
        result,
        &request_id,
        mount_type,
        parts.method == Method::HEAD,
    ))
}

/// RFC 9112, section 3.2: an HTTP/1.1 request without a Host header, or with more than one,
/// is answered 400. (HTTP/2 names the authority in its own pseudo-header.)
fn check_host(parts: &hyper::http::request::Parts) -> Result<(), ApiError> {
    if parts.version != hyper::Version::HTTP_11 {
        return Ok(());
    }
    match parts.headers.get_all(hyper::header::HOST).iter().count() {
        1 => Ok(()),
        0 => Err(ApiError::bad_request(
            "an HTTP/1.1 request needs a Host header (RFC 9112, section 3.2)",
        )),
        _ => Err(ApiError::bad_request(
            "an HTTP/1.1 request may have only one Host header (RFC 9112, section 3.2)",
        )),
    }
}

/// The header with which a Vault client asks for response wrapping (`-wrap-ttl`).
const WRAP_TTL: &str = "x-vault-wrap-ttl";

/// Refuses a request that asks for its answer to be wrapped: Tresor has no cubbyhole to keep a
/// wrapped answer in, and answering in clear a client that asked for a wrapping token would hand
/// a secret (a data key) to whoever it meant to pass the token to.
fn refuse_wrapping(headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(WRAP_TTL) {
        return Err(ApiError::bad_request(
            "response wrapping is not supported (X-Vault-Wrap-TTL, `-wrap-ttl`): Tresor has no cubbyhole to hold a wrapped answer; send the request without it",
        ));
    }
    Ok(())
}

/// Answers a request on a connection whose certificate chains to the client CA but names no
/// usable identity: 403 saying what is wrong with it (`reason`, about the client's own
/// certificate). Nothing is routed or run; the connection's failure was audited and counted
/// once, as a handshake failure (`no_principal`). Over HTTP/1.1 the connection then closes.
pub(crate) fn refuse_unidentified(reason: &str, head: bool, http1: bool) -> Response<Full<Bytes>> {
    let error = ApiError::new(
        StatusCode::FORBIDDEN,
        format!("{}: {reason}", tresor_wire::api::UNIDENTIFIED),
    );
    let mut response = respond::respond(Err(error), &respond::new_request_id(), "", head);
    if http1 {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    response
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
    let request_id = respond::new_request_id();
    let routed = route(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let routed = routed.as_ref().ok();
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
    let _ = Trail::new(state, caller, &request_id, routed, started).outcome_now(&result);
    state.metrics.record_refused_connection();
    state.count(routed, &result, started);
    respond::respond(
        result,
        &request_id,
        routed.map_or("", |r| r.mount.mount_type),
        request.method() == Method::HEAD,
    )
}
