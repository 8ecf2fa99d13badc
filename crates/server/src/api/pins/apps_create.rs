//! POST `pins/{app}`: a pinning app with its hosts and manifest timings.

use tresor_wire::api::pins;
use tresor_wire::pins::{AppSpec, validate_host};

use super::mount::{MANAGE, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::CREATE_APP, MANAGE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: pins::CreateAppRequest = params::body(call.body)?;
    for host in &body.hosts {
        validate_host(host).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let spec = AppSpec {
        hosts: body.hosts,
        max_update_lag: body.max_update_lag.0,
        expires: body.expires.0,
        enforce_until: body.enforce_until.0,
    };
    let app = call.path("app");
    let created =
        blocking(|| call.state.services.pins.create_pin_app(app, &spec)).map_err(native)?;
    Ok(Reply::data(&created))
}
