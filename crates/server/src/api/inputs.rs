//! The HMACs of a request's inputs (ciphertexts, HMAC inputs, contexts, associated data) that
//! its audit line records instead of the values (docs/audit.md).

use std::sync::{Arc, Mutex};

use super::ApiState;
use crate::audit::AuditHasher;

/// HMACs of a request's inputs for its audit line; nothing is kept when the audit trail is off
/// or the vault is sealed.
pub(crate) struct InputLog {
    hasher: Option<Arc<AuditHasher>>,
    hmacs: Mutex<Vec<String>>,
}

impl InputLog {
    pub(crate) fn new(state: &ApiState) -> Self {
        InputLog {
            hasher: state.audit.as_ref().and_then(|_| state.audit_hasher()),
            hmacs: Mutex::new(Vec::new()),
        }
    }

    /// Records `value` (a ciphertext, HMAC input, context or associated data) as its audit HMAC.
    pub(crate) fn note(&self, value: &[u8]) {
        if let Some(hasher) = &self.hasher {
            self.hmacs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(hasher.hash(value));
        }
    }

    /// Records an optional value.
    pub(crate) fn note_some(&self, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.note(value);
        }
    }

    pub(crate) fn into_hmacs(self) -> Vec<String> {
        self.hmacs.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}
