//! Bringing keys in from Vault and OpenBao (issue 17; docs/format.md, "Vault and OpenBao"):
//!
//! - the **wrapping key**: an RSA-4096 key pair whose public half Vault's `transit import`
//!   command fetches (`GET <mount>/wrapping_key`, SubjectPublicKeyInfo PEM);
//! - **unwrapping** what that command sends: `RSA-OAEP-SHA256(ephemeral AES-256 key) ‖
//!   AES-KWP(ephemeral key, target key)` (RFC 8017 OAEP with an empty label, RFC 5649 key wrap
//!   with padding) — the CKM_RSA_AES_KEY_WRAP construction Vault documents;
//! - **opening** Vault's `aes256-gcm96` ciphertexts: `nonce(12) ‖ AES-256-GCM ciphertext ‖
//!   tag(16)` with the caller's associated data as AAD, under the key version itself or, for
//!   derived keys, under HKDF-SHA256(version key, no salt, info = context) (Vault's `hkdf_sha256`
//!   KDF). Nothing here encrypts under imported material.
//!
//! RSA and OAEP come from the `rsa` crate, key wrap from RustCrypto's `aes-kw`, AES-GCM from
//! `ring`: no hand-written primitive.

use aes_kw::KwpAes256;
use aes_kw::cipher::KeyInit;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use zeroize::Zeroizing;

use crate::{KEY_LEN, SecretKey};

/// Bits of the wrapping key (what Vault uses).
pub const WRAPPING_KEY_BITS: usize = 4096;
/// Bytes of the RSA-OAEP part at the start of an import ciphertext.
pub const RSA_PART_LEN: usize = WRAPPING_KEY_BITS / 8;
/// Nonce bytes at the start of a Vault `aes256-gcm96` ciphertext.
pub const VAULT_NONCE_LEN: usize = 12;
/// Tag bytes at the end of a Vault `aes256-gcm96` ciphertext.
pub const VAULT_TAG_LEN: usize = 16;

/// Why an import or a Vault ciphertext was refused. Never carries key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByokError {
    /// The wrapping key could not be made or read back.
    #[error("wrapping key: {0}")]
    WrappingKey(String),
    /// The import ciphertext is not `RSA-OAEP part ‖ KWP part` of plausible lengths.
    #[error(
        "the import ciphertext is {0} bytes: it must be the {RSA_PART_LEN}-byte RSA-OAEP part followed by the AES-KWP part (at least 16 bytes)"
    )]
    Malformed(usize),
    /// The RSA-OAEP part does not open under this wrapping key (another key, or altered).
    #[error(
        "the ephemeral key does not unwrap: it was wrapped for another wrapping key or with another hash_function, or altered"
    )]
    RsaUnwrap,
    /// The ephemeral key is not 32 bytes.
    #[error("the ephemeral AES key must be 32 bytes (AES-256), not {0}")]
    EphemeralLength(usize),
    /// The KWP part fails its integrity check.
    #[error(
        "the wrapped key fails its RFC 5649 integrity check: altered, or wrapped under another ephemeral key"
    )]
    KwpUnwrap,
    /// The unwrapped key is not a 32-byte AES-256 key.
    #[error("the imported key must be 32 bytes (aes256-gcm96), not {0}")]
    KeyLength(usize),
    /// A Vault ciphertext too short to hold nonce and tag.
    #[error("the Vault ciphertext is {0} bytes, shorter than nonce and tag (28)")]
    TooShort(usize),
    /// A Vault ciphertext that does not authenticate.
    #[error("the Vault ciphertext does not authenticate")]
    Authentication,
}

/// The RSA-4096 key pair Vault's import command wraps to.
pub struct WrappingKey {
    private: RsaPrivateKey,
}

impl std::fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrappingKey(RSA-4096, private half hidden)")
    }
}

