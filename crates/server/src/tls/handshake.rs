//! Why a handshake failed, as a small set of stable labels a server can count and audit.

use std::fmt;
use std::io;

use rustls::{CertificateError, Error};

/// The reason a TLS handshake failed, seen from the side that reports it (normally the server).
///
/// [`as_str`](Self::as_str) gives a stable snake_case label for metrics and audit lines; the
/// set may grow, labels never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The client sent no certificate (`no_client_certificate`).
    NoClientCertificate,
    /// The certificate does not chain to a trusted CA (`unknown_ca`).
    UnknownCa,
    /// The certificate (or one in its chain) is past its notAfter (`expired`).
    Expired,
    /// The certificate (or one in its chain) is before its notBefore (`not_yet_valid`).
    NotYetValid,
    /// A configured CRL revokes the certificate (`revoked`).
    Revoked,
    /// CRLs are configured but none covers a certificate in the chain, or a CRL is unusable
    /// (`revocation_unknown`).
    RevocationUnknown,
    /// The certificate is malformed, badly signed, has the wrong extended key usage, an
    /// unsupported algorithm or an unknown critical extension (`bad_certificate`).
    BadCertificate,
    /// The certificate chains to the client CA but names no principal: no SPIFFE URI SAN (and
    /// no usable CN where the CN fallback is allowed), or a malformed SPIFFE ID
    /// (`no_principal`).
    NoPrincipal,
    /// The peer ended the handshake with a fatal alert, e.g. it does not trust our certificate
    /// (`peer_rejected`).
    PeerRejected,
    /// No protocol version, cipher suite, key exchange group or ALPN protocol in common; TLS 1.1
    /// and older land here (`incompatible`).
    Incompatible,
    /// Malformed or unexpected messages, or not TLS at all (`protocol`).
    Protocol,
    /// The connection was closed or reset before the handshake completed (`closed`).
    Closed,
    /// The handshake took too long (`timeout`).
    Timeout,
    /// Any other I/O error (`io`).
    Io,
    /// Anything else (`other`).
    Other,
}

impl HandshakeFailure {
    /// Every value, e.g. to pre-register a metric per label.
    pub const ALL: [HandshakeFailure; 15] = [
        Self::NoClientCertificate,
        Self::UnknownCa,
        Self::Expired,
        Self::NotYetValid,
        Self::Revoked,
        Self::RevocationUnknown,
        Self::BadCertificate,
        Self::NoPrincipal,
        Self::PeerRejected,
        Self::Incompatible,
        Self::Protocol,
        Self::Closed,
        Self::Timeout,
        Self::Io,
        Self::Other,
    ];

    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoClientCertificate => "no_client_certificate",
            Self::UnknownCa => "unknown_ca",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Revoked => "revoked",
            Self::RevocationUnknown => "revocation_unknown",
            Self::BadCertificate => "bad_certificate",
            Self::NoPrincipal => "no_principal",
            Self::PeerRejected => "peer_rejected",
            Self::Incompatible => "incompatible",
            Self::Protocol => "protocol",
            Self::Closed => "closed",
            Self::Timeout => "timeout",
            Self::Io => "io",
            Self::Other => "other",
        }
    }

    /// Classifies the error `tokio_rustls::TlsAcceptor::accept` (or `TlsConnector::connect`, or
    /// the first read after a TLS 1.3 handshake) returned. tokio-rustls wraps the
    /// [`rustls::Error`] in an [`io::Error`] of kind `InvalidData`; other kinds are transport
    /// failures.
    pub fn from_io_error(e: &io::Error) -> Self {
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            return Self::from_rustls_error(tls);
        }
        match e.kind() {
            io::ErrorKind::TimedOut => Self::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected => Self::Closed,
            _ => Self::Io,
        }
    }

    /// Classifies a rustls error.
    pub fn from_rustls_error(e: &Error) -> Self {
        match e {
            Error::NoCertificatesPresented => Self::NoClientCertificate,
            Error::InvalidCertificate(c) => Self::from_certificate_error(c),
            Error::InvalidCertRevocationList(_) => Self::RevocationUnknown,
            Error::AlertReceived(_) => Self::PeerRejected,
            Error::PeerIncompatible(_) | Error::NoApplicationProtocol => Self::Incompatible,
            Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. }
            | Error::InvalidEncryptedClientHello(_)
            | Error::InvalidMessage(_)
            | Error::PeerMisbehaved(_)
            | Error::DecryptError
            | Error::PeerSentOversizedRecord
            | Error::UnsupportedNameType => Self::Protocol,
            _ => Self::Other,
        }
    }

    fn from_certificate_error(e: &CertificateError) -> Self {
        match e {
            CertificateError::UnknownIssuer => Self::UnknownCa,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Self::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Self::NotYetValid
            }
            CertificateError::Revoked => Self::Revoked,
            CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => Self::RevocationUnknown,
            CertificateError::Other(other) if other.0.downcast_ref::<NoPrincipal>().is_some() => {
                Self::NoPrincipal
            }
            _ => Self::BadCertificate,
        }
    }
}

