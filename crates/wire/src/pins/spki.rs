//! Public keys as apps pin them: the DER `SubjectPublicKeyInfo` and its pin,
//! `base64(SHA-256(DER SubjectPublicKeyInfo))` — the value Android's `pin-set`, TrustKit,
//! `NSPinnedDomains` (`SPKI-SHA256-BASE64`) and OkHttp (`sha256/…`) all expect.
//!
//! Pins are computed over the SPKI exactly as found in a certificate, CSR or public key file,
//! after checking that it is canonical DER (re-encoding gives the same bytes), so the vault's pin
//! is the one any other tool computes from the same key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use x509_cert::Certificate;
use x509_cert::der::asn1::{ObjectIdentifier, UintRef};
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::request::CertReq;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::PinError;

/// id-ecPublicKey (RFC 5480).
pub const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The P-256 curve.
pub const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// The P-384 curve.
pub const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// Ed25519 keys and signatures (RFC 8410).
pub const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// rsaEncryption.
pub const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// sha256WithRSAEncryption.
pub const OID_SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// sha384WithRSAEncryption.
pub const OID_SHA384_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
/// sha512WithRSAEncryption.
pub const OID_SHA512_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
/// ecdsa-with-SHA256.
pub const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384.
pub const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// DER prefix of a P-256 SPKI; the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// DER prefix of an Ed25519 SPKI (RFC 8410); the 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The pin of a DER SubjectPublicKeyInfo: base64(SHA-256(DER)).
pub fn pin_of_spki(spki_der: &[u8]) -> String {
    STANDARD.encode(tresor_crypto::sha256(&[spki_der]))
}

/// A public key taken from a certificate, CSR or public key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The DER SubjectPublicKeyInfo, exactly as found.
    pub spki_der: Vec<u8>,
    /// `ecdsa-p256`, `ecdsa-p384`, `ed25519` or `rsa-<bits>`.
    pub algorithm: String,
    /// base64(SHA-256(DER SubjectPublicKeyInfo)).
    pub pin: String,
}

/// Where a public key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// An X.509 certificate (PEM or DER).
    Certificate,
    /// A PKCS#10 certificate signing request (PEM or DER); its signature must verify.
    Csr,
    /// A `PUBLIC KEY` (SubjectPublicKeyInfo, PEM or DER).
    PublicKey,
}

impl KeySource {
    /// `certificate`, `csr` or `public-key`: the API's import `kind` and the key's `origin`.
    pub fn name(self) -> &'static str {
        match self {
            KeySource::Certificate => "certificate",
            KeySource::Csr => "csr",
            KeySource::PublicKey => "public-key",
        }
    }

    /// The source called `name`, if any.
    pub fn from_name(name: &str) -> Option<KeySource> {
        [KeySource::Certificate, KeySource::Csr, KeySource::PublicKey]
            .into_iter()
            .find(|s| s.name() == name)
    }

    fn label(self) -> &'static str {
        match self {
            KeySource::Certificate => "certificate",
            KeySource::Csr => "CSR",
            KeySource::PublicKey => "public key",
        }
    }
}

/// Reads the public key out of `input` (PEM or DER) of the given kind.
pub fn public_key_from(source: KeySource, input: &[u8]) -> Result<PublicKeyInfo, PinError> {
    let bad = |reason: String| PinError::Input {
        field: "key",
        reason: format!("not a valid {}: {reason}", source.label()),
    };
    let pem = input.trim_ascii_start().starts_with(b"-----BEGIN");
    let spki = match source {
        KeySource::Certificate => {
            let cert = if pem {
                Certificate::from_pem(input)
            } else {
                Certificate::from_der(input)
            }
            .map_err(|e| bad(e.to_string()))?;
            cert.tbs_certificate().subject_public_key_info().clone()
        }
        KeySource::Csr => {
            let request = if pem {
                CertReq::from_pem(input)
            } else {
                CertReq::from_der(input)
            }
            .map_err(|e| bad(e.to_string()))?;
            verify_csr(&request).map_err(|e| bad(e.to_string()))?;
            request.info.public_key.clone()
        }
        KeySource::PublicKey => if pem {
            SubjectPublicKeyInfoOwned::from_pem(input)
        } else {
            SubjectPublicKeyInfoOwned::from_der(input)
        }
        .map_err(|e| bad(e.to_string()))?,
    };
    let spki_der = spki.to_der().map_err(|e| bad(e.to_string()))?;
    describe_spki(&spki_der)
}

