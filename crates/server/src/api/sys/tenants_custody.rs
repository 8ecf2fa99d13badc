//! GET `sys/tenants/{tenant}/custody/{custodian}`: a level-3 tenant's custody key sealed to
//! that custodian, and the key to seal it back to for `unlock` (docs/custody.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_wire::api::sys::{self, CustodyBox};

use super::tenants_unlock::UNLOCK;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::TENANT_CUSTODY, UNLOCK, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let (vault, tenant, custodian) = (call.vault(), call.tenant(), call.path("custodian"));
    let sealed =
        blocking(|| vault.tenant_custody_box(tenant, custodian)).map_err(ApiError::from_native)?;
    Ok(Reply::data(&CustodyBox {
        vault_id: vault.vault_id()?,
        tenant: tenant.to_owned(),
        custodian: custodian.to_owned(),
        sealed_custody_key: sealed,
        unseal_key: STANDARD.encode(vault.unseal_public_key()),
    }))
}
