//! POST `pins/{app}/keys/{kid}/deliver`: the private key of a vault-held pinned key, sealed to
//! a TLS terminator's public identity (docs/pinning.md).

use tresor_wire::api::pins;

use super::mount::native;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Receive a pinned private key sealed to a TLS terminator's key.
pub(crate) const DELIVER: Operation = Operation::new("pins-deliver", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(pins::DELIVER_KEY, DELIVER, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: pins::DeliverKeyRequest = params::body(call.body)?;
    let (pins, app, kid) = (&call.state.services.pins, call.path("app"), call.path("kid"));
    let delivered =
        blocking(|| pins.deliver_pin_key(app, kid, &body.recipient)).map_err(native)?;
    Ok(Reply::data(&delivered))
}
