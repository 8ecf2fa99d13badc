//! PKCS#10 certificate requests for pinned keys the vault holds.

use std::str::FromStr;

use tresor_wire::pins::PinError;
use tresor_wire::pins::keys::{KeyAlgorithm, PrivateKey};
use tresor_wire::pins::spki::{OID_ECDSA_SHA256, OID_ED25519, OID_SHA256_WITH_RSA};
use x509_cert::der::asn1::{AnyRef, BitString, SetOfVec};
use x509_cert::der::{Encode, EncodePem, pem::LineEnding};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

fn crypto_failure(what: &str) -> PinError {
    PinError::Input {
        field: "key",
        reason: format!("{what} failed"),
    }
}

/// A PKCS#10 CSR for `subject` (an RFC 4514 string such as `CN=api.example.com,O=Example`)
/// asking for the DNS names `dns` (a subjectAltName extension request; none if empty),
/// signed with this key, as PEM.
pub(crate) fn csr(key: &PrivateKey, subject: &str, dns: &[String]) -> Result<String, PinError> {
    let bad = |reason: String| PinError::Input {
        field: "subject",
        reason,
    };
    if subject.trim().is_empty() {
        return Err(bad("a subject is required, e.g. CN=api.example.com".into()));
    }
    let subject = Name::from_str(subject)
        .map_err(|e| bad(format!("not an RFC 4514 distinguished name: {e}")))?;
    let public_key = {
        use x509_cert::der::Decode;
        SubjectPublicKeyInfoOwned::from_der(&key.spki_der)
            .map_err(|_| crypto_failure("public key decoding"))?
    };
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key,
        attributes: san_request(dns).map_err(|e| PinError::Input {
            field: "dns",
            reason: format!("the names do not encode: {e}"),
        })?,
    };
    let message = info
        .to_der()
        .map_err(|e| bad(format!("does not encode: {e}")))?;
    let (oid, null_params) = match key.algorithm {
        KeyAlgorithm::EcdsaP256 => (OID_ECDSA_SHA256, false),
        KeyAlgorithm::Ed25519 => (OID_ED25519, false),
        KeyAlgorithm::Rsa2048 => (OID_SHA256_WITH_RSA, true),
    };
    let signature = key.sign(&message)?;
    let request = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: null_params.then(|| AnyRef::NULL.into()),
        },
        signature: BitString::from_bytes(&signature).map_err(|_| crypto_failure("CSR encoding"))?,
    };
    request
        .to_pem(LineEnding::LF)
        .map_err(|_| crypto_failure("CSR encoding"))
}

/// The CSR attributes asking for `dns` as subjectAltName DNS names.
fn san_request(
    dns: &[String],
) -> Result<SetOfVec<x509_cert::attr::Attribute>, x509_cert::der::Error> {
    use x509_cert::der::asn1::{Ia5String, OctetString};
    use x509_cert::der::oid::AssociatedOid;
    use x509_cert::ext::Extension;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::request::ExtensionReq;
    let mut attributes = SetOfVec::new();
    if dns.is_empty() {
        return Ok(attributes);
    }
    let names = dns
        .iter()
        .map(|name| Ia5String::new(name).map(GeneralName::DnsName))
        .collect::<Result<Vec<_>, _>>()?;
    let extension = Extension {
        extn_id: SubjectAltName::OID,
        critical: false,
        extn_value: OctetString::new(SubjectAltName(names).to_der()?)?,
    };
    attributes.insert(ExtensionReq(vec![extension]).try_into()?)?;
    Ok(attributes)
}
