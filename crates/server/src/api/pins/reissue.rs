//! POST `pins/{app}/reissue`: a new manifest version with unchanged pins.

use tresor_wire::api::pins::{self, Reissued};

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::REISSUE, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let app = call.path("app");
    let version =
        blocking(|| call.state.services.pins.reissue_pin_manifest(app)).map_err(native)?;
    Ok(Reply::data(&Reissued {
        manifest_version: version,
    }))
}
