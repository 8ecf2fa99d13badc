//! `/v1/pins/…`: pinning apps, pinned keys, signed manifests and their exports (DESIGN.md §6).
//!
//! Manifests are served bare (the signed envelope exactly as stored, not inside Vault's `data`
//! envelope) so that an app can fetch and verify them with nothing Tresor-specific; exports are
//! served in their platform's own syntax. Everything else uses the `{"data": …}` envelope.

use hyper::StatusCode;
use serde::Deserialize;

use super::ApiState;
use super::params;
use super::reply::{ApiError, Reply, ReplyBody};
use super::{Caller, blocking};
use crate::pins::PinsError;
use tresor_crypto::identity::CustodianPublicKey;
use tresor_wire::approvals::Dangerous;
use tresor_wire::pins::{
    ActivationMode, AppSpec, ExportFormat, Host, KeyAlgorithm, KeySource, PinError,
    validate_app_name, validate_host,
};

/// What a `/v1/pins/…` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinsAction {
    ListApps,
    CreateApp(String),
    ReadApp(String),
    GenerateKey(String),
    ImportKey(String),
    Key {
        app: String,
        kid: String,
        action: KeyAction,
    },
    Manifest {
        app: String,
        version: Option<u64>,
    },
    Export {
        app: String,
        format: String,
    },
    Reissue(String),
    ManifestKey,
    RotateManifestKey,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyAction {
    Activate,
    Retire,
    Compromise,
    Csr,
    Deliver,
}

impl PinsAction {
    /// Whether it changes state (or hands out a key): then it is audited before it runs.
    pub(crate) fn mutates(&self) -> bool {
        match self {
            PinsAction::CreateApp(_)
            | PinsAction::GenerateKey(_)
            | PinsAction::ImportKey(_)
            | PinsAction::Reissue(_)
            | PinsAction::RotateManifestKey => true,
            PinsAction::Key { action, .. } => *action != KeyAction::Csr,
            _ => false,
        }
    }

    /// `app` or `app/kid`, recorded as the audit line's key.
    pub(crate) fn target(&self) -> Option<String> {
        match self {
            PinsAction::CreateApp(app)
            | PinsAction::ReadApp(app)
            | PinsAction::GenerateKey(app)
            | PinsAction::ImportKey(app)
            | PinsAction::Reissue(app)
            | PinsAction::Manifest { app, .. }
            | PinsAction::Export { app, .. } => Some(app.clone()),
            PinsAction::Key { app, kid, .. } => Some(format!("{app}/{kid}")),
            _ => None,
        }
    }

    /// The policy operation.
    pub(crate) fn operation(&self) -> crate::policy::Operation {
        use super::operations::{DELIVER_PIN_KEY, MANAGE_PINS, READ_PINS};
        match self {
            PinsAction::ListApps
            | PinsAction::ReadApp(_)
            | PinsAction::Manifest { .. }
            | PinsAction::Export { .. }
            | PinsAction::ManifestKey
            | PinsAction::Log => READ_PINS,
            PinsAction::Key {
                action: KeyAction::Deliver,
                ..
            } => DELIVER_PIN_KEY,
            _ => MANAGE_PINS,
        }
    }
}

