//! From method and path to an endpoint and its placeholders, or to Vault's answers for what no
//! endpoint serves: 404 `unsupported path` when no route has the path, 405 `unsupported
//! operation` when routes have it but not with this method (and the few mount-wide rules a
//! [`Mount`] declares).
//!
//! The routes are compiled once, from the registry, when the first request comes; routing a
//! request splits its path into segments on the stack and compares them with the templates of
//! one mount, without allocating.

use std::borrow::Cow;

use hyper::Method;
use tresor_wire::api::{self, Route, Segment};

use super::endpoint::{Endpoint, Mount, ParamCheck, Prefix};
use super::reply::ApiError;

use super::path_values::{MAX_SEGMENTS, Params};

/// The request's method as routes see it: `PUT` is `POST`, and `GET ?list=true` is Vault's
/// `LIST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Head,
    Post,
    Delete,
    List,
    Other,
}

impl Verb {
    fn of(method: &Method, query: Option<&str>) -> Verb {
        match *method {
            Method::GET if query_flag(query, "list") => Verb::List,
            Method::GET => Verb::Get,
            Method::HEAD => Verb::Head,
            Method::POST | Method::PUT => Verb::Post,
            Method::DELETE => Verb::Delete,
            _ if method.as_str() == "LIST" => Verb::List,
            _ => Verb::Other,
        }
    }

    /// Whether a route declared with `method` takes this verb.
    fn takes(self, method: api::Method, answers_head: bool) -> bool {
        matches!(
            (method, self),
            (api::Method::Get, Verb::Get)
                | (api::Method::Post, Verb::Post)
                | (api::Method::Delete, Verb::Delete)
                | (api::Method::List, Verb::List)
        ) || (answers_head && self == Verb::Head)
    }
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

/// A request's path segments (after `/v1/`), on the stack.
struct Segments<'p> {
    items: [&'p str; MAX_SEGMENTS],
    /// How many there are (only the first [`MAX_SEGMENTS`] are kept).
    count: usize,
}

impl<'p> Segments<'p> {
    /// `None` if a segment is empty (`a//b`).
    fn split(path: &'p str) -> Option<Segments<'p>> {
        let mut segments = Segments {
            items: [""; MAX_SEGMENTS],
            count: 0,
        };
        for segment in path.split('/') {
            if segment.is_empty() {
                return None;
            }
            if let Some(slot) = segments.items.get_mut(segments.count) {
                *slot = segment;
            }
            segments.count += 1;
        }
        Some(segments)
    }

    fn get(&self, i: usize) -> Option<&'p str> {
        (i < self.count.min(MAX_SEGMENTS)).then(|| self.items[i])
    }
}

/// A placeholder of a compiled route: its name, its segment, and the check its value passes.
#[derive(Debug)]
struct Placeholder {
    name: &'static str,
    at: usize,
    check: Option<ParamCheck>,
}

/// A route's template, compiled.
#[derive(Debug)]
struct Template {
    segments: Box<[Segment]>,
    /// Segments without the optional last one.
    required: usize,
}

impl Template {
    fn new(route: &Route) -> Template {
        let segments: Box<[Segment]> = route.segments().collect();
        let optional = |s: &Segment| matches!(s, Segment::Param { optional: true, .. });
        assert!(
            segments.len() <= MAX_SEGMENTS
                && segments[..segments.len() - 1].iter().all(|s| !optional(s)),
            "route {route}: at most {MAX_SEGMENTS} segments, only the last one optional"
        );
        let required = segments.len() - segments.iter().filter(|s| optional(s)).count();
        Template { segments, required }
    }

    /// Whether `path` has this shape; a placeholder at `barred` (a reserved segment) matches
    /// nothing.
    fn matches(&self, path: &Segments<'_>, barred: Option<usize>) -> bool {
        (self.required..=self.segments.len()).contains(&path.count)
            && self
                .segments
                .iter()
                .zip(&path.items[..path.count])
                .enumerate()
                .all(|(i, (segment, value))| match segment {
                    Segment::Literal(text) => text == value,
                    Segment::Param { .. } => barred != Some(i),
                })
    }
}

/// An endpoint, compiled.
#[derive(Debug)]
struct Compiled {
    endpoint: &'static Endpoint,
    /// Its position in the registry.
    index: usize,
    template: Template,
    placeholders: Box<[Placeholder]>,
    /// The placeholders' names, in the same order.
    names: Box<[&'static str]>,
}

/// A mount, compiled.
#[derive(Debug)]
struct CompiledMount {
    mount: &'static Mount,
    routes: Vec<Compiled>,
    shapes: Vec<(Route, Template)>,
    /// The segments after the prefix that its routes use (its resources).
    resources: Vec<&'static str>,
}

/// Every route of the API, by mount.
#[derive(Debug)]
pub(crate) struct Router {
    mounts: Vec<CompiledMount>,
}

/// A request's endpoint and path placeholders.
#[derive(Debug)]
pub(crate) struct Routed<'p> {
    pub(crate) endpoint: &'static Endpoint,
    /// The endpoint's position in the registry.
    pub(crate) index: usize,
    pub(crate) mount: &'static Mount,
    pub(crate) params: Params<'p>,
}

impl<'p> Routed<'p> {
    /// The tenant the request acts on (`{tenant}`).
    pub(crate) fn tenant(&self) -> Option<&'p str> {
        self.params.get("tenant")
    }