impl WrappingKey {
    /// A fresh RSA-4096 key pair from the OS generator.
    pub fn generate() -> Result<Self, ByokError> {
        let mut rng = rsa::rand_core::OsRng;
        let private = RsaPrivateKey::new(&mut rng, WRAPPING_KEY_BITS)
            .map_err(|e| ByokError::WrappingKey(e.to_string()))?;
        Ok(WrappingKey { private })
    }

    /// The private key as PKCS#8 DER, for storage behind the barrier.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, ByokError> {
        let document = self
            .private
            .to_pkcs8_der()
            .map_err(|e| ByokError::WrappingKey(e.to_string()))?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    /// Reads back what [`WrappingKey::to_pkcs8_der`] wrote.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ByokError> {
        let private = RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|_| ByokError::WrappingKey("stored key is not an RSA PKCS#8 key".into()))?;
        if private.size() != RSA_PART_LEN {
            return Err(ByokError::WrappingKey(format!(
                "stored key is {} bits, not {WRAPPING_KEY_BITS}",
                private.size() * 8
            )));
        }
        Ok(WrappingKey { private })
    }

    /// The public key as Vault serves it: SubjectPublicKeyInfo PEM.
    pub fn public_pem(&self) -> Result<String, ByokError> {
        let der = self
            .private
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| ByokError::WrappingKey(e.to_string()))?;
        let body = STANDARD.encode(der.as_bytes());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(pem)
    }

    /// Unwraps an import ciphertext (RSA-OAEP-SHA256 ephemeral key ‖ AES-KWP target key) into
    /// the 32-byte key it carries.
    pub fn unwrap_import(&self, ciphertext: &[u8]) -> Result<SecretKey, ByokError> {
        if ciphertext.len() < RSA_PART_LEN + 16 {
            return Err(ByokError::Malformed(ciphertext.len()));
        }
        let (rsa_part, kwp_part) = ciphertext.split_at(RSA_PART_LEN);
        let ephemeral = Zeroizing::new(
            self.private
                .decrypt(Oaep::new::<rsa::sha2::Sha256>(), rsa_part)
                .map_err(|_| ByokError::RsaUnwrap)?,
        );
        if ephemeral.len() != KEY_LEN {
            return Err(ByokError::EphemeralLength(ephemeral.len()));
        }
        let kwp = KwpAes256::new_from_slice(&ephemeral)
            .map_err(|_| ByokError::EphemeralLength(ephemeral.len()))?;
        let mut buf = Zeroizing::new(vec![0u8; kwp_part.len() - 8]);
        let key = kwp
            .unwrap_key(kwp_part, &mut buf)
            .map_err(|_| ByokError::KwpUnwrap)?;
        SecretKey::from_slice(key).ok_or(ByokError::KeyLength(key.len()))
    }

    /// What Vault's import command does, for tests and drills: wraps `key` to this wrapping key.
    pub fn wrap_for_import(&self, key: &[u8]) -> Result<Vec<u8>, ByokError> {
        wrap_to_pem(&self.public_pem()?, key)
    }
}

/// What Vault's import command does on the client side: wraps `key` to the wrapping key whose
/// SubjectPublicKeyInfo PEM is `pem` (for drills, tests and a future client-side import).
pub fn wrap_to_pem(pem: &str, key: &[u8]) -> Result<Vec<u8>, ByokError> {
    use rsa::pkcs8::DecodePublicKey;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| ByokError::WrappingKey("public key PEM is not base64".into()))?;
    let public = rsa::RsaPublicKey::from_public_key_der(&der)
        .map_err(|_| ByokError::WrappingKey("not an RSA SubjectPublicKeyInfo".into()))?;
    let ephemeral = SecretKey::random();
    let mut rng = rsa::rand_core::OsRng;
    let mut out = public
        .encrypt(
            &mut rng,
            Oaep::new::<rsa::sha2::Sha256>(),
            ephemeral.expose(),
        )
        .map_err(|e| ByokError::WrappingKey(e.to_string()))?;
    let kwp = KwpAes256::new_from_slice(ephemeral.expose())
        .map_err(|_| ByokError::EphemeralLength(KEY_LEN))?;
    let mut buf = vec![0u8; key.len().div_ceil(8) * 8 + 8];
    let wrapped = kwp
        .wrap_key(key, &mut buf)
        .map_err(|_| ByokError::KeyLength(key.len()))?;
    out.extend_from_slice(wrapped);
    Ok(out)
}

