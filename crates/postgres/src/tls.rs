//! TLS to the database: rustls with the ring provider, trusting only the CA file the operator
//! names (no system roots, no OpenSSL).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use crate::PgError;

/// A connector that requires the database's certificate to chain to a CA in `ca_file` and to
/// name the host connected to, presenting `client` (certificate chain, key) when given.
pub(crate) fn connector(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<MakeRustlsConnect, PgError> {
    let bad = |reason: String| PgError::File {
        what: "storage.ca_file",
        path: ca_file.to_owned(),
        reason,
    };
    let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("it holds no certificate".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PgError::Options(format!("TLS: {e}")))?
    .with_root_certificates(roots);
    let config = match client {
        None => config.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let (chain, key) = client_identity(cert_file, key_file)?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| PgError::File {
                    what: "storage.client_key",
                    path: key_file.to_owned(),
                    reason: format!("it does not fit `storage.client_cert`: {e}"),
                })?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The client certificate chain and its key; the key file must be owner-only, like every
/// other key Tresor reads.
fn client_identity(
    cert_file: &Path,
    key_file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PgError> {
    let bad_cert = |reason: String| PgError::File {
        what: "storage.client_cert",
        path: cert_file.to_owned(),
        reason,
    };
    let bad_key = |reason: String| PgError::File {
        what: "storage.client_key",
        path: key_file.to_owned(),
        reason,
    };
    let pem = std::fs::read(cert_file).map_err(|e| bad_cert(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_cert(format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(bad_cert("it holds no certificate".into()));
    }
    let mode = std::fs::metadata(key_file)
        .map_err(|e| bad_key(e.to_string()))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad_key(format!(
            "it is readable by group or others (mode {mode:o}): make it owner-only (chmod 600)"
        )));
    }
    let pem = Zeroizing::new(std::fs::read(key_file).map_err(|e| bad_key(e.to_string()))?);
    // The parser's error may quote the file; say only that it is not a key.
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| bad_key("it holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into()))?;
    Ok((chain, key))
}
