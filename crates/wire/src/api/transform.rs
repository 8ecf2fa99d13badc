//! Transform: Vault's Transform secrets engine on each tenant at `/v1/<tenant>/transform/`, so
//! that Vault's transform clients (hvac's `secrets.transform` with `mount_point =
//! "<tenant>/transform"`) work unchanged (docs/anonymize.md).
//!
//! ```
//! use tresor_wire::api::transform;
//! assert_eq!(transform::ENCODE.fill(&["payroll", "analytics"]), "payroll/transform/encode/analytics");
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::params::Text;
use super::{BatchItem, Route};

/// POST `{tenant}/transform/role/{key}`: create or update a role.
pub const WRITE_ROLE: Route = Route::post("{tenant}/transform/role/{key}");
/// GET `{tenant}/transform/role/{key}`: a role.
pub const READ_ROLE: Route = Route::get("{tenant}/transform/role/{key}");
/// DELETE `{tenant}/transform/role/{key}`.
pub const DELETE_ROLE: Route = Route::delete("{tenant}/transform/role/{key}");
/// LIST `{tenant}/transform/role`.
pub const LIST_ROLES: Route = Route::list("{tenant}/transform/role");
/// POST `{tenant}/transform/transformation/{key}`: create or update a transformation.
pub const WRITE_TRANSFORMATION: Route = Route::post("{tenant}/transform/transformation/{key}");
/// GET `{tenant}/transform/transformation/{key}`.
pub const READ_TRANSFORMATION: Route = Route::get("{tenant}/transform/transformation/{key}");
/// DELETE `{tenant}/transform/transformation/{key}` (an fpe one's key is destroyed).
pub const DELETE_TRANSFORMATION: Route = Route::delete("{tenant}/transform/transformation/{key}");
/// LIST `{tenant}/transform/transformation`.
pub const LIST_TRANSFORMATIONS: Route = Route::list("{tenant}/transform/transformation");
/// POST `{tenant}/transform/template/{key}`: create or update a regex template.
pub const WRITE_TEMPLATE: Route = Route::post("{tenant}/transform/template/{key}");
/// GET `{tenant}/transform/template/{key}`.
pub const READ_TEMPLATE: Route = Route::get("{tenant}/transform/template/{key}");
/// DELETE `{tenant}/transform/template/{key}`.
pub const DELETE_TEMPLATE: Route = Route::delete("{tenant}/transform/template/{key}");
/// LIST `{tenant}/transform/template`.
pub const LIST_TEMPLATES: Route = Route::list("{tenant}/transform/template");
/// POST `{tenant}/transform/encode/{key}`: encode with a role, single or batch.
pub const ENCODE: Route = Route::post("{tenant}/transform/encode/{key}");
/// POST `{tenant}/transform/decode/{key}`: decode with a role, single or batch.
pub const DECODE: Route = Route::post("{tenant}/transform/decode/{key}");

/// A list of names, as a JSON list or Vault's comma-separated string.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Names {
    /// `["a", "b"]`.
    List(Vec<String>),
    /// `"a,b"`.
    Text(String),
}

impl Names {
    /// The names, trimmed, without empty ones.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Names::List(v) => v
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            Names::Text(t) => t
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// The body of [`WRITE_ROLE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRequest {
    /// The role's transformations.
    pub transformations: Option<Names>,
}

/// The body of [`WRITE_TRANSFORMATION`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransformationRequest<'a> {
    /// `fpe`, `pseudonym` or `masking`.
    #[serde(rename = "type", borrow, default)]
    pub kind: Text<'a>,
    /// The template's name (a built-in or the tenant's).
    #[serde(borrow, default)]
    pub template: Text<'a>,
    /// Vault sends `templates` (a list of one) too.
    #[serde(default)]
    pub templates: Option<Names>,
    /// `internal` (default) or `supplied`.
    #[serde(borrow, default)]
    pub tweak_source: Text<'a>,
    /// Masking only (default `*`).
    #[serde(borrow, default)]
    pub masking_character: Text<'a>,
    /// Roles that may use it (`*`: all).
    #[serde(default)]
    pub allowed_roles: Option<Names>,
}

/// The body of [`WRITE_TEMPLATE`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TemplateRequest<'a> {
    /// `regex`.
    #[serde(rename = "type", borrow, default)]
    pub kind: Text<'a>,
    /// The pattern; its capture groups are transformed.
    #[serde(borrow, default)]
    pub pattern: Text<'a>,
    /// A built-in alphabet's name (`builtin/numeric`, …).
    #[serde(borrow, default)]
    pub alphabet: Text<'a>,
}

/// The body of [`ENCODE`] and [`DECODE`]: one value, or `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CodeRequest<'a> {
    /// The value.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub value: Text<'a>,
    /// Which of the role's transformations (needed when it has more than one).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub transformation: Text<'a>,
    /// A supplied tweak, base64.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tweak: Text<'a>,
    /// Many values.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<Vec<CodeItem<'a>>>,
}

/// One item of a `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CodeItem<'a> {
    /// The value.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub value: Text<'a>,
    /// Which transformation (default: the request's).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub transformation: Text<'a>,
    /// A supplied tweak, base64 (default: the request's).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub tweak: Text<'a>,
    /// Echoed in the item's result.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub reference: Text<'a>,
}

impl<'a> BatchItem<'a> for CodeItem<'a> {
    fn reference(&self) -> Cow<'a, str> {
        self.reference.clone().unwrap_or_default()
    }
}

/// The answer of [`ENCODE`], and one item of its batch results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EncodeResult<'a> {
    /// The encoded value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoded_value: Option<String>,
    /// The supplied tweak, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tweak: Option<String>,
    /// Why the item failed (batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The item's reference.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub reference: Cow<'a, str>,
}

/// The answer of [`DECODE`], and one item of its batch results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecodeResult<'a> {
    /// The decoded value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded_value: Option<String>,
    /// Why the item failed (batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The item's reference.
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub reference: Cow<'a, str>,
}
