//! Tresor's one crypto provider. No other Tresor crate names a primitive crate (aes-gcm-siv,
//! hkdf, hmac, sha2, the dalek curves, argon2, rand, ring, rsa, subtle): everything above this
//! crate works with [`SecretKey`], [`AeadKey`], sealed boxes, Shamir shares, signing keys and
//! custodian identities. `tests/architecture.rs` at the repository root enforces it.
//!
//! Every construction binds its inputs with [`LengthPrefixed`] encoding so that no two different
//! field sequences can produce the same bytes. The formats are described byte by byte in
//! `docs/format.md`.
//!
//! ```
//! use tresor_crypto::{AeadKey, SecretKey};
//! use tresor_crypto::identity::CustodianIdentity;
//!
//! // Symmetric: a key, an AAD that names what the bytes are, seal and open.
//! let key = AeadKey::new(&SecretKey::random());
//! let sealed = key.seal(b"record-path", b"4111 1111 1111 1111");
//! assert_eq!(key.open(b"record-path", &sealed).unwrap().as_slice(), b"4111 1111 1111 1111");
//! assert!(key.open(b"another-path", &sealed).is_err());
//!
//! // To a person: only the custodian's identity opens what was sealed to its public key.
//! let alice = CustodianIdentity::generate("alice").unwrap();
//! let boxed = alice.public().seal("example-purpose", b"context", b"a share").unwrap();
//! assert_eq!(alice.open("example-purpose", b"context", &boxed).unwrap().as_slice(), b"a share");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aead;
pub mod byok;
// Transform (issue 16): FF1 and shaped pseudonyms.
pub mod format_preserving;
pub mod identity;
pub mod kdf;
pub mod keypair;
pub mod mac;
pub mod passphrase;
pub mod random;
pub mod sealed_box;
pub mod shamir;
pub mod sign;

pub use aead::{AeadKey, NONCE_LEN};
pub use kdf::{derive_key, hmac_sha256, sha256};

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroize;

/// Lowercase hex, with one allocation (every audit line hexes its chain hash and input HMACs).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A fingerprint people compare out of band: the first 128 bits of SHA-256 over `parts`, as
/// sixteen colon-separated hex pairs.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let digest = sha256(parts);
    let mut out = String::with_capacity(47);
    for (i, pair) in hex(&digest[..16]).as_bytes().chunks(2).enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(std::str::from_utf8(pair).expect("hex is ASCII"));
    }
    out
}

/// Random bytes from the thread-local CSPRNG (identifiers and nonces, not keys).
pub fn random_array<const N: usize>() -> [u8; N] {
    random::array()
}

/// Length of every symmetric key Tresor uses (AES-256, HMAC-SHA256 keys, the root key).
pub const KEY_LEN: usize = 32;

/// 32 bytes of secret key material, boxed so that moves never copy it, zeroized on drop and
/// hidden from `Debug`.
pub struct SecretKey(SecretBox<[u8; KEY_LEN]>);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn random() -> Self {
        SecretKey(SecretBox::init_with_mut(|bytes: &mut [u8; KEY_LEN]| {
            random::os_fill(bytes)
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
    pub fn init_with(fill: impl FnOnce(&mut [u8; KEY_LEN])) -> Self {
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
pub struct LengthPrefixed(Vec<u8>);

impl LengthPrefixed {
    /// An empty encoding.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoding with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Appends a variable-length field.
    pub fn bytes(mut self, field: &[u8]) -> Self {
        self.push_bytes(field);
        self
    }

    /// Appends a `u32`, big endian.
    pub fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a `u64`, big endian.
    pub fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a variable-length field in place.
    pub fn push_bytes(&mut self, field: &[u8]) {
        let len = u32::try_from(field.len()).expect("field longer than 4 GiB");
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(field);
    }

    /// Appends bytes that are already an encoding (a precomputed prefix).
    pub fn extend_raw(&mut self, encoded: &[u8]) {
        self.0.extend_from_slice(encoded);
    }

    /// The encoding.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Wipes the encoding and keeps its buffer, to encode again without allocating.
    pub fn clear(&mut self) {
        self.0.zeroize();
    }

    /// Makes room for `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }

    /// The encoding, owned.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for LengthPrefixed {
    // Encodings sometimes carry contexts or associated data a caller considers sensitive.
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
