//! Pinned key pairs made inside the vault: ECDSA P-256, Ed25519 and RSA-2048, kept as PKCS#8
//! DER in zeroizing buffers; signing (for CSRs) with ring; CSRs built as PKCS#10.
//!
//! ring generates and signs ECDSA and Ed25519 and signs RSA; it cannot generate RSA keys, so the
//! `rsa` crate makes those (it is used for nothing else: no RSA decryption happens here).

use std::str::FromStr;

use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use serde::{Deserialize, Serialize};
use x509_cert::der::asn1::{AnyRef, BitString, SetOfVec};
use x509_cert::der::{Encode, EncodePem, pem::LineEnding};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::PinError;
use super::spki::{self, OID_ECDSA_SHA256, OID_ED25519, OID_SHA256_WITH_RSA};

/// Algorithms the vault generates pinned keys with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 (the default: small, fast, served by every TLS stack).
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// Ed25519.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// RSA with a 2048-bit modulus.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

impl KeyAlgorithm {
    /// The name used in the API and manifests.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
        }
    }

    /// The generatable algorithm called `name`, if any.
    pub fn from_name(name: &str) -> Option<KeyAlgorithm> {
        match name {
            "ecdsa-p256" => Some(KeyAlgorithm::EcdsaP256),
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            "rsa-2048" => Some(KeyAlgorithm::Rsa2048),
            _ => None,
        }
    }
}

impl FromStr for KeyAlgorithm {
    type Err = PinError;
    fn from_str(name: &str) -> Result<Self, PinError> {
        KeyAlgorithm::from_name(name).ok_or_else(|| PinError::Input {
            field: "algorithm",
            reason: format!(
                "`{}` is not one of ecdsa-p256, ed25519, rsa-2048",
                name.chars().take(32).collect::<String>()
            ),
        })
    }
}

/// A private key in memory: its PKCS#8 DER (zeroized on drop) and public SPKI.
pub(crate) struct PrivateKey {
    pub(crate) algorithm: KeyAlgorithm,
    pub(crate) pkcs8: Zeroizing<Vec<u8>>,
    pub(crate) spki_der: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, [REDACTED])", self.algorithm.name())
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn crypto_failure(what: &str) -> PinError {
    PinError::Input {
        field: "key",
        reason: format!("{what} failed"),
    }
}

impl PrivateKey {
    /// A fresh key pair.
    pub(crate) fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, PinError> {
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm {
            KeyAlgorithm::EcdsaP256 => {
                let document =
                    sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                        .map_err(|_| crypto_failure("ECDSA key generation"))?;
                Zeroizing::new(document.as_ref().to_vec())
            }
            KeyAlgorithm::Ed25519 => {
                // PKCS#8 v1 (RFC 8410) rather than ring's v2: every TLS terminator reads it.
                let mut der = Zeroizing::new(Vec::with_capacity(48));
                der.extend_from_slice(&ED25519_PKCS8_PREFIX);
                let seed = Zeroizing::new(crate::crypto::random_array::<32>());
                der.extend_from_slice(seed.as_slice());
                der
            }
            KeyAlgorithm::Rsa2048 => {
                use rsa::pkcs8::EncodePrivateKey;
                let mut rng = rsa::rand_core::OsRng;
                let key = rsa::RsaPrivateKey::new(&mut rng, 2048)
                    .map_err(|_| crypto_failure("RSA key generation"))?;
                let document = key
                    .to_pkcs8_der()
                    .map_err(|_| crypto_failure("RSA key encoding"))?;
                Zeroizing::new(document.as_bytes().to_vec())
            }
        };
        PrivateKey::from_pkcs8(algorithm, pkcs8)
    }

