//! The audit HMAC: how inputs (ciphertexts, HMAC inputs, contexts, associated data) appear in
//! audit lines. HMAC-SHA256 under the vault's audit key, truncated to 128 bits, lowercase hex:
//! a known value can be searched for (`tresor audit hash`), an unknown one cannot be recovered
//! or guessed offline.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::crypto::SecretKey;

/// Hashes values for the audit trail.
#[derive(Clone)]
pub struct AuditHasher(Hmac<Sha256>);

impl std::fmt::Debug for AuditHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditHasher([REDACTED])")
    }
}

impl AuditHasher {
    pub(crate) fn new(key: &SecretKey) -> Self {
        AuditHasher(
            <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose())
                .expect("HMAC takes any key length"),
        )
    }

    /// The audit form of `value`.
    pub fn hash(&self, value: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        super::line::hex(&digest[..16])
    }
}
