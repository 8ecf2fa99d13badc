//! GET `sys/unseal-share/{custodian}`: that custodian's share, sealed to their own key. Shares
//! travel sealed both ways, never readable in a request or response body (docs/custody.md).

use tresor_wire::api::sys;

use super::unseal::UNSEAL;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::UNSEAL_SHARE, UNSEAL, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let custodian = call.path("custodian");
    let share = blocking(|| call.vault().sealed_share(custodian)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&share))
}
