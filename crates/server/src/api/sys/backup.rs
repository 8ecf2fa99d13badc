//! GET `sys/backup`: a consistent copy of the whole store, taken while the vault serves, in the
//! backend-neutral file format of `tresor_wire::backup`, signed with this node's identity key
//! (docs/recovery.md). The records stay barrier-sealed: the file is useless without k
//! custodians of the custodian set its header names.

use hyper::StatusCode;
use tresor_wire::api::sys;
use tresor_wire::backup::{self, BackupHeader};

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Take a backup of the whole store.
pub(crate) const BACKUP: Operation = Operation::new("backup", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::BACKUP, BACKUP, handle);

/// The media type of a backup file.
pub(crate) const MEDIA_TYPE: &str = "application/x-tresor-backup";

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let vault = call.vault();
    let snapshot = blocking(|| vault.snapshot()).map_err(ApiError::from_native)?;
    let Some((node_key, _)) = vault.node_signature(b"") else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no identity key to sign a backup with ([node] identity_key)",
        ));
    };
    let header = BackupHeader {
        format: backup::FORMAT.to_owned(),
        vault_id: snapshot.vault_id,
        environment: snapshot.environment,
        store_format: snapshot.store_format,
        store: snapshot.store,
        taken_at: call.state.services.vault.sealed_store().clock().now(),
        custodians: snapshot.custodians,
        threshold: snapshot.threshold,
        tenants: snapshot.tenants,
        audit_checkpoint: call
            .state
            .audit
            .as_ref()
            .and_then(|log| log.last_checkpoint())
            .map(|(seq, hash)| format!("{seq}:{}", tresor_crypto::hex(&hash))),
        records: snapshot.records.len() as u64,
        node_key,
    };
    let file = backup::write(&header, &snapshot.records, |message| {
        vault
            .node_signature(message)
            .expect("the node key was there a moment ago")
            .1
    });
    Ok(Reply::text(StatusCode::OK, MEDIA_TYPE, file))
}
