//! POST `pins/{app}/keys/generate`: a key pair made in the vault, its pin staged.

use tresor_wire::api::pins;
use tresor_wire::pins::KeyAlgorithm;

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(pins::GENERATE_KEY, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: pins::GenerateKeyRequest = params::body(call.body)?;
    let algorithm = match body.algorithm.as_deref() {
        None => KeyAlgorithm::default(),
        Some(name) => name.parse().map_err(|e: tresor_wire::pins::PinError| {
            ApiError::bad_request(e.to_string())
        })?,
    };
    let app = call.path("app");
    let change =
        blocking(|| call.state.services.pins.generate_pin_key(app, algorithm)).map_err(native)?;
    Ok(Reply::data(&change))
}
