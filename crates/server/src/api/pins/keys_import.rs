//! POST `pins/{app}/keys/import`: the pin of a key held elsewhere (a certificate, CSR or public
//! key), staged.

use tresor_wire::api::pins;
use tresor_wire::pins::KeySource;

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::IMPORT_KEY, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: pins::ImportKeyRequest = params::body(call.body)?;
    let source = KeySource::from_name(&body.kind).ok_or_else(|| {
        ApiError::bad_request("invalid kind: use certificate, csr or public-key")
    })?;
    let app = call.path("app");
    let change = blocking(|| {
        call.state
            .services
            .pins
            .import_pin_key(app, source, body.pem.as_bytes())
    })
    .map_err(native)?;
    Ok(Reply::data(&change))
}