/// Opens a Vault `aes256-gcm96` payload (`nonce ‖ ciphertext ‖ tag`, the base64 part of
/// `vault:v<N>:…`) under `key` (the version key, or the HKDF-derived one), with `aad` the
/// caller's associated data (empty if none).
pub fn vault_gcm_open(
    key: &SecretKey,
    payload: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ByokError> {
    if payload.len() < VAULT_NONCE_LEN + VAULT_TAG_LEN {
        return Err(ByokError::TooShort(payload.len()));
    }
    let (nonce, sealed) = payload.split_at(VAULT_NONCE_LEN);
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key.expose()).map_err(|_| ByokError::Authentication)?,
    );
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| ByokError::Authentication)?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    let plaintext_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| ByokError::Authentication)?
        .len();
    buf.truncate(plaintext_len);
    Ok(buf)
}

/// Seals as Vault does (random nonce), for tests only: Tresor never encrypts under imported
/// material.
#[doc(hidden)]
pub fn vault_gcm_seal_for_tests(key: &SecretKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; VAULT_NONCE_LEN] = crate::random_array();
    let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose()).expect("32 bytes"));
    let mut buf = plaintext.to_vec();
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .expect("sealing succeeds");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn wrapping() -> &'static WrappingKey {
        static KEY: OnceLock<WrappingKey> = OnceLock::new();
        KEY.get_or_init(|| WrappingKey::generate().unwrap())
    }

    #[test]
    fn an_import_round_trips_and_tampering_is_refused() {
        let key = wrapping();
        let der = key.to_pkcs8_der().unwrap();
        let again = WrappingKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(key.public_pem().unwrap(), again.public_pem().unwrap());
        assert!(
            key.public_pem()
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        let target = SecretKey::random();
        let wrapped = key.wrap_for_import(target.expose()).unwrap();
        assert_eq!(wrapped.len(), RSA_PART_LEN + 40);
        assert_eq!(
            again.unwrap_import(&wrapped).unwrap().expose(),
            target.expose()
        );
        let mut rsa_tampered = wrapped.clone();
        rsa_tampered[7] ^= 1;
        assert_eq!(
            key.unwrap_import(&rsa_tampered).unwrap_err(),
            ByokError::RsaUnwrap
        );
        let mut kwp_tampered = wrapped.clone();
        *kwp_tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            key.unwrap_import(&kwp_tampered).unwrap_err(),
            ByokError::KwpUnwrap
        );
        assert_eq!(
            key.unwrap_import(&wrapped[..RSA_PART_LEN + 8]).unwrap_err(),
            ByokError::Malformed(RSA_PART_LEN + 8)
        );
        let short = key.wrap_for_import(&[7u8; 16]).unwrap();
        assert_eq!(
            key.unwrap_import(&short).unwrap_err(),
            ByokError::KeyLength(16)
        );
        assert!(WrappingKey::from_pkcs8_der(b"not a key").is_err());
    }

    #[test]
    fn vault_gcm_opens_what_it_sealed_and_nothing_else() {
        let key = SecretKey::random();
        let sealed = vault_gcm_seal_for_tests(&key, b"4111", b"order-1");
        assert_eq!(
            vault_gcm_open(&key, &sealed, b"order-1")
                .unwrap()
                .as_slice(),
            b"4111"
        );
        assert_eq!(
            vault_gcm_open(&key, &sealed, b"order-2").unwrap_err(),
            ByokError::Authentication
        );
        assert_eq!(
            vault_gcm_open(&SecretKey::random(), &sealed, b"order-1").unwrap_err(),
            ByokError::Authentication
        );
        assert_eq!(
            vault_gcm_open(&key, &sealed[..27], b"").unwrap_err(),
            ByokError::TooShort(27)
        );
    }
}
