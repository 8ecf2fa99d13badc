//! GET `{tenant}/transform/role/{key}`: a role's transformations (never its key).

use serde_json::json;
use tresor_wire::api::transform;

use super::mount::{self, refusal};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::READ_ROLE, mount::READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    let role =
        blocking(|| transforms.role(call.tenant(), call.key())).map_err(|e| refusal(e, true))?;
    Ok(Reply::data(&json!({ "transformations": role.transformations })))
}