    /// Loads a PKCS#8 key and derives its public SPKI.
    pub(crate) fn from_pkcs8(
        algorithm: KeyAlgorithm,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<PrivateKey, PinError> {
        let spki_der = match Signer::load(algorithm, &pkcs8)? {
            Signer::Ecdsa(pair) => spki::p256_spki(pair.public_key().as_ref()),
            Signer::Ed25519(pair) => spki::ed25519_spki(pair.public_key().as_ref()),
            Signer::Rsa(pair) => spki::rsa_spki(pair.public_key().as_ref())?,
        };
        Ok(PrivateKey {
            algorithm,
            pkcs8,
            spki_der,
        })
    }

    /// The PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) that nginx, envoy and HAProxy read.
    pub(crate) fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(
            x509_cert::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &self.pkcs8)
                .expect("PEM encodes"),
        )
    }

    /// A PKCS#10 CSR for `subject` (an RFC 4514 string such as `CN=api.example.com,O=Example`)
    /// asking for the DNS names `dns` (a subjectAltName extension request; none if empty),
    /// signed with this key, as PEM.
    pub(crate) fn csr(&self, subject: &str, dns: &[String]) -> Result<String, PinError> {
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
            SubjectPublicKeyInfoOwned::from_der(&self.spki_der)
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
        let (oid, null_params) = match self.algorithm {
            KeyAlgorithm::EcdsaP256 => (OID_ECDSA_SHA256, false),
            KeyAlgorithm::Ed25519 => (OID_ED25519, false),
            KeyAlgorithm::Rsa2048 => (OID_SHA256_WITH_RSA, true),
        };
        let signature = self.sign(&message)?;
        let request = CertReq {
            info,
            algorithm: AlgorithmIdentifierOwned {
                oid,
                parameters: null_params.then(|| AnyRef::NULL.into()),
            },
            signature: BitString::from_bytes(&signature)
                .map_err(|_| crypto_failure("CSR encoding"))?,
        };
        request
            .to_pem(LineEnding::LF)
            .map_err(|_| crypto_failure("CSR encoding"))
    }

    /// Signs `message` the way a CSR of this key is signed (ECDSA-SHA256 in ASN.1 form,
    /// Ed25519, RSA PKCS#1 v1.5 with SHA-256).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PinError> {
        let rng = SystemRandom::new();
        match Signer::load(self.algorithm, &self.pkcs8)? {
            Signer::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| crypto_failure("ECDSA signing")),
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Rsa(pair) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| crypto_failure("RSA signing"))?;
                Ok(out)
            }
        }
    }
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

enum Signer {
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
    Rsa(sig::RsaKeyPair),
}

impl Signer {
    fn load(algorithm: KeyAlgorithm, pkcs8: &[u8]) -> Result<Signer, PinError> {
        let rejected = |_| PinError::Input {
            field: "key",
            reason: format!("not a {} PKCS#8 private key", algorithm.name()),
        };
        Ok(match algorithm {
            KeyAlgorithm::EcdsaP256 => Signer::Ecdsa(
                sig::EcdsaKeyPair::from_pkcs8(
                    &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(rejected)?,
            ),
            KeyAlgorithm::Ed25519 => Signer::Ed25519(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(rejected)?,
            ),
            KeyAlgorithm::Rsa2048 => {
                let pair = sig::RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                if pair.public().modulus_len() != 256 {
                    return Err(PinError::Input {
                        field: "key",
                        reason: "not a 2048-bit RSA key".into(),
                    });
                }
                Signer::Rsa(pair)
            }
        })
    }
}

/// Reads a PKCS#8 PEM private key and the algorithm it is for.
pub(crate) fn pkcs8_from_pem(pem: &str) -> Result<Zeroizing<Vec<u8>>, PinError> {
    let (label, der) =
        x509_cert::der::pem::decode_vec(pem.as_bytes()).map_err(|_| PinError::Input {
            field: "key",
            reason: "not a PEM private key".into(),
        })?;
    let der = Zeroizing::new(der);
    if label != "PRIVATE KEY" {
        return Err(PinError::Input {
            field: "key",
            reason: format!("PEM label is `{label}`, expected `PRIVATE KEY`"),
        });
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_describe_themselves() {
        for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let info = spki::describe_spki(&key.spki_der).unwrap();
            assert_eq!(info.algorithm, algorithm.name());
            let again = PrivateKey::from_pkcs8(algorithm, key.pkcs8.clone()).unwrap();
            assert_eq!(again.spki_der, key.spki_der);
            // The last bytes are secret (the seed or scalar); the slice's Debug without its
            // brackets is how they would appear inside any printed Vec or array.
            let secret = format!("{:?}", &key.pkcs8[key.pkcs8.len() - 8..]);
            let secret = secret.trim_start_matches('[').trim_end_matches(']');
            assert!(!format!("{key:?}").contains(secret));
            let pem = key.to_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(*pkcs8_from_pem(&pem).unwrap(), *key.pkcs8);
        }
    }
}
