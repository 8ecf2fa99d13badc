//! Transit: each tenant is a Vault transit mount at `/v1/<tenant>/`, so Vault's transit clients
//! work unchanged (README.md, "Vault clients").

use super::Route;

/// LIST `{tenant}/keys` (or `GET ?list=true`): the tenant's key names.
pub const LIST_KEYS: Route = Route::list("{tenant}/keys");
/// POST `{tenant}/keys/{key}`: create a key (creating one that exists returns it).
pub const CREATE_KEY: Route = Route::post("{tenant}/keys/{key}");
/// GET `{tenant}/keys/{key}`: Vault's key description.
pub const READ_KEY: Route = Route::get("{tenant}/keys/{key}");
/// DELETE `{tenant}/keys/{key}`: delete, once custodians approve.
pub const DELETE_KEY: Route = Route::delete("{tenant}/keys/{key}");
/// POST `{tenant}/keys/{key}/config`: change a key's configuration.
pub const CONFIGURE_KEY: Route = Route::post("{tenant}/keys/{key}/config");
/// POST `{tenant}/keys/{key}/rotate`: a new key version.
pub const ROTATE_KEY: Route = Route::post("{tenant}/keys/{key}/rotate");
/// POST `{tenant}/keys/{key}/trim`: destroy old versions.
pub const TRIM_KEY: Route = Route::post("{tenant}/keys/{key}/trim");
/// POST `{tenant}/encrypt/{key}`: encrypt, single or batch.
pub const ENCRYPT: Route = Route::post("{tenant}/encrypt/{key}");
/// POST `{tenant}/decrypt/{key}`: decrypt, single or batch.
pub const DECRYPT: Route = Route::post("{tenant}/decrypt/{key}");
/// POST `{tenant}/rewrap/{key}`: re-encrypt under a newer version, single or batch.
pub const REWRAP: Route = Route::post("{tenant}/rewrap/{key}");
/// POST `{tenant}/datakey/{form}/{key}`: a data key; `form` is `plaintext` or `wrapped`.
pub const DATAKEY: Route = Route::post("{tenant}/datakey/{form}/{key}");
/// POST `{tenant}/hmac/{key}[/{algorithm}]`: HMAC tokens, single or batch.
pub const HMAC: Route = Route::post("{tenant}/hmac/{key}/{algorithm?}");
/// POST `{tenant}/verify/{key}[/{algorithm}]`: check HMAC tokens, single or batch.
pub const VERIFY: Route = Route::post("{tenant}/verify/{key}/{algorithm?}");
/// GET `{tenant}/export/{kind}/{key}[/{version}]`: key material of an exportable key.
pub const EXPORT: Route = Route::get("{tenant}/export/{kind}/{key}/{version?}");
