//! Randomness. Nonces and keys come from `rand`'s thread-local CSPRNG (ChaCha, seeded and
//! periodically reseeded from the OS): one `getrandom` syscall costs as much as encrypting a
//! 64-byte field, so the hot path must not make one per request.

use rand::Rng;

/// Fills `buf` with cryptographically secure random bytes.
pub(crate) fn fill(buf: &mut [u8]) {
    rand::rng().fill_bytes(buf);
}

/// A random array, for nonces and identifiers (not for keys: use `SecretKey::random`).
pub(crate) fn array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}
