//! The principal a client certificate speaks for, which policies are matched against
//! (docs/policies.md): its SPIFFE ID, or its subject CN where `[tls] allow_cn_fallback` allows it
//! (docs/configuration.md).

use rustls::pki_types::CertificateDer;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName};
use x509_cert::name::Name;

use super::TlsError;
use tresor_client::tls::sanitize;

/// Longest accepted SPIFFE ID, in bytes (the SPIFFE specification's limit).
const MAX_SPIFFE_ID: usize = 2048;
/// Longest accepted trust domain, in bytes.
const MAX_TRUST_DOMAIN: usize = 255;
/// Longest accepted CN principal, in characters.
const MAX_COMMON_NAME: usize = 256;
/// id-at-commonName.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The principal of a DER certificate.
///
/// - A URI SAN whose scheme is `spiffe` (in any case) decides, and must be the certificate's
///   only URI SAN, as the SPIFFE X.509-SVID specification requires: with several, which identity
///   the certificate speaks for would depend on their order, so it is refused
///   ([`TlsError::SeveralUriSans`]). It must be a valid SPIFFE ID (see [`validate_spiffe_id`]);
///   if it is not, the certificate is refused, rather than falling back to the CN, because a
///   malformed identity from the CA is a mis-issuance, not a reason to pick another identity.
///   Without a `spiffe` URI SAN, other URI SANs (`https:`, `urn:`, …) are ignored.
/// - Without a SPIFFE URI SAN, and only if `allow_cn_fallback`, the subject CN: exactly one CN
///   attribute, 1 to 256 characters, no control or invisible formatting characters, no
///   leading or trailing space, and not itself starting with `spiffe:` (a CN must never pass
///   for a SPIFFE ID in a policy).
/// - Otherwise [`TlsError::NoSpiffeId`] (or [`TlsError::NoPrincipal`] when falling back found
///   no CN).
///
/// The certificate is assumed to have been verified already (rustls did it during the
/// handshake); this only reads it.
pub fn principal_from_certificate(
    der: &CertificateDer<'_>,
    allow_cn_fallback: bool,
) -> Result<String, TlsError> {
    let cert = Certificate::from_der(der.as_ref()).map_err(|e| TlsError::BadCertificate {
        file: "peer certificate".into(),
        reason: format!("does not parse: {e}"),
    })?;
    let tbs = cert.tbs_certificate();
    let sans = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|e| TlsError::BadCertificate {
            file: "peer certificate".into(),
            reason: format!("unreadable subjectAltName: {e}"),
        })?;
    if let Some((_critical, SubjectAltName(names))) = sans {
        let uris: Vec<&str> = names
            .iter()
            .filter_map(|name| match name {
                GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str()),
                _ => None,
            })
            .collect();
        if uris.iter().any(|uri| has_spiffe_scheme(uri)) {
            let [uri] = uris[..] else {
                return Err(TlsError::SeveralUriSans(uris.len()));
            };
            validate_spiffe_id(uri)?;
            return Ok(uri.to_owned());
        }
    }
    if !allow_cn_fallback {
        return Err(TlsError::NoSpiffeId);
    }
    common_name(tbs.subject())
}

/// The principal of the client of an established server connection: its end-entity
/// certificate through [`principal_from_certificate`].
pub fn peer_principal(
    conn: &rustls::ServerConnection,
    allow_cn_fallback: bool,
) -> Result<String, TlsError> {
    let end_entity = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(TlsError::NoPeerCertificate)?;
    principal_from_certificate(end_entity, allow_cn_fallback)
}

fn has_spiffe_scheme(uri: &str) -> bool {
    uri.as_bytes()
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"spiffe:"))
}

/// Checks that `id` is a SPIFFE ID as the SPIFFE specification defines it:
/// `spiffe://<trust-domain>/<path>`, lowercase scheme; trust domain of `a-z 0-9 . - _`, 1 to 255
/// bytes (so no port, user info or upper case); a path of one or more `/`-separated segments of
/// `a-z A-Z 0-9 . - _`, none empty, `.` or `..` (so no trailing slash, no percent-encoding); no
/// query or fragment; at most 2048 bytes in all.
///
/// The policy layer can use this to validate principals written in policy files.
pub fn validate_spiffe_id(id: &str) -> Result<(), TlsError> {
    let invalid = |reason: String| TlsError::InvalidSpiffeId {
        uri: sanitize(id, 128),
        reason,
    };
    if id.len() > MAX_SPIFFE_ID {
        return Err(invalid(format!(
            "longer than {MAX_SPIFFE_ID} bytes ({} bytes)",
            id.len()
        )));
    }
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return Err(invalid(
            if has_spiffe_scheme(id) && !id.starts_with("spiffe:") {
                "the scheme must be lowercase `spiffe`".into()
            } else {
                "must start with `spiffe://`".into()
            },
        ));
    };
    if id.contains('?') {
        return Err(invalid("a query is not allowed".into()));
    }
    if id.contains('#') {
        return Err(invalid("a fragment is not allowed".into()));
    }
    let (trust_domain, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if trust_domain.is_empty() {
        return Err(invalid("the trust domain is empty".into()));
    }
    if trust_domain.len() > MAX_TRUST_DOMAIN {
        return Err(invalid(format!(
            "the trust domain is longer than {MAX_TRUST_DOMAIN} bytes"
        )));
    }
    if let Some(c) = trust_domain
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        return Err(invalid(format!(
            "the trust domain contains {c:?}; only a-z 0-9 . - _ are allowed"
        )));
    }
    if path.is_empty() {
        return Err(invalid("the path is missing".into()));
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(invalid("the path has an empty segment".into())),
            "." | ".." => {
                return Err(invalid(format!("the path has a `{segment}` segment")));
            }
            _ => {}
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
        {
            return Err(invalid(format!(
                "the path contains {c:?}; only a-z A-Z 0-9 . - _ and `/` are allowed"
            )));
        }
    }
    Ok(())
}

