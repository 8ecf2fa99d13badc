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
use serde_json::Value;
use zeroize::Zeroizing;

use tresor_crypto::identity::{CustodianIdentity, CustodianPublicKey};
use tresor_wire::api::params::{Flag, Int, Seconds, Text};
use tresor_wire::api::transit::{CiphertextResult, PlaintextResult};
use tresor_wire::api::{self, Listing, Route, pins, sys, transit};
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
    /// No complete answer within the client's timeout ([`Client::with_timeout`]).
    #[error("no answer from {addr} within {} s (the client's timeout)", after.as_secs_f64())]
    Timeout {
        /// The server address.
        addr: String,
        /// The timeout that ran out.
        after: std::time::Duration,
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

impl CryptoOptions {
    fn context(&self) -> Text<'static> {
        self.context.as_ref().map(|c| STANDARD.encode(c).into())
    }

    fn associated_data(&self) -> Text<'static> {
        self.associated_data
            .as_ref()
            .map(|ad| STANDARD.encode(ad).into())
    }
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

/// A data key: the key wrapped under the named key, and for `plaintext` data keys the key
/// itself (redacted from `Debug`).
pub use tresor_wire::api::transit::DataKeyResponse;

/// What a key creation or configuration change did.
#[derive(Debug, Clone)]
pub enum Configured {
    /// Applied: the key's description afterwards.
    Applied(Value),
    /// Weakens protection, destroys key material or creates an exportable key: waits for
    /// custodian approval.
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

/// The sealed package in an executed key transfer's outcome (base64), if it is one.
pub fn transfer_package(approval: &Approval) -> Option<&str> {
    match &approval.state {
        tresor_wire::approvals::ApprovalState::Executed { outcome, .. } => outcome
            .split_once(tresor_wire::approvals::PACKAGE_MARK)
            .map(|(_, package)| package),
        _ => None,
    }
}

/// How hyper-util says a request was never sent: its connection closed before it was ready.
const NOT_SENT: &str = "connection was not ready";

/// One result of a batch call: a value or the server's message for that item.
pub type ItemResult<T> = Result<T, String>;

/// A client for one server. Cheap to clone; connections are pooled and kept alive.
#[derive(Clone)]
pub struct Client {
    http: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    timeout: std::time::Duration,
}

/// How long a call may take, connection and answer included, unless [`Client::with_timeout`]
/// says otherwise: Vault's client default. A server that accepts connections but never answers
/// then fails the call instead of holding it forever.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

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
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with calls limited to `timeout` (connection, request and the whole
    /// answer); [`DEFAULT_TIMEOUT`] otherwise.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Sends a request and returns status and parsed JSON body (`Null` when empty).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let (status, body) = self.fetch(method, path, body).await?;
        Ok((status, parse(&body)?))
    }

    /// Sends a request and returns status and the body's exact bytes.
    pub async fn fetch(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.send(method, path, body.and_then(json)).await
    }

    /// Like [`Client::fetch`], but a non-2xx answer becomes [`ClientError::Api`].
    pub async fn fetch_ok(&self, method: Method, path: &str) -> Result<Bytes, ClientError> {
        let (status, body) = self.fetch(method, path, None).await?;
        success(status, body)
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
        data_of(self.call(method, path, body).await?)
    }

