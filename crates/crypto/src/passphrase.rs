//! Passphrase-derived keys: Argon2id (RFC 9106) with a random salt and recorded cost parameters,
//! so that a stolen identity file costs an attacker real memory and time per guess.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use super::{KEY_LEN, SecretKey};

/// Argon2id cost parameters, stored next to the salt so they can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// RFC 9106 §4's second recommended option (64 MiB, 3 passes), one lane: about a quarter
    /// second per guess on a server core.
    pub const RECOMMENDED: Argon2Params = Argon2Params {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Parameters read from a file are bounded, so a crafted file cannot make us allocate
    /// gigabytes or spin for minutes, nor weaken the hash below a floor.
    fn check(&self) -> Result<(), PassphraseError> {
        let ok = (19 * 1024..=1024 * 1024).contains(&self.memory_kib)
            && (1..=16).contains(&self.iterations)
            && (1..=8).contains(&self.parallelism);
        if ok {
            Ok(())
        } else {
            Err(PassphraseError::UnsupportedParameters)
        }
    }
}

/// Why a key could not be derived from a passphrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassphraseError {
    /// The stored cost parameters are outside the range Tresor accepts.
    #[error(
        "passphrase hashing parameters are outside the accepted range (19 MiB–1 GiB, 1–16 passes, 1–8 lanes)"
    )]
    UnsupportedParameters,
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    Empty,
}

/// Length of the random salt.
pub const SALT_LEN: usize = 16;

/// Derives a 32-byte key from `passphrase` and `salt`.
pub fn derive(
    passphrase: &[u8],
    salt: &[u8; SALT_LEN],
    params: Argon2Params,
) -> Result<SecretKey, PassphraseError> {
    if passphrase.is_empty() {
        return Err(PassphraseError::Empty);
    }
    params.check()?;
    let argon_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .map_err(|_| PassphraseError::UnsupportedParameters)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut failed = false;
    let key = SecretKey::init_with(|out| {
        failed = argon.hash_password_into(passphrase, salt, out).is_err();
    });
    if failed {
        Err(PassphraseError::UnsupportedParameters)
    } else {
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params {
        memory_kib: 19 * 1024,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn same_inputs_same_key_and_salt_matters() {
        let a = derive(b"correct horse", &[1; SALT_LEN], FAST).unwrap();
        let b = derive(b"correct horse", &[1; SALT_LEN], FAST).unwrap();
        let c = derive(b"correct horse", &[2; SALT_LEN], FAST).unwrap();
        let d = derive(b"correct horsf", &[1; SALT_LEN], FAST).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
        assert_ne!(a.expose(), d.expose());
    }

    #[test]
    fn refuses_weak_or_huge_parameters_and_empty_passphrase() {
        let weak = Argon2Params {
            memory_kib: 8,
            ..FAST
        };
        let huge = Argon2Params {
            memory_kib: 4 * 1024 * 1024,
            ..FAST
        };
        assert_eq!(
            derive(b"x", &[0; SALT_LEN], weak).err(),
            Some(PassphraseError::UnsupportedParameters)
        );
        assert_eq!(
            derive(b"x", &[0; SALT_LEN], huge).err(),
            Some(PassphraseError::UnsupportedParameters)
        );
        assert_eq!(
            derive(b"", &[0; SALT_LEN], FAST).err(),
            Some(PassphraseError::Empty)
        );
    }
}
