//! POST `{tenant}/transform/role/{key}`: create a role (it gets its own pseudonym key) or
//! change its transformations.

use tresor_wire::api::transform::{self, RoleRequest};

use super::mount::{self, refusal};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transform::WRITE_ROLE, mount::WRITE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: RoleRequest = params::body(call.body)?;
    let names = body
        .transformations
        .map(|n| n.to_vec())
        .ok_or_else(|| ApiError::bad_request("missing transformations"))?;
    let transforms = mount::transforms(call)?;
    blocking(|| transforms.put_role(call.tenant(), call.key(), &names))
        .map_err(|e| refusal(e, false))?;
    Ok(Reply::no_content())
}
