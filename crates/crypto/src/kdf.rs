//! Key derivation (HKDF-SHA256, RFC 5869) and keyed hashing (HMAC-SHA256, RFC 2104).

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{KEY_LEN, SecretKey};

/// HKDF-SHA256 with no salt (every input key here is uniformly random) and the given `info`,
/// producing a 32-byte key.
pub fn derive_key(ikm: &SecretKey, info: &[u8]) -> SecretKey {
    let hkdf = Hkdf::<Sha256>::new(None, ikm.expose());
    SecretKey::init_with(|out| {
        hkdf.expand(info, out)
            .expect("32 bytes is a valid HKDF-SHA256 output length")
    })
}

/// HKDF-SHA256 over a non-uniform input (a Diffie-Hellman output) with an explicit salt.
pub fn derive_key_salted(ikm: &[u8], salt: &[u8], info: &[u8]) -> SecretKey {
    let hkdf = Hkdf::<Sha256>::new(Some(salt), ikm);
    SecretKey::init_with(|out| {
        hkdf.expand(info, out)
            .expect("32 bytes is a valid HKDF-SHA256 output length")
    })
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

const _: () = assert!(KEY_LEN == 32);

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_rfc4231() {
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            tag[..4],
            [0x5b, 0xdc, 0xc1, 0x46],
            "HMAC-SHA256 must match RFC 4231 case 2"
        );
    }

    #[test]
    fn derivation_separates_by_info() {
        let ikm = SecretKey::random();
        let a = derive_key(&ikm, b"a");
        let b = derive_key(&ikm, b"b");
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.expose(), derive_key(&ikm, b"a").expose());
    }
}

#[cfg(test)]
mod zeroize_on_drop {
    /// Compiles only while SHA-256's state is wiped on drop (the `zeroize` features of sha2 and
    /// hmac, Cargo.toml). HMAC and HKDF keep their keyed state (HKDF's PRK, the audit key's
    /// long-lived HMAC) as SHA-256 states, so they are wiped with it.
    #[test]
    fn hash_states_are_wiped_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>() {}
        wiped::<sha2::Sha256>();
    }
}
