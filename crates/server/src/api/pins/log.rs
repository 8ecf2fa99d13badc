//! GET `pins/sys/log`: every signed manifest, hash-chained, for clients to check
//! (`tresor_wire::pins::verify_log`).

use tresor_wire::api::pins::{self, Log};

use super::mount::{READ, native};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(pins::LOG, READ, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let entries = blocking(|| call.state.services.pins.pin_log()).map_err(native)?;
    Ok(Reply::data(&Log { entries }))
}
