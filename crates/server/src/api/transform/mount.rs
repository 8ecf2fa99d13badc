//! What the transform endpoints share: the mount (`/v1/<tenant>/transform/`, Vault's Transform
//! engine on each tenant, docs/anonymize.md), its policy operations, how the service's
//! refusals become answers, and what encode and decode share.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;
use tresor_core::Error;
use tresor_wire::api::transform::{CodeItem, CodeRequest};
use zeroize::Zeroizing;

use crate::api::batch::{self, BatchStatus};
use crate::api::endpoint::{Call, Mount, Prefix, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};
use crate::transform::{Coder, TransformError, Transforms};

/// `/v1/<tenant>/transform/…`.
pub(crate) const MOUNT: Mount = Mount {
    checks: &[("key", name)],
    ..Mount::new(
        Prefix::NamedThen(crate::api::transit::mount::tenant_mount, "transform"),
        "transform",
    )
};

/// Encode values with a role (`{key}` is the role). A lookup tool: give it to the pipeline
/// that makes extracts, not to analysts (docs/anonymize.md).
pub(crate) const ENCODE: Operation = Operation::new("transform-encode", Scope::Key);
/// Decode values with a role (`{key}` is the role).
pub(crate) const DECODE: Operation = Operation::new("transform-decode", Scope::Key);
/// Create, change or delete a role, transformation or template (`{key}` is its name).
pub(crate) const WRITE: Operation = Operation::new("transform-write", Scope::Key);
/// Read a role, transformation or template (`{key}` is its name).
pub(crate) const READ: Operation = Operation::new("transform-read", Scope::Key);
/// List a tenant's roles, transformations or templates.
pub(crate) const LIST: Operation = Operation::new("transform-list", Scope::Tenant);

fn name(name: &str) -> Result<(), ApiError> {
    tresor_core::keys::validate_key_name(name).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid name `{}`",
            name.chars().take(64).collect::<String>()
        ))
    })
}

/// The service, once the tenant is known to exist and be unlocked.
pub(crate) fn transforms<'a>(call: &Call<'a>) -> Result<&'a Transforms, ApiError> {
    let tenant = call.tenant();
    let info = blocking(|| call.vault().tenant_info(tenant))?;
    if info.locked {
        return Err(Error::TenantLocked(tenant.to_owned()).into());
    }
    Ok(&call.state.services.transforms)
}

/// A refusal of the service as an answer: 404 for a missing object on reads, else Vault's 400.
pub(crate) fn refusal(error: TransformError, read: bool) -> ApiError {
    match error {
        TransformError::Vault(e) => ApiError::from(e),
        TransformError::NotFound { .. } if read => {
            ApiError::new(hyper::StatusCode::NOT_FOUND, error.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Names listed, or Vault's bare 404 when there are none.
pub(crate) fn listing(names: Vec<String>) -> Result<Reply, ApiError> {
    if names.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(&tresor_wire::api::Listing { keys: names }))
}

// Encode and decode: one value or a batch, each item with its own transformation and tweak
// (defaulting to the request's), coders made once per transformation.

/// Which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Encode,
    Decode,
}

/// An item's outcome: the value and the tweak to echo.
type Outcome = (Zeroizing<String>, Option<String>);

/// Serves `body`, answering each value with `answer`.
pub(crate) fn run<'b, R: Serialize>(
    call: &Call<'_>,
    body: &'b CodeRequest<'b>,
    direction: Direction,
    mut answer: impl FnMut(Result<Outcome, ApiError>, Cow<'b, str>) -> R,
) -> Result<Reply, ApiError> {
    let transforms = transforms(call)?;
    let mut coders: HashMap<Option<String>, Result<Coder, ApiError>> = HashMap::new();
    let mut one = |value: Option<&str>, transformation: Option<&str>, tweak: Option<&str>| {
        let value = value.ok_or_else(|| ApiError::bad_request("missing value"))?;
        call.inputs.note(value.as_bytes());
        let tweak_bytes = params::optional_base64("tweak", tweak)?;
        let key = transformation.filter(|t| !t.is_empty()).map(str::to_owned);
        let coder = coders
            .entry(key.clone())
            .or_insert_with(|| coder(call, transforms, key.as_deref()));
        let coder = coder.as_ref().map_err(Clone::clone)?;
        let out = match direction {
            Direction::Encode => coder.encode(value, tweak_bytes.as_deref().map(|t| &t[..])),
            Direction::Decode => coder.decode(value, tweak_bytes.as_deref().map(|t| &t[..])),
        }
        .map_err(|e| refusal(e, false))?;
        Ok((out, tweak.filter(|t| !t.is_empty()).map(str::to_owned)))
    };
    let Some(items) = &body.batch_input else {
        let outcome = one(
            body.value.as_deref(),
            body.transformation.as_deref(),
            body.tweak.as_deref(),
        )?;
        return Ok(Reply::data(&answer(Ok(outcome), Cow::Borrowed(""))));
    };
    batch::run(
        &call.state.limits,
        items,
        BatchStatus::AlwaysOk,
        |item: &'b CodeItem<'b>| {
            one(
                item.value.as_deref(),
                item.transformation
                    .as_deref()
                    .or(body.transformation.as_deref()),
                item.tweak.as_deref().or(body.tweak.as_deref()),
            )
        },
        |valid| Ok(valid.iter().map(|o| Ok((o.0.clone(), o.1.clone()))).collect()),
        &mut answer,
    )
}

fn coder(
    call: &Call<'_>,
    transforms: &Transforms,
    transformation: Option<&str>,
) -> Result<Coder, ApiError> {
    blocking(|| transforms.coder(call.tenant(), call.key(), transformation))
        .map_err(|e| refusal(e, false))
}
