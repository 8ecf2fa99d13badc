//! AES-256-GCM-SIV (RFC 8452): nonce-misuse resistant, so a repeated nonce leaks only equality of
//! identical messages, never keys. Messages are laid out as `nonce ‖ ciphertext ‖ tag`.

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use zeroize::Zeroizing;

use super::{SecretKey, random};

/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes an encrypted message adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A message failed authentication, or was too short to carry a nonce and tag. Deliberately
/// carries no detail: callers know which object they were opening and say so in their own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadError;

/// An expanded AES-256-GCM-SIV key. The expanded round keys are zeroized on drop (`aes`'s
/// `zeroize` feature).
pub struct AeadKey(Aes256GcmSiv);

impl AeadKey {
    /// Expands `key`.
    pub fn new(key: &SecretKey) -> Self {
        AeadKey(Aes256GcmSiv::new(key.expose().into()))
    }

    /// Encrypts `plaintext` with a fresh random nonce and appends `nonce ‖ ciphertext ‖ tag` to `out`.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        self.seal_with_nonce_into(&random::array::<NONCE_LEN>(), aad, plaintext, out)
    }

    /// Encrypts with a caller-chosen nonce. Only for nonces derived from the message itself
    /// (convergent encryption), where AES-GCM-SIV's misuse resistance makes equal inputs give
    /// equal outputs and nothing more.
    pub fn seal_with_nonce_into(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.reserve(OVERHEAD + plaintext.len());
        out.extend_from_slice(nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, (&mut out[start..]).into())
            .expect("AES-GCM-SIV accepts messages up to 64 GiB");
        out.extend_from_slice(&tag);
    }

    /// Encrypts into a new vector.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        self.seal_into(aad, plaintext, &mut out);
        out
    }

    /// Authenticates and decrypts `nonce ‖ ciphertext ‖ tag`. The plaintext is zeroized on drop.
    pub fn open(&self, aad: &[u8], message: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        let mut plaintext = Zeroizing::new(Vec::new());
        self.open_into(aad, message, &mut plaintext)?;
        Ok(plaintext)
    }

    /// Like [`AeadKey::open`], appending the plaintext to `out`. On failure `out` is left as it was.
    pub fn open_into(
        &self,
        aad: &[u8],
        message: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        if message.len() < OVERHEAD {
            return Err(AeadError);
        }
        let (nonce, rest) = message.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| AeadError)?;
        let tag = Tag::try_from(tag).map_err(|_| AeadError)?;
        let start = out.len();
        out.extend_from_slice(ciphertext);
        let result = self
            .0
            .decrypt_inout_detached(&nonce, aad, (&mut out[start..]).into(), &tag);
        if result.is_err() {
            zeroize::Zeroize::zeroize(&mut out[start..]);
            out.truncate(start);
            return Err(AeadError);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vault's key cache holds `KeyRing`s of `SecretKey`s and `AeadKey`s; evicting a ring
    /// (rotation, config change, deletion, seal) drops it, and these wipe themselves on drop:
    /// `SecretKey` is a `SecretBox`, and `AeadKey`'s only state is the `aes` key schedule.
    #[test]
    fn cached_key_material_zeroizes_on_drop() {
        fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop + ?Sized>() {}
        zeroize_on_drop::<aes::Aes256>();
        zeroize_on_drop::<secrecy::SecretBox<[u8; 32]>>();
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = AeadKey::new(&SecretKey::random());
        let sealed = key.seal(b"aad", b"hello");
        assert_eq!(sealed.len(), OVERHEAD + 5);
        assert_eq!(key.open(b"aad", &sealed).unwrap().as_slice(), b"hello");
        assert_eq!(key.open(b"other", &sealed), Err(AeadError));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(key.open(b"aad", &bad), Err(AeadError), "flip at {i}");
        }
        assert_eq!(key.open(b"aad", &sealed[..OVERHEAD - 1]), Err(AeadError));
    }

    #[test]
    fn failed_open_leaves_output_untouched() {
        let key = AeadKey::new(&SecretKey::random());
        let mut sealed = key.seal(b"", b"secret");
        sealed[NONCE_LEN] ^= 1;
        let mut out = b"keep".to_vec();
        assert!(key.open_into(b"", &sealed, &mut out).is_err());
        assert_eq!(out, b"keep");
    }

    /// RFC 8452 appendix C.2, first AES-256 vector with a non-empty plaintext.
    #[test]
    fn rfc8452_vector() {
        let key = SecretKey::from_slice(&hex(
            "0100000000000000000000000000000000000000000000000000000000000000",
        ))
        .unwrap();
        let nonce: [u8; 12] = hex("030000000000000000000000").try_into().unwrap();
        let mut out = Vec::new();
        AeadKey::new(&key).seal_with_nonce_into(&nonce, b"", &hex("0100000000000000"), &mut out);
        assert_eq!(
            out[NONCE_LEN..],
            hex("c2ef328e5c71c83b843122130f7364b761e0b97427e3df28")[..]
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
