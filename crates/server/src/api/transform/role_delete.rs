//! DELETE `{tenant}/transform/role/{key}`: delete a role (its pseudonym key goes with it).

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::transform::Object;
use tresor_wire::api::transform;

use super::mount::{self, refusal};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::DELETE_ROLE, mount::WRITE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    blocking(|| transforms.delete(call.tenant(), Object::Role, call.key()))
        .map_err(|e| refusal(e, false))?;
    Ok(Reply::no_content())
}
