//! DELETE `{tenant}/transform/template/{key}`: delete a template no transformation uses.

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::transform::Object;
use tresor_wire::api::transform;

use super::mount::{self, refusal};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::DELETE_TEMPLATE, mount::WRITE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    blocking(|| transforms.delete(call.tenant(), Object::Template, call.key()))
        .map_err(|e| refusal(e, false))?;
    Ok(Reply::no_content())
}
