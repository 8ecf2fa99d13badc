//! DELETE `{tenant}/transform/transformation/{key}`: delete a transformation; an fpe one's key is destroyed, so what it encoded can no longer be decoded.

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::transform::Object;
use tresor_wire::api::transform;

use super::mount::{self, refusal};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::DELETE_TRANSFORMATION, mount::WRITE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    blocking(|| transforms.delete(call.tenant(), Object::Transformation, call.key()))
        .map_err(|e| refusal(e, false))?;
    Ok(Reply::no_content())
}
