//! Cryptographic building blocks. This module is the only place in Tresor where primitives are
//! touched; everything above it works with [`AeadKey`], [`SecretKey`], sealed boxes and shares.
//!
//! Every construction binds its inputs with [`LengthPrefixed`] encoding so that no two different
//! field sequences can produce the same bytes.

pub(crate) mod aead;
pub(crate) mod kdf;
pub(crate) mod passphrase;
pub(crate) mod random;
pub(crate) mod sealed_box;
pub(crate) mod shamir;

pub(crate) use aead::{AeadKey, NONCE_LEN};
pub(crate) use kdf::{derive_key, hmac_sha256};

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroize;

/// Lowercase hex, with one allocation (every audit line hexes its chain hash and input HMACs).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Random bytes from the thread-local CSPRNG (identifiers and nonces, not keys).
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    random::array()
}

/// Length of every symmetric key Tresor uses (AES-256, HMAC-SHA256 keys, the root key).
pub const KEY_LEN: usize = 32;

/// 32 bytes of secret key material, boxed so that moves never copy it, zeroized on drop and
/// hidden from `Debug`.
pub struct SecretKey(SecretBox<[u8; KEY_LEN]>);

impl SecretKey {
    /// A fresh key from the thread-local CSPRNG.
    pub fn random() -> Self {
        SecretKey(SecretBox::init_with_mut(|bytes: &mut [u8; KEY_LEN]| {
            random::fill(bytes)
        }))
    }

    /// Copies key material out of a slice, refusing anything that is not exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        Some(SecretKey(SecretBox::init_with_mut(
            |out: &mut [u8; KEY_LEN]| out.copy_from_slice(bytes),
        )))
    }

    /// Builds a key in place, so the material never sits in a temporary on the stack.
    pub(crate) fn init_with(fill: impl FnOnce(&mut [u8; KEY_LEN])) -> Self {
        SecretKey(SecretBox::init_with_mut(fill))
    }

    /// The raw bytes. Callers must not copy them anywhere that outlives the call.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        self.0.expose_secret()
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        Self::init_with(|out| out.copy_from_slice(self.expose()))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// Unambiguous encoding of a sequence of fields: each variable-length field is written as its
/// length (u32, big endian) followed by its bytes; integers are written at fixed width.
///
/// Used for every AAD, HKDF `info` and signed message in Tresor.
#[derive(Default)]
pub(crate) struct LengthPrefixed(Vec<u8>);

impl LengthPrefixed {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    pub(crate) fn bytes(mut self, field: &[u8]) -> Self {
        self.push_bytes(field);
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn push_bytes(&mut self, field: &[u8]) {
        let len = u32::try_from(field.len()).expect("field longer than 4 GiB");
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(field);
    }

    /// Appends bytes that are already an encoding (a precomputed prefix).
    pub(crate) fn extend_raw(&mut self, encoded: &[u8]) {
        self.0.extend_from_slice(encoded);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for LengthPrefixed {
    // Encodings sometimes carry contexts or associated data a caller considers sensitive.
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
