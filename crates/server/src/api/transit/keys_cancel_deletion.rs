//! POST `{tenant}/keys/{key}/cancel-deletion`: restores a key whose approved deletion waits for
//! its window to end, once custodians approve (answers 202 with the approval; docs/custody.md,
//! "Scheduled deletion").

use tresor_wire::api::transit;
use tresor_wire::approvals::Dangerous;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose;
use crate::policy::{Operation, Scope};

/// Cancel a key's scheduled deletion (also needs custodian approval).
pub(crate) const CANCEL_DELETION: Operation = Operation::new("cancel-deletion", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::CANCEL_KEY_DELETION, CANCEL_DELETION, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let (tenant, key) = (call.tenant(), call.key());
    let info = blocking(|| call.vault().key_info(tenant, key)).map_err(ApiError::from_native)?;
    if info.deletion.is_none() {
        return Err(ApiError::bad_request(format!(
            "key {key} is not scheduled for deletion: nothing to cancel"
        )));
    }
    propose(
        call,
        Dangerous::CancelKeyDeletion {
            tenant: tenant.to_owned(),
            key: key.to_owned(),
        },
    )
}
