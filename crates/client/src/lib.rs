//! A typed async client for a Tresor server, over mutual TLS. The CLI and the load tool use it;
//! services written in Rust can too.
//!
//! ```no_run
//! # async fn example() -> Result<(), tresor_client::ClientError> {
//! use tresor_client::{Client, ClientSettings, CryptoOptions};
//! let client = Client::new(&ClientSettings {
//!     addr: "https://127.0.0.1:8200".into(),
//!     ca_cert: "ca.pem".into(),
//!     client_cert: "client.pem".into(),
//!     client_key: "client-key.pem".into(),
//! })?;
//! let sealed = client.encrypt("payments", "card-pan", b"4111 1111 1111 1111", &CryptoOptions::default()).await?;
//! let opened = client.decrypt("payments", "card-pan", &sealed.ciphertext, &CryptoOptions::default()).await?;
//! assert_eq!(opened.as_slice(), b"4111 1111 1111 1111");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use tresor_crypto::identity::{CustodianIdentity, CustodianPublicKey};
use tresor_wire::approvals::{Approval, ApprovalOutcome};
use tresor_wire::custody::{SealStatus, SealedShare, TenantCustodyKey, UnsealProgress};
use tresor_wire::keys::KeyConfigUpdate;
use tresor_wire::pins::{AppSpec, DeliveredKey, KeyAlgorithm, ManifestKeyInfo, PinApp, PinChange};
use tresor_wire::tenants::TenantInfo;

use crate::tls::TlsError;

pub mod tls;

/// Where the server is and which files identify this client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `https://host:port`.
    pub addr: String,
    /// CA certificate that issued the server's certificate (PEM).
    pub ca_cert: PathBuf,
    /// This client's certificate (PEM).
    pub client_cert: PathBuf,
    /// This client's private key (PEM).
    pub client_key: PathBuf,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The settings cannot be used.
    #[error("{0}")]
    Settings(String),
    /// TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {addr}: {message}")]
    Connect {
        /// The server address.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// The server refused the request.
    #[error("server answered {status}: {}", if errors.is_empty() { status_text(*status) } else { errors.join("; ") })]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's messages.
        errors: Vec<String>,
    },
    /// The server's unseal key is not vouched for by a pinned node: nothing was sent.
    #[error(transparent)]
    Untrusted(#[from] tresor_wire::custody::NodeTrustError),
    /// The server's answer is not what this client expects.
    #[error("unexpected response from the server: {0}")]
    Decode(String),
}

/// Context, associated data and version for one cryptographic call.
#[derive(Debug, Clone, Default)]
pub struct CryptoOptions {
    /// Derivation context (derived keys only).
    pub context: Option<Vec<u8>>,
    /// Associated data bound to the ciphertext.
    pub associated_data: Option<Vec<u8>>,
    /// Key version to encrypt with (default latest).
    pub key_version: Option<u32>,
}

/// Options for creating a key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateKeyOptions {
    /// Derive a key per context.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub derived: bool,
    /// Deterministic encryption (needs `derived`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub convergent_encryption: bool,
    /// Key material may be exported.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exportable: bool,
    /// Seconds between automatic rotations (0: never).
    #[serde(skip_serializing_if = "is_zero")]
    pub auto_rotate_period: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A ciphertext (or HMAC token) and the key version that made it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Sealed {
    /// `tresor:v<N>:…`
    pub ciphertext: String,
    /// N.
    pub key_version: u32,
}

