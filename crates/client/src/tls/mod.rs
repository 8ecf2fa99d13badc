//! The TLS pieces both sides share: one [`provider()`] (*ring* only, TLS 1.3 and TLS 1.2, AEAD
//! suites with ECDHE only), PEM loading, and the client configuration. No function here relies
//! on a process-wide default provider, so it works whatever else ends up in the dependency tree.
//! The server side (its configuration, principals, handshake failures, the dev PKI) lives in
//! `tresor-server`.

mod client;
mod error;
pub mod pem;

use std::sync::{Arc, OnceLock};

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

pub use client::{client_config, load_client_config};
pub use error::{TlsError, sanitize};

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

/// The ALPN protocols as rustls takes them.
pub fn alpn() -> Vec<Vec<u8>> {
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
