//! POST `sys/unseal`: one custodian's share, sealed to the vault's current unseal key
//! (docs/custody.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_wire::api::sys;

use crate::api::acts;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Submit an unseal share (and fetch one's own, sealed).
pub(crate) const UNSEAL: Operation = Operation::new("unseal", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::UNSEAL, UNSEAL, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: sys::UnsealRequest = params::body(call.body)?;
    let sealed = STANDARD
        .decode(&body.sealed_share)
        .map_err(|_| ApiError::bad_request("invalid sealed_share: not base64"))?;
    let vault = call.vault();
    let (progress, custodian) = blocking(|| {
        let progress = vault.submit_sealed_share(
            &body.custodian,
            &call.caller.principal,
            &sealed,
            body.accept_audit_gap,
        )?;
        Ok::<_, tresor_core::Error>((progress, vault.custodian(&body.custodian)?))
    })
    .map_err(ApiError::from_native)?;
    let reply = Reply::data(&progress).acted_by(custodian.as_ref().map(acts::custodian));
    Ok(if progress.sealed {
        reply
    } else {
        reply.seal_change("unsealed")
    })
}
