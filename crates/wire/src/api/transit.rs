//! Transit: each tenant is a Vault transit mount at `/v1/<tenant>/`, so Vault's transit clients
//! work unchanged (README.md, "Vault clients").

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::BatchItem;
use super::Route;
use super::params::{Flag, Int, Seconds, Text};

/// LIST `{tenant}/keys` (or `GET ?list=true`): the tenant's key names.
pub const LIST_KEYS: Route = Route::list("{tenant}/keys");
/// POST `{tenant}/keys/{key}`: create a key (creating one that exists returns it).
pub const CREATE_KEY: Route = Route::post("{tenant}/keys/{key}");
/// GET `{tenant}/keys/{key}`: Vault's key description.
pub const READ_KEY: Route = Route::get("{tenant}/keys/{key}");
/// DELETE `{tenant}/keys/{key}`: delete, once custodians approve.
pub const DELETE_KEY: Route = Route::delete("{tenant}/keys/{key}");
/// POST `{tenant}/keys/{key}/cancel-deletion`: restore a key whose deletion waits for its
/// window to end, once custodians approve.
pub const CANCEL_KEY_DELETION: Route = Route::post("{tenant}/keys/{key}/cancel-deletion");
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
/// POST `{tenant}/sign/{key}[/{algorithm}]`: Vault's signing route; Tresor keys cannot sign, so
/// it always answers 400 naming the key type.
pub const SIGN: Route = Route::post("{tenant}/sign/{key}/{algorithm?}");
/// GET `{tenant}/export/{kind}/{key}[/{version}]`: key material of an exportable key.
pub const EXPORT: Route = Route::get("{tenant}/export/{kind}/{key}/{version?}");
/// POST `{tenant}/keys/{key}/transfer`: ask to seal the key to another vault (an approval;
/// Tresor's own route, docs/recovery.md).
pub const TRANSFER_KEY: Route = Route::post("{tenant}/keys/{key}/transfer");
/// POST `{tenant}/keys/{key}/receive`: ask to store a key another vault sealed to this one (an
/// approval; Tresor's own route).
pub const RECEIVE_KEY: Route = Route::post("{tenant}/keys/{key}/receive");

/// The body of [`TRANSFER_KEY`]. Tresor's own route: unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferKeyRequest {
    /// The receiving vault's transfer key, as its `sys/transfer-key` answers.
    pub recipient: crate::custody::TransferKey,
    /// The receiving vault's node fingerprint, checked with its operators: the transfer key
    /// must be signed by it.
    pub recipient_node: String,
}

/// The body of [`RECEIVE_KEY`]. Tresor's own route: unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveKeyRequest {
    /// The sealed package (base64), from the sending vault's executed transfer approval.
    pub package: String,
    /// The sending vault's id.
    pub from: String,
    /// Replace an existing key of that name.
    #[serde(default)]
    pub replace: bool,
}

// What travels on these routes. The server reads requests leniently (Vault's clients send
// `"2"` for 2, and unknown fields are ignored on these Vault routes); a client writes them
// plainly. Absent fields are not written.

/// The body of [`CREATE_KEY`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateKeyRequest<'a> {
    /// Key type: Tresor has one (`aes256-gcm96`, served with AES-256-GCM-SIV).
    #[serde(rename = "type", borrow, skip_serializing_if = "Option::is_none")]
    pub key_type: Text<'a>,
    /// Derive a key per context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived: Option<Flag>,
    /// Deterministic encryption (needs `derived`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergent_encryption: Option<Flag>,
    /// Key material may be exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exportable: Option<Flag>,
    /// Refused: Tresor has no plaintext backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_plaintext_backup: Option<Flag>,
    /// Seconds between automatic rotations (0: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_rotate_period: Option<Seconds>,
    /// Seconds between an approved deletion and destruction (default 7 days, at most 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_window: Option<Seconds>,
}

