//! GET `sys/mounts`: each tenant the caller may use, as a Vault mount of type `transit` at
//! `<tenant>/`, so `bao secrets list` / `vault secrets list` show them. A tenant is listed when
//! the policies grant the caller some operation in it from its address
//! ([`crate::policy::PolicySet::may_see_tenant`]); the others stay unnamed. Any authenticated
//! client may ask.

use std::collections::BTreeMap;

use serde::Serialize;
use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::open(sys::MOUNTS, "mounts", handle);

/// Vault's mount fields.
#[derive(Serialize)]
struct MountInfo {
    #[serde(rename = "type")]
    mount_type: &'static str,
    description: String,
    accessor: String,
    config: MountConfig,
    local: bool,
    seal_wrap: bool,
    external_entropy_access: bool,
    options: Option<()>,
    uuid: &'static str,
    plugin_version: &'static str,
    running_plugin_version: &'static str,
    running_sha256: &'static str,
}

#[derive(Serialize)]
struct MountConfig {
    default_lease_ttl: u64,
    max_lease_ttl: u64,
    force_no_cache: bool,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let tenants = blocking(|| call.vault().list_tenants()).map_err(ApiError::from_native)?;
    let policies = call.state.policies.current();
    let source = Some(call.caller.address.ip());
    let mounts: BTreeMap<String, MountInfo> = tenants
        .into_iter()
        .filter(|tenant| policies.may_see_tenant(&call.caller.principal, tenant, source))
        .map(|tenant| {
            let info = MountInfo {
                mount_type: "transit",
                description: format!("Tresor tenant {tenant}"),
                accessor: format!("transit_{tenant}"),
                config: MountConfig {
                    default_lease_ttl: 0,
                    max_lease_ttl: 0,
                    force_no_cache: false,
                },
                local: false,
                seal_wrap: false,
                external_entropy_access: false,
                options: None,
                uuid: "",
                plugin_version: "",
                running_plugin_version: "",
                running_sha256: "",
            };
            (format!("{tenant}/"), info)
        })
        .collect();
    Ok(Reply::data(&mounts))
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::Value;
    use tresor_core::TenantSpec;

    use crate::api::testing::{ADMIN, APP, TENANT, TestApi};

    async fn mounts(api: &TestApi, principal: &str) -> Vec<String> {
        let (status, answer) = api.call_as(principal, "GET", "sys/mounts", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let data = answer["data"].as_object().unwrap();
        for mount in data.values() {
            assert_eq!(mount["type"], "transit", "{answer}");
        }
        data.keys().cloned().collect()
    }

    #[tokio::test]
    async fn lists_the_tenants_the_caller_may_use() {
        let api = TestApi::new();
        api.vault()
            .create_tenant("hr", &TenantSpec::default())
            .unwrap();
        assert_eq!(mounts(&api, ADMIN).await, ["hr/", &format!("{TENANT}/")]);
        // APP's grant is for one tenant.
        assert_eq!(mounts(&api, APP).await, [format!("{TENANT}/")]);
        // A principal no rule names sees no tenant, not even that there are some.
        assert!(mounts(&api, "spiffe://test/stranger").await.is_empty());
    }
}
