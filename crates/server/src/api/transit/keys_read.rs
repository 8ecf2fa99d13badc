//! GET `{tenant}/keys/{key}`: Vault's key description.

use tresor_wire::api::transit;

use super::mount::key_reply;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Read a key's metadata.
pub(crate) const READ: Operation = Operation::new("read", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::READ_KEY, READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let info = blocking(|| call.vault().key_info(call.tenant(), call.key()))
        .map_err(ApiError::from_read)?;
    Ok(key_reply(&info))
}
