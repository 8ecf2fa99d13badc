//! POST `{tenant}/transform/transformation/{key}`: create a transformation (an fpe one gets its
//! one key) or change its allowed roles and masking character. Its type, template and tweak
//! source never change: rotating is a new transformation (docs/anonymize.md).

use tresor_wire::api::transform::{self, TransformationRequest};

use super::mount::{self, refusal};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::transform::{Kind, TransformationSpec, TweakSource};

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transform::WRITE_TRANSFORMATION, mount::WRITE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: TransformationRequest = params::body(call.body)?;
    let spec = spec(&body)?;
    let transforms = mount::transforms(call)?;
    blocking(|| transforms.put_transformation(call.tenant(), call.key(), &spec))
        .map_err(|e| refusal(e, false))?;
    Ok(Reply::no_content())
}

fn spec(body: &TransformationRequest<'_>) -> Result<TransformationSpec, ApiError> {
    let kind = Kind::parse(
        body.kind
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("missing type"))?,
    )
    .map_err(|e| refusal(e, false))?;
    let from_list = body.templates.as_ref().map(|t| t.to_vec()).unwrap_or_default();
    if from_list.len() > 1 {
        return Err(ApiError::bad_request("a transformation has one template"));
    }
    let template = body
        .template
        .as_deref()
        .map(str::to_owned)
        .or(from_list.into_iter().next())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing template"))?;
    let tweak_source = match body.tweak_source.as_deref() {
        None | Some("") | Some("internal") => TweakSource::Internal,
        Some("supplied") => TweakSource::Supplied,
        Some("generated") => {
            return Err(ApiError::bad_request(
                "tweak_source `generated` is not offered: use internal or supplied",
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown tweak_source `{}`: use internal or supplied",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let mut mask = body.masking_character.as_deref().unwrap_or("*").chars();
    let masking_character = match (mask.next(), mask.next()) {
        (None, _) => '*',
        (Some(c), None) if !c.is_control() => c,
        _ => {
            return Err(ApiError::bad_request(
                "masking_character is one printable character",
            ));
        }
    };
    let allowed_roles = body
        .allowed_roles
        .as_ref()
        .map(|r| r.to_vec())
        .unwrap_or_default();
    Ok(TransformationSpec {
        kind,
        template,
        tweak_source,
        masking_character,
        allowed_roles,
    })
}
