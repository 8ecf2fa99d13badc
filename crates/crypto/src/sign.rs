//! Ed25519 signatures (RFC 8032): approvals, audit checkpoints, pin manifests and their key
//! chain. Verification is strict (no malleable or small-order signatures) and refuses weak
//! public keys.

use ed25519_dalek::Signer as _;
use zeroize::Zeroizing;

use crate::random;

/// Length of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(
            &random::os_array::<32>(),
        ))
    }

    /// The key from its 32-byte seed.
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The key from a slice that must be exactly 32 bytes.
    pub fn from_slice(seed: &[u8]) -> Option<Self> {
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(seed.try_into().ok()?);
        Some(Self::from_bytes(&seed))
    }

    /// The 32-byte seed, for storing under encryption.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// The signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({:?}, [REDACTED])", self.verifying_key())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// The key from its 32 bytes; `None` for a point that is not a valid key, or a weak one.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .filter(|k| !k.is_weak())
            .map(VerifyingKey)
    }

    /// The key from a slice that must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        Self::from_bytes(bytes.try_into().ok()?)
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 32 bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The key's fingerprint (128 bits of SHA-256, see [`crate::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        crate::fingerprint(&[self.0.as_bytes()])
    }

    /// True if `signature` is this key's strict signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({})", crate::hex(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_strictly() {
        let key = SigningKey::generate();
        let public = key.verifying_key();
        let signature = key.sign(b"message");
        assert!(public.verify(b"message", &signature));
        assert!(!public.verify(b"messagf", &signature));
        assert!(!public.verify(b"message", &signature[..63]));
        let other = SigningKey::generate().verifying_key();
        assert!(!other.verify(b"message", &signature));
        let restored = SigningKey::from_slice(key.to_bytes().as_slice()).unwrap();
        assert_eq!(restored.verifying_key(), public);
        assert_eq!(VerifyingKey::from_bytes(&public.to_bytes()), Some(public));
        assert!(VerifyingKey::from_bytes(&[0u8; 32]).is_none(), "weak key");
        assert!(!format!("{key:?}").contains(&crate::hex(key.to_bytes().as_slice())));
    }
}
