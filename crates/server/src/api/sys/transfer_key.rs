//! GET `sys/transfer-key`: this vault's key-transfer key, signed by its node identity, for
//! another vault to seal a key it moves here (docs/recovery.md, "One key to another vault").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::StatusCode;
use tresor_wire::api::sys;
use tresor_wire::custody::{TransferKey, transfer_key_message};

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Read the vault's key-transfer key (public).
pub(crate) const READ: Operation = Operation::new("transfer-key-read", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::TRANSFER_KEY, READ, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let vault = call.vault();
    let (key, vault_id) = blocking(|| Ok::<_, tresor_core::Error>((vault.transfer_public_key()?, vault.vault_id()?)))
        .map_err(ApiError::from_native)?;
    let message = transfer_key_message(&vault_id, vault.environment(), &key);
    let Some((node_key, signature)) = vault.node_signature(&message) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no identity key to vouch for its transfer key ([node] identity_key)",
        ));
    };
    Ok(Reply::data(&TransferKey {
        vault_id,
        environment: vault.environment().to_owned(),
        key: STANDARD.encode(key),
        node_key,
        signature: STANDARD.encode(signature),
    }))
}
