//! POST `{tenant}/keys/{key}/config`: change a key's configuration. A change that weakens
//! protection waits for custodian approval (docs/custody.md). A field of a key that cannot be
//! changed here (`derived`, `min_available_version`…) is refused with a 400 naming it, rather
//! than ignored with a 200 that reads as done; a field Tresor does not know is ignored with
//! Vault's `warnings` entry naming it.

use tresor_wire::api::transit;
use tresor_wire::approvals::Dangerous;
use tresor_wire::keys::KeyConfigUpdate;

use super::mount::key_reply;
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params::{self, Int, IntField};
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose_to;
use crate::policy::{Operation, Scope};

/// Change a key's configuration.
pub(crate) const CONFIGURE: Operation = Operation::new("config", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::CONFIGURE_KEY, CONFIGURE, handle).mutating();

/// The fields this route reads.
const SETTABLE: &[&str] = &[
    "min_decryption_version",
    "min_encryption_version",
    "deletion_allowed",
    "exportable",
    "allow_plaintext_backup",
    "auto_rotate_period",
];

/// Fields of a key (Vault's or Tresor's) that this route cannot change, and where they are set.
const NOT_SETTABLE_HERE: &[(&str, &str)] = &[
    ("derived", "it is fixed when the key is created"),
    ("convergent_encryption", "it is fixed when the key is created"),
    ("type", "it is fixed when the key is created"),
    ("key_type", "it is fixed when the key is created"),
    ("key_size", "it is fixed when the key is created"),
    ("context", "it is fixed when the key is created"),
    ("min_available_version", "it is raised by keys/{key}/trim"),
    ("latest_version", "it is raised by keys/{key}/rotate"),
    ("name", "a key cannot be renamed"),
];

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: transit::ConfigureKeyRequest = params::body(call.body)?;
    let (vault, tenant, key) = (call.vault(), call.tenant(), call.key());
    let fields = params::field_names(call.body);
    if let Some((field, why)) = NOT_SETTABLE_HERE
        .iter()
        .find(|(field, _)| fields.iter().any(|f| f == field))
    {
        return Err(ApiError::bad_request(format!(
            "{field} cannot be changed with keys/{{key}}/config: {why}"
        )));
    }
    let mut warnings: Vec<String> = params::ignored_fields(&fields, SETTABLE).into_iter().collect();
    let min_decryption_version = match body.min_decryption_version {
        Some(Int(v)) if v < 0 => {
            return Err(ApiError::bad_request(
                "min decryption version cannot be negative",
            ));
        }
        Some(Int(0)) => {
            warnings.push(
                "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                    .to_owned(),
            );
            Some(1)
        }
        Some(v) => Some(v.to_u32("min_decryption_version")?),
        None => None,
    };
    let min_encryption_version = match body.min_encryption_version {
        Some(Int(v)) if v < 0 => {
            return Err(ApiError::bad_request(
                "min encryption version cannot be negative",
            ));
        }
        Some(v) => Some(v.to_u32("min_encryption_version")?),
        None => None,
    };
    if body.allow_plaintext_backup.is_some_and(|f| f.0) {
        return Err(ApiError::bad_request(
            "allow_plaintext_backup is not supported: Tresor has no plaintext backup endpoint",
        ));
    }
    let update = KeyConfigUpdate {
        min_decryption_version,
        min_encryption_version,
        deletion_allowed: body.deletion_allowed.map(|f| f.0),
        exportable: body.exportable.map(|f| f.0),
        auto_rotate_period: body.auto_rotate_period.map(|s| s.0),
        deletion_window: body.deletion_window.map(|s| s.0),
    };
    let not_found = |e| match e {
        tresor_core::Error::KeyNotFound { .. } => {
            ApiError::bad_request(format!("no existing key named {key} could be found"))
        }
        other => other.into(),
    };
    let current = blocking(|| vault.key_info(tenant, key)).map_err(not_found)?;
    // Refuse an invalid change now rather than after custodians have signed it.
    current.config.updated(&update, current.latest_version)?;
    if !current.config.weakened_by(&update).is_empty() {
        // Making a level-3 tenant's key exportable hands its material out of the tenant's custody:
        // the tenant's own custodians decide, not the vault's.
        let exporting = update.exportable == Some(true) && !current.config.exportable;
        let tenant_quorum = exporting
            && blocking(|| vault.tenant_info(tenant))
                .map_err(ApiError::from_native)?
                .level
                == 3;
        let request = Dangerous::ConfigureKey {
            tenant: tenant.to_owned(),
            key: key.to_owned(),
            update,
        };
        let mut reply = propose_to(call, request, tenant_quorum.then_some(tenant))?;
        for warning in warnings {
            reply = reply.warn(warning);
        }
        return Ok(reply);
    }
    let info = blocking(|| vault.configure_key(tenant, key, &update)).map_err(not_found)?;
    let mut reply = key_reply(&info);
    for warning in warnings {
        reply = reply.warn(warning);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::{Value, json};

    use crate::api::testing::{TENANT, TestApi};

    /// Issue 15, point 11: nothing is silently ignored.
    #[tokio::test]
    async fn fields_that_cannot_be_set_are_refused_and_unknown_ones_warned() {
        let api = TestApi::new();
        let path = format!("{TENANT}/keys/k/config");
        api.call("POST", &format!("{TENANT}/keys/k"), Value::Null).await;
        api.call("POST", &format!("{TENANT}/keys/k/rotate"), Value::Null).await;
        let before = api.call("GET", &format!("{TENANT}/keys/k"), Value::Null).await.1;
        for (body, field) in [
            (json!({"derived": true}), "derived"),
            (json!({"min_available_version": 3}), "min_available_version"),
            (json!({"deletion_allowed": true, "convergent_encryption": true}), "convergent_encryption"),
            (json!({"type": "rsa-2048"}), "type"),
        ] {
            let (status, answer) = api.call("POST", &path, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            let message = answer["errors"][0].as_str().unwrap();
            assert!(message.starts_with(&format!("{field} cannot be changed")), "{message}");
        }
        // Nothing changed, not even the settable field sent beside a refused one.
        let after = api.call("GET", &format!("{TENANT}/keys/k"), Value::Null).await.1;
        assert_eq!(before["data"], after["data"]);

        let (status, answer) = api
            .call("POST", &path, json!({"deletion_allowed": true, "colour": "red", "min_decrpytion_version": 2}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["data"]["deletion_allowed"], true);
        assert_eq!(
            answer["warnings"],
            json!(["Endpoint ignored these unrecognized parameters: [colour min_decrpytion_version]"])
        );
        let (_, answer) = api.call("POST", &path, json!({"deletion_allowed": true})).await;
        assert_eq!(answer["warnings"], Value::Null, "{answer}");
    }
}
