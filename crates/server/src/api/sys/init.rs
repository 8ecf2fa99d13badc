//! POST `sys/init`: the custodians' public keys and the threshold. The root key is split among
//! them (docs/custody.md); the vault stays sealed.

use tresor_wire::api::sys::{self, CustodyRequest};
use tresor_wire::custody::InitRequest;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, Int};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Initialise the vault.
pub(crate) const INIT: Operation = Operation::new("init", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::INIT, INIT, handle).mutating();

/// The custody a body of `sys/init` or `sys/rekey` asks for, checked.
pub(crate) fn custody(body: CustodyRequest) -> Result<InitRequest, ApiError> {
    let threshold = match body.threshold {
        None => return Err(ApiError::bad_request("missing threshold")),
        Some(Int(t)) => {
            u8::try_from(t).map_err(|_| ApiError::bad_request(format!("invalid threshold: {t}")))?
        }
    };
    let request = InitRequest {
        custodians: body.custodians,
        threshold,
        four_eyes: body.four_eyes.map(|f| f.0),
    };
    tresor_core::validate_custody(&request).map_err(ApiError::from)?;
    Ok(request)
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let request = custody(params::body(call.body)?)?;
    let status = blocking(|| call.vault().init(&request)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&status))
}
