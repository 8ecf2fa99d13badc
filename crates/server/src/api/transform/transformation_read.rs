//! GET `{tenant}/transform/transformation/{key}`: a transformation as Vault describes it (never
//! its key). An fpe transformation has one key for life, reported as version 1.

use serde_json::json;
use tresor_wire::api::transform;

use super::mount::{self, refusal};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::transform::{Kind, TweakSource};

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transform::READ_TRANSFORMATION, mount::READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    let t = blocking(|| transforms.transformation(call.tenant(), call.key()))
        .map_err(|e| refusal(e, true))?;
    let mut data = json!({
        "type": t.kind.name(),
        "template": t.template,
        "templates": [t.template],
        "allowed_roles": t.allowed_roles,
        "created_at": t.created_at,
    });
    match t.kind {
        Kind::Fpe => {
            data["tweak_source"] = json!(match t.tweak_source {
                TweakSource::Internal => "internal",
                TweakSource::Supplied => "supplied",
            });
            data["key_version"] = json!(1);
        }
        Kind::Masking => data["masking_character"] = json!(t.masking_character.to_string()),
        Kind::Pseudonym => {}
    }
    Ok(Reply::data(&data))
}
