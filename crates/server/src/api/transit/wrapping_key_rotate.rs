//! POST `{tenant}/wrapping_key/rotate`: replaces the tenant's wrapping key (Tresor's own route;
//! imports wrapped to the old key are refused from then on).

use serde::Serialize;
use tresor_wire::api::transit;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Replace the tenant's wrapping key.
pub(crate) const ROTATE_WRAPPING_KEY: Operation =
    Operation::new("wrapping-key-rotate", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::ROTATE_WRAPPING_KEY, ROTATE_WRAPPING_KEY, handle).mutating();

#[derive(Serialize)]
struct Data {
    public_key: String,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let public_key = blocking(|| call.vault().rotate_wrapping_key(call.tenant()))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&Data { public_key }))
}
