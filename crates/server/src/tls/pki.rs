//! A small certificate authority for `tresor dev`, `tresor pki` (teams without a PKI of their
//! own, docs/pki.md) and tests: a CA, server and client certificates, and CRLs. ECDSA P-256
//! throughout.
//!
//! The certificates follow what webpki (rustls) and the platform verifiers expect: the CA has
//! `CA:TRUE` (path length 0), key usage `keyCertSign, cRLSign, digitalSignature` and a subject
//! key identifier; leaves have `CA:FALSE`, key usage `digitalSignature`, an authority key
//! identifier, a random 128-bit serial, and the extended key usage of their role
//! (`serverAuth` with DNS/IP SANs, `clientAuth` with a URI SAN). Validity starts five minutes
//! in the past to absorb clock skew. Keep server certificates at 397 days or less: Apple
//! platforms refuse longer ones.
//!
//! The server only reads PEM files ([`super::ServerTlsFiles`]): a deployment may just as well
//! bring certificates from its own CA, as long as they follow the profile in docs/pki.md.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::{
    BasicConstraints as X509BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use zeroize::Zeroizing;

use super::{TlsError, validate_spiffe_id};
use tresor_client::tls::pem;

/// How far in the past validity starts, against clock skew between machines.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Validity of a generated CA.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A dev certificate authority: its certificate and signing key.
pub struct DevCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    not_after: SystemTime,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("subject", &self.params.distinguished_name)
            .finish_non_exhaustive()
    }
}

/// A certificate issued by a [`DevCa`], with its fresh private key.
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The private key, PKCS#8 PEM; wiped when dropped.
    pub key_pem: Zeroizing<String>,
    /// The serial number, big-endian (what [`DevCa::crl`] revokes).
    pub serial: Vec<u8>,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// One entry of a CRL: which certificate, revoked since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The certificate's serial number, big-endian (see [`IssuedCert::serial`], [`serial_of`]).
    pub serial: Vec<u8>,
    /// When it was revoked (whole seconds).
    pub at: SystemTime,
}

/// A CRL issued by a [`DevCa`].
#[derive(Debug, Clone)]
pub struct IssuedCrl {
    /// PEM (`X509 CRL`).
    pub pem: String,
    /// DER.
    pub der: Vec<u8>,
}

/// Everything about a client certificate, for [`DevCa::issue_client_with`]. Nothing here is
/// validated, so tests can make certificates the server must refuse.
#[derive(Debug, Clone)]
pub struct ClientCertSpec {
    /// URI SANs, in order (none: no SAN extension).
    pub uris: Vec<String>,
    /// The subject CN (none: an empty subject).
    pub common_name: Option<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

impl ClientCertSpec {
    /// A certificate with the given SPIFFE URI SAN, valid from five minutes ago for `validity`.
    pub fn spiffe(uri: &str, validity: Duration) -> Self {
        let now = SystemTime::now();
        ClientCertSpec {
            uris: vec![uri.to_owned()],
            common_name: None,
            not_before: now - BACKDATE,
            not_after: now + validity,
        }
    }

    /// A certificate with only a subject CN (for configurations that allow the CN fallback).
    pub fn common_name(cn: &str, validity: Duration) -> Self {
        let now = SystemTime::now();
        ClientCertSpec {
            uris: Vec::new(),
            common_name: Some(cn.to_owned()),
            not_before: now - BACKDATE,
            not_after: now + validity,
        }
    }
}

impl DevCa {
    /// A new CA with a fresh P-256 key, subject `CN=<common_name>`, valid for ten years.
    pub fn generate(common_name: &str) -> Result<DevCa, TlsError> {
        DevCa::generate_for(common_name, CA_VALIDITY)
    }

