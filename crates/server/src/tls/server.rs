//! The server's TLS configuration: mutual TLS against the configured client CA, CRLs honoured,
//! re-read from disk on demand (SIGHUP).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::SingleCertAndKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    ServerConfig, SignatureScheme,
};

use super::handshake::NoPrincipal;
use super::{PROTOCOL_VERSIONS, TlsError, principal_from_certificate, provider};
use tresor_client::tls::{alpn, pem};

/// The files the server's TLS configuration is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The server certificate chain, PEM, end-entity first.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8, SEC1 or PKCS#1), unencrypted.
    pub key: PathBuf,
    /// The CA certificate(s), PEM, that client certificates must chain to. Every certificate in
    /// the file is a trust anchor.
    pub client_ca: PathBuf,
    /// Certificate revocation lists, each file PEM (`X509 CRL`, one or more) or one DER CRL.
    /// When any is given, the revocation status of every certificate in a client's chain must
    /// be known: a client whose issuer has no CRL here is refused (fail closed).
    pub crls: Vec<PathBuf>,
}

/// The server's live TLS configuration.
///
/// Every accept should take [`current`](Self::current) (or [`acceptor`](Self::acceptor)) afresh;
/// [`reload`](Self::reload) swaps in a configuration re-read from the same files. Connections
/// hold the configuration they were accepted with, so a reload never disturbs them.
///
/// The configuration: TLS 1.3 and 1.2 on [`provider()`](super::provider), client certificate
/// required and verified against the client CA file (and the CRLs), ALPN `h2` and
/// `http/1.1`, and no session resumption (every connection is a full handshake with its
/// certificate verified; clients are expected to keep connections alive).
#[derive(Debug)]
pub struct ServerTls {
    files: ServerTlsFiles,
    /// `Some(allow_cn_fallback)`: the handshake also requires a principal.
    principals: Option<bool>,
    config: RwLock<Arc<ServerConfig>>,
    not_after: RwLock<SystemTime>,
    reloading: Mutex<()>,
}

impl ServerTls {
    /// Reads and checks every file and builds the configuration.
    ///
    /// Refused, with the file named: an unreadable or empty file; a certificate that does not
    /// parse, has expired or is not yet valid (server chain and client CAs); a key that does not
    /// parse or does not belong to the server certificate; a client CA rustls cannot use as a
    /// trust anchor; a CRL that does not parse.
    pub fn load(files: &ServerTlsFiles) -> Result<ServerTls, TlsError> {
        ServerTls::load_with(files, None)
    }

    /// As [`ServerTls::load`], and the handshake also requires that the client certificate
    /// names a principal ([`principal_from_certificate`] with `allow_cn_fallback`). A
    /// certificate that chains to the client CA but names none is refused during the
    /// handshake with a `certificate_unknown` alert, so the client learns that its certificate
    /// was refused instead of seeing the connection drop after the handshake; the server
    /// classifies the failure as `no_principal`
    /// ([`HandshakeFailure::NoPrincipal`](super::HandshakeFailure::NoPrincipal)), its message
    /// naming what is missing. (`tresor server` uses [`ServerTls::load`] and answers such a
    /// client 403 after the handshake instead, which every client can show: docs/pki.md.)
    pub fn load_requiring_principal(
        files: &ServerTlsFiles,
        allow_cn_fallback: bool,
    ) -> Result<ServerTls, TlsError> {
        ServerTls::load_with(files, Some(allow_cn_fallback))
    }

    fn load_with(files: &ServerTlsFiles, principals: Option<bool>) -> Result<ServerTls, TlsError> {
        let (config, not_after) = build(files, principals)?;
        Ok(ServerTls {
            principals,
            files: files.clone(),
            config: RwLock::new(config),
            not_after: RwLock::new(not_after),
            reloading: Mutex::new(()),
        })
    }

    /// The configuration new handshakes should use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A `TlsAcceptor` on the current configuration, for one accept.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }

