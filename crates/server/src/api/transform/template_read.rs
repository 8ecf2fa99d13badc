//! GET `{tenant}/transform/template/{key}`: a template of the tenant's.

use tresor_wire::api::transform;

use super::mount::{self, refusal};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transform::READ_TEMPLATE, mount::READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    let t = blocking(|| transforms.template(call.tenant(), call.key()))
        .map_err(|e| refusal(e, true))?;
    Ok(Reply::data(&t))
}
