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
        tresor_crypto::hex(&self.0.mac(value)[..16])
    }
}