    /// A new CA with a fresh P-256 key, subject `CN=<common_name>`, valid from five minutes ago
    /// for `validity`.
    pub fn generate_for(common_name: &str, validity: Duration) -> Result<DevCa, TlsError> {
        let issue = |reason: rcgen::Error| TlsError::Issue {
            what: "the CA certificate",
            reason: reason.to_string(),
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(issue)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        let not_after = now + validity;
        set_validity(&mut params, now - BACKDATE, not_after, "the CA certificate")?;
        let cert = params.self_signed(&key).map_err(issue)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            params,
            key,
            not_after: SystemTime::UNIX_EPOCH + since_epoch(not_after, "the CA certificate")?,
        })
    }

    /// Takes up an existing CA (e.g. `ca.pem` and `ca-key.pem` written by an earlier
    /// `tresor dev`). The certificate must be a CA (`CA:TRUE`, `keyCertSign` if key usage is
    /// present), currently valid, and the key (PKCS#8) must be its key. Certificates issued
    /// afterwards carry exactly the CA's subject as issuer and its subject key identifier as
    /// authority key identifier; a subject this module cannot reproduce byte for byte is
    /// refused.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<DevCa, TlsError> {
        const CERT: &str = "CA certificate";
        const KEY: &str = "CA key";
        let bad = |reason: String| TlsError::BadCertificate {
            file: CERT.into(),
            reason,
        };
        let certs = pem::certificates(cert_pem.as_bytes(), CERT)?;
        if certs.len() != 1 {
            return Err(bad(format!(
                "expected exactly one certificate, found {}",
                certs.len()
            )));
        }
        let cert_der = certs.into_iter().next().expect("one certificate");
        let not_after = pem::check_all(std::slice::from_ref(&cert_der), CERT)?[0].not_after;
        let cert = Certificate::from_der(cert_der.as_ref())
            .map_err(|e| bad(format!("does not parse: {e}")))?;
        let tbs = cert.tbs_certificate();