/// The principal check's refusal inside a rustls error (see
/// [`ServerTls::load_requiring_principal`](super::ServerTls::load_requiring_principal)).
#[derive(Debug)]
pub(crate) struct NoPrincipal(pub(crate) super::TlsError);

impl fmt::Display for NoPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no principal: {}", self.0)
    }
}

impl std::error::Error for NoPrincipal {}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed handshake's error for a log line: rustls's message, except that a certificate
/// refused for naming no principal says what it lacks.
pub fn describe_handshake_error(e: &io::Error) -> String {
    let refused = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .and_then(|tls| match tls {
            Error::InvalidCertificate(CertificateError::Other(other)) => {
                other.0.downcast_ref::<NoPrincipal>()
            }
            _ => None,
        });
    match refused {
        Some(NoPrincipal(reason)) => format!("client certificate refused: {reason}"),
        None => e.to_string(),
    }
}

/// The stable label ([`HandshakeFailure::as_str`]) for a failed handshake's error, e.g.
/// `"unknown_ca"`. A handshake that ran out of time under `tokio::time::timeout` never reaches
/// rustls: count it as [`HandshakeFailure::Timeout`] (`"timeout"`) directly.
pub fn classify_handshake_error(e: &io::Error) -> &'static str {
    HandshakeFailure::from_io_error(e).as_str()
}

#[cfg(test)]
mod tests {
    use rustls::{AlertDescription, PeerIncompatible};

    use super::*;

    fn wrapped(e: Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn rustls_errors_map_to_stable_labels() {
        let cases = [
            (Error::NoCertificatesPresented, "no_client_certificate"),
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown_ca",
            ),
            (
                Error::InvalidCertificate(CertificateError::Expired),
                "expired",
            ),
            (
                Error::InvalidCertificate(CertificateError::NotValidYet),
                "not_yet_valid",
            ),
            (
                Error::InvalidCertificate(CertificateError::Revoked),
                "revoked",
            ),
            (
                Error::InvalidCertificate(CertificateError::UnknownRevocationStatus),
                "revocation_unknown",
            ),
            (
                Error::InvalidCertificate(CertificateError::BadSignature),
                "bad_certificate",
            ),
            (
                Error::InvalidCertificate(CertificateError::InvalidPurpose),
                "bad_certificate",
            ),
            (
                Error::AlertReceived(AlertDescription::UnknownCA),
                "peer_rejected",
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered),
                "incompatible",
            ),
            (Error::NoApplicationProtocol, "incompatible"),
            (Error::DecryptError, "protocol"),
            (Error::General("x".into()), "other"),
            (
                Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                    std::sync::Arc::new(NoPrincipal(crate::tls::TlsError::NoSpiffeId)),
                ))),
                "no_principal",
            ),
        ];
        for (e, label) in cases {
            let text = format!("{e:?}");
            assert_eq!(classify_handshake_error(&wrapped(e)), label, "{text}");
        }
    }

    #[test]
    fn transport_errors_map_by_kind() {
        let kind = |k| classify_handshake_error(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::UnexpectedEof), "closed");
        assert_eq!(kind(io::ErrorKind::ConnectionReset), "closed");
        assert_eq!(kind(io::ErrorKind::TimedOut), "timeout");
        assert_eq!(kind(io::ErrorKind::PermissionDenied), "io");
        // InvalidData that is not a rustls error is not mistaken for one.
        assert_eq!(
            classify_handshake_error(&io::Error::new(io::ErrorKind::InvalidData, "x")),
            "io"
        );
    }

    #[test]
    fn labels_are_unique_and_snake_case() {
        let labels: std::collections::HashSet<_> =
            HandshakeFailure::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(labels.len(), HandshakeFailure::ALL.len());
        assert!(
            labels
                .iter()
                .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        assert_eq!(HandshakeFailure::Revoked.to_string(), "revoked");
    }
}
