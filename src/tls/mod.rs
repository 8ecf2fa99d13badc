//! Mutual TLS: the rustls configurations of the server and the client, the principal read from a
//! client certificate, hot reload of the server's files, and a small dev PKI.
//!
//! Everything here is built on one [`provider()`]: *ring* only, TLS 1.3 and TLS 1.2, AEAD suites
//! with ECDHE only (DESIGN.md §4). No function in this module relies on a process-wide default
//! provider, so it works whatever else ends up in the dependency tree.
//!
//! The server side:
//!
//! ```no_run
//! use std::sync::Arc;
//! use tresor::tls::{ServerTls, ServerTlsFiles, classify_handshake_error, peer_principal};
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

mod client;
mod error;
mod handshake;
mod pem;
pub mod pki;
mod principal;
mod server;

use std::sync::{Arc, OnceLock};

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

pub use client::{client_config, load_client_config};
pub use error::TlsError;
pub use handshake::{HandshakeFailure, classify_handshake_error};
pub use principal::{peer_principal, principal_from_certificate, validate_spiffe_id};
pub use server::{ServerTls, ServerTlsFiles};

/// The protocol versions every configuration of this module allows: TLS 1.3 and TLS 1.2.
pub static PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ALPN protocols both sides offer, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider every configuration here is built with.
///
/// *ring*, restricted to the TLS 1.3 suites (AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305) and the
/// TLS 1.2 ECDHE-ECDSA and ECDHE-RSA suites with AES-GCM or CHACHA20-POLY1305; key exchange over
/// X25519, secp256r1 or secp384r1. Nothing without forward secrecy, nothing that is not an AEAD.
/// Built once; later calls return the same provider.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            use rustls::crypto::ring::{cipher_suite as cs, default_provider, kx_group};
            Arc::new(CryptoProvider {
                cipher_suites: vec![
                    cs::TLS13_AES_256_GCM_SHA384,
                    cs::TLS13_AES_128_GCM_SHA256,
                    cs::TLS13_CHACHA20_POLY1305_SHA256,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                    cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                    cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                    cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                ],
                kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
                ..default_provider()
            })
        })
        .clone()
}

fn alpn() -> Vec<Vec<u8>> {
    ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use rustls::crypto::KeyExchangeAlgorithm;
    use rustls::{NamedGroup, ProtocolVersion, SupportedCipherSuite};

    use super::*;

    #[test]
    fn provider_offers_only_aead_suites_with_forward_secrecy() {
        let provider = provider();
        assert_eq!(provider.cipher_suites.len(), 9);
        for suite in &provider.cipher_suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.contains("_GCM_") || name.contains("_CHACHA20_POLY1305_"),
                "{name} is not an AEAD suite"
            );
            match suite {
                SupportedCipherSuite::Tls13(s) => {
                    assert_eq!(s.common.suite, suite.suite());
                    assert_eq!(suite.version().version, ProtocolVersion::TLSv1_3);
                }
                SupportedCipherSuite::Tls12(s) => {
                    // ring has no TLS 1.2 suite without ECDHE, but do not rely on that.
                    assert_eq!(s.kx, KeyExchangeAlgorithm::ECDHE, "{name}");
                    assert!(name.starts_with("TLS_ECDHE_"), "{name}");
                    assert_eq!(suite.version().version, ProtocolVersion::TLSv1_2);
                }
            }
        }
        let groups: Vec<NamedGroup> = provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [
                NamedGroup::X25519,
                NamedGroup::secp256r1,
                NamedGroup::secp384r1
            ]
        );
        let versions: Vec<ProtocolVersion> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
        assert_eq!(
            versions,
            [ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2]
        );
        assert!(Arc::ptr_eq(&provider, &super::provider()));
    }
}