/// The body of [`CONFIGURE_KEY`]: what to change (see [`crate::keys::KeyConfigUpdate`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigureKeyRequest {
    /// Oldest version that still decrypts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_decryption_version: Option<Int>,
    /// Oldest version that encrypts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_encryption_version: Option<Int>,
    /// Whether the key may be deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_allowed: Option<Flag>,
    /// Whether key material may be exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exportable: Option<Flag>,
    /// Refused: Tresor has no plaintext backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_plaintext_backup: Option<Flag>,
    /// Seconds between automatic rotations (0: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_rotate_period: Option<Seconds>,
    /// Seconds between an approved deletion and destruction (default 7 days, at most 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_window: Option<Seconds>,
}

impl From<&crate::keys::KeyConfigUpdate> for ConfigureKeyRequest {
    fn from(update: &crate::keys::KeyConfigUpdate) -> Self {
        ConfigureKeyRequest {
            min_decryption_version: update.min_decryption_version.map(Int::from),
            min_encryption_version: update.min_encryption_version.map(Int::from),
            deletion_allowed: update.deletion_allowed.map(Flag),
            exportable: update.exportable.map(Flag),
            allow_plaintext_backup: None,
            auto_rotate_period: update.auto_rotate_period.map(Seconds),
            deletion_window: update.deletion_window.map(Seconds),
        }
    }
}

/// The query parameter of [`DELETE_KEY`] and `sys::SHRED_TENANT` that asks for another
/// deletion window than the key's or tenant's (`?deletion_window=0` destroys at once once
/// approved; docs/custody.md, "Scheduled deletion"). Vault's clients send none.
pub const DELETION_WINDOW_QUERY: &str = "deletion_window";

/// The body of [`TRIM_KEY`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrimKeyRequest {
    /// Versions below it are destroyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available_version: Option<Int>,
}

/// The body of [`ENCRYPT`]: one plaintext, or `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EncryptRequest<'a> {
    /// base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub plaintext: Text<'a>,
    /// Derivation context, base64 (derived keys only).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub context: Text<'a>,
    /// Associated data bound to the ciphertext, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub associated_data: Text<'a>,
    /// Refused: Tresor chooses nonces itself.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub nonce: Text<'a>,
    /// Version to encrypt with (default: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<Int>,
    /// Type of a key created by this request (Vault's upsert).
    #[serde(rename = "type", borrow, skip_serializing_if = "Option::is_none")]
    pub key_type: Text<'a>,
    /// Convergent encryption for a key created by this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergent_encryption: Option<Flag>,
    /// The status of a batch that failed in part (default 400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_failure_response_code: Option<Int>,
    /// Many plaintexts.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<Vec<EncryptItem<'a>>>,
}

/// One item of an encrypt `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EncryptItem<'a> {
    /// base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub plaintext: Text<'a>,
    /// Derivation context, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub context: Text<'a>,
    /// Associated data, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub associated_data: Text<'a>,
    /// Refused: Tresor chooses nonces itself.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub nonce: Text<'a>,
    /// Version to encrypt with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<Int>,
    /// Echoed in the item's result.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub reference: Text<'a>,
}

impl<'a> BatchItem<'a> for EncryptItem<'a> {
    fn reference(&self) -> Cow<'a, str> {
        self.reference.clone().unwrap_or_default()
    }
}

/// The body of [`DECRYPT`]: one ciphertext, or `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecryptRequest<'a> {
    /// `tresor:v<N>:…`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Text<'a>,
    /// Derivation context, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub context: Text<'a>,
    /// Associated data, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub associated_data: Text<'a>,
    /// Refused: Tresor chooses nonces itself.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub nonce: Text<'a>,
    /// The status of a batch that failed in part (default 400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_failure_response_code: Option<Int>,
    /// Many ciphertexts.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<Vec<DecryptItem<'a>>>,
}

