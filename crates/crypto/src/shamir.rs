//! Shamir secret sharing of a 32-byte key over GF(2⁸) (the AES field, polynomial x⁸+x⁴+x³+x+1),
//! byte by byte. Field arithmetic is branch-free and table-free so that timing does not depend
//! on share or secret bytes.
//!
//! Written here rather than taken from a crate: it is forty lines, the crates on offer are outside
//! the project's dependency families, and one of them (`sharks` 0.5) shipped biased coefficients.
//! Shares carry no integrity of their own; the vault stores a check value per share
//! (`vault::seal`) so a wrong share is named instead of silently producing a wrong key.

use zeroize::Zeroizing;

use super::{KEY_LEN, SecretKey, random};

/// Largest number of shares a secret may be split into.
pub const MAX_SHARES: u8 = 16;

/// One share: the x coordinate (1..=n) and the polynomial's values at x for every secret byte.
pub struct Share {
    /// The x coordinate, 1..=n.
    pub index: u8,
    /// The values at x, one byte per secret byte.
    pub value: SecretKey,
}

/// Why shares could not be made or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// Threshold or share count outside 1 ≤ k ≤ n ≤ 16.
    #[error(
        "threshold {threshold} of {shares} shares is invalid: need 1 ≤ threshold ≤ shares ≤ 16"
    )]
    BadThreshold {
        /// The requested threshold k.
        threshold: u8,
        /// The requested number of shares n.
        shares: u8,
    },
    /// No shares were given.
    #[error("no shares given")]
    Empty,
    /// A share has index 0, which would be the secret itself.
    #[error("share index 0 is invalid")]
    ZeroIndex,
    /// The same share index appears twice.
    #[error("share {0} was given twice")]
    Duplicate(u8),
}

/// Splits `secret` into `shares` shares, any `threshold` of which reconstruct it.
pub fn split(secret: &SecretKey, threshold: u8, shares: u8) -> Result<Vec<Share>, ShamirError> {
    if threshold == 0 || threshold > shares || shares > MAX_SHARES {
        return Err(ShamirError::BadThreshold { threshold, shares });
    }
    // coefficients[j * k + m] is the m-th coefficient of byte j's polynomial; m = 0 is the secret.
    let k = usize::from(threshold);
    let mut coefficients = Zeroizing::new(vec![0u8; KEY_LEN * k]);
    // The coefficients decide every share of a key that lives for years: from the OS
    // (random.rs), like the key itself.
    random::os_fill(&mut coefficients);
    for (j, byte) in secret.expose().iter().enumerate() {
        coefficients[j * k] = *byte;
    }
    Ok((1..=shares)
        .map(|x| Share {
            index: x,
            value: SecretKey::init_with(|out| {
                for (j, out_byte) in out.iter_mut().enumerate() {
                    *out_byte = evaluate(&coefficients[j * k..(j + 1) * k], x);
                }
            }),
        })
        .collect())
}

/// Reconstructs the secret from shares by Lagrange interpolation at x = 0. Given fewer shares
/// than the threshold, or a wrong share, the result is a wrong key: the caller must check it.
pub fn combine(shares: &[Share]) -> Result<SecretKey, ShamirError> {
    if shares.is_empty() {
        return Err(ShamirError::Empty);
    }
    for (i, share) in shares.iter().enumerate() {
        if share.index == 0 {
            return Err(ShamirError::ZeroIndex);
        }
        if shares[..i].iter().any(|s| s.index == share.index) {
            return Err(ShamirError::Duplicate(share.index));
        }
    }
    let weights: Zeroizing<Vec<u8>> = Zeroizing::new(
        shares
            .iter()
            .map(|si| {
                shares
                    .iter()
                    .filter(|sm| sm.index != si.index)
                    .fold(1u8, |w, sm| {
                        gf_mul(w, gf_mul(sm.index, gf_inv(sm.index ^ si.index)))
                    })
            })
            .collect(),
    );
    Ok(SecretKey::init_with(|out| {
        for (j, out_byte) in out.iter_mut().enumerate() {
            *out_byte = shares
                .iter()
                .zip(weights.iter())
                .fold(0u8, |acc, (share, w)| {
                    acc ^ gf_mul(share.value.expose()[j], *w)
                });
        }
    }))
}

/// Horner evaluation of the polynomial with the given coefficients (constant term first).
fn evaluate(coefficients: &[u8], x: u8) -> u8 {
    coefficients
        .iter()
        .rev()
        .fold(0u8, |acc, c| gf_mul(acc, x) ^ c)
}

fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = a >> 7;
        a = (a << 1) ^ (0x1b & 0u8.wrapping_sub(carry));
        b >>= 1;
    }
    product
}

/// Multiplicative inverse as a²⁵⁴ (fixed exponent, so constant time); inv(0) = 0 is never used.
fn gf_inv(a: u8) -> u8 {
    let a2 = gf_mul(a, a);
    let a4 = gf_mul(a2, a2);
    let a8 = gf_mul(a4, a4);
    let a16 = gf_mul(a8, a8);
    let a32 = gf_mul(a16, a16);
    let a64 = gf_mul(a32, a32);
    let a128 = gf_mul(a64, a64);
    // 254 = 128 + 64 + 32 + 16 + 8 + 4 + 2
    [a64, a32, a16, a8, a4, a2]
        .iter()
        .fold(a128, |acc, p| gf_mul(acc, *p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(shares: &[Share], which: &[usize]) -> Vec<Share> {
        which
            .iter()
            .map(|&i| Share {
                index: shares[i].index,
                value: shares[i].value.clone(),
            })
            .collect()
    }

    #[test]
    fn field_inverse_is_correct_for_every_element() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "a = {a}");
        }
        assert_eq!(gf_mul(0x57, 0x83), 0xc1, "FIPS-197 §4.2 example");
    }

    #[test]
    fn any_k_of_n_reconstruct() {
        let secret = SecretKey::random();
        let shares = split(&secret, 3, 5).unwrap();
        for combo in [[0, 1, 2], [0, 2, 4], [4, 3, 1], [1, 2, 3]] {
            let got = combine(&pick(&shares, &combo)).unwrap();
            assert_eq!(got.expose(), secret.expose(), "{combo:?}");
        }
        let too_few = combine(&pick(&shares, &[0, 1])).unwrap();
        assert_ne!(too_few.expose(), secret.expose());
    }

    #[test]
    fn one_of_one_and_sixteen_of_sixteen() {
        let secret = SecretKey::random();
        let one = split(&secret, 1, 1).unwrap();
        assert_eq!(combine(&one).unwrap().expose(), secret.expose());
        let all = split(&secret, 16, 16).unwrap();
        assert_eq!(combine(&all).unwrap().expose(), secret.expose());
    }

    #[test]
    fn invalid_parameters_and_inputs() {
        let secret = SecretKey::random();
        assert!(split(&secret, 0, 3).is_err());
        assert!(split(&secret, 4, 3).is_err());
        assert!(split(&secret, 2, 17).is_err());
        assert_eq!(combine(&[]).err(), Some(ShamirError::Empty));
        let shares = split(&secret, 2, 3).unwrap();
        assert_eq!(
            combine(&pick(&shares, &[1, 1])).err(),
            Some(ShamirError::Duplicate(2))
        );
        let zero = vec![Share {
            index: 0,
            value: SecretKey::random(),
        }];
        assert_eq!(combine(&zero).err(), Some(ShamirError::ZeroIndex));
    }
}
