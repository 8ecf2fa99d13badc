//! DELETE `{tenant}/keys/{key}`: deletes once custodians approve (answers 202 with the
//! approval; docs/custody.md). The approved deletion starts the key's deletion window (or the
//! one `?deletion_window=` asks for; 0 destroys at once, and custodians see that in what they
//! sign).

use tresor_wire::api::transit;
use tresor_wire::approvals::Dangerous;

use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::reply::{ApiError, Reply};
use crate::api::sys::mount::propose;
use crate::policy::{Operation, Scope};

/// Delete a key (also needs custodian approval).
pub(crate) const DELETE: Operation = Operation::new("delete", Scope::Key);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transit::DELETE_KEY, DELETE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let deletion_window = deletion_window(call.query)?;
    let (tenant, key) = (call.tenant(), call.key());
    let info = blocking(|| call.vault().key_info(tenant, key)).map_err(|e| match e {
        tresor_core::Error::KeyNotFound { .. } => {
            ApiError::bad_request(format!("error deleting key {key}: not found"))
        }
        other => other.into(),
    })?;
    if !info.config.deletion_allowed {
        return Err(ApiError::bad_request(format!(
            "error deleting key {key}: deletion is not allowed for this key (set deletion_allowed first)"
        )));
    }
    if let Some(deletion) = info.deletion {
        return Err(ApiError::bad_request(format!(
            "error deleting key {key}: it is already scheduled for destruction at {}",
            tresor_wire::time::rfc3339(deletion.destroy_at, 0)
        )));
    }
    let request = Dangerous::DeleteKey {
        tenant: tenant.to_owned(),
        key: key.to_owned(),
        deletion_window,
    };
    propose(call, request)
}

/// `?deletion_window=` (seconds or `30m`, `12h`, `7d`; at most 30 days), if given. Other query
/// parameters are ignored, as Vault does.
pub(crate) fn deletion_window(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    let name = transit::DELETION_WINDOW_QUERY;
    let mut found = None;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name {
            continue;
        }
        if found.is_some() {
            return Err(ApiError::bad_request(format!("{name} is given twice")));
        }
        let seconds = tresor_wire::duration::parse_seconds(value).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid {name}: `{}` is not a duration (e.g. 0, 3600, 12h, 7d)",
                value.chars().take(32).collect::<String>()
            ))
        })?;
        tresor_core::keys::config::check_deletion_window(seconds)?;
        found = Some(seconds);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::deletion_window;

    #[test]
    fn the_window_query() {
        assert_eq!(deletion_window(None).unwrap(), None);
        assert_eq!(deletion_window(Some("other=1")).unwrap(), None);
        assert_eq!(deletion_window(Some("deletion_window=0")).unwrap(), Some(0));
        assert_eq!(
            deletion_window(Some("x=y&deletion_window=2d")).unwrap(),
            Some(172_800)
        );
        for bad in [
            "deletion_window=",
            "deletion_window=soon",
            "deletion_window=-1",
            "deletion_window=31d",
            "deletion_window=1&deletion_window=1",
        ] {
            assert!(deletion_window(Some(bad)).is_err(), "{bad}");
        }
    }
}
