//! What an API operation declares, once, in its own file: its [`Endpoint`] (route, policy
//! operation, whether it changes state, handler), and what every endpoint of a [`Mount`]
//! shares. The router, authorization, the audit trail, the metrics and the policy vocabulary
//! are all read from these declarations (see the registry in `api/mod.rs`).

use tresor_core::Vault;
use tresor_wire::api::Route;

use super::inputs::InputLog;
use super::path_values::Params;
use super::reply::{ApiError, Reply};
use super::{ApiState, Caller};
use crate::policy::{AccessRequest, Decision, Operation};

/// Serves one routed, authorized request.
pub(crate) type Handler = fn(&Call<'_>) -> Result<Reply, ApiError>;

/// Checks a path placeholder's value when the request is routed, before it is authorized: a
/// refusal is the answer (and the audit line names no operation).
pub(crate) type ParamCheck = fn(&str) -> Result<(), ApiError>;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    /// Those a policy grants this operation, on the request's `{tenant}` and `{key}`.
    Policy(Operation),
    /// Any authenticated client; the name is what audit lines and metrics call the route.
    Open(&'static str),
}

/// One operation of the HTTP API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint {
    /// Method and path, shared with the client (`tresor_wire::api`).
    pub(crate) route: Route,
    /// What a policy must grant.
    pub(crate) access: Access,
    /// Whether serving it changes state: then its `started` audit line is written before the
    /// handler runs, and the request fails if that line cannot be written.
    pub(crate) mutates: bool,
    /// Also answers `HEAD` (as `GET`, without a body).
    pub(crate) answers_head: bool,
    /// Checks of its own path placeholders (beyond its mount's), by placeholder name.
    pub(crate) checks: &'static [(&'static str, ParamCheck)],
    /// Serves it.
    pub(crate) handler: Handler,
}

impl Endpoint {
    /// An endpoint a policy must grant `operation` for.
    pub(crate) const fn new(route: Route, operation: Operation, handler: Handler) -> Endpoint {
        Endpoint::with_access(route, Access::Policy(operation), handler)
    }

    /// An endpoint any authenticated client may call, audited and counted as `name`.
    pub(crate) const fn open(route: Route, name: &'static str, handler: Handler) -> Endpoint {
        Endpoint::with_access(route, Access::Open(name), handler)
    }

    const fn with_access(route: Route, access: Access, handler: Handler) -> Endpoint {
        Endpoint {
            route,
            access,
            mutates: false,
            answers_head: false,
            checks: &[],
            handler,
        }
    }

    /// Marks it as changing state (see [`Endpoint::mutates`]).
    pub(crate) const fn mutating(self) -> Endpoint {
        Endpoint {
            mutates: true,
            ..self
        }
    }

    /// Lets it answer `HEAD` too.
    pub(crate) const fn answering_head(self) -> Endpoint {
        Endpoint {
            answers_head: true,
            ..self
        }
    }

    /// Adds checks of its own path placeholders.
    pub(crate) const fn checking(self, checks: &'static [(&'static str, ParamCheck)]) -> Endpoint {
        Endpoint { checks, ..self }
    }

    /// The policy operation, if one is needed.
    pub(crate) fn operation(&self) -> Option<Operation> {
        match self.access {
            Access::Policy(operation) => Some(operation),
            Access::Open(_) => None,
        }
    }

    /// The name audit lines and metrics give its requests.
    pub(crate) fn name(&self) -> &'static str {
        match self.access {
            Access::Policy(operation) => operation.name(),
            Access::Open(name) => name,
        }
    }
}

/// What the endpoints under one first path segment share: `sys/…`, `pins/…`, or a tenant's
/// transit mount `{tenant}/…`.
#[derive(Debug)]
pub(crate) struct Mount {
    /// How its paths begin.
    pub(crate) prefix: Prefix,
    /// The `mount_type` of its answers' envelope.
    pub(crate) mount_type: &'static str,
    /// Checks of path placeholders its endpoints share, by placeholder name.
    pub(crate) checks: &'static [(&'static str, ParamCheck)],
    /// Paths below one of its resources (the segment after the prefix in its routes, such as
    /// `tenants` in `sys/tenants/…`) that no endpoint serves are answered 405 rather than 404.
    pub(crate) resources_answer_405: bool,
    /// Segments right after the prefix that are its own area, never a placeholder's value
    /// (`pins/sys/…` is never an app): there only exact routes are served, and anything else is
    /// 404 whatever the method.
    pub(crate) reserved: &'static [&'static str],
    /// Path shapes served by one method only: a path of this shape with another method is 405
    /// even when no endpoint has its last segment (`pins/{app}/keys/{kid}/{action}`).
    pub(crate) shapes: &'static [Route],
}

/// How a mount's paths begin.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prefix {
    /// With this segment (`sys`, `pins`).
    Literal(&'static str),
    /// With a name (a tenant), checked with the whole path before any route is tried.
    Named(fn(name: &str, path: &str) -> Result<(), ApiError>),
    /// With a name checked as for `Named`, then this segment (a tenant's `transform/` engine):
    /// tried before the `Named` mounts.
    NamedThen(
        fn(name: &str, path: &str) -> Result<(), ApiError>,
        &'static str,
    ),
}

impl Mount {
    /// A mount whose unserved paths are 404 and wrong methods 405, as in Vault.
    pub(crate) const fn new(prefix: Prefix, mount_type: &'static str) -> Mount {
        Mount {
            prefix,
            mount_type,
            checks: &[],
            resources_answer_405: false,
            reserved: &[],
            shapes: &[],
        }
    }
}

/// One request as a handler sees it.
pub(crate) struct Call<'a> {
    pub(crate) state: &'a ApiState,
    pub(crate) caller: &'a Caller,
    pub(crate) params: &'a Params<'a>,
    pub(crate) query: Option<&'a str>,
    pub(crate) body: &'a [u8],
    /// Where the request's inputs are noted (as audit HMACs).
    pub(crate) inputs: &'a InputLog,
    /// Writes the request's `started` audit line. Endpoints that do not always change state
    /// call it before the change they do make (encrypt's upsert creating a key): if the line
    /// cannot be written, the change does not happen.
    pub(crate) before_change: &'a dyn Fn() -> Result<(), ApiError>,
}

impl<'a> Call<'a> {
    /// The vault.
    pub(crate) fn vault(&self) -> &'a Vault {
        &self.state.services.vault
    }

    /// A placeholder of the path (`None` for an optional one left out).
    pub(crate) fn param(&self, name: &str) -> Option<&'a str> {
        self.params.get(name)
    }

    /// A placeholder every path of the endpoint has.
    ///
    /// # Panics
    /// If the endpoint's route has no such placeholder (a declaration bug the endpoint's tests
    /// find).
    pub(crate) fn path(&self, name: &str) -> &'a str {
        self.param(name)
            .unwrap_or_else(|| panic!("the route declares no {{{name}}}"))
    }

    /// `{tenant}`.
    pub(crate) fn tenant(&self) -> &'a str {
        self.path("tenant")
    }

    /// `{key}`.
    pub(crate) fn key(&self) -> &'a str {
        self.path("key")
    }

    /// Whether the caller may also do `operation` on this request's tenant and key (encrypt
    /// creates a missing key when the caller may create it).
    pub(crate) fn may(&self, operation: Operation) -> bool {
        let request = AccessRequest {
            principal: &self.caller.principal,
            operation,
            tenant: self.param("tenant"),
            key: self.param("key"),
            source: Some(self.caller.address.ip()),
        };
        matches!(
            self.state.policies.current().authorize(&request),
            Decision::Allow(_)
        )
    }
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