/// A data key.
#[derive(Deserialize)]
pub struct DataKeyResponse {
    /// The key wrapped under the named key.
    pub ciphertext: String,
    /// Version of the wrapping key.
    pub key_version: u32,
    /// The key itself, base64 (only for `plaintext` data keys).
    pub plaintext: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for DataKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyResponse")
            .field("ciphertext", &self.ciphertext)
            .field("key_version", &self.key_version)
            .field("plaintext", &self.plaintext.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// What a configuration change did.
#[derive(Debug, Clone)]
pub enum Configured {
    /// Applied: the key's description afterwards.
    Applied(Value),
    /// Weakens protection or destroys key material: waits for custodian approval.
    PendingApproval(Box<Approval>),
}

/// What an activation request did.
#[derive(Debug, Clone)]
pub enum PinActivation {
    /// The key is active.
    Done(Box<PinChange>),
    /// Early activation: waits for custodian approval.
    PendingApproval(Box<Approval>),
}

/// One result of a batch call: a value or the server's message for that item.
pub type ItemResult<T> = Result<T, String>;

/// A client for one server. Cheap to clone; connections are pooled and kept alive.
#[derive(Clone)]
pub struct Client {
    http: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
}

impl Client {
    /// A client for `settings`.
    pub fn new(settings: &ClientSettings) -> Result<Client, ClientError> {
        let base = settings.addr.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(ClientError::Settings(format!(
                "address `{base}` must start with https:// (Tresor only speaks mutual TLS)"
            )));
        }
        let mut config = tls::load_client_config(
            &settings.ca_cert,
            &settings.client_cert,
            &settings.client_key,
        )?;
        // The connector announces the protocols it speaks itself (and refuses a preset list).
        config.alpn_protocols.clear();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        Ok(Client {
            http: HttpClient::builder(TokioExecutor::new()).build(connector),
            base,
        })
    }

    /// Sends a request and returns status and parsed JSON body (`Null` when empty).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let (status, body) = self.fetch(method, path, body).await?;
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| ClientError::Decode(format!("body is not JSON: {e}")))?
        };
        Ok((status, value))
    }

    /// Sends a request and returns status and the body's exact bytes.
    pub async fn fetch(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let bytes = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body).expect("JSON serializes")),
            None => Bytes::new(),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}/v1/{}", self.base, path.trim_start_matches('/')))
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Settings(format!("invalid request: {e}")))?;
        request
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| ClientError::Connect {
                addr: self.base.clone(),
                message: error_chain(&e),
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Connect {
                addr: self.base.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        Ok((status, body))
    }

    /// Like [`Client::fetch`], but a non-2xx answer becomes [`ClientError::Api`].
    pub async fn fetch_ok(&self, method: Method, path: &str) -> Result<Bytes, ClientError> {
        let (status, body) = self.fetch(method, path, None).await?;
        if status.is_success() {
            return Ok(body);
        }
        let value = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        Err(api_error(status, &value))
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (status, value) = self.raw(method, path, body).await?;
        if status.is_success() {
            return Ok(value);
        }
        Err(api_error(status, &value))
    }

    /// Calls and decodes the envelope's `data`.
    pub async fn data<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let value = self.call(method, path, body).await?;
        let data = value
            .get("data")
            .cloned()
            .ok_or_else(|| ClientError::Decode("no `data` in the answer".into()))?;
        serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `sys/seal-status` (not enveloped).
    pub async fn seal_status(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, "sys/seal-status", None).await
    }

    /// `sys/health` with its status code (200, 501, 503) and body.
    pub async fn health(&self) -> Result<(StatusCode, Value), ClientError> {
        self.raw(Method::GET, "sys/health", None).await
    }

    /// Creates a tenant.
    pub async fn create_tenant(
        &self,
        name: &str,
        level: u8,
        custodians: &[CustodianPublicKey],
    ) -> Result<TenantInfo, ClientError> {
        let body = json!({ "level": level, "custodians": custodians });
        self.data(Method::POST, &format!("sys/tenants/{name}"), Some(&body))
            .await
    }

    /// Lists tenants.
    pub async fn list_tenants(&self) -> Result<Vec<String>, ClientError> {
        let data: Value = self.data(list_method(), "sys/tenants", None).await?;
        keys_of(&data)
    }

    /// Describes a tenant.
    pub async fn tenant(&self, name: &str) -> Result<TenantInfo, ClientError> {
        self.data(Method::GET, &format!("sys/tenants/{name}"), None)
            .await
    }

    /// Rotates a tenant's KEK.
    pub async fn rotate_tenant_kek(&self, name: &str) -> Result<TenantInfo, ClientError> {
        self.data(
            Method::POST,
            &format!("sys/tenants/{name}/rotate-kek"),
            None,
        )
        .await
    }

    /// Asks for a tenant to be shredded: needs custodian approval, so this returns the pending
    /// approval.
    pub async fn shred_tenant(&self, name: &str) -> Result<Approval, ClientError> {
        self.data(Method::DELETE, &format!("sys/tenants/{name}"), None)
            .await
    }

    /// Creates a key; returns Vault's key description.
    pub async fn create_key(
        &self,
        tenant: &str,
        key: &str,
        options: &CreateKeyOptions,
    ) -> Result<Value, ClientError> {
        let body = serde_json::to_value(options).expect("serializes");
        self.data(Method::POST, &format!("{tenant}/keys/{key}"), Some(&body))
            .await
    }

    /// Vault's key description.
    pub async fn read_key(&self, tenant: &str, key: &str) -> Result<Value, ClientError> {
        self.data(Method::GET, &format!("{tenant}/keys/{key}"), None)
            .await
    }

    /// Key names of a tenant (empty when it has none).
    pub async fn list_keys(&self, tenant: &str) -> Result<Vec<String>, ClientError> {
        match self
            .data::<Value>(list_method(), &format!("{tenant}/keys"), None)
            .await
        {
            Ok(data) => keys_of(&data),
            Err(ClientError::Api {
                status: 404,
                errors,
            }) if errors.is_empty() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Rotates a key.
    pub async fn rotate_key(&self, tenant: &str, key: &str) -> Result<Value, ClientError> {
        self.data(Method::POST, &format!("{tenant}/keys/{key}/rotate"), None)
            .await
    }

    /// Changes a key's configuration. A change that weakens protection (lowering
    /// `min_decryption_version`, enabling export) waits for custodian approval.
    pub async fn configure_key(
        &self,
        tenant: &str,
        key: &str,
        update: &KeyConfigUpdate,
    ) -> Result<Configured, ClientError> {
        let body = serde_json::to_value(update).expect("serializes");
        self.applied_or_pending(&format!("{tenant}/keys/{key}/config"), &body)
            .await
    }

    /// POSTs a change that runs at once or, when it is dual-controlled, waits for approval.
    async fn applied_or_pending(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Configured, ClientError> {
        let value = self.call(Method::POST, path, Some(body)).await?;
        let data = value
            .get("data")
            .cloned()
            .ok_or_else(|| ClientError::Decode("no `data` in the answer".into()))?;
        if data.get("signatures").is_some() {
            let approval =
                serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))?;
            Ok(Configured::PendingApproval(Box::new(approval)))
        } else {
            Ok(Configured::Applied(data))
        }
    }

    /// Destroys versions below `min_available_version`. Destroying a version waits for
    /// custodian approval; a trim that destroys none is applied at once.
    pub async fn trim_key(
        &self,
        tenant: &str,
        key: &str,
        min_available_version: u32,
    ) -> Result<Configured, ClientError> {
        let body = json!({ "min_available_version": min_available_version });
        self.applied_or_pending(&format!("{tenant}/keys/{key}/trim"), &body)
            .await
    }

    /// Asks for a key to be deleted: needs custodian approval, so this returns the pending
    /// approval.
    pub async fn delete_key(&self, tenant: &str, key: &str) -> Result<Approval, ClientError> {
        self.data(Method::DELETE, &format!("{tenant}/keys/{key}"), None)
            .await
    }

    /// Encrypts one plaintext.
    pub async fn encrypt(
        &self,
        tenant: &str,
        key: &str,
        plaintext: &[u8],
        options: &CryptoOptions,
    ) -> Result<Sealed, ClientError> {
        let mut body = options_json(options);
        body["plaintext"] = Value::String(STANDARD.encode(plaintext));
        self.data(
            Method::POST,
            &format!("{tenant}/encrypt/{key}"),
            Some(&body),
        )
        .await
    }

    /// Encrypts many plaintexts with the same options; one result per item, in order.
    pub async fn encrypt_batch(
        &self,
        tenant: &str,
        key: &str,
        plaintexts: &[&[u8]],
        options: &CryptoOptions,
    ) -> Result<Vec<ItemResult<Sealed>>, ClientError> {
        let items: Vec<Value> = plaintexts
            .iter()
            .map(|p| {
                let mut item = options_json(options);
                item["plaintext"] = Value::String(STANDARD.encode(p));
                item
            })
            .collect();
        let results = self
            .batch(&format!("{tenant}/encrypt/{key}"), items)
            .await?;
        Ok(results
            .into_iter()
            .map(|r| r.and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string())))
            .collect())
    }

    /// Decrypts one ciphertext.
    pub async fn decrypt(
        &self,
        tenant: &str,
        key: &str,
        ciphertext: &str,
        options: &CryptoOptions,
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let mut body = options_json(options);
        body["ciphertext"] = Value::String(ciphertext.to_owned());
        let data: Value = self
            .data(
                Method::POST,
                &format!("{tenant}/decrypt/{key}"),
                Some(&body),
            )
            .await?;
        decode_plaintext(&data).map_err(ClientError::Decode)
    }

    /// Decrypts many ciphertexts with the same options; one result per item, in order.
    pub async fn decrypt_batch(
        &self,
        tenant: &str,
        key: &str,
        ciphertexts: &[&str],
        options: &CryptoOptions,
    ) -> Result<Vec<ItemResult<Zeroizing<Vec<u8>>>>, ClientError> {
        let items = ciphertexts
            .iter()
            .map(|c| {
                let mut item = options_json(options);
                item["ciphertext"] = Value::String((*c).to_owned());
                item
            })
            .collect();
        let results = self
            .batch(&format!("{tenant}/decrypt/{key}"), items)
            .await?;
        Ok(results
            .into_iter()
            .map(|r| r.and_then(|v| decode_plaintext(&v)))
            .collect())
    }

    /// Re-encrypts a ciphertext under the latest (or `options.key_version`) version.
    pub async fn rewrap(
        &self,
        tenant: &str,
        key: &str,
        ciphertext: &str,
        options: &CryptoOptions,
    ) -> Result<Sealed, ClientError> {
        let mut body = options_json(options);
        body["ciphertext"] = Value::String(ciphertext.to_owned());
        self.data(Method::POST, &format!("{tenant}/rewrap/{key}"), Some(&body))
            .await
    }

    /// A fresh data key of `bits` bits; with `plaintext` the key itself is returned too.
    pub async fn datakey(
        &self,
        tenant: &str,
        key: &str,
        bits: u32,
        plaintext: bool,
        options: &CryptoOptions,
    ) -> Result<DataKeyResponse, ClientError> {
        let mut body = options_json(options);
        body["bits"] = json!(bits);
        let form = if plaintext { "plaintext" } else { "wrapped" };
        self.data(
            Method::POST,
            &format!("{tenant}/datakey/{form}/{key}"),
            Some(&body),
        )
        .await
    }

    /// HMAC token of `input`.
    pub async fn hmac(
        &self,
        tenant: &str,
        key: &str,
        input: &[u8],
        algorithm: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut body = json!({ "input": STANDARD.encode(input) });
        if let Some(algorithm) = algorithm {
            body["algorithm"] = json!(algorithm);
        }
        let data: Value = self
            .data(Method::POST, &format!("{tenant}/hmac/{key}"), Some(&body))
            .await?;
        text_field(&data, "hmac")
    }

    /// Whether `token` is the HMAC of `input`.
    pub async fn verify_hmac(
        &self,
        tenant: &str,
        key: &str,
        input: &[u8],
        token: &str,
        algorithm: Option<&str>,
    ) -> Result<bool, ClientError> {
        let mut body = json!({ "input": STANDARD.encode(input), "hmac": token });
        if let Some(algorithm) = algorithm {
            body["algorithm"] = json!(algorithm);
        }
        let data: Value = self
            .data(Method::POST, &format!("{tenant}/verify/{key}"), Some(&body))
            .await?;
        data.get("valid")
            .and_then(Value::as_bool)
            .ok_or_else(|| ClientError::Decode("no `valid` in the answer".into()))
    }

    /// Initialises the vault: the root key is split among `custodians`, `threshold` of whom
    /// unseal it. The vault stays sealed.
    ///
    /// `four_eyes`: whether the custodian who asks for a dangerous operation does not count
    /// among its approvers (`None`: the vault's default, on wherever n − 1 ≥ k).
    pub async fn init(
        &self,
        custodians: &[CustodianPublicKey],
        threshold: u8,
        four_eyes: Option<bool>,
    ) -> Result<SealStatus, ClientError> {
        let mut body = json!({ "custodians": custodians, "threshold": threshold });
        if let Some(four_eyes) = four_eyes {
            body["four_eyes"] = json!(four_eyes);
        }
        self.data(Method::POST, "sys/init", Some(&body)).await
    }

    /// Submits `identity`'s unseal share: fetches it (sealed to the identity), opens it here,
    /// and sends it sealed to the vault's current unseal key, so it is never readable on the
    /// wire. The unseal key must be signed by a node whose fingerprint is in `pinned_nodes`
    /// (pinned by the custodian at init): otherwise nothing is sent.
    pub async fn unseal_with(
        &self,
        identity: &CustodianIdentity,
        pinned_nodes: &[String],
    ) -> Result<UnsealProgress, ClientError> {
        self.submit_share(identity, pinned_nodes, false).await
    }

    /// As [`Client::unseal_with`], accepting a known gap at the end of the vault's audit log:
    /// the vault then unseals although its log lost lines after its last anchored checkpoint,
    /// once every custodian of the round has accepted it (audited).
    pub async fn unseal_accepting_audit_gap(
        &self,
        identity: &CustodianIdentity,
        pinned_nodes: &[String],
    ) -> Result<UnsealProgress, ClientError> {
        self.submit_share(identity, pinned_nodes, true).await
    }

    async fn submit_share(
        &self,
        identity: &CustodianIdentity,
        pinned_nodes: &[String],
        accept_audit_gap: bool,
    ) -> Result<UnsealProgress, ClientError> {
        let (vault_id, unseal_key) = self.trusted_unseal_key(pinned_nodes).await?;
        let sealed: SealedShare = self
            .data(
                Method::GET,
                &format!("sys/unseal-share/{}", identity.name()),
                None,
            )
            .await?;
        if sealed.vault_id != vault_id {
            return Err(ClientError::Decode(
                "the share belongs to another vault".into(),
            ));
        }
        let share = sealed
            .open(identity)
            .map_err(|e| ClientError::Settings(e.to_string()))?;
        let submission = share
            .seal_for_submission(&vault_id, &unseal_key, identity.name())
            .map_err(|e| ClientError::Settings(e.to_string()))?;
        let mut body =
            json!({ "custodian": identity.name(), "sealed_share": STANDARD.encode(submission) });
        if accept_audit_gap {
            body["accept_audit_gap"] = json!(true);
        }
        self.data(Method::POST, "sys/unseal", Some(&body)).await
    }

    /// Seals the vault.
    pub async fn seal(&self) -> Result<(), ClientError> {
        self.call(Method::POST, "sys/seal", None).await.map(drop)
    }

    /// Unlocks level-3 tenant `tenant` with one of its custodians' identity (the custody key
    /// travels sealed both ways, like an unseal share).
    ///
    /// As for [`Client::unseal_with`], the vault's unseal key must be signed by a pinned node.
    pub async fn unlock_tenant_with(
        &self,
        tenant: &str,
        identity: &CustodianIdentity,
        pinned_nodes: &[String],
    ) -> Result<TenantInfo, ClientError> {
        let (trusted_vault, trusted_key) = self.trusted_unseal_key(pinned_nodes).await?;
        let data: Value = self
            .data(
                Method::GET,
                &format!("sys/tenants/{tenant}/custody/{}", identity.name()),
                None,
            )
            .await?;
        let field = |name: &str| text_field(&data, name);
        let vault_id = field("vault_id")?;
        let unseal_key = decode_key(&field("unseal_key")?)?;
        if vault_id != trusted_vault || unseal_key != trusted_key {
            return Err(ClientError::Untrusted(
                tresor_wire::custody::NodeTrustError::Malformed(
                    "the custody answer names another vault or unseal key than the signed seal status",
                ),
            ));
        }
        let custody =
            TenantCustodyKey::open(identity, &vault_id, tenant, &field("sealed_custody_key")?)
                .map_err(|e| ClientError::Settings(e.to_string()))?;
        let sealed = custody
            .seal_for_unlock(&vault_id, &unseal_key, tenant, identity.name())
            .map_err(|e| ClientError::Settings(e.to_string()))?;
        let body =
            json!({ "custodian": identity.name(), "sealed_custody_key": STANDARD.encode(sealed) });
        self.data(
            Method::POST,
            &format!("sys/tenants/{tenant}/unlock"),
            Some(&body),
        )
        .await
    }

    /// The vault id and unseal key of the seal status, once a node in `pinned_nodes` vouches
    /// for the key.
    async fn trusted_unseal_key(
        &self,
        pinned_nodes: &[String],
    ) -> Result<(String, [u8; 32]), ClientError> {
        let status = self.seal_status().await?;
        let (vault_id, _) = vault_keys(&status)?;
        let text = |name: &str| status.get(name).and_then(Value::as_str);
        let key = tresor_wire::custody::verify_unseal_key(
            &tresor_wire::custody::SignedUnsealKey {
                vault_id: &vault_id,
                environment: text("environment").unwrap_or_default(),
                unseal_key: text("unseal_key").unwrap_or_default(),
                node_key: text("node_key"),
                signature: text("unseal_key_signature"),
            },
            pinned_nodes,
        )?;
        Ok((vault_id, key))
    }

    /// Locks level-3 tenant `tenant` at once.
    pub async fn lock_tenant(&self, tenant: &str) -> Result<(), ClientError> {
        self.call(Method::POST, &format!("sys/tenants/{tenant}/lock"), None)
            .await
            .map(drop)
    }

    /// Asks for a level-3 tenant's custodians to be replaced (creates an approval).
    pub async fn change_tenant_custodians(
        &self,
        tenant: &str,
        custodians: &[CustodianPublicKey],
    ) -> Result<Approval, ClientError> {
        let body = json!({ "custodians": custodians });
        self.data(
            Method::POST,
            &format!("sys/tenants/{tenant}/custodians"),
            Some(&body),
        )
        .await
    }

    /// Asks for a root key rotation (creates an approval).
    pub async fn rotate_root(&self) -> Result<Approval, ClientError> {
        self.data(Method::POST, "sys/rotate-root", None).await
    }

    /// Asks for a rekey to new custodians and/or threshold (creates an approval).
    pub async fn rekey(
        &self,
        custodians: &[CustodianPublicKey],
        threshold: u8,
    ) -> Result<Approval, ClientError> {
        let body = json!({ "custodians": custodians, "threshold": threshold });
        self.data(Method::POST, "sys/rekey", Some(&body)).await
    }

    /// Pending approvals.
    pub async fn approvals(&self) -> Result<Vec<Approval>, ClientError> {
        let data: Value = self.data(list_method(), "sys/approvals", None).await?;
        serde_json::from_value(
            data.get("approvals")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
        )
        .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// One approval.
    pub async fn approval(&self, id: &str) -> Result<Approval, ClientError> {
        self.data(Method::GET, &format!("sys/approvals/{id}"), None)
            .await
    }

    /// Signs `approval` (as fetched and shown to the custodian) with `identity` and submits it.
    pub async fn approve_with(
        &self,
        approval: &Approval,
        identity: &CustodianIdentity,
    ) -> Result<ApprovalOutcome, ClientError> {
        let body = json!({ "custodian": identity.name(), "signature": approval.sign(identity) });
        self.data(
            Method::POST,
            &format!("sys/approvals/{}/approve", approval.id),
            Some(&body),
        )
        .await
    }

    /// Signs a rejection of `approval` with `identity` and submits it.
    pub async fn reject_with(
        &self,
        approval: &Approval,
        identity: &CustodianIdentity,
    ) -> Result<ApprovalOutcome, ClientError> {
        let signature = approval.sign_decision(identity, tresor_wire::approvals::Decision::Reject);
        let body = json!({ "custodian": identity.name(), "signature": signature });
        self.data(
            Method::POST,
            &format!("sys/approvals/{}/reject", approval.id),
            Some(&body),
        )
        .await
    }

    /// Withdraws approval `id` (only the principal that asked may).
    pub async fn cancel_approval(&self, id: &str) -> Result<Approval, ClientError> {
        self.data(Method::POST, &format!("sys/approvals/{id}/cancel"), None)
            .await
    }

    /// Creates a pinning app.
    pub async fn pins_create_app(&self, app: &str, spec: &AppSpec) -> Result<PinApp, ClientError> {
        let body = serde_json::to_value(spec).expect("serializes");
        self.data(Method::POST, &format!("pins/{app}"), Some(&body))
            .await
    }

    /// Describes a pinning app and its keys.
    pub async fn pins_app(&self, app: &str) -> Result<PinApp, ClientError> {
        self.data(Method::GET, &format!("pins/{app}"), None).await
    }

    /// Pinning app names (empty when there are none).
    pub async fn pins_list_apps(&self) -> Result<Vec<String>, ClientError> {
        match self.data::<Value>(list_method(), "pins", None).await {
            Ok(data) => keys_of(&data),
            Err(ClientError::Api {
                status: 404,
                errors,
            }) if errors.is_empty() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Generates a pinned key pair in the vault and stages its pin.
    pub async fn pins_generate_key(
        &self,
        app: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<PinChange, ClientError> {
        let body = json!({ "algorithm": algorithm.name() });
        self.data(
            Method::POST,
            &format!("pins/{app}/keys/generate"),
            Some(&body),
        )
        .await
    }

    /// Stages the pin of a key held elsewhere; `kind` is `certificate`, `csr` or `public-key`.
    pub async fn pins_import_key(
        &self,
        app: &str,
        kind: &str,
        pem: &str,
    ) -> Result<PinChange, ClientError> {
        let body = json!({ "kind": kind, "pem": pem });
        self.data(
            Method::POST,
            &format!("pins/{app}/keys/import"),
            Some(&body),
        )
        .await
    }

    /// Activates a staged key; with `override_lag` an activation before `max_update_lag`
    /// becomes a pending approval.
    pub async fn pins_activate(
        &self,
        app: &str,
        kid: &str,
        override_lag: bool,
    ) -> Result<PinActivation, ClientError> {
        let body = json!({ "override": override_lag });
        let (status, value) = self
            .raw(
                Method::POST,
                &format!("pins/{app}/keys/{kid}/activate"),
                Some(&body),
            )
            .await?;
        if !status.is_success() {
            return Err(api_error(status, &value));
        }
        let data = value
            .get("data")
            .cloned()
            .ok_or_else(|| ClientError::Decode("no `data` in the answer".into()))?;
        let decode = |e: serde_json::Error| ClientError::Decode(e.to_string());
        if status == StatusCode::ACCEPTED {
            Ok(PinActivation::PendingApproval(Box::new(
                serde_json::from_value(data).map_err(decode)?,
            )))
        } else {
            Ok(PinActivation::Done(
                serde_json::from_value(data).map_err(decode)?,
            ))
        }
    }

    /// Retires a key (active → retiring, staged or retiring → retired).
    pub async fn pins_retire(&self, app: &str, kid: &str) -> Result<PinChange, ClientError> {
        self.data(Method::POST, &format!("pins/{app}/keys/{kid}/retire"), None)
            .await
    }

    /// Marks a key compromised: promotes the published backup and stages a new one.
    pub async fn pins_compromise(&self, app: &str, kid: &str) -> Result<PinChange, ClientError> {
        self.data(
            Method::POST,
            &format!("pins/{app}/keys/{kid}/compromise"),
            None,
        )
        .await
    }

    /// A PKCS#10 CSR (PEM) signed with the vault-held key, for `subject` and the DNS names
    /// `dns` (empty: the app's hosts).
    pub async fn pins_csr(
        &self,
        app: &str,
        kid: &str,
        subject: &str,
        dns: &[String],
    ) -> Result<String, ClientError> {
        let body = json!({ "subject": subject, "dns": dns });
        let data: Value = self
            .data(
                Method::POST,
                &format!("pins/{app}/keys/{kid}/csr"),
                Some(&body),
            )
            .await?;
        text_field(&data, "csr")
    }

    /// The private key of `kid`, sealed to `recipient` (a TLS terminator's identity).
    pub async fn pins_deliver(
        &self,
        app: &str,
        kid: &str,
        recipient: &CustodianPublicKey,
    ) -> Result<DeliveredKey, ClientError> {
        let body = json!({ "recipient": recipient });
        self.data(
            Method::POST,
            &format!("pins/{app}/keys/{kid}/deliver"),
            Some(&body),
        )
        .await
    }

    /// The signed manifest (latest, or `version`), byte for byte as served.
    pub async fn pins_manifest(
        &self,
        app: &str,
        version: Option<u64>,
    ) -> Result<Bytes, ClientError> {
        let path = match version {
            Some(v) => format!("pins/{app}/manifest/{v}"),
            None => format!("pins/{app}/manifest"),
        };
        self.fetch_ok(Method::GET, &path).await
    }

    /// The latest manifest in a platform format (`android`, `trustkit`, `nspinneddomains`,
    /// `okhttp`, `json`).
    pub async fn pins_export(&self, app: &str, format: &str) -> Result<String, ClientError> {
        let bytes = self
            .fetch_ok(Method::GET, &format!("pins/{app}/export/{format}"))
            .await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ClientError::Decode("export is not UTF-8".into()))
    }

    /// Signs a new manifest version with unchanged pins.
    pub async fn pins_reissue(&self, app: &str) -> Result<u64, ClientError> {
        let data: Value = self
            .data(Method::POST, &format!("pins/{app}/reissue"), None)
            .await?;
        data.get("manifest_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| ClientError::Decode("no manifest_version in the answer".into()))
    }

    /// The log of every signed manifest, checked with [`tresor_wire::pins::verify_log`].
    pub async fn pins_log(&self) -> Result<Vec<tresor_wire::pins::LogEntry>, ClientError> {
        let data: Value = self.data(Method::GET, "pins/sys/log", None).await?;
        let entries: Vec<tresor_wire::pins::LogEntry> = serde_json::from_value(
            data.get("entries")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
        )
        .map_err(|e| ClientError::Decode(e.to_string()))?;
        tresor_wire::pins::verify_log(&entries).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(entries)
    }

    /// The manifest signing key chain.
    pub async fn pins_manifest_key(&self) -> Result<ManifestKeyInfo, ClientError> {
        self.data(Method::GET, "pins/sys/manifest-key", None).await
    }

    /// Rotates the manifest signing key (the new key is signed by the old one).
    pub async fn pins_rotate_manifest_key(&self) -> Result<ManifestKeyInfo, ClientError> {
        self.data(Method::POST, "pins/sys/manifest-key/rotate", None)
            .await
    }

    async fn batch(
        &self,
        path: &str,
        items: Vec<Value>,
    ) -> Result<Vec<ItemResult<Value>>, ClientError> {
        let body = json!({ "batch_input": items });
        let (status, value) = self.raw(Method::POST, path, Some(&body)).await?;
        let Some(results) = value
            .pointer("/data/batch_results")
            .and_then(Value::as_array)
        else {
            let errors = value
                .get("errors")
                .and_then(Value::as_array)
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            return Err(ClientError::Api {
                status: status.as_u16(),
                errors,
            });
        };
        Ok(results
            .iter()
            .map(|item| match item.get("error").and_then(Value::as_str) {
                Some(error) if !error.is_empty() => Err(error.to_owned()),
                _ => Ok(item.clone()),
            })
            .collect())
    }
}

fn api_error(status: StatusCode, value: &Value) -> ClientError {
    let errors = value
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    ClientError::Api {
        status: status.as_u16(),
        errors,
    }
}

fn status_text(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no message")
        .to_lowercase()
}

/// The vault id and current unseal key from a seal status.
fn vault_keys(status: &Value) -> Result<(String, [u8; 32]), ClientError> {
    let vault_id = status
        .get("cluster_id")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty());
    let unseal_key = status.get("unseal_key").and_then(Value::as_str);
    match (vault_id, unseal_key) {
        (Some(id), Some(key)) => Ok((id.to_owned(), decode_key(key)?)),
        _ => Err(ClientError::Decode(
            "the seal status names no vault id or unseal key: is the vault initialised?".into(),
        )),
    }
}

/// The string field `name` of an answer's `data`.
fn text_field(data: &Value, name: &str) -> Result<String, ClientError> {
    data.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Decode(format!("no `{name}` in the answer")))
}

fn decode_key(text: &str) -> Result<[u8; 32], ClientError> {
    STANDARD
        .decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ClientError::Decode("the unseal key is not 32 base64 bytes".into()))
}

fn list_method() -> Method {
    Method::from_bytes(b"LIST").expect("LIST is a valid method token")
}

fn keys_of(data: &Value) -> Result<Vec<String>, ClientError> {
    serde_json::from_value(
        data.get("keys")
            .cloned()
            .unwrap_or(Value::Array(Vec::new())),
    )
    .map_err(|e| ClientError::Decode(e.to_string()))
}

fn options_json(options: &CryptoOptions) -> Value {
    let mut body = json!({});
    if let Some(context) = &options.context {
        body["context"] = Value::String(STANDARD.encode(context));
    }
    if let Some(ad) = &options.associated_data {
        body["associated_data"] = Value::String(STANDARD.encode(ad));
    }
    if let Some(version) = options.key_version {
        body["key_version"] = json!(version);
    }
    body
}

fn decode_plaintext(data: &Value) -> Result<Zeroizing<Vec<u8>>, String> {
    let text = data
        .get("plaintext")
        .and_then(Value::as_str)
        .ok_or("no `plaintext` in the answer")?;
    STANDARD
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|_| "plaintext is not base64".to_owned())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}
