//! LIST `{tenant}/transform/template`: the tenant's own template names (the built-ins are not listed).

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::transform::Object;
use tresor_wire::api::transform;

use super::mount::{self, refusal};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::LIST_TEMPLATES, mount::LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    mount::listing(
        blocking(|| transforms.list(call.tenant(), Object::Template)).map_err(|e| refusal(e, true))?,
    )
}
