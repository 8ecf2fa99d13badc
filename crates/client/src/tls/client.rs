//! The client side: trust exactly one CA, present a client certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, RootCertStore};

use super::{PROTOCOL_VERSIONS, TlsError, alpn, pem, provider};

/// A client configuration from PEM bytes: the server must chain to a certificate in `ca_pem`
/// (and nothing else: no system roots); the client presents `client_cert_pem` (end-entity
/// first, intermediates after) with `client_key_pem`; ALPN offers `h2` then `http/1.1`.
///
/// Refused: no certificate in either PEM, a CA or client certificate that has expired or is not
/// yet valid (better said here than as a fatal alert from the server), a key that is not
/// PKCS#8/SEC1/PKCS#1 or does not match the client certificate.
pub fn client_config(
    ca_pem: &[u8],
    client_cert_pem: &[u8],
    client_key_pem: &[u8],
) -> Result<ClientConfig, TlsError> {
    build(
        ca_pem,
        client_cert_pem,
        client_key_pem,
        ["CA certificate", "client certificate", "client key"],
    )
}

/// [`client_config`] from files; errors name the file.
pub fn load_client_config(ca: &Path, cert: &Path, key: &Path) -> Result<ClientConfig, TlsError> {
    let ca_name = ca.display().to_string();
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    build(
        &pem::read(ca)?,
        &pem::read(cert)?,
        &pem::read(key)?,
        [&ca_name, &cert_name, &key_name],
    )
}

fn build(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
    [ca_name, cert_name, key_name]: [&str; 3],
) -> Result<ClientConfig, TlsError> {
    let cas = pem::certificates(ca_pem, ca_name)?;
    let ca_summaries = pem::check_all(&cas, ca_name)?;
    let mut roots = RootCertStore::empty();
    for (i, ca) in cas.into_iter().enumerate() {
        roots.add(ca).map_err(|e| TlsError::BadCertificate {
            file: ca_name.to_owned(),
            reason: format!(
                "certificate {} (`{}`) is not usable as a trust anchor: {e}",
                i + 1,
                ca_summaries[i].subject
            ),
        })?;
    }

    let chain = pem::certificates(cert_pem, cert_name)?;
    pem::check_all(&chain, cert_name)?;
    let key = pem::private_key(key_pem, key_name)?;
    let certified = pem::certified_key(chain, key, cert_name, key_name)?;

    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = alpn();
    Ok(config)
}
