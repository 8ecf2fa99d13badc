//! Error messages that point at the fix: one line per error, each cause said once, and a TLS
//! refusal turned into what is wrong with which certificate.

use std::path::PathBuf;
use std::sync::OnceLock;

use tresor_client::ClientError;

/// The client certificate this process presents (set once the connection settings are read),
/// so that a refusal by the server can be explained by what the certificate lacks.
static CLIENT_CERT: OnceLock<PathBuf> = OnceLock::new();

/// Remembers the client certificate in use.
pub(crate) fn note_client_cert(path: &std::path::Path) {
    let _ = CLIENT_CERT.set(path.to_owned());
}

/// The error as one line: the hint if there is one, else every cause in the chain, each once
/// (errors that print their source themselves would otherwise show it twice).
pub(crate) fn message(error: &anyhow::Error) -> String {
    if let Some(hint) = error.chain().find_map(|cause| {
        cause
            .downcast_ref::<ClientError>()
            .and_then(|e| tls_refusal(e, CLIENT_CERT.get().map(PathBuf::as_path)))
    }) {
        return hint;
    }
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message.replace('\n', " ")
}

/// What a TLS alert from the server says about our certificate, or what our side found wrong
/// with the server's; `None` for any other error.
pub(crate) fn tls_refusal(error: &ClientError, cert: Option<&std::path::Path>) -> Option<String> {
    if let ClientError::Api {
        status: 403,
        errors,
    } = error
    {
        // A certificate that chains to the client CA but names no usable identity: the server
        // says what is wrong; the certificate itself says it best.
        let told = errors
            .first()?
            .strip_prefix(tresor_wire::api::UNIDENTIFIED)?
            .trim_start_matches(": ");
        let this = match cert {
            Some(path) => format!("this certificate ({})", path.display()),
            None => "this certificate".to_owned(),
        };
        let why = cert
            .and_then(missing_principal)
            .unwrap_or_else(|| told.to_owned());
        return Some(format!("the server refused {this}: {why} (docs/pki.md)"));
    }
    let ClientError::Connect { addr, message } = error else {
        return None;
    };
    if let Some(alert) = word_after(message, "received fatal alert: ") {
        let this = match cert {
            Some(path) => format!("this certificate ({})", path.display()),
            None => "this certificate".to_owned(),
        };
        let why = match alert {
            "CertificateUnknown" | "AccessDenied" => {
                cert.and_then(missing_principal).unwrap_or_else(|| {
                    "the server cannot use it (a CA certificate presented as a client certificate, \
                 for example; the server's log names the reason)"
                        .to_owned()
                })
            }
            "UnknownCA" => "it is not issued by a CA in the server's [tls] client_ca (or CRLs are \
                            configured and none covers its issuer)"
                .to_owned(),
            "CertificateExpired" => {
                "it has expired or is not yet valid by the server's clock".to_owned()
            }
            "CertificateRevoked" => {
                "it is revoked (a CRL in the server's [tls] crls lists it): use a new one"
                    .to_owned()
            }
            "UnsupportedCertificate" => {
                "it is not a client certificate (its extended key usage lacks clientAuth)"
                    .to_owned()
            }
            "BadCertificate" | "DecryptError" => {
                "the server cannot verify it: its signature does not verify with the CA of its \
                 issuer's name in the server's [tls] client_ca (another CA with the same name?), \
                 or it is malformed"
                    .to_owned()
            }
            "CertificateRequired" => {
                return Some(format!(
                    "the server at {addr} requires a client certificate and got none (TLS alert {alert})"
                ));
            }
            _ => return None,
        };
        return Some(format!(
            "the server refused {this}: {why} (TLS alert {alert} from {addr}; docs/pki.md)"
        ));
    }
    if message.contains("invalid peer certificate: UnknownIssuer") {
        return Some(format!(
            "the server's certificate at {addr} is not issued by the CA in --cacert (TRESOR_CACERT)"
        ));
    }
    if message.contains("certificate not valid for name") || message.contains("NotValidForName") {
        return Some(format!(
            "the server's certificate is not valid for the host in {addr}: connect with a DNS name or IP address among its SANs (docs/pki.md)"
        ));
    }
    None
}

/// Why the certificate in `path` names no principal, if it does not.
fn missing_principal(path: &std::path::Path) -> Option<String> {
    let pem = std::fs::read(path).ok()?;
    let chain = tresor_client::tls::pem::certificates(&pem, "").ok()?;
    let error = tresor_server::tls::principal_from_certificate(chain.first()?, false).err()?;
    Some(match error {
        tresor_server::tls::TlsError::NoSpiffeId => {
            "it has no SPIFFE URI SAN (spiffe://<trust-domain>/<path>), which names the principal: issue one with `tresor pki client SPIFFE_ID`".to_owned()
        }
        tresor_server::tls::TlsError::InvalidSpiffeId { uri, reason } => {
            format!("its SPIFFE ID `{uri}` is invalid: {reason}")
        }
        other => other.to_string(),
    })
}

/// The word (up to white space or punctuation other than `_`) after `marker` in `text`.
fn word_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_printed_by_its_error_is_not_printed_again() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(tresor_client::tls::TlsError::Read {
            file: "client.pem".into(),
            source: io,
        })
        .context("connecting");
        assert_eq!(
            message(&error),
            "connecting: client.pem: cannot read: No such file or directory"
        );
    }

    #[test]
    fn alerts_become_hints() {
        let refused = |alert: &str| {
            tls_refusal(
                &ClientError::Connect {
                    addr: "https://vault:8200".into(),
                    message: format!("client error (SendRequest): received fatal alert: {alert}"),
                },
                None,
            )
        };
        let unknown = refused("UnknownCA").unwrap();
        assert!(unknown.starts_with("the server refused this certificate: it is not issued by a CA in the server's [tls] client_ca"), "{unknown}");
        assert!(refused("CertificateRevoked").unwrap().contains("revoked"));
        assert!(refused("UnexpectedMessage").is_none());
        assert_eq!(word_after("alert: Foo_bar.", "alert: "), Some("Foo_bar"));
    }

    #[test]
    fn an_unusable_identity_403_becomes_a_hint() {
        let api = |status, message: &str| ClientError::Api {
            status,
            errors: vec![message.to_owned()],
        };
        let told = format!(
            "{}: the certificate has 2 URI SANs, one of them a SPIFFE ID",
            tresor_wire::api::UNIDENTIFIED
        );
        assert_eq!(
            tls_refusal(&api(403, &told), None).unwrap(),
            "the server refused this certificate: the certificate has 2 URI SANs, one of them a SPIFFE ID (docs/pki.md)"
        );
        // Other 403s are policy denials, not about the certificate.
        assert!(tls_refusal(&api(403, "permission denied"), None).is_none());
        assert!(tls_refusal(&api(400, &told), None).is_none());
    }
}