        let constraints = tbs
            .get_extension::<X509BasicConstraints>()
            .map_err(|e| bad(format!("unreadable basicConstraints: {e}")))?;
        let path_len = match constraints {
            Some((_, c)) if c.ca => c.path_len_constraint,
            _ => {
                return Err(bad(
                    "not a CA certificate (no basicConstraints CA:TRUE)".into()
                ));
            }
        };
        let key_usages = match tbs
            .get_extension::<KeyUsage>()
            .map_err(|e| bad(format!("unreadable keyUsage: {e}")))?
        {
            None => Vec::new(),
            Some((_, ku)) if !ku.key_cert_sign() => {
                return Err(bad("key usage does not allow keyCertSign".into()));
            }
            Some((_, ku)) => rcgen_key_usages(&ku),
        };
        let key_identifier_method = match tbs
            .get_extension::<SubjectKeyIdentifier>()
            .map_err(|e| bad(format!("unreadable subjectKeyIdentifier: {e}")))?
        {
            Some((_, ski)) => KeyIdMethod::PreSpecified(ski.0.as_bytes().to_vec()),
            None => KeyIdMethod::Sha256,
        };

        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::BadPrivateKey {
            file: KEY.into(),
            reason: format!("not a PKCS#8 key this CA can sign with: {e}"),
        })?;
        let cert_spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| bad(format!("unreadable public key: {e}")))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != cert_spki {
            return Err(TlsError::KeyMismatch {
                cert_file: CERT.into(),
                key_file: KEY.into(),
            });
        }

        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen_name(tbs.subject()).map_err(bad)?;
        params.is_ca = IsCa::Ca(match path_len {
            Some(n) => BasicConstraints::Constrained(n),
            None => BasicConstraints::Unconstrained,
        });
        params.key_usages = key_usages;
        params.key_identifier_method = key_identifier_method;
        let ca = DevCa {
            params,
            key,
            cert_pem: cert_pem.to_owned(),
            cert_der,
            not_after,
        };

        // Prove that what rcgen will write as issuer is the CA's subject, byte for byte.
        let probe = ca.sign(
            &mut CertificateParams::default(),
            &ca.key,
            "a probe certificate",
        )?;
        let probe = Certificate::from_der(probe.der().as_ref())
            .map_err(|e| bad(format!("probe certificate does not parse: {e}")))?;
        let same = probe.tbs_certificate().issuer().to_der().ok() == tbs.subject().to_der().ok();
        if !same {
            return Err(bad(
                "its subject cannot be reproduced exactly for signing".into()
            ));
        }
        Ok(ca)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate's notAfter: nothing it issues should outlive it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The CA's private key, PKCS#8 PEM; wiped when dropped.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.key.serialize_pem())
    }

    /// A server certificate for `hosts` (DNS names or IP addresses, each becoming a SAN of its
    /// kind; the first is also the CN), `serverAuth`, valid from five minutes ago for
    /// `validity`.
    pub fn issue_server(&self, hosts: &[&str], validity: Duration) -> Result<IssuedCert, TlsError> {
        const WHAT: &str = "a server certificate";
        let invalid = |reason: String| TlsError::Issue { what: WHAT, reason };
        let first = hosts
            .first()
            .ok_or_else(|| invalid("no host names given".into()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, *first);
        for host in hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    rustls::pki_types::DnsName::try_from(*host).map_err(|_| {
                        invalid(format!("`{host}` is neither a DNS name nor an IP"))
                    })?;
                    SanType::DnsName(
                        (*host)
                            .try_into()
                            .map_err(|e| invalid(format!("`{host}`: {e}")))?,
                    )
                }
            };
            params.subject_alt_names.push(san);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        set_validity(&mut params, now - BACKDATE, now + validity, WHAT)?;
        self.issue(params, WHAT)
    }

    /// A client certificate whose only SAN is `spiffe_uri` (validated with
    /// [`validate_spiffe_id`]), `clientAuth`, empty subject, valid from five minutes ago for
    /// `validity`.
    pub fn issue_client(
        &self,
        spiffe_uri: &str,
        validity: Duration,
    ) -> Result<IssuedCert, TlsError> {
        validate_spiffe_id(spiffe_uri)?;
        self.issue_client_with(&ClientCertSpec::spiffe(spiffe_uri, validity))
    }

    /// A `clientAuth` certificate exactly as `spec` says, without validating the names or the
    /// dates: for tests that need expired, not-yet-valid, CN-only or odd certificates.
    pub fn issue_client_with(&self, spec: &ClientCertSpec) -> Result<IssuedCert, TlsError> {
        const WHAT: &str = "a client certificate";
        let invalid = |reason: String| TlsError::Issue { what: WHAT, reason };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = &spec.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        }
        for uri in &spec.uris {
            let uri = uri
                .as_str()
                .try_into()
                .map_err(|e| invalid(format!("URI SAN: {e}")))?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut params, spec.not_before, spec.not_after, WHAT)?;
        self.issue(params, WHAT)
    }

    /// A CRL revoking the given serial numbers (see [`IssuedCert::serial`]), valid from now
    /// for `validity` (its nextUpdate).
    pub fn crl(
        &self,
        revoked_serials: &[&[u8]],
        validity: Duration,
    ) -> Result<IssuedCrl, TlsError> {
        let at = SystemTime::now() - Duration::from_secs(60);
        let revoked: Vec<Revocation> = revoked_serials
            .iter()
            .map(|serial| Revocation {
                serial: serial.to_vec(),
                at,
            })
            .collect();
        self.crl_of(&revoked, validity)
    }

    /// A CRL listing `revoked`, each with its own revocation time, valid from now for
    /// `validity` (its nextUpdate). Its CRL number is the current Unix time, so each new CRL
    /// has a larger number than the one it replaces.
    pub fn crl_of(
        &self,
        revoked: &[Revocation],
        validity: Duration,
    ) -> Result<IssuedCrl, TlsError> {
        const WHAT: &str = "a CRL";
        let issue = |e: rcgen::Error| TlsError::Issue {
            what: WHAT,
            reason: e.to_string(),
        };
        let now = SystemTime::now();
        let this_update = now - Duration::from_secs(60);
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for entry in revoked {
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&entry.serial),
                revocation_time: epoch + since_epoch(entry.at, WHAT)?,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: epoch + since_epoch(this_update, WHAT)?,
            next_update: epoch + since_epoch(now + validity, WHAT)?,
            // Seconds since the epoch: increases from one CRL to the next, as RFC 5280 wants.
            crl_number: SerialNumber::from(since_epoch(now, WHAT)?.as_secs()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.params.key_identifier_method.clone(),
        };
        let crl = params
            .signed_by(&Issuer::from_params(&self.params, &self.key))
            .map_err(issue)?;
        Ok(IssuedCrl {
            pem: crl.pem().map_err(issue)?,
            der: crl.der().to_vec(),
        })
    }

    /// The entries of a CRL this CA issued earlier (PEM or DER), to carry them into the next
    /// one. Refused: a CRL that does not parse, one from another issuer, and one whose
    /// signature does not verify with this CA's key (an edited file must not un-revoke
    /// anything).
    pub fn revocations(&self, crl: &[u8], file: &str) -> Result<Vec<Revocation>, TlsError> {
        let bad = |reason: String| TlsError::BadCrl {
            file: file.to_owned(),
            reason,
        };
        let crls = pem::crls(crl, file)?;
        let [crl] = crls.as_slice() else {
            return Err(bad(format!("expected one CRL, found {}", crls.len())));
        };
        let parsed = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(
            crl.as_ref(),
        )
        .map_err(|e| bad(format!("does not parse: {e}")))?;
        let ca = Certificate::from_der(self.cert_der.as_ref())
            .map_err(|e| bad(format!("the CA certificate does not parse: {e}")))?;
        if parsed.tbs_cert_list.issuer != *ca.tbs_certificate().subject() {
            return Err(bad(format!(
                "issued by `{}`, not by this CA (`{}`)",
                parsed.tbs_cert_list.issuer,
                ca.tbs_certificate().subject()
            )));
        }
        // webpki checks a CRL's signature when it decides about a certificate of its issuer:
        // ask it about a throwaway certificate of this CA.
        let probe = self.issue_client("spiffe://crl.check/probe", Duration::from_secs(600))?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .map_err(|e| bad(format!("the CA certificate is no trust anchor: {e}")))?;
        let verified = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            super::provider(),
        )
        .with_crls([crl.clone()])
        .build()
        .map_err(|e| bad(e.to_string()))?
        .verify_client_cert(&probe.cert_der, &[], rustls::pki_types::UnixTime::now());
        if let Err(e) = verified {
            return Err(bad(format!(
                "its signature does not verify with this CA's key ({e}): it was altered, or another CA with the same name signed it"
            )));
        }
        Ok(parsed
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .map(|entry| Revocation {
                serial: entry.serial_number.as_bytes().to_vec(),
                at: entry.revocation_date.to_system_time(),
            })
            .collect())
    }

    /// The serial number of `cert_pem` (its first certificate), which must be one this CA
    /// issued: for revoking it with [`DevCa::crl_of`].
    pub fn serial_of(&self, cert_pem: &[u8], file: &str) -> Result<Vec<u8>, TlsError> {
        let bad = |reason: String| TlsError::BadCertificate {
            file: file.to_owned(),
            reason,
        };
        let certs = pem::certificates(cert_pem, file)?;
        let cert = Certificate::from_der(certs[0].as_ref())
            .map_err(|e| bad(format!("does not parse: {e}")))?;
        let ca = Certificate::from_der(self.cert_der.as_ref())
            .map_err(|e| bad(format!("the CA certificate does not parse: {e}")))?;
        if cert.tbs_certificate().issuer() != ca.tbs_certificate().subject() {
            return Err(bad(format!(
                "issued by `{}`, not by this CA (`{}`)",
                cert.tbs_certificate().issuer(),
                ca.tbs_certificate().subject()
            )));
        }
        Ok(cert.tbs_certificate().serial_number().as_bytes().to_vec())
    }

    /// Signs `params` (plus the leaf basics) for a fresh P-256 key.
    fn issue(
        &self,
        mut params: CertificateParams,
        what: &'static str,
    ) -> Result<IssuedCert, TlsError> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| TlsError::Issue {
                what,
                reason: e.to_string(),
            })?;
        let cert = self.sign(&mut params, &key, what)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: Zeroizing::new(key.serialize_pem()),
            serial: params
                .serial_number
                .as_ref()
                .map(|s| s.to_bytes())
                .unwrap_or_default(),
        })
    }

    fn sign(
        &self,
        params: &mut CertificateParams,
        subject_key: &KeyPair,
        what: &'static str,
    ) -> Result<rcgen::Certificate, TlsError> {
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params
            .signed_by(subject_key, &Issuer::from_params(&self.params, &self.key))
            .map_err(|e| TlsError::Issue {
                what,
                reason: e.to_string(),
            })
    }
}

