//! The HTTP API as both ends see it: every route's method and path under `/v1/`, and what
//! travels on it. The server routes requests by these declarations and the client builds its
//! requests from the same ones, so the two cannot disagree about a path (README.md describes
//! the API).
//!
//! - [`transit`]: each tenant is a Vault transit mount at `/v1/<tenant>/`.
//! - [`sys`]: Tresor's own routes under `/v1/sys/` (health, custody, tenants, approvals).
//! - [`pins`]: certificate pinning under `/v1/pins/` (docs/pinning.md).
//! - [`params`]: Vault's leniently typed request values (`"2"` for 2, `"1h"` for 3600).
//!
//! ```
//! use tresor_wire::api::{Method, transit};
//! assert_eq!(transit::ENCRYPT.method, Method::Post);
//! assert_eq!(transit::ENCRYPT.fill(&["payments", "card-pan"]), "payments/encrypt/card-pan");
//! assert_eq!(transit::HMAC.fill(&["payments", "email"]), "payments/hmac/email");
//! assert_eq!(
//!     transit::HMAC.fill(&["payments", "email", "sha2-512"]),
//!     "payments/hmac/email/sha2-512"
//! );
//! ```

pub mod params;
pub mod pins;
pub mod sys;
// Issue 16: Vault Transform on each tenant.
pub mod transform;
pub mod transit;

/// How the 403 to a client whose certificate chains to the client CA but names no usable
/// identity begins; what is wrong with the certificate follows after `": "`.
pub const UNIDENTIFIED: &str = "the client certificate names no usable identity";

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How a route is called. `Post` routes also answer `PUT`, and `List` routes `GET ?list=true`,
/// as in Vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`: read.
    Get,
    /// `POST` (or `PUT`): create, change or compute.
    Post,
    /// `DELETE`.
    Delete,
    /// Vault's `LIST` (or `GET` with `?list=true`).
    List,
}

impl Method {
    /// The HTTP method a client sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::List => "LIST",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One route: a method and a path template under `/v1/`, such as `{tenant}/encrypt/{key}`.
///
/// A template is `/`-separated segments, each literal text or a `{name}` placeholder standing
/// for one segment; the last may be optional (`{name?}`), then the route also matches without
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path template, without `/v1/`.
    pub path: &'static str,
}

/// One segment of a [`Route`]'s path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Literal text.
    Literal(&'static str),
    /// A `{name}` placeholder; `optional` for a last `{name?}`.
    Param {
        /// The placeholder's name.
        name: &'static str,
        /// Whether the segment may be left out (only the last one can).
        optional: bool,
    },
}

impl Route {
    /// A `GET` route.
    pub const fn get(path: &'static str) -> Route {
        Route {
            method: Method::Get,
            path,
        }
    }

    /// A `POST` route.
    pub const fn post(path: &'static str) -> Route {
        Route {
            method: Method::Post,
            path,
        }
    }

    /// A `DELETE` route.
    pub const fn delete(path: &'static str) -> Route {
        Route {
            method: Method::Delete,
            path,
        }
    }

    /// A `LIST` route.
    pub const fn list(path: &'static str) -> Route {
        Route {
            method: Method::List,
            path,
        }
    }

    /// The template's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment> {
        self.path.split('/').map(|segment| {
            match segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            {
                Some(name) => match name.strip_suffix('?') {
                    Some(name) => Segment::Param {
                        name,
                        optional: true,
                    },
                    None => Segment::Param {
                        name,
                        optional: false,
                    },
                },
                None => Segment::Literal(segment),
            }
        })
    }

    /// The path with `values` in its placeholders, in order; an optional last placeholder is
    /// left out (with its `/`) when `values` has none for it. Values are put in as given: the
    /// server refuses names that need escaping.
    ///
    /// # Panics
    /// If `values` has fewer values than required placeholders, or more than placeholders.
    pub fn fill(&self, values: &[&str]) -> String {
        let mut path = String::with_capacity(self.path.len() + 32);
        let mut values = values.iter();
        for segment in self.segments() {
            let text = match segment {
                Segment::Literal(text) => text,
                Segment::Param { optional, name } => match values.next() {
                    Some(value) => value,
                    None if optional => break,
                    None => panic!("route {} needs a value for {{{name}}}", self.path),
                },
            };
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(text);
        }
        assert!(
            values.next().is_none(),
            "route {} has fewer placeholders than values",
            self.path
        );
        path
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The answer of Vault's `LIST` routes: names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The names, sorted.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// An item of a `batch_input`: Vault echoes its `reference` in the item's result.
pub trait BatchItem<'a> {
    /// The caller's reference (empty if none).
    fn reference(&self) -> Cow<'a, str>;
}

/// The answer of a batch: one result per item of `batch_input`, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchResults<T> {
    /// The items' results.
    pub batch_results: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_order() {
        assert_eq!(sys::HEALTH.fill(&[]), "sys/health");
        assert_eq!(
            transit::DATAKEY.fill(&["t", "wrapped", "k"]),
            "t/datakey/wrapped/k"
        );
        assert_eq!(pins::MANIFEST.fill(&["ios"]), "pins/ios/manifest");
        assert_eq!(pins::MANIFEST.fill(&["ios", "3"]), "pins/ios/manifest/3");
        assert_eq!(
            transit::EXPORT.segments().last(),
            Some(Segment::Param {
                name: "version",
                optional: true
            })
        );
    }

    #[test]
    #[should_panic(expected = "needs a value for {key}")]
    fn missing_values_are_a_bug() {
        transit::ENCRYPT.fill(&["t"]);
    }
}
