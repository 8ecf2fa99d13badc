//! Reading certificates, keys and CRLs, with errors that name their source.

use std::path::Path;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, Encode};
use zeroize::Zeroizing;

use super::TlsError;

/// Reads a whole file; the buffer is wiped when dropped (it may hold a private key).
pub fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| TlsError::Read {
            file: path.display().to_string(),
            source,
        })
}

fn pem_error(file: &str, e: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        file: file.to_owned(),
        reason: e.to_string(),
    }
}

/// Every `CERTIFICATE` section, in order; at least one.
pub fn certificates(bytes: &[u8], file: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(file, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            file: file.to_owned(),
        });
    }
    Ok(certs)
}

/// The one private key (PKCS#8, SEC1 or PKCS#1) in the file.
pub fn private_key(bytes: &[u8], file: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut keys = PrivateKeyDer::pem_slice_iter(bytes);
    let key = match keys.next() {
        Some(Ok(key)) => key,
        Some(Err(e)) => return Err(pem_error(file, e)),
        None => {
            return Err(TlsError::NoPrivateKey {
                file: file.to_owned(),
            });
        }
    };
    match keys.next() {
        None => Ok(key),
        Some(Err(e)) => Err(pem_error(file, e)),
        Some(Ok(_)) => Err(TlsError::SeveralPrivateKeys {
            file: file.to_owned(),
        }),
    }
}

/// The CRLs in a file: PEM `X509 CRL` sections, or one DER CRL when the file is not PEM.
/// Each one is parsed here so that a broken one is reported with its file.
pub fn crls(
    bytes: &[u8],
    file: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let is_pem = bytes
        .windows(b"-----BEGIN".len())
        .any(|w| w == b"-----BEGIN");
    let crls = if is_pem {
        let crls = CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(file, e))?;
        if crls.is_empty() {
            return Err(TlsError::BadCrl {
                file: file.to_owned(),
                reason: "no CRL found (expected PEM `-----BEGIN X509 CRL-----` or DER)".into(),
            });
        }
        crls
    } else {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    };
    let now = SystemTime::now();
    for (i, crl) in crls.iter().enumerate() {
        let parsed = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(crl.as_ref())
            .map_err(|e| TlsError::BadCrl {
                file: file.to_owned(),
                reason: format!("CRL {} of {} does not parse: {e}", i + 1, crls.len()),
            })?;
        let stale = parsed
            .tbs_cert_list
            .next_update
            .filter(|t| t.to_system_time() < now);
        if let Some(next) = stale {
            tracing::warn!(
                file,
                issuer = %parsed.tbs_cert_list.issuer,
                next_update = %next.to_date_time(),
                "CRL is past its nextUpdate; it is still honoured, publish a fresh one"
            );
        }
    }
    Ok(crls)
}

/// What the TLS layer needs to know about a certificate beyond what rustls checks.
pub struct CertSummary {
    /// The subject, RFC 4514.
    pub subject: String,
    /// The subject, DER (to match CRL issuers).
    pub subject_der: Vec<u8>,
    /// notAfter.
    pub not_after: SystemTime,
}

/// Parses `der` and refuses it if it is outside its validity period at `now`.
pub fn check_validity(
    der: &CertificateDer<'_>,
    file: &str,
    position: (usize, usize),
    now: SystemTime,
) -> Result<CertSummary, TlsError> {
    let cert = Certificate::from_der(der.as_ref()).map_err(|e| TlsError::BadCertificate {
        file: file.to_owned(),
        reason: if position.1 > 1 {
            format!(
                "certificate {} of {} does not parse: {e}",
                position.0 + 1,
                position.1
            )
        } else {
            format!("certificate does not parse: {e}")
        },
    })?;
    let tbs = cert.tbs_certificate();
    let subject = tbs.subject().to_string();
    let validity = tbs.validity();
    if validity.not_after.to_system_time() < now {
        return Err(TlsError::CertificateExpired {
            file: file.to_owned(),
            subject,
            not_after: validity.not_after.to_date_time().to_string(),
        });
    }
    if validity.not_before.to_system_time() > now {
        return Err(TlsError::CertificateNotYetValid {
            file: file.to_owned(),
            subject,
            not_before: validity.not_before.to_date_time().to_string(),
        });
    }
    Ok(CertSummary {
        subject,
        subject_der: tbs.subject().to_der().unwrap_or_default(),
        not_after: validity.not_after.to_system_time(),
    })
}

/// Checks every certificate of a file; returns the summaries in order.
pub fn check_all(certs: &[CertificateDer<'_>], file: &str) -> Result<Vec<CertSummary>, TlsError> {
    let now = SystemTime::now();
    certs
        .iter()
        .enumerate()
        .map(|(i, der)| check_validity(der, file, (i, certs.len()), now))
        .collect()
}

/// The DER issuer name of a CRL (already known to parse).
pub fn crl_issuer(crl: &CertificateRevocationListDer<'_>) -> Option<(Vec<u8>, String)> {
    let parsed = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(crl.as_ref()).ok()?;
    let issuer = parsed.tbs_cert_list.issuer;
    Some((issuer.to_der().ok()?, issuer.to_string()))
}

/// A `rustls::sign::CertifiedKey` from a chain and key, with the mismatch named.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: &str,
    key_file: &str,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let provider = super::provider();
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadPrivateKey {
                file: key_file.to_owned(),
                reason: e.to_string(),
            })?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert_file: cert_file.to_owned(),
                key_file: key_file.to_owned(),
            })
        }
        // ring's keys all expose their public key; "unknown" cannot happen with them.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(TlsError::BadCertificate {
            file: cert_file.to_owned(),
            reason: format!("end-entity certificate unusable: {e}"),
        }),
    }
}
