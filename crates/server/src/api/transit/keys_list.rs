//! LIST `{tenant}/keys` (or GET `?list=true`): the tenant's key names. No keys is Vault's bare
//! 404.

use tresor_wire::api::{Listing, transit};

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// List a tenant's keys.
pub(crate) const LIST: Operation = Operation::new("list", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::LIST_KEYS, LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let keys = blocking(|| call.vault().list_keys(call.tenant()))?;
    if keys.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(&Listing { keys }))
}
