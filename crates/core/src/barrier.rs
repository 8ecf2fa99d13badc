//! The barrier: every record the vault stores is sealed here before it reaches the
//! [`Store`](crate::store::Store), under a key derived from the root key.
//!
//! ```text
//! key    = HKDF-SHA256(root key, LP("tresor-barrier-v1") ‖ LP(vault id))
//! record = 0x01 ‖ nonce (12) ‖ AES-256-GCM-SIV(key, plaintext) ‖ tag (16)
//! aad    = LP("tresor-barrier-v1") ‖ LP(storage path)
//! ```
//! Binding the storage path means a record copied to another path (say, one tenant's key into
//! another tenant's slot) fails exactly like a flipped bit: with [`Error::Integrity`].

use zeroize::Zeroizing;

use crate::Error;
use tresor_crypto::{AeadKey, LengthPrefixed, SecretKey, derive_key};

const FORMAT: u8 = 1;
const LABEL: &[u8] = b"tresor-barrier-v1";

/// Seals and opens storage records.
pub(crate) struct Barrier {
    key: AeadKey,
}

impl Barrier {
    /// The barrier of the vault `vault_id` under root key `root`.
    pub(crate) fn new(root: &SecretKey, vault_id: &str) -> Self {
        let info = LengthPrefixed::new()
            .bytes(LABEL)
            .bytes(vault_id.as_bytes());
        Barrier {
            key: AeadKey::new(&derive_key(root, info.as_slice())),
        }
    }

    pub(crate) fn seal(&self, path: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + tresor_crypto::aead::OVERHEAD + plaintext.len());
        out.push(FORMAT);
        self.key
            .seal_into(aad(path).as_slice(), plaintext, &mut out);
        out
    }

    pub(crate) fn open(&self, path: &str, record: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let integrity = || Error::Integrity {
            path: path.to_owned(),
        };
        match record.split_first() {
            Some((&FORMAT, sealed)) => self
                .key
                .open(aad(path).as_slice(), sealed)
                .map_err(|_| integrity()),
            _ => Err(integrity()),
        }
    }
}

fn aad(path: &str) -> LengthPrefixed {
    LengthPrefixed::with_capacity(LABEL.len() + path.len() + 8)
        .bytes(LABEL)
        .bytes(path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipped_bit_or_moved_record_is_an_integrity_error() {
        let barrier = Barrier::new(&SecretKey::random(), "vault-a");
        let record = barrier.seal("tenants/a", b"{\"level\":2}");
        assert_eq!(
            barrier.open("tenants/a", &record).unwrap().as_slice(),
            b"{\"level\":2}"
        );
        let moved = barrier.open("tenants/b", &record).unwrap_err();
        assert_eq!(
            moved.to_string(),
            Error::Integrity {
                path: "tenants/b".into()
            }
            .to_string()
        );
        for i in 0..record.len() {
            let mut bad = record.clone();
            bad[i] ^= 0x04;
            assert!(
                matches!(
                    barrier.open("tenants/a", &bad),
                    Err(Error::Integrity { .. })
                ),
                "flip at {i}"
            );
        }
        assert!(barrier.open("tenants/a", &[]).is_err());
    }

    #[test]
    fn another_root_key_cannot_open() {
        let record = Barrier::new(&SecretKey::random(), "v").seal("p", b"x");
        assert!(
            Barrier::new(&SecretKey::random(), "v")
                .open("p", &record)
                .is_err()
        );
    }
}
