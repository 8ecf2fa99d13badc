//! GET `pins/{app}/export/{format}`: the latest manifest in a platform's own syntax (`android`,
//! `trustkit`, `nspinneddomains`, `okhttp`, `json`).

use hyper::StatusCode;
use tresor_wire::api::pins;
use tresor_wire::pins::ExportFormat;

use super::mount::{READ, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::EXPORT, READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let format: ExportFormat = call
        .path("format")
        .parse()
        .map_err(|e: tresor_wire::pins::PinError| ApiError::bad_request(e.to_string()))?;
    let app = call.path("app");
    let text = blocking(|| call.state.services.pins.export_pins(app, format)).map_err(native)?;
    let content_type = match format {
        ExportFormat::Json => "application/json",
        ExportFormat::OkHttp => "text/plain; charset=utf-8",
        _ => "application/xml",
    };
    Ok(Reply::text(StatusCode::OK, content_type, text))
}
