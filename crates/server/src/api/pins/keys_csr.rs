//! POST `pins/{app}/keys/{kid}/csr`: a PKCS#10 CSR signed with the vault-held key, for a
//! subject and DNS names (default: the app's hosts). Changes nothing.

use serde::Deserialize;
use tresor_wire::api::pins;

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::KEY_CSR, MANAGE, handle);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrBody {
    subject: String,
    /// subjectAltName DNS names; default: the app's hosts.
    #[serde(default)]
    dns: Vec<String>,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: CsrBody = params::body(call.body)?;
    let (pins, app, kid) = (&call.state.services.pins, call.path("app"), call.path("kid"));
    let csr = blocking(|| pins.pin_key_csr(app, kid, &body.subject, &body.dns)).map_err(native)?;
    Ok(Reply::data(&serde_json::json!({ "csr": csr })))
}
