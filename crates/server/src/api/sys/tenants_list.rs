//! LIST `sys/tenants`: every tenant's name.

use tresor_wire::api::{Listing, sys};

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// List tenants.
pub(crate) const LIST: Operation = Operation::new("tenant-list", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::LIST_TENANTS, LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let tenants = blocking(|| call.vault().list_tenants()).map_err(ApiError::from_native)?;
    Ok(Reply::data(&Listing { keys: tenants }))
}