    /// The key the request acts on: `{key}`; for pins, `{app}` or `{app}/{kid}`.
    pub(crate) fn key(&self) -> Option<Cow<'p, str>> {
        if let Some(key) = self.params.get("key") {
            return Some(Cow::Borrowed(key));
        }
        let app = self.params.get("app")?;
        Some(match self.params.get("kid") {
            Some(kid) => Cow::Owned(format!("{app}/{kid}")),
            None => Cow::Borrowed(app),
        })
    }
}

impl Router {
    /// Compiles `registry` (mounts and their endpoints, in registration order).
    ///
    /// # Panics
    /// On a declaration bug: a route outside its mount's prefix, a bad template, or two
    /// endpoints with one method and path.
    pub(crate) fn new(
        registry: &'static [(&'static Mount, &'static [&'static Endpoint])],
    ) -> Router {
        let mut index = 0;
        let mut mounts = Vec::new();
        for (mount, endpoints) in registry {
            let mut routes: Vec<Compiled> = Vec::new();
            for endpoint in endpoints.iter().copied() {
                let template = Template::new(&endpoint.route);
                let starts_right = match (mount.prefix, template.segments[0]) {
                    (Prefix::Literal(prefix), Segment::Literal(first)) => prefix == first,
                    (Prefix::Named(_), Segment::Param { .. }) => true,
                    (Prefix::NamedThen(_, second), Segment::Param { .. }) => {
                        template.segments.get(1) == Some(&Segment::Literal(second))
                    }
                    _ => false,
                };
                assert!(
                    starts_right,
                    "route {} is outside its mount",
                    endpoint.route
                );
                let placeholders = template
                    .segments
                    .iter()
                    .enumerate()
                    .filter_map(|(at, segment)| match segment {
                        Segment::Param { name, .. } => Some(Placeholder {
                            name,
                            at,
                            check: find(endpoint.checks, name).or(find(mount.checks, name)),
                        }),
                        Segment::Literal(_) => None,
                    })
                    .collect::<Box<[Placeholder]>>();
                let names = placeholders.iter().map(|p| p.name).collect();
                let same = |other: &Compiled| {
                    other.endpoint.route.path == endpoint.route.path
                        && other.endpoint.route.method == endpoint.route.method
                };
                assert!(
                    !routes.iter().any(same),
                    "route {} is declared twice",
                    endpoint.route
                );
                routes.push(Compiled {
                    endpoint,
                    index,
                    template,
                    placeholders,
                    names,
                });
                index += 1;
            }
            let mut resources: Vec<&'static str> = Vec::new();
            for route in &routes {
                if let Some(Segment::Literal(resource)) = route.template.segments.get(1) {
                    if !resources.contains(resource) {
                        resources.push(resource);
                    }
                }
            }
            mounts.push(CompiledMount {
                mount,
                routes,
                shapes: mount
                    .shapes
                    .iter()
                    .map(|s| (*s, Template::new(s)))
                    .collect(),
                resources,
            });
        }
        Router { mounts }
    }

    /// Routes a request.
    pub(crate) fn route<'p>(
        &'static self,
        method: &Method,
        path: &'p str,
        query: Option<&str>,
    ) -> Result<Routed<'p>, ApiError> {
        let segments = path
            .strip_prefix("/v1/")
            .and_then(|rest| Segments::split(rest.trim_end_matches('/')))
            .ok_or_else(ApiError::unsupported_path)?;
        let mount = self.mount(segments.items[0], segments.get(1), path)?;
        let verb = Verb::of(method, query);
        // `pins/sys/…` is the mount's own area: only its exact routes.
        let reserved = segments
            .get(1)
            .is_some_and(|s| mount.mount.reserved.contains(&s));
        let barred = reserved.then_some(1);
        let mut path_matches = false;
        for route in &mount.routes {
            if !route.template.matches(&segments, barred) {
                continue;
            }
            path_matches = true;
            if verb.takes(route.endpoint.route.method, route.endpoint.answers_head) {
                return route.bind(mount.mount, &segments);
            }
        }
        Err(if reserved {
            ApiError::unsupported_path()
        } else if path_matches
            || mount.shapes.iter().any(|(shape, template)| {
                template.matches(&segments, None) && !verb.takes(shape.method, false)
            })
            || (mount.mount.resources_answer_405
                && segments
                    .get(1)
                    .is_some_and(|s| mount.resources.contains(&s)))
        {
            ApiError::unsupported_operation()
        } else {
            ApiError::unsupported_path()
        })
    }

    /// The mount of paths starting with `first`.
    fn mount(
        &self,
        first: &str,
        second: Option<&str>,
        path: &str,
    ) -> Result<&CompiledMount, ApiError> {
        let literal = self
            .mounts
            .iter()
            .find(|m| matches!(m.mount.prefix, Prefix::Literal(prefix) if prefix == first));
        if let Some(mount) = literal {
            return Ok(mount);
        }
        for mount in &self.mounts {
            if let Prefix::NamedThen(check, literal) = mount.mount.prefix {
                if second == Some(literal) {
                    check(first, path)?;
                    return Ok(mount);
                }
            }
        }
        for mount in &self.mounts {
            if let Prefix::Named(check) = mount.mount.prefix {
                check(first, path)?;
                return Ok(mount);
            }
        }
        Err(ApiError::unsupported_path())
    }
}