/// Routes `pins/…` (the segments after `pins`).
pub(crate) fn route(
    get: bool,
    post: bool,
    list: bool,
    rest: &[&str],
) -> Result<PinsAction, ApiError> {
    let app = |name: &str| -> Result<String, ApiError> {
        validate_app_name(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(name.to_owned())
    };
    let kid = |kid: &str| -> Result<String, ApiError> {
        let ok = kid.len() <= 64
            && kid.starts_with("k-")
            && kid[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(kid.to_owned())
        } else {
            Err(ApiError::bad_request(format!(
                "invalid key id `{}`: key ids look like k-0123456789ab",
                kid.chars().take(64).collect::<String>()
            )))
        }
    };
    Ok(match rest {
        [] if list => PinsAction::ListApps,
        ["sys", "manifest-key"] if get => PinsAction::ManifestKey,
        ["sys", "manifest-key", "rotate"] if post => PinsAction::RotateManifestKey,
        ["sys", "log"] if get => PinsAction::Log,
        ["sys", ..] => return Err(ApiError::unsupported_path()),
        [name] if post => PinsAction::CreateApp(app(name)?),
        [name] if get => PinsAction::ReadApp(app(name)?),
        [name, "keys", "generate"] if post => PinsAction::GenerateKey(app(name)?),
        [name, "keys", "import"] if post => PinsAction::ImportKey(app(name)?),
        [name, "keys", id, action] if post => {
            let action = match *action {
                "activate" => KeyAction::Activate,
                "retire" => KeyAction::Retire,
                "compromise" => KeyAction::Compromise,
                "csr" => KeyAction::Csr,
                "deliver" => KeyAction::Deliver,
                _ => return Err(ApiError::unsupported_path()),
            };
            PinsAction::Key {
                app: app(name)?,
                kid: kid(id)?,
                action,
            }
        }
        [name, "manifest"] if get => PinsAction::Manifest {
            app: app(name)?,
            version: None,
        },
        [name, "manifest", version] if get => PinsAction::Manifest {
            app: app(name)?,
            version: Some(
                version
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| {
                        ApiError::bad_request("a manifest version is a positive integer")
                    })?,
            ),
        },
        [name, "export", format] if get => PinsAction::Export {
            app: app(name)?,
            format: (*format).to_owned(),
        },
        [name, "reissue"] if post => PinsAction::Reissue(app(name)?),
        []
        | [_]
        | [_, "keys", "generate" | "import"]
        | [_, "keys", _, _]
        | [_, "manifest"]
        | [_, "manifest", _]
        | [_, "export", _]
        | [_, "reissue"] => return Err(ApiError::unsupported_operation()),
        _ => return Err(ApiError::unsupported_path()),
    })
}

