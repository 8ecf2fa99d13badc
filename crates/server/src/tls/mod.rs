//! The server's side of mutual TLS: its rustls configuration (client certificate required) and
//! hot reload of its files, the principal read from a client certificate, failed handshakes
//! named for the audit log, and a small PKI for development and teams without one.
//!
//! Everything here is built on `tresor_client::tls`'s one [`provider()`]: *ring* only, TLS 1.3
//! and TLS 1.2, AEAD suites with ECDHE only. No function here relies on a process-wide default
//! provider, so it works whatever else ends up in the dependency tree.
//!
//! The server side:
//!
//! ```no_run
//! use std::sync::Arc;
//! use tresor_server::tls::{ServerTls, ServerTlsFiles, classify_handshake_error, peer_principal};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tls = Arc::new(ServerTls::load(&ServerTlsFiles {
//!     cert: "server.pem".into(),
//!     key: "server-key.pem".into(),
//!     client_ca: "ca.pem".into(),
//!     crls: vec![],
//! })?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8200").await?;
//! loop {
//!     let (tcp, _peer) = listener.accept().await?;
//!     // Each accept uses the configuration current at that moment; `tls.reload()` on SIGHUP.
//!     let acceptor = tls.acceptor();
//!     tokio::spawn(async move {
//!         match acceptor.accept(tcp).await {
//!             Ok(stream) => {
//!                 let principal = peer_principal(stream.get_ref().1, false);
//!                 // … serve requests as `principal` …
//!             }
//!             Err(e) => {
//!                 let reason = classify_handshake_error(&e); // "unknown_ca", "expired", …
//!                 // … count and audit the failed handshake …
//!             }
//!         }
//!     });
//! }
//! # }
//! ```

mod handshake;
pub mod pki;
mod principal;
mod server;

pub use handshake::{HandshakeFailure, classify_handshake_error, describe_handshake_error};
pub use principal::{peer_principal, principal_from_certificate, validate_spiffe_id};
pub use server::{ServerTls, ServerTlsFiles};
pub use tresor_client::tls::{PROTOCOL_VERSIONS, TlsError, provider};
