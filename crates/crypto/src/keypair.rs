//! Asymmetric key pairs that other software uses (TLS server keys that apps pin): ECDSA P-256,
//! Ed25519 and RSA-2048, held as PKCS#8 DER in zeroizing buffers, and the signature checks a
//! certificate request needs.
//!
//! *ring* generates and signs ECDSA and Ed25519 and signs RSA; it cannot generate RSA keys, so
//! the `rsa` crate makes those (it is used for nothing else: no RSA decryption happens here).

use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use zeroize::Zeroizing;

use crate::random;

/// The algorithm of a [`KeyPair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPairAlgorithm {
    /// ECDSA on P-256, signing SHA-256 digests, signatures in ASN.1 form.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
    /// RSA with a 2048-bit modulus, PKCS#1 v1.5 signatures over SHA-256.
    Rsa2048,
}

/// Why a key pair could not be made, loaded or used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPairError {
    /// The PKCS#8 document is not a key of the expected algorithm.
    #[error("not a {0} PKCS#8 private key")]
    NotThisAlgorithm(&'static str),
    /// An RSA key whose modulus is not 2048 bits.
    #[error("not a 2048-bit RSA key")]
    WrongRsaSize,
    /// The underlying implementation failed.
    #[error("{0} failed")]
    Failed(&'static str),
}

impl KeyPairAlgorithm {
    fn name(self) -> &'static str {
        match self {
            KeyPairAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyPairAlgorithm::Ed25519 => "ed25519",
            KeyPairAlgorithm::Rsa2048 => "rsa-2048",
        }
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410); the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A private key: its PKCS#8 DER (zeroized on drop), loaded and checked.
pub struct KeyPair {
    algorithm: KeyPairAlgorithm,
    pkcs8: Zeroizing<Vec<u8>>,
    signer: Signer,
}

enum Signer {
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
    Rsa(sig::RsaKeyPair),
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({}, [REDACTED])", self.algorithm.name())
    }
}

impl KeyPair {
    /// A fresh key pair from the operating system's random source.
    pub fn generate(algorithm: KeyPairAlgorithm) -> Result<KeyPair, KeyPairError> {
        let pkcs8 = match algorithm {
            KeyPairAlgorithm::EcdsaP256 => {
                let document = sig::EcdsaKeyPair::generate_pkcs8(
                    &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| KeyPairError::Failed("ECDSA key generation"))?;
                Zeroizing::new(document.as_ref().to_vec())
            }
            KeyPairAlgorithm::Ed25519 => {
                // PKCS#8 v1 (RFC 8410) rather than ring's v2: every TLS terminator reads it.
                let mut der = Zeroizing::new(Vec::with_capacity(48));
                der.extend_from_slice(&ED25519_PKCS8_PREFIX);
                der.extend_from_slice(random::os_array::<32>().as_slice());
                der
            }
            KeyPairAlgorithm::Rsa2048 => {
                use rsa::pkcs8::EncodePrivateKey;
                let mut rng = rsa::rand_core::OsRng;
                let key = rsa::RsaPrivateKey::new(&mut rng, 2048)
                    .map_err(|_| KeyPairError::Failed("RSA key generation"))?;
                let document = key
                    .to_pkcs8_der()
                    .map_err(|_| KeyPairError::Failed("RSA key encoding"))?;
                Zeroizing::new(document.as_bytes().to_vec())
            }
        };
        KeyPair::from_pkcs8(algorithm, pkcs8)
    }

