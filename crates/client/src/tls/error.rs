//! Errors of the TLS layer. A message names the file (or, for in-memory input, what the bytes
//! were meant to be) and what is wrong with it; none carries key material.

/// Anything loading TLS material, building a configuration, reading a principal or issuing a dev
/// certificate can fail with.
///
/// `file` fields hold the path as given (or a label such as `client certificate` for bytes that
/// did not come from a file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM structure itself is broken (unterminated section, bad base64, …).
    #[error("{file}: malformed PEM: {reason}")]
    Pem {
        /// The file.
        file: String,
        /// What the PEM parser said.
        reason: String,
    },
    /// No `CERTIFICATE` section in the file.
    #[error("{file}: no certificate found (expected PEM `-----BEGIN CERTIFICATE-----`)")]
    NoCertificate {
        /// The file.
        file: String,
    },
    /// No usable private key section in the file.
    #[error(
        "{file}: not a PKCS#8/SEC1/PKCS#1 private key (expected an unencrypted PEM `PRIVATE KEY`, \
         `EC PRIVATE KEY` or `RSA PRIVATE KEY`)"
    )]
    NoPrivateKey {
        /// The file.
        file: String,
    },
    /// The file holds more than one private key, so which one to use is ambiguous.
    #[error("{file}: more than one private key; keep exactly one")]
    SeveralPrivateKeys {
        /// The file.
        file: String,
    },
    /// The private key parses as PEM but cannot be used (bad encoding, unsupported algorithm).
    #[error("{file}: unusable private key: {reason}")]
    BadPrivateKey {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A certificate does not parse or cannot serve its purpose.
    #[error("{file}: {reason}")]
    BadCertificate {
        /// The file.
        file: String,
        /// What is wrong, including which certificate when the file holds several.
        reason: String,
    },
    /// A certificate's notAfter is in the past.
    #[error("{file}: certificate expired at {not_after} (subject `{subject}`)")]
    CertificateExpired {
        /// The file.
        file: String,
        /// The certificate's subject.
        subject: String,
        /// Its notAfter, RFC 3339.
        not_after: String,
    },
    /// A certificate's notBefore is in the future.
    #[error("{file}: certificate not valid before {not_before} (subject `{subject}`)")]
    CertificateNotYetValid {
        /// The file.
        file: String,
        /// The certificate's subject.
        subject: String,
        /// Its notBefore, RFC 3339.
        not_before: String,
    },
    /// The private key is not the one the certificate was issued for.
    #[error("{key_file}: private key does not match the certificate in {cert_file}")]
    KeyMismatch {
        /// The certificate file.
        cert_file: String,
        /// The key file.
        key_file: String,
    },
    /// A certificate revocation list cannot be used.
    #[error("{file}: {reason}")]
    BadCrl {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the assembled configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
    /// The TLS peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    /// The certificate has no `spiffe://` URI SAN, and falling back to the CN is not allowed.
    #[error("the certificate has no SPIFFE URI SAN (spiffe://<trust-domain>/<path>)")]
    NoSpiffeId,
    /// The certificate has neither a `spiffe://` URI SAN nor a subject CN.
    #[error("the certificate has no SPIFFE URI SAN and no subject CN")]
    NoPrincipal,
    /// The certificate has a `spiffe:` URI SAN among several URI SANs: an X.509-SVID has
    /// exactly one, so which identity it speaks for is ambiguous.
    #[error(
        "the certificate has {0} URI SANs, one of them a SPIFFE ID: an X.509-SVID has exactly one URI SAN"
    )]
    SeveralUriSans(usize),
    /// The certificate's `spiffe:` URI SAN is not a valid SPIFFE ID.
    #[error("invalid SPIFFE ID `{uri}`: {reason}")]
    InvalidSpiffeId {
        /// The URI, escaped and shortened for logs.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// The subject CN cannot serve as a principal.
    #[error("unusable subject CN: {0}")]
    InvalidCommonName(String),
    /// A dev certificate or CRL could not be made.
    #[error("cannot issue {what}: {reason}")]
    Issue {
        /// What was being made.
        what: &'static str,
        /// Why not.
        reason: String,
    },
}

/// Makes attacker-influenced text safe for one log line: escapes control characters and cuts
/// it to at most `max` characters.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).flat_map(char::escape_debug).collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}