impl Compiled {
    /// The placeholders' values, each checked in path order (a named mount's prefix was
    /// checked already).
    fn bind<'p>(
        &'static self,
        mount: &'static Mount,
        segments: &Segments<'p>,
    ) -> Result<Routed<'p>, ApiError> {
        let mut values = [""; MAX_SEGMENTS];
        for (value, placeholder) in values.iter_mut().zip(self.placeholders.iter()) {
            let Some(segment) = segments.get(placeholder.at) else {
                continue;
            };
            if let Some(check) = placeholder.check.filter(|_| placeholder.at > 0) {
                check(segment)?;
            }
            *value = segment;
        }
        Ok(Routed {
            endpoint: self.endpoint,
            index: self.index,
            mount,
            params: Params::new(&self.names, values),
        })
    }
}

fn find(checks: &[(&'static str, ParamCheck)], name: &str) -> Option<ParamCheck> {
    checks
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, check)| *check)
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;

    use super::*;

    fn list() -> Method {
        Method::from_bytes(b"LIST").unwrap()
    }

    /// The endpoint's name and the placeholders' values.
    fn route(method: &Method, path: &str, query: Option<&str>) -> Result<String, ApiError> {
        super::super::route(method, path, query).map(|routed| {
            let mut text = routed.endpoint.name().to_owned();
            for name in routed.params.names() {
                if let Some(value) = routed.params.get(name) {
                    text.push_str(&format!(" {name}={value}"));
                }
            }
            text
        })
    }

    fn status(method: &Method, path: &str) -> StatusCode {
        route(method, path, None).unwrap_err().status
    }

    #[test]
    fn routes_like_vault() {
        let ok = |text: &str| Ok(text.to_owned());
        assert_eq!(
            route(&Method::POST, "/v1/payments/encrypt/card", None),
            ok("encrypt tenant=payments key=card")
        );
        assert_eq!(
            route(&Method::PUT, "/v1/payments/decrypt/card", None),
            ok("decrypt tenant=payments key=card")
        );
        assert_eq!(
            route(&Method::GET, "/v1/payments/keys/card", None),
            ok("read tenant=payments key=card")
        );
        assert_eq!(
            route(&list(), "/v1/payments/keys", None),
            ok("list tenant=payments")
        );
        assert_eq!(
            route(&Method::GET, "/v1/payments/keys/", Some("list=true")),
            ok("list tenant=payments")
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/hmac/card/sha2-512", None),
            ok("hmac tenant=payments key=card algorithm=sha2-512")
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/hmac/card", None),
            ok("hmac tenant=payments key=card")
        );
        assert_eq!(
            route(&Method::POST, "/v1/payments/datakey/wrapped/card", None),
            ok("datakey tenant=payments form=wrapped key=card")
        );
        assert_eq!(route(&Method::HEAD, "/v1/sys/health", None), ok("health"));
        assert_eq!(
            route(&Method::GET, "/v1/sys/tenants/Odd", None),
            ok("tenant-read tenant=Odd")
        );
    }

    #[test]
    fn vault_refusals() {
        assert_eq!(
            status(&Method::DELETE, "/v1/payments/encrypt/card"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            status(&Method::POST, "/v1/payments/nope/card"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&Method::POST, "/v2/payments/encrypt/card"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&Method::POST, "/v1/Payments/encrypt/card"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&Method::POST, "/v1/payments/encrypt/bad%2Fname"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&Method::POST, "/v1/payments//card"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(&Method::POST, "/v1/payments/datakey/both/card"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&Method::POST, "/v1/audit/encrypt/card"),
            StatusCode::NOT_FOUND
        );
        // Below a resource of sys/, what no route serves is an operation it does not have.
        assert_eq!(
            status(&Method::GET, "/v1/sys/tenants/a/b/c/d/e/f/g/h"),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(status(&Method::GET, "/v1/sys/nope"), StatusCode::NOT_FOUND);
        assert_eq!(
            route(&Method::GET, "/v1/Payments/encrypt/card", None)
                .unwrap_err()
                .message,
            "no handler for route \"/v1/Payments/encrypt/card\": not a tenant mount"
        );
    }

    #[test]
    fn the_registry_compiles() {
        // Every template parses, sits in its mount, and no method and path is declared twice.
        let routes: usize = super::super::ROUTER
            .mounts
            .iter()
            .map(|m| m.routes.len())
            .sum();
        assert_eq!(routes, super::super::endpoints().count());
    }
}
