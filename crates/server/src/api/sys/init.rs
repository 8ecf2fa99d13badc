//! POST `sys/init`: the custodians' public keys and the threshold. The root key is split among
//! them (docs/custody.md); the vault stays sealed.

use serde::Deserialize;
use tresor_crypto::identity::CustodianPublicKey;
use tresor_wire::api::sys;
use tresor_wire::custody::InitRequest;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, Int};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Initialise the vault.
pub(crate) const INIT: Operation = Operation::new("init", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::INIT, INIT, handle).mutating();

/// Custodians and threshold (also `sys/rekey`'s body).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct InitBody {
    #[serde(default)]
    pub(crate) custodians: Vec<CustodianPublicKey>,
    pub(crate) threshold: Option<Int>,
}

impl InitBody {
    /// The custody it asks for, checked.
    pub(crate) fn custody(self) -> Result<InitRequest, ApiError> {
        let threshold = match self.threshold {
            None => return Err(ApiError::bad_request("missing threshold")),
            Some(Int(t)) => u8::try_from(t)
                .map_err(|_| ApiError::bad_request(format!("invalid threshold: {t}")))?,
        };
        let request = InitRequest {
            custodians: self.custodians,
            threshold,
        };
        tresor_core::validate_custody(&request).map_err(ApiError::from)?;
        Ok(request)
    }
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let request = params::body::<InitBody>(call.body)?.custody()?;
    let status = blocking(|| call.vault().init(&request)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&status))
}
