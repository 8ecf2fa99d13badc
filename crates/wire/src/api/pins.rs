//! Certificate pinning under `/v1/pins/` (docs/pinning.md): pinning apps, pinned keys, signed
//! manifests and their exports. The types that travel on these routes are in
//! [`crate::pins`].

use serde::{Deserialize, Serialize};
use tresor_crypto::identity::CustodianPublicKey;

use super::Route;
use super::params::Seconds;
use crate::pins::{AppSpec, Host, LogEntry};

/// LIST `pins`: the pinning apps.
pub const LIST_APPS: Route = Route::list("pins");
/// POST `pins/{app}`: create a pinning app.
pub const CREATE_APP: Route = Route::post("pins/{app}");
/// GET `pins/{app}`: an app and its keys.
pub const READ_APP: Route = Route::get("pins/{app}");
/// POST `pins/{app}/keys/generate`: a key pair made in the vault.
pub const GENERATE_KEY: Route = Route::post("pins/{app}/keys/generate");
/// POST `pins/{app}/keys/import`: the pin of a key held elsewhere.
pub const IMPORT_KEY: Route = Route::post("pins/{app}/keys/import");
/// POST `pins/{app}/keys/{kid}/activate`.
pub const ACTIVATE_KEY: Route = Route::post("pins/{app}/keys/{kid}/activate");
/// POST `pins/{app}/keys/{kid}/retire`.
pub const RETIRE_KEY: Route = Route::post("pins/{app}/keys/{kid}/retire");
/// POST `pins/{app}/keys/{kid}/compromise`.
pub const COMPROMISE_KEY: Route = Route::post("pins/{app}/keys/{kid}/compromise");
/// POST `pins/{app}/keys/{kid}/csr`: a CSR signed with the vault-held key.
pub const KEY_CSR: Route = Route::post("pins/{app}/keys/{kid}/csr");
/// POST `pins/{app}/keys/{kid}/deliver`: the private key, sealed to a TLS terminator.
pub const DELIVER_KEY: Route = Route::post("pins/{app}/keys/{kid}/deliver");
/// GET `pins/{app}/manifest[/{version}]`: the signed manifest, served bare.
pub const MANIFEST: Route = Route::get("pins/{app}/manifest/{version?}");
/// GET `pins/{app}/export/{format}`: the latest manifest in a platform's syntax.
pub const EXPORT: Route = Route::get("pins/{app}/export/{format}");
/// POST `pins/{app}/reissue`: a new manifest version with unchanged pins.
pub const REISSUE: Route = Route::post("pins/{app}/reissue");
/// GET `pins/sys/manifest-key`: the manifest signing key chain.
pub const MANIFEST_KEY: Route = Route::get("pins/sys/manifest-key");
/// POST `pins/sys/manifest-key/rotate`.
pub const ROTATE_MANIFEST_KEY: Route = Route::post("pins/sys/manifest-key/rotate");
/// GET `pins/sys/log`: every signed manifest, hash-chained.
pub const LOG: Route = Route::get("pins/sys/log");

// What travels on these routes. These are Tresor's own routes: unknown fields are refused.

/// The body of [`CREATE_APP`]: an [`AppSpec`], durations leniently typed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// The hosts the app pins.
    pub hosts: Vec<Host>,
    /// How long a new pin is published before it may serve.
    pub max_update_lag: Seconds,
    /// How long a manifest stays valid.
    pub expires: Seconds,
    /// How long pins are enforced.
    pub enforce_until: Seconds,
}

impl From<&AppSpec> for CreateAppRequest {
    fn from(spec: &AppSpec) -> Self {
        CreateAppRequest {
            hosts: spec.hosts.clone(),
            max_update_lag: Seconds(spec.max_update_lag),
            expires: Seconds(spec.expires),
            enforce_until: Seconds(spec.enforce_until),
        }
    }
}

/// The body of [`GENERATE_KEY`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKeyRequest {
    /// The key algorithm (default: ECDSA P-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

/// The body of [`IMPORT_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportKeyRequest {
    /// `certificate`, `csr` or `public-key`.
    pub kind: String,
    /// PEM text.
    pub pem: String,
}

/// The body of [`ACTIVATE_KEY`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateKeyRequest {
    /// Ask custodians to approve an activation before `max_update_lag` has passed.
    #[serde(default, rename = "override")]
    pub override_lag: bool,
}

/// The body of [`KEY_CSR`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrRequest {
    /// The certificate subject.
    pub subject: String,
    /// subjectAltName DNS names; default: the app's hosts.
    #[serde(default)]
    pub dns: Vec<String>,
}

/// The answer of [`KEY_CSR`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Csr {
    /// PKCS#10, PEM.
    pub csr: String,
}

/// The body of [`DELIVER_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverKeyRequest {
    /// The terminator's public identity (a `tresor custodian keygen` `.pub` file).
    pub recipient: CustodianPublicKey,
}

/// The answer of [`REISSUE`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Reissued {
    /// The new manifest's version.
    pub manifest_version: u64,
}

/// The answer of [`LOG`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Log {
    /// Every signed manifest, oldest first.
    #[serde(default)]
    pub entries: Vec<LogEntry>,
}
