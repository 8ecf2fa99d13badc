//! The audit HMAC: how inputs (ciphertexts, HMAC inputs, contexts, associated data) appear in
//! audit lines. HMAC-SHA256 under the vault's audit key, truncated to 128 bits, lowercase hex:
//! a known value can be searched for (`tresor audit hash`), an unknown one cannot be recovered
//! or guessed offline.

use tresor_crypto::SecretKey;
use tresor_crypto::mac::HmacSha256;

/// Hashes values for the audit trail.
#[derive(Clone, Debug)]
pub struct AuditHasher(HmacSha256);

impl AuditHasher {
    pub(crate) fn new(key: &SecretKey) -> Self {
        AuditHasher(HmacSha256::new(key))
    }

    /// The audit form of `value`.
    pub fn hash(&self, value: &[u8]) -> String {
        tresor_crypto::hex(&self.hash_raw(value))
    }

    /// The audit form of `value` before it is hexed (a line hexes it as it is written).
    pub fn hash_raw(&self, value: &[u8]) -> [u8; 16] {
        let mac = self.0.mac(value);
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        out
    }
}