fn common_name(subject: &Name) -> Result<String, TlsError> {
    let mut cns = subject.iter().filter(|atv| atv.oid == COMMON_NAME);
    let cn = cns.next().ok_or(TlsError::NoPrincipal)?;
    if cns.next().is_some() {
        return Err(TlsError::InvalidCommonName(
            "the subject has more than one CN".into(),
        ));
    }
    let value = DirectoryString::try_from(&cn.value).map_err(|_| {
        TlsError::InvalidCommonName(
            "not a PrintableString, UTF8String, TeletexString or BMPString".into(),
        )
    })?;
    let value = value.value();
    let bad =
        |reason: &str| TlsError::InvalidCommonName(format!("`{}` {reason}", sanitize(&value, 64)));
    if value.is_empty() {
        return Err(TlsError::InvalidCommonName("the CN is empty".into()));
    }
    if value.chars().count() > MAX_COMMON_NAME {
        return Err(bad(&format!("is longer than {MAX_COMMON_NAME} characters")));
    }
    if let Some(c) = value.chars().find(|&c| c.is_control() || is_invisible(c)) {
        return Err(bad(&format!("contains the non-printable character {c:?}")));
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(bad("has leading or trailing white space"));
    }
    if has_spiffe_scheme(&value) {
        return Err(bad(
            "looks like a SPIFFE ID; a SPIFFE ID must be a URI SAN, not the CN",
        ));
    }
    Ok(value.into_owned())
}

