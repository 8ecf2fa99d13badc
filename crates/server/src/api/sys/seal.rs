//! POST `sys/seal`: forget the root key until custodians unseal again.

use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Seal the vault.
pub(crate) const SEAL: Operation = Operation::new("seal", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::SEAL, SEAL, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    call.vault().seal();
    Ok(Reply::no_content().seal_change("sealed"))
}