/// Checks `spki_der` is a canonical SPKI of a supported algorithm and computes its pin.
pub fn describe_spki(spki_der: &[u8]) -> Result<PublicKeyInfo, PinError> {
    let bad = |reason: &str| PinError::Input {
        field: "key",
        reason: reason.to_owned(),
    };
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der)
        .map_err(|_| bad("not a DER SubjectPublicKeyInfo"))?;
    if spki.to_der().ok().as_deref() != Some(spki_der) {
        return Err(bad("the SubjectPublicKeyInfo is not canonical DER"));
    }
    let key = spki.subject_public_key.as_bytes().unwrap_or_default();
    let params = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let algorithm = match spki.algorithm.oid {
        OID_EC_PUBLIC_KEY if params == Some(OID_P256) && key.len() == 65 && key[0] == 4 => {
            "ecdsa-p256".to_owned()
        }
        OID_EC_PUBLIC_KEY if params == Some(OID_P384) && key.len() == 97 && key[0] == 4 => {
            "ecdsa-p384".to_owned()
        }
        OID_ED25519 if key.len() == 32 => "ed25519".to_owned(),
        OID_RSA => {
            let modulus = rsa_modulus(key).ok_or_else(|| bad("malformed RSA public key"))?;
            let bits = rsa_modulus_bits(&modulus);
            if bits < 2048 {
                return Err(bad(&format!(
                    "RSA keys need at least 2048 bits, this one has {bits}"
                )));
            }
            format!("rsa-{bits}")
        }
        _ => {
            return Err(bad(
                "unsupported key algorithm: use ECDSA P-256 or P-384, Ed25519, or RSA of 2048 bits or more",
            ));
        }
    };
    Ok(PublicKeyInfo {
        spki_der: spki_der.to_vec(),
        algorithm,
        pin: pin_of_spki(spki_der),
    })
}

/// The modulus of a DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_modulus(der: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::{Reader, SliceReader};
    let mut reader = SliceReader::new(der).ok()?;
    let modulus = reader
        .sequence(|r| {
            let modulus = UintRef::decode(r)?;
            let _exponent = UintRef::decode(r)?;
            Ok::<_, x509_cert::der::Error>(modulus.as_bytes().to_vec())
        })
        .ok()?;
    reader.finish().ok()?;
    Some(modulus)
}

fn rsa_modulus_bits(modulus: &[u8]) -> usize {
    match modulus.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => (modulus.len() - i - 1) * 8 + (8 - modulus[i].leading_zeros() as usize),
    }
}

/// The SPKI of a P-256 public point (uncompressed, 65 bytes).
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    [&P256_SPKI_PREFIX[..], point].concat()
}

/// The SPKI of an Ed25519 public key.
pub fn ed25519_spki(key: &[u8]) -> Vec<u8> {
    [&ED25519_SPKI_PREFIX[..], key].concat()
}

/// The SPKI of an RSA public key given as DER `RSAPublicKey`.
pub fn rsa_spki(rsa_public_key: &[u8]) -> Result<Vec<u8>, PinError> {
    use x509_cert::der::asn1::{AnyRef, BitString};
    use x509_cert::spki::AlgorithmIdentifierOwned;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: OID_RSA,
            parameters: Some(AnyRef::NULL.into()),
        },
        subject_public_key: BitString::from_bytes(rsa_public_key).map_err(|_| PinError::Input {
            field: "key",
            reason: "RSA public key does not encode".into(),
        })?,
    };
    spki.to_der().map_err(|_| PinError::Input {
        field: "key",
        reason: "RSA public key does not encode".into(),
    })
}

/// Verifies a CSR's self-signature (proof that whoever made it holds the private key).
pub fn verify_csr(request: &CertReq) -> Result<(), PinError> {
    let bad = |reason: &str| PinError::Input {
        field: "csr",
        reason: reason.to_owned(),
    };
    let info = request
        .info
        .to_der()
        .map_err(|_| bad("request info does not encode"))?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or_else(|| bad("signature is not a whole number of bytes"))?;
    let spki = &request.info.public_key;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad("public key is not a whole number of bytes"))?;
    let params = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    use tresor_crypto::keypair::{SignatureScheme as S, verify_signature};
    let scheme = match (request.algorithm.oid, spki.algorithm.oid, params) {
        (OID_ECDSA_SHA256, OID_EC_PUBLIC_KEY, Some(OID_P256)) => S::EcdsaP256Sha256,
        (OID_ECDSA_SHA384, OID_EC_PUBLIC_KEY, Some(OID_P256)) => S::EcdsaP256Sha384,
        (OID_ECDSA_SHA256, OID_EC_PUBLIC_KEY, Some(OID_P384)) => S::EcdsaP384Sha256,
        (OID_ECDSA_SHA384, OID_EC_PUBLIC_KEY, Some(OID_P384)) => S::EcdsaP384Sha384,
        (OID_ED25519, OID_ED25519, _) => S::Ed25519,
        (OID_SHA256_WITH_RSA, OID_RSA, _) => S::RsaPkcs1Sha256,
        (OID_SHA384_WITH_RSA, OID_RSA, _) => S::RsaPkcs1Sha384,
        (OID_SHA512_WITH_RSA, OID_RSA, _) => S::RsaPkcs1Sha512,
        _ => return Err(bad("unsupported signature or key algorithm")),
    };
    verify_signature(scheme, key, &info, signature)
        .then_some(())
        .ok_or_else(|| bad("its signature does not verify with its own public key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_bits() {
        assert_eq!(rsa_modulus_bits(&[0x80, 0, 0]), 24);
        assert_eq!(rsa_modulus_bits(&[0, 0x01, 0]), 9);
        assert_eq!(rsa_modulus_bits(&[]), 0);
    }

    #[test]
    fn garbage_is_refused() {
        for source in [KeySource::Certificate, KeySource::Csr, KeySource::PublicKey] {
            assert!(public_key_from(source, b"hello").is_err());
            assert!(
                public_key_from(source, b"-----BEGIN X-----\nAA==\n-----END X-----\n").is_err()
            );
        }
        assert!(describe_spki(&[0x30, 0x00]).is_err());
    }
}