fn native(error: PinsError) -> ApiError {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    hosts: Vec<Host>,
    max_update_lag: params::Seconds,
    expires: params::Seconds,
    enforce_until: params::Seconds,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GenerateBody {
    #[serde(default)]
    algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// `certificate`, `csr` or `public-key`.
    kind: String,
    /// PEM text.
    pem: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    /// Ask custodians to approve an activation before `max_update_lag` has passed.
    #[serde(default, rename = "override")]
    override_lag: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrBody {
    subject: String,
    /// subjectAltName DNS names; default: the app's hosts.
    #[serde(default)]
    dns: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverBody {
    /// The terminator's public identity (a `tresor custodian keygen` `.pub` file).
    recipient: CustodianPublicKey,
}

/// Serves one pins action.
pub(crate) fn handle(
    state: &ApiState,
    caller: &Caller,
    action: &PinsAction,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let pins = &state.services.pins;
    match action {
        PinsAction::ListApps => {
            let apps = blocking(|| pins.list_pin_apps()).map_err(native)?;
            if apps.is_empty() {
                return Err(ApiError::not_found_empty());
            }
            Ok(Reply::data(&serde_json::json!({ "keys": apps })))
        }
        PinsAction::CreateApp(app) => {
            let body: CreateBody = params::body(body)?;
            for host in &body.hosts {
                validate_host(host).map_err(|e| ApiError::bad_request(e.to_string()))?;
            }
            let spec = AppSpec {
                hosts: body.hosts,
                max_update_lag: body.max_update_lag.0,
                expires: body.expires.0,
                enforce_until: body.enforce_until.0,
            };
            let created = blocking(|| pins.create_pin_app(app, &spec)).map_err(native)?;
            Ok(Reply::data(&created))
        }
        PinsAction::ReadApp(app) => Ok(Reply::data(
            &blocking(|| pins.pin_app(app)).map_err(native)?,
        )),
        PinsAction::GenerateKey(app) => {
            let body: GenerateBody = params::body(body)?;
            let algorithm = match body.algorithm.as_deref() {
                None => KeyAlgorithm::default(),
                Some(name) => name.parse().map_err(|e: tresor_wire::pins::PinError| {
                    ApiError::bad_request(e.to_string())
                })?,
            };
            let change = blocking(|| pins.generate_pin_key(app, algorithm)).map_err(native)?;
            Ok(Reply::data(&change))
        }
        PinsAction::ImportKey(app) => {
            let body: ImportBody = params::body(body)?;
            let source = KeySource::from_name(&body.kind).ok_or_else(|| {
                ApiError::bad_request("invalid kind: use certificate, csr or public-key")
            })?;
            let change = blocking(|| pins.import_pin_key(app, source, body.pem.as_bytes()))
                .map_err(native)?;
            Ok(Reply::data(&change))
        }
        PinsAction::Key { app, kid, action } => key_action(state, caller, app, kid, *action, body),
        PinsAction::Manifest { app, version } => {
            let envelope = blocking(|| pins.pin_manifest(app, *version)).map_err(native)?;
            Ok(Reply {
                status: StatusCode::OK,
                body: ReplyBody::Bare(envelope.into_bytes()),
                warnings: Vec::new(),
                summary: Default::default(),
            })
        }
        PinsAction::Export { app, format } => {
            let format: ExportFormat = format
                .parse()
                .map_err(|e: tresor_wire::pins::PinError| ApiError::bad_request(e.to_string()))?;
            let text = blocking(|| pins.export_pins(app, format)).map_err(native)?;
            let content_type = match format {
                ExportFormat::Json => "application/json",
                ExportFormat::OkHttp => "text/plain; charset=utf-8",
                _ => "application/xml",
            };
            Ok(Reply::text(StatusCode::OK, content_type, text))
        }
        PinsAction::Reissue(app) => {
            let version = blocking(|| pins.reissue_pin_manifest(app)).map_err(native)?;
            Ok(Reply::data(
                &serde_json::json!({ "manifest_version": version }),
            ))
        }
        PinsAction::ManifestKey => Ok(Reply::data(
            &blocking(|| pins.manifest_keys()).map_err(native)?,
        )),
        PinsAction::RotateManifestKey => Ok(Reply::data(
            &blocking(|| pins.rotate_manifest_key()).map_err(native)?,
        )),
        PinsAction::Log => {
            let entries = blocking(|| pins.pin_log()).map_err(native)?;
            Ok(Reply::data(&serde_json::json!({ "entries": entries })))
        }
    }
}

fn key_action(
    state: &ApiState,
    caller: &Caller,
    app: &str,
    kid: &str,
    action: KeyAction,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let pins = &state.services.pins;
    match action {
        KeyAction::Activate => {
            let body: ActivateBody = params::body(body)?;
            if body.override_lag
                && blocking(|| pins.pin_activation_needs_override(app, kid)).map_err(native)?
            {
                return super::sys_custody::propose(
                    &state.services.approvals,
                    caller,
                    Dangerous::ActivatePinEarly {
                        app: app.to_owned(),
                        kid: kid.to_owned(),
                    },
                );
            }
            let change = blocking(|| pins.activate_pin_key(app, kid, ActivationMode::Lag))
                .map_err(native)?;
            Ok(Reply::data(&change))
        }
        KeyAction::Retire => Ok(Reply::data(
            &blocking(|| pins.retire_pin_key(app, kid)).map_err(native)?,
        )),
        KeyAction::Compromise => Ok(Reply::data(
            &blocking(|| pins.compromise_pin_key(app, kid)).map_err(native)?,
        )),
        KeyAction::Csr => {
            let body: CsrBody = params::body(body)?;
            let csr = blocking(|| pins.pin_key_csr(app, kid, &body.subject, &body.dns))
                .map_err(native)?;
            Ok(Reply::data(&serde_json::json!({ "csr": csr })))
        }
        KeyAction::Deliver => {
            let body: DeliverBody = params::body(body)?;
            let delivered =
                blocking(|| pins.deliver_pin_key(app, kid, &body.recipient)).map_err(native)?;
            Ok(Reply::data(&delivered))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(true, false, false, &["ios", "manifest", "3"]),
            Ok(PinsAction::Manifest {
                app: "ios".into(),
                version: Some(3)
            })
        );
        assert_eq!(
            route(false, true, false, &["ios", "keys", "k-00ff", "activate"]),
            Ok(PinsAction::Key {
                app: "ios".into(),
                kid: "k-00ff".into(),
                action: KeyAction::Activate
            })
        );
        assert_eq!(
            route(true, false, false, &["ios", "manifest", "0"])
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            route(true, false, false, &["Bad", "manifest"])
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            route(false, false, false, &["ios", "manifest"])
                .unwrap_err()
                .status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            route(false, true, false, &["ios", "keys", "k-00", "nope"])
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
    }
}
