//! GET `sys/init`: whether the vault is initialised. Any authenticated client may read it.

use hyper::StatusCode;
use tresor_wire::api::sys::{self, InitStatus};

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::open(sys::INIT_STATUS, "init-status", handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let status = blocking(|| call.vault().seal_status())?;
    Ok(Reply::bare(
        StatusCode::OK,
        &InitStatus {
            initialized: status.initialized,
        },
    ))
}
