//! Certificate pinning under `/v1/pins/` (docs/pinning.md): pinning apps, pinned keys, signed
//! manifests and their exports. The types that travel on these routes are in
//! [`crate::pins`].

use super::Route;

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
