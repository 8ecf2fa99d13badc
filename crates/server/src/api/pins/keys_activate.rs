//! POST `pins/{app}/keys/{kid}/activate`: make a published key the serving one. With
//! `override`, an activation before `max_update_lag` has passed becomes a pending approval
//! (docs/pinning.md).

use tresor_wire::api::pins;
use tresor_wire::approvals::Dangerous;
use tresor_wire::pins::ActivationMode;

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose;

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(pins::ACTIVATE_KEY, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: pins::ActivateKeyRequest = params::body(call.body)?;
    let (pins, app, kid) = (&call.state.services.pins, call.path("app"), call.path("kid"));
    if body.override_lag
        && blocking(|| pins.pin_activation_needs_override(app, kid)).map_err(native)?
    {
        return propose(
            call,
            Dangerous::ActivatePinEarly {
                app: app.to_owned(),
                kid: kid.to_owned(),
            },
        );
    }
    let change =
        blocking(|| pins.activate_pin_key(app, kid, ActivationMode::Lag)).map_err(native)?;
    Ok(Reply::data(&change))
}