/// The body of [`REWRAP`]: one ciphertext, or `batch_input`, and the version to encrypt with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RewrapRequest<'a> {
    /// `tresor:v<N>:…`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Text<'a>,
    /// Derivation context, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub context: Text<'a>,
    /// Associated data, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub associated_data: Text<'a>,
    /// Refused: Tresor chooses nonces itself.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub nonce: Text<'a>,
    /// The version to encrypt with (default: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<Int>,
    /// Many ciphertexts.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<Vec<DecryptItem<'a>>>,
}

/// One item of a decrypt or rewrap `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DecryptItem<'a> {
    /// `tresor:v<N>:…`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Text<'a>,
    /// Derivation context, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub context: Text<'a>,
    /// Associated data, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub associated_data: Text<'a>,
    /// Refused: Tresor chooses nonces itself.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub nonce: Text<'a>,
    /// Echoed in the item's result.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub reference: Text<'a>,
}

impl<'a> BatchItem<'a> for DecryptItem<'a> {
    fn reference(&self) -> Cow<'a, str> {
        self.reference.clone().unwrap_or_default()
    }
}

/// The answer of [`ENCRYPT`] and [`REWRAP`], and one item of their batch results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CiphertextResult<'a> {
    /// `tresor:v<N>:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
    /// N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// Why the item failed (batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The item's reference.
    #[serde(default)]
    pub reference: Cow<'a, str>,
}

/// The answer of [`DECRYPT`], and one item of its batch results.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct PlaintextResult<'a> {
    /// base64; always present (empty when the item failed), as in Vault.
    pub plaintext: Zeroizing<String>,
    /// Why the item failed (batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The item's reference.
    #[serde(default)]
    pub reference: Cow<'a, str>,
}

impl fmt::Debug for PlaintextResult<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaintextResult")
            .field("plaintext", &"[REDACTED]")
            .field("error", &self.error)
            .field("reference", &self.reference)
            .finish()
    }
}

/// The body of [`DATAKEY`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataKeyRequest<'a> {
    /// Derivation context, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub context: Text<'a>,
    /// Associated data, base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub associated_data: Text<'a>,
    /// Refused: Tresor chooses nonces itself.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub nonce: Text<'a>,
    /// 128, 256 (default) or 512.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<Int>,
}

/// The answer of [`DATAKEY`].
#[derive(Clone, Serialize, Deserialize)]
pub struct DataKeyResponse {
    /// The key wrapped under the named key.
    pub ciphertext: String,
    /// Version of the wrapping key.
    pub key_version: u32,
    /// The key itself, base64 (only for `plaintext` data keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<Zeroizing<String>>,
}

impl fmt::Debug for DataKeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyResponse")
            .field("ciphertext", &self.ciphertext)
            .field("key_version", &self.key_version)
            .field("plaintext", &self.plaintext.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// The body of [`HMAC`]: one input, or `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HmacRequest<'a> {
    /// base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input: Text<'a>,
    /// `sha2-256` (default), `sha2-512`, …; the path's algorithm wins.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub algorithm: Text<'a>,
    /// Version to compute with (default: the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<Int>,
    /// Many inputs.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<Vec<HmacItem<'a>>>,
}

/// One item of an hmac `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HmacItem<'a> {
    /// base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input: Text<'a>,
    /// Echoed in the item's result.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub reference: Text<'a>,
}

impl<'a> BatchItem<'a> for HmacItem<'a> {
    fn reference(&self) -> Cow<'a, str> {
        self.reference.clone().unwrap_or_default()
    }
}

/// The answer of [`HMAC`], and one item of its batch results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HmacResult<'a> {
    /// `tresor:v<N>:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<String>,
    /// Why the item failed (batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The item's reference.
    #[serde(default)]
    pub reference: Cow<'a, str>,
}

/// The body of [`VERIFY`]: one input and token, or `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyRequest<'a> {
    /// base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input: Text<'a>,
    /// The token to check.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub hmac: Text<'a>,
    /// Refused: Tresor keys do not sign.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub signature: Text<'a>,
    /// The HMAC algorithm; the path's wins.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub algorithm: Text<'a>,
    /// Vault's other name for `algorithm`.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Text<'a>,
    /// Many inputs and tokens.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub batch_input: Option<Vec<VerifyItem<'a>>>,
}

