//! POST `{tenant}/keys/{key}/receive`: asks to store a key another vault sealed to this one
//! (answers 202 with the approval). Tresor's own route (docs/recovery.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_wire::api::transit::{self, ReceiveKeyRequest};
use tresor_wire::approvals::Dangerous;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose_to;
use crate::policy::{Operation, Scope};

/// Store a key another vault sealed to this one (also needs custodian approval).
pub(crate) const RECEIVE: Operation = Operation::new("receive", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::RECEIVE_KEY, RECEIVE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: ReceiveKeyRequest = params::body(call.body)?;
    let (tenant, key) = (call.tenant(), call.key());
    STANDARD
        .decode(&body.package)
        .map_err(|_| ApiError::bad_request("invalid package: not base64"))?;
    let vault = call.vault();
    let info = blocking(|| vault.tenant_info(tenant)).map_err(ApiError::from_native)?;
    if !body.replace && blocking(|| vault.key_info(tenant, key)).is_ok() {
        return Err(ApiError::bad_request(format!(
            "key {key} exists already in tenant {tenant}: receive it under another name, or ask with \"replace\": true"
        )));
    }
    let request = Dangerous::ReceiveKey {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
        from_vault: body.from,
        package: body.package,
        replace: body.replace,
    };
    propose_to(call, request, (info.level == 3).then_some(tenant))
}
