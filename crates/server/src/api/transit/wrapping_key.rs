//! GET `{tenant}/wrapping_key`: the tenant's RSA-4096 wrapping key, SubjectPublicKeyInfo PEM, as
//! Vault serves it to `transit import` (docs/format.md, "Vault and OpenBao"). Made on first use;
//! its private half stays behind the barrier.

use serde::Serialize;
use tresor_wire::api::transit;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Read the tenant's wrapping key for imports.
pub(crate) const WRAPPING_KEY: Operation = Operation::new("wrapping-key", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::WRAPPING_KEY, WRAPPING_KEY, handle).mutating();

#[derive(Serialize)]
struct Data {
    public_key: String,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let public_key = blocking(|| call.vault().wrapping_key_pem(call.tenant()))
        .map_err(ApiError::from_native)?;
    Ok(Reply::data(&Data { public_key }))
}
