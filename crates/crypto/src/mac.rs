//! Keyed hashing: HMAC over the SHA-2 family (RFC 2104), constant-time comparison, and a keyed
//! HMAC-SHA256 state that is cheap to reuse for many short inputs.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha224, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

/// A hash function of the SHA-2 family, for [`hmac`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sha2 {
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// HMAC of `input` under `key` with `hash`.
pub fn hmac(hash: Sha2, key: &[u8], input: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
    match hash {
        Sha2::Sha224 => run::<Hmac<Sha224>>(key, input),
        Sha2::Sha256 => run::<Hmac<Sha256>>(key, input),
        Sha2::Sha384 => run::<Hmac<Sha384>>(key, input),
        Sha2::Sha512 => run::<Hmac<Sha512>>(key, input),
    }
}

/// True if `a` and `b` are equal, in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// HMAC-SHA256 keyed once: each [`HmacSha256::mac`] starts from the precomputed inner and outer
/// states instead of hashing the key again.
#[derive(Clone)]
pub struct HmacSha256(Hmac<Sha256>);

impl HmacSha256 {
    /// Keys the state with `key`.
    pub fn new(key: &crate::SecretKey) -> Self {
        HmacSha256(
            <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose())
                .expect("HMAC accepts any key length"),
        )
    }

    /// The HMAC of `input`.
    pub fn mac(&self, input: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = self.0.clone();
        mac.update(input);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

impl std::fmt::Debug for HmacSha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSha256([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 for every hash of the family.
    #[test]
    fn hmac_rfc4231_case_2() {
        let data = b"what do ya want for nothing?";
        let expect = [
            (
                Sha2::Sha224,
                "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
            ),
            (
                Sha2::Sha256,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                Sha2::Sha384,
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            ),
            (
                Sha2::Sha512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (hash, hex) in expect {
            assert_eq!(crate::hex(&hmac(hash, b"Jefe", data)), hex, "{hash:?}");
        }
        let keyed = HmacSha256::new(&crate::SecretKey::from_slice(&[7; 32]).unwrap());
        assert_eq!(
            keyed.mac(data).as_slice(),
            hmac(Sha2::Sha256, &[7; 32], data).as_slice()
        );
    }

    #[test]
    fn ct_eq_compares_whole_values() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