    /// Sends `body` (JSON) to `/v1/path` and reads the answer, within the client's timeout.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        tokio::time::timeout(self.timeout, self.send_untimed(method, path, body))
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    addr: self.base.clone(),
                    after: self.timeout,
                })
            })
    }

    async fn send_untimed(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let body = body.unwrap_or_default();
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            let mut request = Request::builder()
                .method(method.clone())
                .uri(format!("{}/v1/{}", self.base, path.trim_start_matches('/')))
                .body(Full::new(body.clone()))
                .map_err(|e| ClientError::Settings(format!("invalid request: {e}")))?;
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            match self.http.request(request).await {
                Ok(response) => break response,
                Err(e) => {
                    let message = error_chain(&e);
                    // The connection died before the request went out: under TLS 1.3 a server
                    // that refuses our certificate says so after our side saw the handshake
                    // finish, and the alert can be lost with the connection. Nothing was sent,
                    // so a new connection is safe, and usually gets the alert itself.
                    if message.contains(NOT_SENT) && attempts < 3 {
                        continue;
                    }
                    return Err(ClientError::Connect {
                        addr: self.base.clone(),
                        message,
                    });
                }
            }
        };
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

    /// Sends `body` on `route`, with `values` in its placeholders: the status and the body's
    /// bytes.
    async fn send_to(
        &self,
        route: Route,
        values: &[&str],
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.send(method_of(route), &route.fill(values), body).await
    }

    /// Like [`Client::send_to`], with the body parsed as JSON.
    async fn exchange(
        &self,
        route: Route,
        values: &[&str],
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let (status, body) = self.send_to(route, values, body).await?;
        Ok((status, parse(&body)?))
    }

    /// Like [`Client::exchange`]; a non-2xx answer becomes [`ClientError::Api`].
    async fn answer(
        &self,
        route: Route,
        values: &[&str],
        body: Option<Bytes>,
    ) -> Result<Value, ClientError> {
        let (status, value) = self.exchange(route, values, body).await?;
        if status.is_success() {
            return Ok(value);
        }
        Err(api_error(status, &value))
    }

    /// Like [`Client::answer`], decoding the envelope's `data`.
    async fn data_at<T: DeserializeOwned>(
        &self,
        route: Route,
        values: &[&str],
        body: Option<Bytes>,
    ) -> Result<T, ClientError> {
        data_of(self.answer(route, values, body).await?)
    }

    /// The names a `LIST` route gives (none when it answers Vault's bare 404).
    async fn listing(&self, route: Route, values: &[&str]) -> Result<Vec<String>, ClientError> {
        match self.data_at::<Listing>(route, values, None).await {
            Ok(listing) => Ok(listing.keys),
            Err(ClientError::Api {
                status: 404,
                errors,
            }) if errors.is_empty() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `sys/seal-status` (not enveloped).
    pub async fn seal_status(&self) -> Result<Value, ClientError> {
        self.answer(sys::SEAL_STATUS, &[], None).await
    }

    /// `sys/health` with its status code (200, 501, 503) and body.
    pub async fn health(&self) -> Result<(StatusCode, Value), ClientError> {
        self.exchange(sys::HEALTH, &[], None).await
    }

    /// Creates a tenant.
    pub async fn create_tenant(
        &self,
        name: &str,
        level: u8,
        custodians: &[CustodianPublicKey],
    ) -> Result<TenantInfo, ClientError> {
        self.create_tenant_with_window(name, level, custodians, None)
            .await
    }

    /// As [`Client::create_tenant`], with the seconds between an approved shred and destruction
    /// (absent: 7 days).
    pub async fn create_tenant_with_window(
        &self,
        name: &str,
        level: u8,
        custodians: &[CustodianPublicKey],
        deletion_window: Option<u64>,
    ) -> Result<TenantInfo, ClientError> {
        let body = sys::CreateTenantRequest {
            level: Some(Int::from(level)),
            custodians: custodians.to_vec(),
            threshold: None,
            deletion_window: deletion_window.map(Seconds),
        };
        self.data_at(sys::CREATE_TENANT, &[name], json(&body)).await
    }

    /// Creates a level-3 tenant whose custody key is split among `custodians`, `threshold` of
    /// whom unlock it and approve what touches its custody.
    pub async fn create_level3_tenant(
        &self,
        name: &str,
        custodians: &[CustodianPublicKey],
        threshold: u8,
    ) -> Result<TenantInfo, ClientError> {
        let body = sys::CreateTenantRequest {
            level: Some(Int::from(3u8)),
            custodians: custodians.to_vec(),
            threshold: Some(Int::from(threshold)),
            deletion_window: None,
        };
        self.data_at(sys::CREATE_TENANT, &[name], json(&body)).await
    }

    /// Lists tenants.
    pub async fn list_tenants(&self) -> Result<Vec<String>, ClientError> {
        let listing: Listing = self.data_at(sys::LIST_TENANTS, &[], None).await?;
        Ok(listing.keys)
    }

    /// Describes a tenant.
    pub async fn tenant(&self, name: &str) -> Result<TenantInfo, ClientError> {
        self.data_at(sys::READ_TENANT, &[name], None).await
    }

    /// Rotates a tenant's KEK.
    pub async fn rotate_tenant_kek(&self, name: &str) -> Result<TenantInfo, ClientError> {
        self.data_at(sys::ROTATE_TENANT_KEK, &[name], None).await
    }

    /// Asks for a tenant to be shredded: needs custodian approval, so this returns the pending
    /// approval.
    pub async fn shred_tenant(&self, name: &str) -> Result<Approval, ClientError> {
        self.data_at(sys::SHRED_TENANT, &[name], None).await
    }

    /// As [`Client::shred_tenant`] with a deletion window of `seconds` instead of the tenant's
    /// (0: shred at once once approved).
    pub async fn shred_tenant_within(
        &self,
        name: &str,
        seconds: u64,
    ) -> Result<Approval, ClientError> {
        self.deletion_within(&format!("sys/tenants/{name}"), seconds)
            .await
    }

    /// Asks for a tenant's scheduled shred to be cancelled: needs custodian approval.
    pub async fn cancel_tenant_shred(&self, name: &str) -> Result<Approval, ClientError> {
        self.data_at(sys::CANCEL_TENANT_SHRED, &[name], None).await
    }

    /// Creates a key: applied (Vault's key description), or, for an exportable key, pending
    /// custodian approval.
    pub async fn create_key(
        &self,
        tenant: &str,
        key: &str,
        options: &CreateKeyOptions,
    ) -> Result<Configured, ClientError> {
        let body = transit::CreateKeyRequest {
            derived: options.derived.then_some(Flag(true)),
            convergent_encryption: options.convergent_encryption.then_some(Flag(true)),
            exportable: options.exportable.then_some(Flag(true)),
            auto_rotate_period: (options.auto_rotate_period != 0)
                .then_some(Seconds(options.auto_rotate_period)),
            ..Default::default()
        };
        self.applied_or_pending(transit::CREATE_KEY, &[tenant, key], json(&body))
            .await
    }

    /// Vault's key description.
    pub async fn read_key(&self, tenant: &str, key: &str) -> Result<Value, ClientError> {
        self.data_at(transit::READ_KEY, &[tenant, key], None).await
    }

    /// Key names of a tenant (empty when it has none).
    pub async fn list_keys(&self, tenant: &str) -> Result<Vec<String>, ClientError> {
        self.listing(transit::LIST_KEYS, &[tenant]).await
    }

    /// Rotates a key.
    pub async fn rotate_key(&self, tenant: &str, key: &str) -> Result<Value, ClientError> {
        self.data_at(transit::ROTATE_KEY, &[tenant, key], None)
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
        let body = transit::ConfigureKeyRequest::from(update);
        self.applied_or_pending(transit::CONFIGURE_KEY, &[tenant, key], json(&body))
            .await
    }

    /// POSTs a change that runs at once or, when it is dual-controlled, waits for approval.
    async fn applied_or_pending(
        &self,
        route: Route,
        values: &[&str],
        body: Option<Bytes>,
    ) -> Result<Configured, ClientError> {
        let data: Value = self.data_at(route, values, body).await?;
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
        let body = transit::TrimKeyRequest {
            min_available_version: Some(Int::from(min_available_version)),
        };
        self.applied_or_pending(transit::TRIM_KEY, &[tenant, key], json(&body))
            .await
    }

    /// Asks for a key to be deleted: needs custodian approval, so this returns the pending
    /// approval.
    pub async fn delete_key(&self, tenant: &str, key: &str) -> Result<Approval, ClientError> {
        self.data_at(transit::DELETE_KEY, &[tenant, key], None)
            .await
    }

    /// As [`Client::delete_key`] with a deletion window of `seconds` instead of the key's (0:
    /// destroy at once once approved).
    pub async fn delete_key_within(
        &self,
        tenant: &str,
        key: &str,
        seconds: u64,
    ) -> Result<Approval, ClientError> {
        self.deletion_within(&format!("{tenant}/keys/{key}"), seconds)
            .await
    }

    /// DELETE `path?deletion_window=seconds`: the pending approval.
    async fn deletion_within(&self, path: &str, seconds: u64) -> Result<Approval, ClientError> {
        let query = transit::DELETION_WINDOW_QUERY;
        let (status, value) = self
            .raw(Method::DELETE, &format!("{path}?{query}={seconds}"), None)
            .await?;
        if !status.is_success() {
            return Err(api_error(status, &value));
        }
        data_of(value)
    }

    /// Asks for a key's scheduled deletion to be cancelled: needs custodian approval.
    pub async fn cancel_key_deletion(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Approval, ClientError> {
        self.data_at(transit::CANCEL_KEY_DELETION, &[tenant, key], None)
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
        let body = transit::EncryptRequest {
            plaintext: Some(STANDARD.encode(plaintext).into()),
            context: options.context(),
            associated_data: options.associated_data(),
            key_version: options.key_version.map(Int::from),
            ..Default::default()
        };
        let answer = self
            .data_at(transit::ENCRYPT, &[tenant, key], json(&body))
            .await?;
        sealed(answer).map_err(ClientError::Decode)
    }

    /// Encrypts many plaintexts with the same options; one result per item, in order.
    pub async fn encrypt_batch(
        &self,
        tenant: &str,
        key: &str,
        plaintexts: &[&[u8]],
        options: &CryptoOptions,
    ) -> Result<Vec<ItemResult<Sealed>>, ClientError> {
        let items = plaintexts
            .iter()
            .map(|p| transit::EncryptItem {
                plaintext: Some(STANDARD.encode(p).into()),
                context: options.context(),
                associated_data: options.associated_data(),
                key_version: options.key_version.map(Int::from),
                ..Default::default()
            })
            .collect();
        let body = transit::EncryptRequest {
            batch_input: Some(items),
            ..Default::default()
        };
        let results = self
            .batch(
                transit::ENCRYPT,
                &[tenant, key],
                json(&body),
                |r: &CiphertextResult| r.error.as_deref(),
            )
            .await?;
        Ok(results.into_iter().map(|r| r.and_then(sealed)).collect())
    }

    /// Decrypts one ciphertext.
    pub async fn decrypt(
        &self,
        tenant: &str,
        key: &str,
        ciphertext: &str,
        options: &CryptoOptions,
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let body = transit::DecryptRequest {
            ciphertext: Some(ciphertext.into()),
            context: options.context(),
            associated_data: options.associated_data(),
            ..Default::default()
        };
        let answer: PlaintextResult = self
            .data_at(transit::DECRYPT, &[tenant, key], json(&body))
            .await?;
        decode_plaintext(&answer).map_err(ClientError::Decode)
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
            .map(|c| transit::DecryptItem {
                ciphertext: Some((*c).into()),
                context: options.context(),
                associated_data: options.associated_data(),
                ..Default::default()
            })
            .collect();
        let body = transit::DecryptRequest {
            batch_input: Some(items),
            ..Default::default()
        };
        let results = self
            .batch(
                transit::DECRYPT,
                &[tenant, key],
                json(&body),
                |r: &PlaintextResult| r.error.as_deref(),
            )
            .await?;
        Ok(results
            .into_iter()
            .map(|r| r.and_then(|answer| decode_plaintext(&answer)))
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
        let body = transit::RewrapRequest {
            ciphertext: Some(ciphertext.into()),
            context: options.context(),
            associated_data: options.associated_data(),
            key_version: options.key_version.map(Int::from),
            ..Default::default()
        };
        let answer = self
            .data_at(transit::REWRAP, &[tenant, key], json(&body))
            .await?;
        sealed(answer).map_err(ClientError::Decode)
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
        let body = transit::DataKeyRequest {
            context: options.context(),
            associated_data: options.associated_data(),
            bits: Some(Int::from(bits)),
            ..Default::default()
        };
        let form = if plaintext { "plaintext" } else { "wrapped" };
        self.data_at(transit::DATAKEY, &[tenant, form, key], json(&body))
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
        let body = transit::HmacRequest {
            input: Some(STANDARD.encode(input).into()),
            algorithm: algorithm.map(Into::into),
            ..Default::default()
        };
        let answer: transit::HmacResult = self
            .data_at(transit::HMAC, &[tenant, key], json(&body))
            .await?;
        answer
            .hmac
            .ok_or_else(|| ClientError::Decode("no `hmac` in the answer".into()))
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
        let body = transit::VerifyRequest {
            input: Some(STANDARD.encode(input).into()),
            hmac: Some(token.into()),
            algorithm: algorithm.map(Into::into),
            ..Default::default()
        };
        let answer: transit::VerifyResult = self
            .data_at(transit::VERIFY, &[tenant, key], json(&body))
            .await?;
        answer
            .valid
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
        let body = sys::CustodyRequest {
            custodians: custodians.to_vec(),
            threshold: Some(Int::from(threshold)),
            four_eyes: four_eyes.map(Flag),
        };
        self.data_at(sys::INIT, &[], json(&body)).await
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
            .data_at(sys::UNSEAL_SHARE, &[identity.name()], None)
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
        let body = sys::UnsealRequest {
            custodian: identity.name().to_owned(),
            sealed_share: STANDARD.encode(submission),
            accept_audit_gap,
        };
        self.data_at(sys::UNSEAL, &[], json(&body)).await
    }

    /// Seals the vault.
    pub async fn seal(&self) -> Result<(), ClientError> {
        self.answer(sys::SEAL, &[], None).await.map(drop)
    }

    /// This vault's key-transfer key, signed by its node (for another vault to seal a key to).
    pub async fn transfer_key(&self) -> Result<tresor_wire::custody::TransferKey, ClientError> {
        self.data_at(sys::TRANSFER_KEY, &[], None).await
    }

    /// Asks to seal `tenant`/`key` to the vault of `recipient` (whose node fingerprint is
    /// `recipient_node`): an approval, whose executed outcome holds the package
    /// ([`transfer_package`]).
    pub async fn request_key_transfer(
        &self,
        tenant: &str,
        key: &str,
        recipient: &tresor_wire::custody::TransferKey,
        recipient_node: &str,
    ) -> Result<Approval, ClientError> {
        let body = transit::TransferKeyRequest {
            recipient: recipient.clone(),
            recipient_node: recipient_node.to_owned(),
        };
        self.data_at(transit::TRANSFER_KEY, &[tenant, key], json(&body))
            .await
    }

    /// Asks to store `package` (sealed to this vault by vault `from`) as `tenant`/`key`: an
    /// approval.
    pub async fn request_key_receipt(
        &self,
        tenant: &str,
        key: &str,
        package: &str,
        from: &str,
        replace: bool,
    ) -> Result<Approval, ClientError> {
        let body = transit::ReceiveKeyRequest {
            package: package.to_owned(),
            from: from.to_owned(),
            replace,
        };
        self.data_at(transit::RECEIVE_KEY, &[tenant, key], json(&body))
            .await
    }

    /// A backup of the whole store: the signed file `tresor_wire::backup` reads.
    pub async fn backup(&self) -> Result<Bytes, ClientError> {
        let (status, body) = self.send_to(sys::BACKUP, &[], None).await?;
        success(status, body)
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
        let custody: sys::CustodyBox = self
            .data_at(sys::TENANT_CUSTODY, &[tenant, identity.name()], None)
            .await?;
        let unseal_key = decode_key(&custody.unseal_key)?;
        if custody.vault_id != trusted_vault || unseal_key != trusted_key {
            return Err(ClientError::Untrusted(
                tresor_wire::custody::NodeTrustError::Malformed(
                    "the custody answer names another vault or unseal key than the signed seal status",
                ),
            ));
        }
        let key = TenantCustodyKey::open(
            identity,
            &custody.vault_id,
            tenant,
            &custody.sealed_custody_key,
        )
        .map_err(|e| ClientError::Settings(e.to_string()))?;
        let sealed = key
            .seal_for_unlock(&custody.vault_id, &unseal_key, tenant, identity.name())
            .map_err(|e| ClientError::Settings(e.to_string()))?;
        let body = sys::UnlockTenantRequest {
            custodian: identity.name().to_owned(),
            sealed_custody_key: STANDARD.encode(sealed),
        };
        self.data_at(sys::UNLOCK_TENANT, &[tenant], json(&body))
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
        self.answer(sys::LOCK_TENANT, &[tenant], None)
            .await
            .map(drop)
    }

    /// Asks for a level-3 tenant's custodians to be replaced, keeping its threshold (creates an
    /// approval its current custodians decide).
    pub async fn change_tenant_custodians(
        &self,
        tenant: &str,
        custodians: &[CustodianPublicKey],
    ) -> Result<Approval, ClientError> {
        self.change_tenant_custodians_to(tenant, custodians, None)
            .await
    }

    /// As [`Client::change_tenant_custodians`], with a new threshold when `threshold` is given.
    pub async fn change_tenant_custodians_to(
        &self,
        tenant: &str,
        custodians: &[CustodianPublicKey],
        threshold: Option<u8>,
    ) -> Result<Approval, ClientError> {
        let body = sys::TenantCustodiansRequest {
            custodians: custodians.to_vec(),
            threshold: threshold.map(Int::from),
        };
        self.data_at(sys::CHANGE_TENANT_CUSTODIANS, &[tenant], json(&body))
            .await
    }

    /// Asks for a root key rotation (creates an approval).
    pub async fn rotate_root(&self) -> Result<Approval, ClientError> {
        self.data_at(sys::ROTATE_ROOT, &[], None).await
    }

    /// Asks for a rekey to new custodians and/or threshold (creates an approval).
    pub async fn rekey(
        &self,
        custodians: &[CustodianPublicKey],
        threshold: u8,
    ) -> Result<Approval, ClientError> {
        let body = sys::CustodyRequest {
            custodians: custodians.to_vec(),
            threshold: Some(Int::from(threshold)),
            four_eyes: None,
        };
        self.data_at(sys::REKEY, &[], json(&body)).await
    }

    /// Asks for node `fingerprint`'s enrolment for peer unseal (creates an approval).
    pub async fn enrol_node(
        &self,
        fingerprint: &str,
        address: &str,
    ) -> Result<Approval, ClientError> {
        let body = tresor_wire::peers::EnrolRequest {
            address: address.to_owned(),
        };
        self.data_at(sys::ENROL_NODE, &[fingerprint], json(&body))
            .await
    }

    /// Asks for node `fingerprint`'s removal from peer unseal (creates an approval).
    pub async fn remove_node(&self, fingerprint: &str) -> Result<Approval, ClientError> {
        self.data_at(sys::REMOVE_NODE, &[fingerprint], None).await
    }

    /// The nodes enrolled for peer unseal.
    pub async fn nodes(&self) -> Result<Vec<tresor_wire::peers::EnrolledNode>, ClientError> {
        let list: tresor_wire::peers::NodeList = self.data_at(sys::LIST_NODES, &[], None).await?;
        Ok(list.nodes)
    }

    /// Asks this server, a peer of the calling node, for the root key (peer unseal).
    pub async fn peer_unseal(
        &self,
        request: &tresor_wire::peers::PeerUnsealRequest,
    ) -> Result<tresor_wire::peers::PeerUnsealGrant, ClientError> {
        self.data_at(sys::PEER_UNSEAL, &[], json(request)).await
    }

    /// Pending approvals.
    pub async fn approvals(&self) -> Result<Vec<Approval>, ClientError> {
        let list: sys::ApprovalList = self.data_at(sys::LIST_APPROVALS, &[], None).await?;
        Ok(list.approvals)
    }

    /// One approval.
    pub async fn approval(&self, id: &str) -> Result<Approval, ClientError> {
        self.data_at(sys::READ_APPROVAL, &[id], None).await
    }

    /// Signs `approval` (as fetched and shown to the custodian) with `identity` and submits it.
    pub async fn approve_with(
        &self,
        approval: &Approval,
        identity: &CustodianIdentity,
    ) -> Result<ApprovalOutcome, ClientError> {
        let body = sys::ApproveRequest {
            custodian: identity.name().to_owned(),
            signature: approval.sign(identity),
        };
        self.data_at(sys::APPROVE, &[&approval.id], json(&body))
            .await
    }

    /// Signs a rejection of `approval` with `identity` and submits it.
    pub async fn reject_with(
        &self,
        approval: &Approval,
        identity: &CustodianIdentity,
    ) -> Result<ApprovalOutcome, ClientError> {
        let body = sys::ApproveRequest {
            custodian: identity.name().to_owned(),
            signature: approval.sign_decision(identity, tresor_wire::approvals::Decision::Reject),
        };
        self.data_at(sys::REJECT, &[&approval.id], json(&body))
            .await
    }

    /// Withdraws approval `id` (only the principal that asked may).
    pub async fn cancel_approval(&self, id: &str) -> Result<Approval, ClientError> {
        self.data_at(sys::CANCEL, &[id], None).await
    }

    /// Creates a pinning app.
    pub async fn pins_create_app(&self, app: &str, spec: &AppSpec) -> Result<PinApp, ClientError> {
        let body = pins::CreateAppRequest::from(spec);
        self.data_at(pins::CREATE_APP, &[app], json(&body)).await
    }

    /// Describes a pinning app and its keys.
    pub async fn pins_app(&self, app: &str) -> Result<PinApp, ClientError> {
        self.data_at(pins::READ_APP, &[app], None).await
    }

    /// Pinning app names (empty when there are none).
    pub async fn pins_list_apps(&self) -> Result<Vec<String>, ClientError> {
        self.listing(pins::LIST_APPS, &[]).await
    }

    /// Generates a pinned key pair in the vault and stages its pin.
    pub async fn pins_generate_key(
        &self,
        app: &str,
        algorithm: KeyAlgorithm,
    ) -> Result<PinChange, ClientError> {
        let body = pins::GenerateKeyRequest {
            algorithm: Some(algorithm.name().to_owned()),
        };
        self.data_at(pins::GENERATE_KEY, &[app], json(&body)).await
    }

    /// Stages the pin of a key held elsewhere; `kind` is `certificate`, `csr` or `public-key`.
    pub async fn pins_import_key(
        &self,
        app: &str,
        kind: &str,
        pem: &str,
    ) -> Result<PinChange, ClientError> {
        let body = pins::ImportKeyRequest {
            kind: kind.to_owned(),
            pem: pem.to_owned(),
        };
        self.data_at(pins::IMPORT_KEY, &[app], json(&body)).await
    }

    /// Activates a staged key; with `override_lag` an activation before `max_update_lag`
    /// becomes a pending approval.
    pub async fn pins_activate(
        &self,
        app: &str,
        kid: &str,
        override_lag: bool,
    ) -> Result<PinActivation, ClientError> {
        let body = pins::ActivateKeyRequest { override_lag };
        let (status, value) = self
            .exchange(pins::ACTIVATE_KEY, &[app, kid], json(&body))
            .await?;
        if !status.is_success() {
            return Err(api_error(status, &value));
        }
        if status == StatusCode::ACCEPTED {
            Ok(PinActivation::PendingApproval(Box::new(data_of(value)?)))
        } else {
            Ok(PinActivation::Done(data_of(value)?))
        }
    }

    /// Retires a key (active → retiring, staged or retiring → retired).
    pub async fn pins_retire(&self, app: &str, kid: &str) -> Result<PinChange, ClientError> {
        self.data_at(pins::RETIRE_KEY, &[app, kid], None).await
    }

    /// Marks a key compromised: promotes the published backup and stages a new one.
    pub async fn pins_compromise(&self, app: &str, kid: &str) -> Result<PinChange, ClientError> {
        self.data_at(pins::COMPROMISE_KEY, &[app, kid], None).await
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
        let body = pins::CsrRequest {
            subject: subject.to_owned(),
            dns: dns.to_vec(),
        };
        let answer: pins::Csr = self
            .data_at(pins::KEY_CSR, &[app, kid], json(&body))
            .await?;
        Ok(answer.csr)
    }

    /// The private key of `kid`, sealed to `recipient` (a TLS terminator's identity).
    pub async fn pins_deliver(
        &self,
        app: &str,
        kid: &str,
        recipient: &CustodianPublicKey,
    ) -> Result<DeliveredKey, ClientError> {
        let body = pins::DeliverKeyRequest {
            recipient: recipient.clone(),
        };
        self.data_at(pins::DELIVER_KEY, &[app, kid], json(&body))
            .await
    }

    /// The signed manifest (latest, or `version`), byte for byte as served.
    pub async fn pins_manifest(
        &self,
        app: &str,
        version: Option<u64>,
    ) -> Result<Bytes, ClientError> {
        let version = version.map(|v| v.to_string());
        let values: Vec<&str> = [Some(app), version.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let (status, body) = self.send_to(pins::MANIFEST, &values, None).await?;
        success(status, body)
    }

    /// The latest manifest in a platform format (`android`, `trustkit`, `nspinneddomains`,
    /// `okhttp`, `json`).
    pub async fn pins_export(&self, app: &str, format: &str) -> Result<String, ClientError> {
        let (status, body) = self.send_to(pins::EXPORT, &[app, format], None).await?;
        String::from_utf8(success(status, body)?.to_vec())
            .map_err(|_| ClientError::Decode("export is not UTF-8".into()))
    }

    /// Signs a new manifest version with unchanged pins.
    pub async fn pins_reissue(&self, app: &str) -> Result<u64, ClientError> {
        let answer: pins::Reissued = self.data_at(pins::REISSUE, &[app], None).await?;
        Ok(answer.manifest_version)
    }

    /// The log of every signed manifest, checked with [`tresor_wire::pins::verify_log`].
    pub async fn pins_log(&self) -> Result<Vec<tresor_wire::pins::LogEntry>, ClientError> {
        let log: pins::Log = self.data_at(pins::LOG, &[], None).await?;
        tresor_wire::pins::verify_log(&log.entries)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(log.entries)
    }

    /// The manifest signing key chain.
    pub async fn pins_manifest_key(&self) -> Result<ManifestKeyInfo, ClientError> {
        self.data_at(pins::MANIFEST_KEY, &[], None).await
    }

    /// Rotates the manifest signing key (the new key is signed by the old one).
    pub async fn pins_rotate_manifest_key(&self) -> Result<ManifestKeyInfo, ClientError> {
        self.data_at(pins::ROTATE_MANIFEST_KEY, &[], None).await
    }

    /// Sends a batch; one result per item (the item's error, or its answer), in order. A
    /// batch answered without `batch_results` is an error.
    async fn batch<R: DeserializeOwned>(
        &self,
        route: Route,
        values: &[&str],
        body: Option<Bytes>,
        error_of: fn(&R) -> Option<&str>,
    ) -> Result<Vec<ItemResult<R>>, ClientError> {
        let (status, mut value) = self.exchange(route, values, body).await?;
        let Some(results) = value
            .pointer_mut("/data/batch_results")
            .filter(|r| r.is_array())
            .map(Value::take)
        else {
            return Err(api_error(status, &value));
        };
        let results: Vec<R> =
            serde_json::from_value(results).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(results
            .into_iter()
            .map(|item| match error_of(&item) {
                Some(error) if !error.is_empty() => Err(error.to_owned()),
                _ => Ok(item),
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

fn decode_key(text: &str) -> Result<[u8; 32], ClientError> {
    STANDARD
        .decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ClientError::Decode("the unseal key is not 32 base64 bytes".into()))
}

/// The HTTP method of `route`.
fn method_of(route: Route) -> Method {
    match route.method {
        api::Method::Get => Method::GET,
        api::Method::Post => Method::POST,
        api::Method::Delete => Method::DELETE,
        api::Method::List => Method::from_bytes(b"LIST").expect("LIST is a valid method token"),
    }
}

/// A request body as JSON.
fn json<T: Serialize + ?Sized>(body: &T) -> Option<Bytes> {
    Some(Bytes::from(
        serde_json::to_vec(body).expect("request bodies serialize"),
    ))
}

/// A body as JSON (`Null` when empty).
fn parse(body: &[u8]) -> Result<Value, ClientError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| ClientError::Decode(format!("body is not JSON: {e}")))
}

/// The body of a 2xx answer; another status becomes [`ClientError::Api`].
fn success(status: StatusCode, body: Bytes) -> Result<Bytes, ClientError> {
    if status.is_success() {
        return Ok(body);
    }
    let value = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    Err(api_error(status, &value))
}

/// The envelope's `data`, decoded.
fn data_of<T: DeserializeOwned>(mut value: Value) -> Result<T, ClientError> {
    let data = value
        .get_mut("data")
        .map(Value::take)
        .ok_or_else(|| ClientError::Decode("no `data` in the answer".into()))?;
    serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))
}

/// A ciphertext and its version, from an encrypt or rewrap answer.
fn sealed(answer: CiphertextResult<'_>) -> Result<Sealed, String> {
    match (answer.ciphertext, answer.key_version) {
        (Some(ciphertext), Some(key_version)) => Ok(Sealed {
            ciphertext,
            key_version,
        }),
        _ => Err("no `ciphertext` and `key_version` in the answer".to_owned()),
    }
}

fn decode_plaintext(answer: &PlaintextResult<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
    STANDARD
        .decode(answer.plaintext.as_bytes())
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