/// Zero-width and bidirectional formatting characters: printable-looking text that displays
/// differently from what it is.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    use super::*;

    fn cert(uris: &[&str], cns: &[&str]) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (i, cn) in cns.iter().enumerate() {
            // rcgen keeps one value per type; a custom type with the CN's OID adds a second CN.
            let ty = if i == 0 {
                DnType::CommonName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 3])
            };
            params.distinguished_name.push(ty, *cn);
        }
        params.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI((*u).try_into().unwrap()))
            .collect();
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn the_only_uri_san_is_the_principal() {
        let c = cert(
            &["spiffe://prod.example.org/ns/payments/sa/api"],
            &["payments-api"],
        );
        for fallback in [false, true] {
            assert_eq!(
                principal_from_certificate(&c, fallback).unwrap(),
                "spiffe://prod.example.org/ns/payments/sa/api"
            );
        }
    }

    /// Issue 15, point 9: an X.509-SVID has exactly one URI SAN; with several, the identity
    /// would depend on their order.
    #[test]
    fn a_spiffe_id_among_several_uri_sans_is_refused() {
        let cases: &[&[&str]] = &[
            &["spiffe://td/admin", "spiffe://td/app/other"],
            &["spiffe://td/app/other", "spiffe://td/admin"],
            &["https://example.com/x", "spiffe://td/admin"],
            &["spiffe://td/admin", "urn:uuid:1234"],
            &["spiffe://td/admin", "spiffe://td/admin"],
        ];
        for uris in cases {
            let c = cert(uris, &["admin"]);
            for fallback in [false, true] {
                let err = principal_from_certificate(&c, fallback).unwrap_err();
                assert!(
                    matches!(err, TlsError::SeveralUriSans(n) if n == uris.len()),
                    "{uris:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn non_spiffe_uris_are_ignored_and_the_cn_is_used_only_when_allowed() {
        let c = cert(&["https://example.com/x", "urn:uuid:1234"], &["svc-a"]);
        let err = principal_from_certificate(&c, false).unwrap_err();
        assert!(matches!(err, TlsError::NoSpiffeId), "{err}");
        assert_eq!(
            err.to_string(),
            "the certificate has no SPIFFE URI SAN (spiffe://<trust-domain>/<path>)"
        );
        assert_eq!(principal_from_certificate(&c, true).unwrap(), "svc-a");

        let no_san = cert(&[], &["Jörg Müller"]);
        assert!(matches!(
            principal_from_certificate(&no_san, false),
            Err(TlsError::NoSpiffeId)
        ));
        assert_eq!(
            principal_from_certificate(&no_san, true).unwrap(),
            "Jörg Müller"
        );

        let nothing = cert(&[], &[]);
        assert!(matches!(
            principal_from_certificate(&nothing, true),
            Err(TlsError::NoPrincipal)
        ));
    }

    #[test]
    fn a_malformed_spiffe_id_is_refused_even_with_cn_fallback() {
        let c = cert(&["spiffe://Prod.example.org/api"], &["api"]);
        let err = principal_from_certificate(&c, true).unwrap_err();
        assert!(matches!(err, TlsError::InvalidSpiffeId { .. }), "{err}");
        assert!(
            err.to_string().contains("trust domain contains 'P'"),
            "{err}"
        );
    }

    #[test]
    fn weird_common_names_are_refused() {
        let long = "a".repeat(257);
        let cases: &[(&[&str], &str)] = &[
            (&["bad\nname"], "non-printable"),
            (&["bad\u{202E}name"], "non-printable"),
            (&["\u{200B}"], "non-printable"),
            (&[" padded"], "white space"),
            (&[long.as_str()], "longer than 256"),
            (&["spiffe://td/admin"], "looks like a SPIFFE ID"),
            (&["SPIFFE://td/admin"], "looks like a SPIFFE ID"),
            (&["one", "two"], "more than one CN"),
        ];
        for (cns, expected) in cases {
            let err = principal_from_certificate(&cert(&[], cns), true).unwrap_err();
            assert!(
                matches!(err, TlsError::InvalidCommonName(_)),
                "{cns:?}: {err}"
            );
            assert!(err.to_string().contains(expected), "{cns:?}: {err}");
        }
        let ok = "b".repeat(256);
        assert_eq!(
            principal_from_certificate(&cert(&[], &[ok.as_str()]), true).unwrap(),
            ok
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for bytes in [
            &b""[..],
            b"\x30\x03\x02\x01\x01",
            b"-----BEGIN CERTIFICATE-----",
        ] {
            let err = principal_from_certificate(&CertificateDer::from(bytes.to_vec()), true)
                .unwrap_err();
            assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
        }
    }

    #[test]
    fn spiffe_ids_are_validated_as_the_specification_says() {
        for good in [
            "spiffe://example.org/service",
            "spiffe://prod.example.org/ns/payments/sa/api-v2",
            "spiffe://a-b_c.d9/x.y-z_0/A/B",
            "spiffe://td/...",
        ] {
            validate_spiffe_id(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let long_path = format!("spiffe://td/{}", "a".repeat(2048));
        let long_td = format!("spiffe://{}/x", "a".repeat(256));
        let cases: &[(&str, &str)] = &[
            ("SPIFFE://example.org/x", "scheme must be lowercase"),
            ("Spiffe://example.org/x", "scheme must be lowercase"),
            ("spiffe:example.org/x", "must start with `spiffe://`"),
            ("https://example.org/x", "must start with `spiffe://`"),
            ("spiffe://", "trust domain is empty"),
            ("spiffe:///x", "trust domain is empty"),
            ("spiffe://example.org", "path is missing"),
            ("spiffe://example.org/", "empty segment"),
            ("spiffe://example.org/x/", "empty segment"),
            ("spiffe://example.org//x", "empty segment"),
            ("spiffe://example.org/./x", "`.` segment"),
            ("spiffe://example.org/x/..", "`..` segment"),
            ("spiffe://Example.org/x", "trust domain contains 'E'"),
            ("spiffe://example.org:443/x", "trust domain contains ':'"),
            ("spiffe://user@example.org/x", "trust domain contains '@'"),
            ("spiffe://example.org/x?y=1", "query"),
            ("spiffe://example.org/x#frag", "fragment"),
            ("spiffe://example.org/a%20b", "path contains '%'"),
            ("spiffe://example.org/a b", "path contains ' '"),
            ("spiffe://example.org/caf\u{e9}", "path contains 'é'"),
            (long_path.as_str(), "longer than 2048 bytes"),
            (long_td.as_str(), "trust domain is longer than 255"),
        ];
        for (id, expected) in cases {
            let err = validate_spiffe_id(id).unwrap_err();
            assert!(err.to_string().contains(expected), "{id}: {err}");
        }
        // Exactly 2048 bytes is allowed.
        let max = format!("spiffe://td/{}", "a".repeat(2048 - "spiffe://td/".len()));
        validate_spiffe_id(&max).unwrap();
    }

    #[test]
    fn errors_do_not_echo_unbounded_or_raw_input() {
        let hostile = format!("spiffe://td/\n{}", "x".repeat(5000));
        let msg = validate_spiffe_id(&hostile).unwrap_err().to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.len() < 400, "{msg}");
    }
}
