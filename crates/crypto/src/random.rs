//! Randomness, from two sources for two uses.
//!
//! - Nonces and identifiers come from `rand`'s thread-local CSPRNG (ChaCha, seeded and
//!   periodically reseeded from the OS): one `getrandom` syscall costs as much as encrypting a
//!   64-byte field, so the hot path must not make one per request.
//! - Long-term keys (root, KEKs, data keys, custody, identity and signing keys) come straight
//!   from the operating system ([`os_fill`]), so that no userspace generator state, however
//!   briefly, determines a key that lives for years.

use rand::Rng;

/// Fills `buf` from the thread-local CSPRNG (nonces and identifiers, not keys).
pub fn fill(buf: &mut [u8]) {
    rand::rng().fill_bytes(buf);
}

/// A random array from the thread-local CSPRNG, for nonces and identifiers (not for keys).
pub fn array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// Fills `buf` from the operating system's random source, for long-term keys.
///
/// # Panics
/// If the operating system cannot provide randomness: nothing safe can be made without it.
pub fn os_fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// A random array from the operating system, for long-term keys.
pub fn os_array<const N: usize>() -> zeroize::Zeroizing<[u8; N]> {
    let mut out = zeroize::Zeroizing::new([0u8; N]);
    os_fill(out.as_mut_slice());
    out
}