/// One item of a verify `batch_input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyItem<'a> {
    /// base64.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub input: Text<'a>,
    /// The token to check.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub hmac: Text<'a>,
    /// Refused: Tresor keys do not sign.
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub signature: Text<'a>,
    /// Echoed in the item's result.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub reference: Text<'a>,
}

impl<'a> BatchItem<'a> for VerifyItem<'a> {
    fn reference(&self) -> Cow<'a, str> {
        self.reference.clone().unwrap_or_default()
    }
}

/// The answer of [`VERIFY`], and one item of its batch results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyResult<'a> {
    /// Whether the token is the input's HMAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// Why the item failed (batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The item's reference.
    #[serde(default)]
    pub reference: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_written_plainly_and_read_leniently() {
        let body = EncryptRequest {
            plaintext: Some("aGk=".into()),
            key_version: Some(Int(2)),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"plaintext":"aGk=","key_version":2}"#
        );
        let read: EncryptRequest = serde_json::from_str(
            r#"{"plaintext":"aGk=","key_version":"2","other":1,"batch_input":[{"reference":"r"}]}"#,
        )
        .unwrap();
        assert_eq!(read.key_version, Some(Int(2)));
        assert_eq!(read.batch_input.unwrap()[0].reference(), "r");
        let answer = CiphertextResult {
            ciphertext: Some("tresor:v1:x".into()),
            key_version: Some(1),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"ciphertext":"tresor:v1:x","key_version":1,"reference":""}"#
        );
    }
}

// Issue 17: bring your own key in Vault's wire format (docs/format.md, "Vault and OpenBao").

/// GET `{tenant}/wrapping_key`: the tenant's RSA-4096 wrapping key (PEM) for imports.
pub const WRAPPING_KEY: Route = Route::get("{tenant}/wrapping_key");
/// POST `{tenant}/wrapping_key/rotate`: a new wrapping key (Tresor's; Vault has none).
pub const ROTATE_WRAPPING_KEY: Route = Route::post("{tenant}/wrapping_key/rotate");
/// POST `{tenant}/keys/{key}/import`: create a key from wrapped material.
pub const IMPORT_KEY: Route = Route::post("{tenant}/keys/{key}/import");
/// POST `{tenant}/keys/{key}/import_version`: add an imported version.
pub const IMPORT_KEY_VERSION: Route = Route::post("{tenant}/keys/{key}/import_version");

/// The body of [`IMPORT_KEY`] and [`IMPORT_KEY_VERSION`], as `bao/vault transit import` sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportKeyRequest<'a> {
    /// base64(RSA-OAEP(ephemeral AES-256 key) ‖ AES-KWP(ephemeral key, key)).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Text<'a>,
    /// The OAEP hash: `SHA256` (the default; the only one read).
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    pub hash_function: Text<'a>,
    /// Key type: `aes256-gcm96` (the default; the only one read).
    #[serde(rename = "type", borrow, skip_serializing_if = "Option::is_none")]
    pub key_type: Text<'a>,
    /// Derive a key per context (HKDF-SHA256, as Vault's `hkdf_sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived: Option<Flag>,
    /// Convergent encryption (needs `derived`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub convergent_encryption: Option<Flag>,
    /// Refused: ask for it in `keys/{key}/config` afterwards (dual-controlled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exportable: Option<Flag>,
    /// Refused: Tresor has no plaintext backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_plaintext_backup: Option<Flag>,
    /// Accepted and ignored: rotation makes a Tresor version after the imported ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_rotation: Option<Flag>,
    /// Seconds between automatic rotations (0: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_rotate_period: Option<Seconds>,
    /// `import_version` only: the version number (default: the next one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Int>,
}
