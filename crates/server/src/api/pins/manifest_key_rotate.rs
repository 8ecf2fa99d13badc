//! POST `pins/sys/manifest-key/rotate`: a new manifest signing key, signed by the old one.

use tresor_wire::api::pins;

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(pins::ROTATE_MANIFEST_KEY, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::data(
        &blocking(|| call.state.services.pins.rotate_manifest_key()).map_err(native)?,
    ))
}
