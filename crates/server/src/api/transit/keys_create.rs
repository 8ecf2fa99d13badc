//! POST `{tenant}/keys/{key}`: create a key. Creating a key that exists changes nothing and
//! returns it, as in Vault. Creating an exportable key waits for custodian approval, as making
//! a key exportable does (docs/custody.md): its material could otherwise leave the vault at once,
//! and a principal allowed to create and export could claim in advance, exportable, the name of
//! a key an application will later create by encrypting.

use tresor_core::KeySpec;
use tresor_wire::api::transit;
use tresor_wire::approvals::Dangerous;

use super::mount::{check_key_type, key_reply};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose_to;
use crate::policy::{Operation, Scope};

/// Create a key (also: encrypt on a missing key).
pub(crate) const CREATE: Operation = Operation::new("create", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::CREATE_KEY, CREATE, handle).mutating();

/// The fields this route reads.
const FIELDS: &[&str] = &[
    "type",
    "derived",
    "convergent_encryption",
    "exportable",
    "allow_plaintext_backup",
    "auto_rotate_period",
];

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut reply = create(call)?;
    if let Some(warning) = params::ignored_fields(&params::field_names(call.body), FIELDS) {
        reply = reply.warn(warning);
    }
    Ok(reply)
}

fn create(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: transit::CreateKeyRequest = params::body(call.body)?;
    check_key_type(body.key_type.as_deref())?;
    if body.allow_plaintext_backup.is_some_and(|f| f.0) {
        return Err(ApiError::bad_request(
            "allow_plaintext_backup is not supported: Tresor has no plaintext backup endpoint",
        ));
    }
    let spec = KeySpec {
        derived: body.derived.is_some_and(|f| f.0),
        convergent_encryption: body.convergent_encryption.is_some_and(|f| f.0),
        exportable: body.exportable.is_some_and(|f| f.0),
        auto_rotate_period: body.auto_rotate_period.map_or(0, |s| s.0),
        deletion_window: body.deletion_window.map(|s| s.0),
    };
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    if spec.exportable {
        return propose_exportable(call, spec);
    }
    let info = blocking(|| match vault.create_key(tenant, key, spec) {
        Err(tresor_core::Error::KeyExists { .. }) => vault.key_info(tenant, key),
        other => other,
    })?;
    Ok(key_reply(&info))
}

/// An exportable key: an existing key is returned unchanged (as any create of an existing key;
/// making it exportable is `keys/{key}/config`'s, with its approval), a new one is proposed for
/// approval by the custodians who decide exports (a level-3 tenant's own).
fn propose_exportable(call: &Call<'_>, spec: KeySpec) -> Result<Reply, ApiError> {
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    match blocking(|| vault.key_info(tenant, key)) {
        Ok(info) => {
            let mut reply = key_reply(&info);
            if !info.config.exportable {
                reply = reply.warn(format!(
                    "key {key} exists and was not changed: it is not exportable; making it exportable is a config change that needs approval"
                ));
            }
            return Ok(reply);
        }
        Err(tresor_core::Error::KeyNotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Refuse an invalid key now rather than after custodians have signed for it (the checks of
    // tresor_core's KeySpec).
    if spec.convergent_encryption && !spec.derived {
        return Err(tresor_core::Error::invalid(
            "convergent_encryption",
            "convergent encryption requires derived: true (each context gets its own deterministic key)",
        )
        .into());
    }
    if spec.auto_rotate_period != 0 && spec.auto_rotate_period < 3600 {
        return Err(tresor_core::Error::invalid(
            "auto_rotate_period",
            "must be 0 (never) or at least one hour",
        )
        .into());
    }
    let tenant_quorum =
        blocking(|| vault.tenant_info(tenant)).map_err(ApiError::from_native)?.level == 3;
    let request = Dangerous::CreateExportableKey {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
        derived: spec.derived,
        convergent_encryption: spec.convergent_encryption,
        auto_rotate_period: spec.auto_rotate_period,
    };
    propose_to(call, request, tenant_quorum.then_some(tenant))
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::{Value, json};

    use crate::api::testing::{TENANT, TestApi};

    /// Issue 15, point 10: an exportable key is created only once custodians approve.
    #[tokio::test]
    async fn an_exportable_key_waits_for_approval() {
        let api = TestApi::new();
        let (status, answer) = api
            .call("POST", &format!("{TENANT}/keys/x"), json!({"exportable": true}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(
            answer["data"]["request"],
            json!({"operation": "create-exportable-key", "tenant": TENANT, "key": "x",
                   "derived": false, "convergent_encryption": false, "auto_rotate_period": 0}),
            "{answer}"
        );
        assert!(api.vault().list_keys(TENANT).unwrap().is_empty());
        let (status, _) = api
            .call("GET", &format!("{TENANT}/export/encryption-key/x"), Value::Null)
            .await;
        assert_ne!(status, StatusCode::OK);
        // Invalid keys are refused before anyone signs.
        for body in [
            json!({"exportable": true, "convergent_encryption": true}),
            json!({"exportable": true, "auto_rotate_period": "10m"}),
        ] {
            let (status, answer) = api.call("POST", &format!("{TENANT}/keys/y"), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        }
        // Fields it does not read are named in Vault's warning.
        let (status, answer) = api
            .call("POST", &format!("{TENANT}/keys/z"), json!({"derived": true, "colour": 1}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            answer["warnings"],
            json!(["Endpoint ignored these unrecognized parameters: [colour]"])
        );
        // An existing key is returned unchanged, saying so.
        api.call("POST", &format!("{TENANT}/keys/k"), Value::Null).await;
        let (status, answer) = api
            .call("POST", &format!("{TENANT}/keys/k"), json!({"exportable": "true"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["data"]["exportable"], false, "{answer}");
        assert!(answer["warnings"][0].as_str().unwrap().contains("not exportable"));
    }
}
