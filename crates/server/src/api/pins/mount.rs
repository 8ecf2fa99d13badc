//! What the `pins/` endpoints share (docs/pinning.md): the mount, with app names and key ids
//! checked when routing, the two operations most of them need, and how pinning errors are
//! answered.
//!
//! Manifests are served bare (the signed envelope exactly as stored, not inside Vault's `data`
//! envelope) so that an app can fetch and verify them with nothing Tresor-specific; exports are
//! served in their platform's own syntax. Everything else uses the `{"data": …}` envelope.

use hyper::StatusCode;
use tresor_wire::api::Route;
use tresor_wire::pins::{PinError, validate_app_name};

use crate::api::endpoint::{Mount, Prefix};
use crate::api::reply::ApiError;
use crate::pins::PinsError;
use crate::policy::{Operation, Scope};

/// Read pinning manifests and pins.
pub(crate) const READ: Operation = Operation::new("pins-read", Scope::Vault);
/// Manage pinning apps and pinned keys.
pub(crate) const MANAGE: Operation = Operation::new("pins-manage", Scope::Vault);

/// `/v1/pins/…`. `pins/sys/…` is the mount's own (never an app: app names cannot be `sys`),
/// served only by its exact routes. A key action (`pins/{app}/keys/{kid}/{action}`) is a POST:
/// another method is 405 whatever the action.
pub(crate) const MOUNT: Mount = Mount {
    checks: &[("app", app_name), ("kid", key_id)],
    reserved: &["sys"],
    shapes: &[Route::post("pins/{app}/keys/{kid}/{action}")],
    ..Mount::new(Prefix::Literal("pins"), "system")
};

fn app_name(app: &str) -> Result<(), ApiError> {
    validate_app_name(app).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn key_id(kid: &str) -> Result<(), ApiError> {
    let ok =
        kid.len() <= 64 && kid.starts_with("k-") && kid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid key id `{}`: key ids look like k-0123456789ab",
            kid.chars().take(64).collect::<String>()
        )))
    }
}

/// A pinning error as an answer: missing things 404, existing ones 409, the rest 400.
pub(crate) fn native(error: PinsError) -> ApiError {
    match error {
        PinsError::Vault(error) => ApiError::from_native(error),
        PinsError::Pin(
            error @ (PinError::AppNotFound(_)
            | PinError::KeyNotFound { .. }
            | PinError::ManifestNotFound { .. }),
        ) => ApiError::new(StatusCode::NOT_FOUND, error.to_string()),
        PinsError::Pin(error @ (PinError::AppExists(_) | PinError::KeyExists { .. })) => {
            ApiError::new(StatusCode::CONFLICT, error.to_string())
        }
        PinsError::Pin(error) => ApiError::bad_request(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use hyper::Method;

    use crate::api::route;

    fn routed(method: Method, path: &str) -> Result<String, StatusCode> {
        route(&method, &format!("/v1/pins/{path}"), None)
            .map(|r| {
                let params = ["app", "kid", "version"]
                    .into_iter()
                    .filter_map(|name| r.params.get(name).map(|v| format!(" {name}={v}")))
                    .collect::<String>();
                format!("{}{params}", r.endpoint.route.path)
            })
            .map_err(|e| e.status)
    }

    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            routed(Method::GET, "ios/manifest/3"),
            Ok("pins/{app}/manifest/{version?} app=ios version=3".into())
        );
        assert_eq!(
            routed(Method::POST, "ios/keys/k-00ff/activate"),
            Ok("pins/{app}/keys/{kid}/activate app=ios kid=k-00ff".into())
        );
        assert_eq!(
            routed(Method::GET, "ios/manifest/0"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            routed(Method::GET, "Bad/manifest"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            routed(Method::DELETE, "ios/manifest"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            routed(Method::POST, "ios/keys/k-00/nope"),
            Err(StatusCode::NOT_FOUND)
        );
        // A key action is a POST, whatever the action.
        assert_eq!(
            routed(Method::GET, "ios/keys/k-00/nope"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        // pins/sys/… is never an app, and only its exact routes are served.
        assert_eq!(
            routed(Method::GET, "sys/manifest-key"),
            Ok("pins/sys/manifest-key".into())
        );
        assert_eq!(routed(Method::GET, "sys"), Err(StatusCode::NOT_FOUND));
        assert_eq!(
            routed(Method::POST, "sys/reissue"),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(routed(Method::POST, "sys/log"), Err(StatusCode::NOT_FOUND));
    }
}
