//! Pinned key pairs: ECDSA P-256, Ed25519 and RSA-2048, kept as PKCS#8 DER in zeroizing
//! buffers (the primitives are `tresor_crypto::keypair`), with the SubjectPublicKeyInfo their
//! pin is computed from.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tresor_crypto::keypair::{KeyPair, KeyPairAlgorithm, KeyPairError};
use x509_cert::der::pem::LineEnding;
use zeroize::Zeroizing;

use super::PinError;
use super::spki;

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

impl KeyAlgorithm {
    fn key_pair_algorithm(self) -> KeyPairAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => KeyPairAlgorithm::EcdsaP256,
            KeyAlgorithm::Ed25519 => KeyPairAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048 => KeyPairAlgorithm::Rsa2048,
        }
    }
}

/// A private key in memory: its PKCS#8 DER (zeroized on drop) and public SPKI.
pub struct PrivateKey {
    /// The algorithm.
    pub algorithm: KeyAlgorithm,
    key: KeyPair,
    /// The DER SubjectPublicKeyInfo, whose SHA-256 is the pin.
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, [REDACTED])", self.algorithm.name())
    }
}

fn crypto_failure(error: KeyPairError) -> PinError {
    PinError::Input {
        field: "key",
        reason: error.to_string(),
    }
}

impl PrivateKey {
    /// A fresh key pair.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, PinError> {
        let key = KeyPair::generate(algorithm.key_pair_algorithm()).map_err(crypto_failure)?;
        PrivateKey::from_key_pair(algorithm, key)
    }

    /// Loads a PKCS#8 key and derives its public SPKI.
    pub fn from_pkcs8(
        algorithm: KeyAlgorithm,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<PrivateKey, PinError> {
        let key = KeyPair::from_pkcs8(algorithm.key_pair_algorithm(), pkcs8).map_err(|e| {
            PinError::Input {
                field: "key",
                reason: e.to_string(),
            }
        })?;
        PrivateKey::from_key_pair(algorithm, key)
    }

    fn from_key_pair(algorithm: KeyAlgorithm, key: KeyPair) -> Result<PrivateKey, PinError> {
        let public = key.public_key();
        let spki_der = match algorithm {
            KeyAlgorithm::EcdsaP256 => spki::p256_spki(&public),
            KeyAlgorithm::Ed25519 => spki::ed25519_spki(&public),
            KeyAlgorithm::Rsa2048 => spki::rsa_spki(&public)?,
        };
        Ok(PrivateKey {
            algorithm,
            key,
            spki_der,
        })
    }

    /// The PKCS#8 DER.
    pub fn pkcs8(&self) -> &Zeroizing<Vec<u8>> {
        self.key.pkcs8()
    }

    /// The PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) that nginx, envoy and HAProxy read.
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(
            x509_cert::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, self.pkcs8())
                .expect("PEM encodes"),
        )
    }

    /// Signs `message` the way a CSR of this key is signed (ECDSA-SHA256 in ASN.1 form,
    /// Ed25519, RSA PKCS#1 v1.5 with SHA-256).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PinError> {
        self.key.sign(message).map_err(crypto_failure)
    }
}

/// Reads a PKCS#8 PEM private key and the algorithm it is for.
pub fn pkcs8_from_pem(pem: &str) -> Result<Zeroizing<Vec<u8>>, PinError> {
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
            let again = PrivateKey::from_pkcs8(algorithm, key.pkcs8().clone()).unwrap();
            assert_eq!(again.spki_der, key.spki_der);
            // The last bytes are secret (the seed or scalar); the slice's Debug without its
            // brackets is how they would appear inside any printed Vec or array.
            let secret = format!("{:?}", &key.pkcs8()[key.pkcs8().len() - 8..]);
            let secret = secret.trim_start_matches('[').trim_end_matches(']');
            assert!(!format!("{key:?}").contains(secret));
            let pem = key.to_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(*pkcs8_from_pem(&pem).unwrap(), **key.pkcs8());
        }
    }
}
