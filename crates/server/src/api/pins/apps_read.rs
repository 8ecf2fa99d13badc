//! GET `pins/{app}`: an app, its settings and its keys in every state.

use tresor_wire::api::pins;

use super::mount::{READ, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::READ_APP, READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let app = call.path("app");
    Ok(Reply::data(
        &blocking(|| call.state.services.pins.pin_app(app)).map_err(native)?,
    ))
}
