//! POST `pins/{app}/keys/{kid}/retire`: active → retiring; staged or retiring → retired.

use tresor_wire::api::pins;

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::RETIRE_KEY, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let (pins, app, kid) = (&call.state.services.pins, call.path("app"), call.path("kid"));
    Ok(Reply::data(
        &blocking(|| pins.retire_pin_key(app, kid)).map_err(native)?,
    ))
}
