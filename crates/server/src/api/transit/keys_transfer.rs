//! POST `{tenant}/keys/{key}/transfer`: asks to seal a key — configuration and every version —
//! to another vault's transfer key (answers 202 with the approval; the executed approval's
//! outcome carries the sealed package). Tresor's own route (docs/recovery.md).

use tresor_wire::api::transit::{self, TransferKeyRequest};
use tresor_wire::approvals::Dangerous;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose_to;
use crate::policy::{Operation, Scope};

/// Move a key to another vault (also needs custodian approval).
pub(crate) const TRANSFER: Operation = Operation::new("transfer", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::TRANSFER_KEY, TRANSFER, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: TransferKeyRequest = params::body(call.body)?;
    let (tenant, key) = (call.tenant(), call.key());
    let vault = call.vault();
    body.recipient
        .verify(&body.recipient_node)
        .map_err(|why| ApiError::bad_request(format!("invalid recipient: {why}")))?;
    if body.recipient.environment != vault.environment() {
        return Err(ApiError::bad_request(format!(
            "invalid recipient: vault {} serves environment `{}`, this one `{}`; a key keeps its environment",
            body.recipient.vault_id,
            body.recipient.environment,
            vault.environment()
        )));
    }
    // Refuse a missing key now rather than after custodians have signed.
    blocking(|| vault.key_info(tenant, key))?;
    let level = blocking(|| vault.tenant_info(tenant)).map_err(ApiError::from_native)?.level;
    let request = Dangerous::TransferKey {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
        to_vault: body.recipient.vault_id,
        to_key: body.recipient.key,
    };
    // A level-3 tenant's key leaving it is the tenant's custodians' decision.
    propose_to(call, request, (level == 3).then_some(tenant))
}
