//! POST `pins/{app}/keys/{kid}/compromise`: the key is compromised: the published backup is
//! promoted and a new backup staged.

use tresor_wire::api::pins;

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(pins::COMPROMISE_KEY, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let (pins, app, kid) = (&call.state.services.pins, call.path("app"), call.path("kid"));
    Ok(Reply::data(
        &blocking(|| pins.compromise_pin_key(app, kid)).map_err(native)?,
    ))
}
