//! GET `pins/{app}/manifest[/{version}]`: the signed manifest (latest, or that version),
//! served bare: exactly the envelope an app verifies.

use hyper::StatusCode;
use tresor_wire::api::pins;

use super::mount::{READ, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply, ReplyBody};

/// `{version}` is checked when routing.
pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(pins::MANIFEST, READ, handle).checking(&[("version", |v| version(v).map(drop))]);

fn version(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::bad_request("a manifest version is a positive integer"))
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let app = call.path("app");
    let version = call.param("version").map(version).transpose()?;
    let envelope =
        blocking(|| call.state.services.pins.pin_manifest(app, version)).map_err(native)?;
    Ok(Reply {
        status: StatusCode::OK,
        body: ReplyBody::Bare(envelope.into_bytes()),
        warnings: Vec::new(),
        summary: Default::default(),
    })
}