    /// Re-reads every file and, only if all of them are good, makes the new configuration
    /// current. On error the previous configuration stays in force and the error names the
    /// offending file. Concurrent reloads are serialised.
    ///
    pub fn reload(&self) -> Result<(), TlsError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (config, not_after) = build(&self.files, self.principals)?;
        *self
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        *self
            .not_after
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = not_after;
        Ok(())
    }

    /// The files this configuration is read from.
    pub fn files(&self) -> &ServerTlsFiles {
        &self.files
    }

    /// The notAfter of the server certificate currently served, e.g. for an expiry metric.
    pub fn server_cert_not_after(&self) -> SystemTime {
        *self
            .not_after
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn name(path: &Path) -> String {
    path.display().to_string()
}

fn build(
    files: &ServerTlsFiles,
    principals: Option<bool>,
) -> Result<(Arc<ServerConfig>, SystemTime), TlsError> {
    let provider = provider();

    let cert_file = name(&files.cert);
    let chain = pem::certificates(&pem::read(&files.cert)?, &cert_file)?;
    let summaries = pem::check_all(&chain, &cert_file)?;
    let not_after = summaries[0].not_after;

    let key_file = name(&files.key);
    let key = pem::private_key(&pem::read(&files.key)?, &key_file)?;
    let certified = pem::certified_key(chain, key, &cert_file, &key_file)?;

    let ca_file = name(&files.client_ca);
    let cas = pem::certificates(&pem::read(&files.client_ca)?, &ca_file)?;
    let ca_summaries = pem::check_all(&cas, &ca_file)?;
    let mut roots = RootCertStore::empty();
    for (i, ca) in cas.into_iter().enumerate() {
        roots.add(ca).map_err(|e| TlsError::BadCertificate {
            file: ca_file.clone(),
            reason: format!(
                "certificate {} (`{}`) is not usable as a trust anchor: {e}",
                i + 1,
                ca_summaries[i].subject
            ),
        })?;
    }
    let roots = Arc::new(roots);

    let mut crls = Vec::new();
    for path in &files.crls {
        let file = name(path);
        let file_crls = pem::crls(&pem::read(path)?, &file)?;
        // webpki is stricter than the x509 parser (no delta or indirect CRLs, …): try each
        // file on its own so that a refusal names it.
        verifier(&roots, file_crls.clone()).map_err(|e| TlsError::BadCrl {
            file: file.clone(),
            reason: e,
        })?;
        let foreign = file_crls
            .iter()
            .filter_map(pem::crl_issuer)
            .filter(|(issuer_der, _)| !ca_summaries.iter().any(|ca| &ca.subject_der == issuer_der));
        for (_, issuer) in foreign {
            tracing::warn!(
                file,
                issuer,
                "CRL is not issued by a certificate in the client CA file; it only applies to \
                 certificates issued by an intermediate of that name"
            );
        }
        crls.extend(file_crls);
    }
    let mut verifier = verifier(&roots, crls).map_err(TlsError::Config)?;
    if let Some(allow_cn_fallback) = principals {
        verifier = Arc::new(PrincipalVerifier {
            inner: verifier,
            allow_cn_fallback,
        });
    }

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = alpn();
    // No session resumption: rustls restores a resumed client's certificate chain without
    // verifying it again, so a session could outlive the certificate (SPIFFE certificates
    // often live an hour; rustls keeps sessions a day). Clients keep connections alive instead.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok((Arc::new(config), not_after))
}

fn verifier(
    roots: &Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .with_crls(crls)
        .build()
        .map_err(|e| e.to_string())
}

/// The client CA's verifier, then the principal check: a certificate that names no principal
/// is refused in the handshake (see [`ServerTls::load_requiring_principal`]).
#[derive(Debug)]
struct PrincipalVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allow_cn_fallback: bool,
}

impl ClientCertVerifier for PrincipalVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        principal_from_certificate(end_entity, self.allow_cn_fallback).map_err(|e| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                NoPrincipal(e),
            ))))
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}
