//! LIST `{tenant}/transform/role`: the tenant's role names (none: Vault's bare 404).

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::transform::Object;
use tresor_wire::api::transform;

use super::mount::{self, refusal};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::LIST_ROLES, mount::LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let transforms = mount::transforms(call)?;
    mount::listing(blocking(|| transforms.list(call.tenant(), Object::Role)).map_err(|e| refusal(e, true))?)
}