    /// Loads a PKCS#8 private key of `algorithm`.
    pub fn from_pkcs8(
        algorithm: KeyPairAlgorithm,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<KeyPair, KeyPairError> {
        let rejected = |_| KeyPairError::NotThisAlgorithm(algorithm.name());
        let signer = match algorithm {
            KeyPairAlgorithm::EcdsaP256 => Signer::Ecdsa(
                sig::EcdsaKeyPair::from_pkcs8(
                    &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(rejected)?,
            ),
            KeyPairAlgorithm::Ed25519 => Signer::Ed25519(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(rejected)?,
            ),
            KeyPairAlgorithm::Rsa2048 => {
                let pair = sig::RsaKeyPair::from_pkcs8(&pkcs8).map_err(rejected)?;
                if pair.public().modulus_len() != 256 {
                    return Err(KeyPairError::WrongRsaSize);
                }
                Signer::Rsa(pair)
            }
        };
        Ok(KeyPair {
            algorithm,
            pkcs8,
            signer,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> KeyPairAlgorithm {
        self.algorithm
    }

    /// The PKCS#8 DER.
    pub fn pkcs8(&self) -> &Zeroizing<Vec<u8>> {
        &self.pkcs8
    }

    /// The raw public key: an uncompressed P-256 point, 32 Ed25519 bytes, or an RSAPublicKey
    /// (PKCS#1) DER.
    pub fn public_key(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Ecdsa(pair) => pair.public_key().as_ref().to_vec(),
            Signer::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
            Signer::Rsa(pair) => pair.public().as_ref().to_vec(),
        }
    }

    /// Signs `message` the way a certificate request of this key is signed (ECDSA-SHA256 in
    /// ASN.1 form, Ed25519, RSA PKCS#1 v1.5 with SHA-256).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyPairError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyPairError::Failed("ECDSA signing")),
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::Rsa(pair) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| KeyPairError::Failed("RSA signing"))?;
                Ok(out)
            }
        }
    }
}

/// A signature scheme that certificate requests are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// ECDSA P-256 with SHA-256, ASN.1 signature.
    EcdsaP256Sha256,
    /// ECDSA P-256 with SHA-384, ASN.1 signature.
    EcdsaP256Sha384,
    /// ECDSA P-384 with SHA-256, ASN.1 signature.
    EcdsaP384Sha256,
    /// ECDSA P-384 with SHA-384, ASN.1 signature.
    EcdsaP384Sha384,
    /// Ed25519.
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048 to 8192 bits).
    RsaPkcs1Sha256,
    /// RSA PKCS#1 v1.5 with SHA-384 (2048 to 8192 bits).
    RsaPkcs1Sha384,
    /// RSA PKCS#1 v1.5 with SHA-512 (2048 to 8192 bits).
    RsaPkcs1Sha512,
}

/// True if `signature` over `message` verifies under the raw `public_key` with `scheme`.
pub fn verify_signature(
    scheme: SignatureScheme,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    let algorithm: &dyn sig::VerificationAlgorithm = match scheme {
        SignatureScheme::EcdsaP256Sha256 => &sig::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::EcdsaP256Sha384 => &sig::ECDSA_P256_SHA384_ASN1,
        SignatureScheme::EcdsaP384Sha256 => &sig::ECDSA_P384_SHA256_ASN1,
        SignatureScheme::EcdsaP384Sha384 => &sig::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::Ed25519 => &sig::ED25519,
        SignatureScheme::RsaPkcs1Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RsaPkcs1Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RsaPkcs1Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
    };
    sig::UnparsedPublicKey::new(algorithm, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_what_verifies_and_reload() {
        for (algorithm, scheme) in [
            (
                KeyPairAlgorithm::EcdsaP256,
                SignatureScheme::EcdsaP256Sha256,
            ),
            (KeyPairAlgorithm::Ed25519, SignatureScheme::Ed25519),
        ] {
            let key = KeyPair::generate(algorithm).unwrap();
            let signature = key.sign(b"request").unwrap();
            assert!(verify_signature(
                scheme,
                &key.public_key(),
                b"request",
                &signature
            ));
            assert!(!verify_signature(
                scheme,
                &key.public_key(),
                b"requesu",
                &signature
            ));
            let again = KeyPair::from_pkcs8(algorithm, key.pkcs8().clone()).unwrap();
            assert_eq!(again.public_key(), key.public_key());
            assert!(
                !format!("{key:?}").contains(&crate::hex(&key.pkcs8()[key.pkcs8().len() - 8..]))
            );
        }
        assert_eq!(
            KeyPair::from_pkcs8(KeyPairAlgorithm::EcdsaP256, Zeroizing::new(vec![1, 2, 3]))
                .unwrap_err(),
            KeyPairError::NotThisAlgorithm("ecdsa-p256")
        );
    }
}
