//! LIST `{tenant}/keys` (or GET `?list=true`): the tenant's key names. No keys is Vault's bare
//! 404.

use tresor_wire::api::{Listing, transit};

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// List a tenant's keys.
pub(crate) const LIST: Operation = Operation::new("list", Scope::Tenant);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::LIST_KEYS, LIST, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let keys = blocking(|| call.vault().list_keys(call.tenant()))?;
    if keys.is_empty() {
        return Err(ApiError::not_found_empty());
    }
    Ok(Reply::data(&Listing { keys }))
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;
    use serde_json::{Value, json};

    use crate::api::testing::TestApi;

    #[tokio::test]
    async fn no_keys_is_a_bare_404_then_names_in_order() {
        let api = TestApi::new();
        assert_eq!(
            api.call("LIST", "t/keys", Value::Null).await,
            (StatusCode::NOT_FOUND, json!({"errors": []}))
        );
        for key in ["b", "a"] {
            api.call("POST", &format!("t/keys/{key}"), Value::Null).await;
        }
        let (status, listed) = api.call("GET", "t/keys?list=true", Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed["data"], json!({"keys": ["a", "b"]}));
        assert_eq!(listed["mount_type"], "transit");
    }
}