/// A random positive 128-bit serial (top bit clear, next bit set so its length is fixed).
fn random_serial() -> SerialNumber {
    let mut serial = tresor_crypto::random::array::<16>();
    serial[0] = (serial[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&serial)
}

fn since_epoch(t: SystemTime, what: &'static str) -> Result<Duration, TlsError> {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| TlsError::Issue {
            what,
            reason: "dates before 1970 are not supported".into(),
        })?;
    Ok(Duration::from_secs(d.as_secs()))
}

fn set_validity(
    params: &mut CertificateParams,
    not_before: SystemTime,
    not_after: SystemTime,
    what: &'static str,
) -> Result<(), TlsError> {
    if not_after <= not_before {
        return Err(TlsError::Issue {
            what,
            reason: "notAfter must be later than notBefore".into(),
        });
    }
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch(not_before, what)?;
    params.not_after = epoch + since_epoch(not_after, what)?;
    Ok(())
}

fn rcgen_key_usages(ku: &KeyUsage) -> Vec<KeyUsagePurpose> {
    [
        (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
        (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
        (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
        (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
        (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
        (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
        (ku.crl_sign(), KeyUsagePurpose::CrlSign),
        (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
        (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
    ]
    .into_iter()
    .filter_map(|(set, purpose)| set.then_some(purpose))
    .collect()
}

/// The subject of an existing certificate as an rcgen name: one attribute per RDN, each type at
/// most once, string types rcgen can write. The caller checks the result byte for byte.
fn rcgen_name(name: &Name) -> Result<DistinguishedName, String> {
    const KNOWN: [(&str, DnType); 6] = [
        ("2.5.4.3", DnType::CommonName),
        ("2.5.4.6", DnType::CountryName),
        ("2.5.4.7", DnType::LocalityName),
        ("2.5.4.8", DnType::StateOrProvinceName),
        ("2.5.4.10", DnType::OrganizationName),
        ("2.5.4.11", DnType::OrganizationalUnitName),
    ];
    let unsupported = |why: &str| format!("its subject cannot be reproduced for signing: {why}");
    let mut dn = DistinguishedName::new();
    for rdn in name.iter_rdn() {
        let mut attributes = rdn.iter();
        let (Some(atv), None) = (attributes.next(), attributes.next()) else {
            return Err(unsupported("multi-valued RDN"));
        };
        let oid: ObjectIdentifier = atv.oid;
        let oid_text = oid.to_string();
        let ty = KNOWN
            .iter()
            .find(|(known, _)| *known == oid_text)
            .map(|(_, ty)| ty.clone())
            .unwrap_or_else(|| DnType::CustomDnType(oid.arcs().map(u64::from).collect()));
        if dn.get(&ty).is_some() {
            return Err(unsupported(&format!("attribute {oid_text} repeated")));
        }
        let text = std::str::from_utf8(atv.value.value())
            .map_err(|_| unsupported(&format!("attribute {oid_text} is not text")))?;
        let value = match atv.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(
                text.try_into()
                    .map_err(|_| unsupported("bad PrintableString"))?,
            ),
            Tag::Ia5String => {
                DnValue::Ia5String(text.try_into().map_err(|_| unsupported("bad IA5String"))?)
            }
            other => return Err(unsupported(&format!("string type {other} in {oid_text}"))),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateRevocationListDer, ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;

    use super::*;
    use crate::tls::{principal_from_certificate, provider};

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn roots(ca: &DevCa) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        Arc::new(roots)
    }

    fn verify_client(
        ca: &DevCa,
        crls: Vec<CertificateRevocationListDer<'static>>,
        cert: &IssuedCert,
    ) -> Result<(), rustls::Error> {
        WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
            .with_crls(crls)
            .build()
            .unwrap()
            .verify_client_cert(&cert.cert_der, &[], UnixTime::now())
            .map(|_| ())
    }

    fn verify_server(ca: &DevCa, cert: &IssuedCert, name: &str) -> Result<(), rustls::Error> {
        WebPkiServerVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .unwrap()
            .verify_server_cert(
                &cert.cert_der,
                &[],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn issued_certificates_verify_for_their_role_only() {
        let ca = DevCa::generate("Tresor test CA").unwrap();
        let server = ca
            .issue_server(&["localhost", "127.0.0.1", "::1"], 30 * DAY)
            .unwrap();
        for name in ["localhost", "127.0.0.1", "::1"] {
            verify_server(&ca, &server, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verify_server(&ca, &server, "example.com").is_err());

        let client = ca
            .issue_client("spiffe://dev.tresor.local/admin", 30 * DAY)
            .unwrap();
        verify_client(&ca, vec![], &client).unwrap();
        assert_eq!(
            principal_from_certificate(&client.cert_der, false).unwrap(),
            "spiffe://dev.tresor.local/admin"
        );

        // Wrong role: a server certificate is no client certificate and vice versa.
        assert!(matches!(
            verify_client(&ca, vec![], &server),
            Err(rustls::Error::InvalidCertificate(_))
        ));
        assert!(verify_server(&ca, &client, "localhost").is_err());

        assert_ne!(server.serial, client.serial);
        assert_eq!(server.serial.len(), 16);
    }

    #[test]
    fn issue_client_refuses_a_malformed_spiffe_id() {
        let ca = DevCa::generate("Tresor test CA").unwrap();
        let err = ca
            .issue_client("spiffe://Dev/admin", DAY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trust domain"), "{err}");
        assert!(ca.issue_server(&[], DAY).is_err());
        assert!(ca.issue_server(&["not a host"], DAY).is_err());
        let mut backwards = ClientCertSpec::spiffe("spiffe://td/x", DAY);
        backwards.not_after = backwards.not_before;
        assert!(ca.issue_client_with(&backwards).is_err());
    }

    #[test]
    fn expired_and_revoked_client_certificates_are_refused() {
        let ca = DevCa::generate("Tresor test CA").unwrap();
        let now = SystemTime::now();
        let expired = ca
            .issue_client_with(&ClientCertSpec {
                not_before: now - 2 * DAY,
                not_after: now - DAY,
                ..ClientCertSpec::spiffe("spiffe://td/old", DAY)
            })
            .unwrap();
        let err = verify_client(&ca, vec![], &expired).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
            ),
            "{err:?}"
        );

        let revoked = ca.issue_client("spiffe://td/revoked", DAY).unwrap();
        let fine = ca.issue_client("spiffe://td/fine", DAY).unwrap();
        let crl = ca.crl(&[&revoked.serial], DAY).unwrap();
        assert!(crl.pem.starts_with("-----BEGIN X509 CRL-----"));
        let crls = vec![CertificateRevocationListDer::from(crl.der.clone())];
        assert!(matches!(
            verify_client(&ca, crls.clone(), &revoked),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked
            ))
        ));
        verify_client(&ca, crls, &fine).unwrap();
    }

    #[test]
    fn a_ca_taken_up_from_pem_issues_certificates_that_chain_to_it() {
        let original = DevCa::generate("Tresor dev CA").unwrap();
        let again = DevCa::from_pem(original.cert_pem(), &original.key_pem()).unwrap();
        assert_eq!(again.cert_der(), original.cert_der());
        let client = again.issue_client("spiffe://td/svc", DAY).unwrap();
        verify_client(&original, vec![], &client).unwrap();
        let crl = again.crl(&[&client.serial], DAY).unwrap();
        assert!(verify_client(&original, vec![crl.der.into()], &client).is_err());

        // Not the CA's key.
        let other = DevCa::generate("Other").unwrap();
        let err = DevCa::from_pem(original.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        // Not a CA.
        let leaf = original.issue_client("spiffe://td/x", DAY).unwrap();
        let err = DevCa::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(err.to_string().contains("not a CA certificate"), "{err}");
        // Not PEM at all.
        let err = DevCa::from_pem("garbage", &original.key_pem()).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let err = DevCa::from_pem(original.cert_pem(), "garbage").unwrap_err();
        assert!(matches!(err, TlsError::BadPrivateKey { .. }), "{err}");
    }

    #[test]
    fn a_foreign_ca_subject_is_reproduced_exactly_or_refused() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CountryName,
            DnValue::PrintableString("DE".try_into().unwrap()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Beispiel GmbH");
        params
            .distinguished_name
            .push(DnType::CommonName, "Beispiel Root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let ca = DevCa::from_pem(&cert.pem(), &key.serialize_pem()).unwrap();
        let client = ca.issue_client("spiffe://td/svc", DAY).unwrap();
        verify_client(&ca, vec![], &client).unwrap();
    }

    #[test]
    fn a_ca_knows_its_end_and_a_renewed_crl_keeps_what_was_revoked() {
        let ca = DevCa::generate_for("Tresor CA", 30 * DAY).unwrap();
        let left = ca
            .not_after()
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs();
        assert!((30 * 86_400 - 60..=30 * 86_400).contains(&left), "{left}");
        let again = DevCa::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.not_after(), ca.not_after());

        let old = ca.issue_client("spiffe://td/old", DAY).unwrap();
        let fine = ca.issue_client("spiffe://td/fine", DAY).unwrap();
        assert_eq!(
            ca.serial_of(old.cert_pem.as_bytes(), "old.pem").unwrap(),
            old.serial
        );
        let first = ca.crl(&[&old.serial], DAY).unwrap();
        let carried = ca.revocations(first.pem.as_bytes(), "crl.pem").unwrap();
        assert_eq!(carried.len(), 1);
        assert_eq!(carried[0].serial, old.serial);
        let renewed = ca.crl_of(&carried, 2 * DAY).unwrap();
        assert_eq!(ca.revocations(&renewed.der, "crl.der").unwrap(), carried);
        let crls = vec![CertificateRevocationListDer::from(renewed.der.clone())];
        assert!(verify_client(&ca, crls.clone(), &old).is_err());
        verify_client(&ca, crls, &fine).unwrap();

        // Another CA's CRL and certificates are refused, even under the same name.
        let other = DevCa::generate_for("Tresor CA", DAY).unwrap();
        let foreign = other.crl(&[], DAY).unwrap();
        let err = ca
            .revocations(foreign.pem.as_bytes(), "crl.pem")
            .unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        let stranger = DevCa::generate("Stranger").unwrap();
        let err = ca
            .revocations(stranger.crl(&[], DAY).unwrap().pem.as_bytes(), "crl.pem")
            .unwrap_err();
        assert!(err.to_string().contains("not by this CA"), "{err}");
        let theirs = stranger.issue_client("spiffe://td/x", DAY).unwrap();
        let err = ca
            .serial_of(theirs.cert_pem.as_bytes(), "x.pem")
            .unwrap_err();
        assert!(err.to_string().contains("not by this CA"), "{err}");
    }

    #[test]
    fn keys_are_p256_and_secrets_stay_out_of_debug_output() {
        let ca = DevCa::generate("Tresor test CA").unwrap();
        assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        let client = ca.issue_client("spiffe://td/x", DAY).unwrap();
        let key = KeyPair::from_pem(&client.key_pem).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let debug = format!("{ca:?} {client:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }
}
