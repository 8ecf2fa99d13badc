//! GET `pins/sys/manifest-key`: the manifest signing key chain, every key signed by the one
//! before.

use tresor_wire::api::pins;

use super::mount::{READ, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::MANIFEST_KEY, READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::data(
        &blocking(|| call.state.services.pins.manifest_keys()).map_err(native)?,
    ))
}
