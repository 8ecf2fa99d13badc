//! The HMACs of a request's inputs (ciphertexts, HMAC inputs, contexts, associated data) that
//! its audit line records instead of the values (docs/audit.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hyper::StatusCode;

use super::ApiState;
use super::reply::ApiError;
use crate::audit::AuditHasher;

/// HMACs of a request's inputs for its audit line; nothing is kept when the audit trail is off
/// or the vault is sealed.
pub(crate) struct InputLog {
    hasher: Hasher,
    /// The truncated HMACs, hexed only as the line is written.
    hmacs: Mutex<Vec<[u8; 16]>>,
}

enum Hasher {
    /// No audit log, or the vault is sealed (no key to HMAC with, and no input to record).
    None,
    Ready(Arc<AuditHasher>),
    /// The vault is unsealed but its audit HMAC key cannot be loaded: a request with inputs
    /// to record fails rather than leave lines without them.
    Broken {
        noted: AtomicBool,
    },
}

impl InputLog {
    pub(crate) fn new(state: &ApiState) -> Self {
        let hasher = match state.audit.as_ref().map(|_| state.audit_hasher()) {
            None | Some(Ok(None)) => Hasher::None,
            Some(Ok(Some(hasher))) => Hasher::Ready(hasher),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot load the audit HMAC key");
                Hasher::Broken {
                    noted: AtomicBool::new(false),
                }
            }
        };
        InputLog {
            hasher,
            hmacs: Mutex::new(Vec::new()),
        }
    }

    /// Records `value` (a ciphertext, HMAC input, context or associated data) as its audit HMAC.
    pub(crate) fn note(&self, value: &[u8]) {
        match &self.hasher {
            Hasher::None => {}
            Hasher::Ready(hasher) => self
                .hmacs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(hasher.hash_raw(value)),
            Hasher::Broken { noted } => noted.store(true, Ordering::Relaxed),
        }
    }

    /// Fails closed: if an input could not be recorded, the answer is withheld (503).
    pub(crate) fn check(&self) -> Result<(), ApiError> {
        match &self.hasher {
            Hasher::Broken { noted } if noted.load(Ordering::Relaxed) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit HMAC key cannot be loaded, so this request's inputs cannot be recorded and its answer is withheld; the server log says why",
            )),
            _ => Ok(()),
        }
    }

    /// Records an optional value.
    pub(crate) fn note_some(&self, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.note(value);
        }
    }

    pub(crate) fn into_hmacs(self) -> Vec<[u8; 16]> {
        self.hmacs.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::api::testing::{initialised_vault, unseal};
    use crate::services::Services;

    /// The audit key keeps the unseal's hasher for the requests' input HMACs (every request
    /// asks for it), but not past the unseal.
    #[test]
    fn the_audit_hasher_lives_as_long_as_the_unseal_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, custodian) = initialised_vault(dir.path());
        let key = Services::new(vault.clone(), 3600).audit_key;
        assert!(key.hasher().unwrap().is_none(), "sealed: no hasher");

        unseal(&vault, &custodian);
        let first = key.hasher().unwrap().expect("unsealed: a hasher");
        let again = key.hasher().unwrap().expect("unsealed: a hasher");
        assert!(Arc::ptr_eq(&first, &again), "the unseal's hasher is reused");
        let hashed = first.hash(b"tresor:v1:abc");
        drop((first, again));

        vault.seal();
        assert!(
            key.hasher().unwrap().is_none(),
            "the kept reference must not outlive the unseal"
        );

        unseal(&vault, &custodian);
        let after = key.hasher().unwrap().expect("unsealed again: a hasher");
        assert_eq!(after.hash(b"tresor:v1:abc"), hashed, "the same stored key");
    }
}
