//! POST `pins/{app}/keys/{kid}/csr`: a PKCS#10 CSR signed with the vault-held key, for a
//! subject and DNS names (default: the app's hosts). Changes nothing.

use tresor_wire::api::pins::{self, Csr};

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::KEY_CSR, MANAGE, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: pins::CsrRequest = params::body(call.body)?;
    let (pins, app, kid) = (&call.state.services.pins, call.path("app"), call.path("kid"));
    let csr = blocking(|| pins.pin_key_csr(app, kid, &body.subject, &body.dns)).map_err(native)?;
    Ok(Reply::data(&Csr { csr }))
}
