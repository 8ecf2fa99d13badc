//! LIST `pins`: the pinning apps' names. None is Vault's bare 404.

use tresor_wire::api::{Listing, pins};

use super::mount::{READ, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::LIST_APPS, READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let apps = blocking(|| call.state.services.pins.list_pin_apps()).map_err(native)?;
    if apps.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(&Listing { keys: apps }))
}
