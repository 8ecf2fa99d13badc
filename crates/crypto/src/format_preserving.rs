//! Format-preserving transforms over an alphabet (docs/anonymize.md): NIST SP 800-38G FF1 with
//! AES-256 (reversible, through the `fpe` crate; FF3-1 is not offered because of its published
//! attacks), and a shaped keyed PRF (deterministic, irreversible pseudonyms of the same shape).
//!
//! Both work on a string of characters of an [`Alphabet`]: each character is a numeral (its
//! position in the alphabet), the output has the same length over the same alphabet. Neither
//! accepts a domain (alphabet size to the power of the length) under [`MIN_DOMAIN`], NIST SP
//! 800-38G Rev. 1's minimum for FF1.
//!
//! ```
//! use tresor_crypto::SecretKey;
//! use tresor_crypto::format_preserving::{Alphabet, Ff1};
//!
//! let digits = Alphabet::new("0123456789").unwrap();
//! let ff1 = Ff1::new(&SecretKey::random(), digits);
//! let encrypted = ff1.encrypt(b"tweak", "4111111111").unwrap();
//! assert_eq!(encrypted.len(), 10);
//! assert!(encrypted.chars().all(|c| c.is_ascii_digit()));
//! assert_eq!(ff1.decrypt(b"tweak", &encrypted).unwrap().as_str(), "4111111111");
//! ```

use ::fpe::ff1::{FF1, FlexibleNumeralString};
use aes::Aes256;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::{LengthPrefixed, SecretKey};

/// The smallest domain a transform accepts: 10⁶ values (NIST SP 800-38G Rev. 1, section 5.2).
pub const MIN_DOMAIN: u128 = 1_000_000;

/// The longest input, in characters (far below FF1's own limit; a transformed field is short).
pub const MAX_LEN: usize = 4096;

/// Why a transform refused its input or its configuration. Never carries the input itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The alphabet has fewer than 2 or more than 65 536 characters, or repeats one.
    #[error("invalid alphabet: {0}")]
    Alphabet(String),
    /// A character of the input is not in the alphabet (its position is given, not the value).
    #[error("character {position} of the input is not in the alphabet")]
    NotInAlphabet {
        /// Zero-based character position.
        position: usize,
    },
    /// The domain (alphabet size to the power of the length) is under [`MIN_DOMAIN`].
    #[error(
        "the transformed part has {radix}^{len} possible values, under the minimum of 10^6 (NIST SP 800-38G Rev. 1)"
    )]
    DomainTooSmall {
        /// Alphabet size.
        radix: u32,
        /// Number of characters.
        len: usize,
    },
    /// The input is longer than [`MAX_LEN`].
    #[error("the transformed part is {len} characters long, over the maximum of {MAX_LEN}")]
    TooLong {
        /// Number of characters.
        len: usize,
    },
}

/// An ordered set of characters: character `i` is numeral `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alphabet {
    chars: Vec<char>,
    /// For ASCII characters, numeral + 1 (0: not in the alphabet).
    ascii: [u32; 128],
}

impl Alphabet {
    /// The alphabet of `chars`, in order.
    pub fn new(chars: &str) -> Result<Self, FormatError> {
        let list: Vec<char> = chars.chars().collect();
        if list.len() < 2 || list.len() > 1 << 16 {
            return Err(FormatError::Alphabet(format!(
                "it has {} characters; it needs 2 to 65536",
                list.len()
            )));
        }
        let mut ascii = [0u32; 128];
        for (i, c) in list.iter().enumerate() {
            if list[..i].contains(c) {
                return Err(FormatError::Alphabet(format!("it repeats {c:?}")));
            }
            if c.is_ascii() {
                ascii[*c as usize] = u32::try_from(i).expect("at most 65536") + 1;
            }
        }
        Ok(Alphabet { chars: list, ascii })
    }

    /// The number of characters (FF1's radix).
    pub fn radix(&self) -> u32 {
        u32::try_from(self.chars.len()).expect("at most 65536")
    }

    /// True if `c` is in the alphabet.
    pub fn contains(&self, c: char) -> bool {
        self.numeral(c).is_some()
    }

    /// The alphabet's characters, in order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    fn numeral(&self, c: char) -> Option<u16> {
        if c.is_ascii() {
            let n = self.ascii[c as usize];
            return (n > 0).then(|| u16::try_from(n - 1).unwrap_or(u16::MAX));
        }
        self.chars
            .iter()
            .position(|x| *x == c)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Refuses `len` characters unless the domain is at least [`MIN_DOMAIN`] (and `len` at most
    /// [`MAX_LEN`]).
    pub fn check_domain(&self, len: usize) -> Result<(), FormatError> {
        if len > MAX_LEN {
            return Err(FormatError::TooLong { len });
        }
        if domain_at_least(self.radix(), len, MIN_DOMAIN) {
            Ok(())
        } else {
            Err(FormatError::DomainTooSmall {
                radix: self.radix(),
                len,
            })
        }
    }

    fn numerals(&self, input: &str) -> Result<Zeroizing<Vec<u16>>, FormatError> {
        let mut out = Zeroizing::new(Vec::with_capacity(input.len()));
        for (position, c) in input.chars().enumerate() {
            out.push(
                self.numeral(c)
                    .ok_or(FormatError::NotInAlphabet { position })?,
            );
        }
        self.check_domain(out.len())?;
        Ok(out)
    }

    fn string(&self, numerals: &[u16]) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(numerals.len()));
        for n in numerals {
            out.push(self.chars[usize::from(*n)]);
        }
        out
    }
}

/// True if `radix^len >= min`.
pub fn domain_at_least(radix: u32, len: usize, min: u128) -> bool {
    let mut domain: u128 = 1;
    for _ in 0..len {
        domain = domain.saturating_mul(u128::from(radix));
        if domain >= min {
            return true;
        }
    }
    domain >= min
}

/// FF1 (NIST SP 800-38G) with AES-256 under one key, over one alphabet.
pub struct Ff1 {
    cipher: FF1<Aes256>,
    alphabet: Alphabet,
}

impl Ff1 {
    /// FF1 keyed with `key` (AES-256) over `alphabet`.
    pub fn new(key: &SecretKey, alphabet: Alphabet) -> Self {
        let cipher = FF1::<Aes256>::new(key.expose(), alphabet.radix())
            .expect("an alphabet's radix is within FF1's 2..=65536");
        Ff1 { cipher, alphabet }
    }

    /// The alphabet.
    pub fn alphabet(&self) -> &Alphabet {
        &self.alphabet
    }

    /// Encrypts `input` (characters of the alphabet) under `tweak`.
    pub fn encrypt(&self, tweak: &[u8], input: &str) -> Result<Zeroizing<String>, FormatError> {
        self.run(tweak, input, true)
    }

    /// Decrypts what [`Ff1::encrypt`] made under the same tweak.
    pub fn decrypt(&self, tweak: &[u8], input: &str) -> Result<Zeroizing<String>, FormatError> {
        self.run(tweak, input, false)
    }

    fn run(
        &self,
        tweak: &[u8],
        input: &str,
        encrypt: bool,
    ) -> Result<Zeroizing<String>, FormatError> {
        let numerals = self.alphabet.numerals(input)?;
        let numerals = FlexibleNumeralString::from(numerals.to_vec());
        let out = if encrypt {
            self.cipher.encrypt(tweak, &numerals)
        } else {
            self.cipher.decrypt(tweak, &numerals)
        }
        // The length and the radix were checked above; FF1 refuses nothing else.
        .map_err(|_| FormatError::TooLong {
            len: input.chars().count(),
        })?;
        let mut out: Vec<u16> = out.into();
        let text = self.alphabet.string(&out);
        out.zeroize();
        Ok(text)
    }
}

impl std::fmt::Debug for Ff1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ff1")
            .field("key", &"[REDACTED]")
            .field("radix", &self.alphabet.radix())
            .finish()
    }
}

/// A keyed PRF shaped like its input: the same length over the same alphabet. Deterministic
/// (one input, one output under a key and tweak), irreversible (there is no inverse, and two
/// inputs may share an output). HMAC-SHA256 over LP("tresor-pseudonym-v1") ‖ LP(tweak) ‖
/// LP(input) ‖ u32 counter, read as a stream of 16-bit words, each kept only below the largest
/// multiple of the radix (no modulo bias).
pub struct Pseudonym {
    mac: Hmac<Sha256>,
}

impl Pseudonym {
    /// The PRF keyed with `key`.
    pub fn new(key: &SecretKey) -> Self {
        Pseudonym {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose())
                .expect("HMAC accepts any key length"),
        }
    }

    /// The pseudonym of `input` (characters of `alphabet`) under `tweak`.
    pub fn map(
        &self,
        alphabet: &Alphabet,
        tweak: &[u8],
        input: &str,
    ) -> Result<Zeroizing<String>, FormatError> {
        let numerals = alphabet.numerals(input)?;
        let radix = alphabet.radix();
        let limit = (1u32 << 16) - ((1u32 << 16) % radix);
        let mut out = Zeroizing::new(Vec::with_capacity(numerals.len()));
        let mut counter = 0u32;
        let message = LengthPrefixed::new()
            .bytes(b"tresor-pseudonym-v1")
            .bytes(tweak)
            .bytes(input.as_bytes());
        while out.len() < numerals.len() {
            let mut mac = self.mac.clone();
            mac.update(message.as_slice());
            mac.update(&counter.to_be_bytes());
            let block = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
            for pair in block.chunks_exact(2) {
                let word = u32::from(u16::from_be_bytes([pair[0], pair[1]]));
                if word < limit && out.len() < numerals.len() {
                    out.push(u16::try_from(word % radix).expect("below the radix"));
                }
            }
            counter += 1;
        }
        Ok(alphabet.string(&out))
    }
}

impl std::fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonym([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NIST_KEY_256: &str = "2b7e151628aed2a6abf7158809cf4f3cef4359d8d580aa4f7f036d6f04fc6a94";
    const BASE36: &str = "0123456789abcdefghijklmnopqrstuvwxyz";

    fn key(hex: &str) -> SecretKey {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        SecretKey::from_slice(&bytes).unwrap()
    }

    /// NIST SP 800-38G FF1 samples 7, 8 and 9 (AES-256; the vault uses AES-256 only), through
    /// [`Ff1`], the type the transform engine calls.
    #[test]
    fn nist_ff1_aes256_samples() {
        let samples: [(&str, &[u8], &str, &str); 3] = [
            ("0123456789", b"", "0123456789", "6657667009"),
            ("0123456789", b"9876543210", "0123456789", "1001623463"),
            (
                BASE36,
                b"7777pqrs777",
                "0123456789abcdefghi",
                "xs8a0azh2avyalyzuwd",
            ),
        ];
        for (alphabet, tweak, plain, cipher) in samples {
            let ff1 = Ff1::new(&key(NIST_KEY_256), Alphabet::new(alphabet).unwrap());
            assert_eq!(ff1.encrypt(tweak, plain).unwrap().as_str(), cipher);
            assert_eq!(ff1.decrypt(tweak, cipher).unwrap().as_str(), plain);
        }
    }

    #[test]
    fn a_domain_under_a_million_is_refused() {
        let digits = Alphabet::new("0123456789").unwrap();
        assert_eq!(
            digits.check_domain(5),
            Err(FormatError::DomainTooSmall { radix: 10, len: 5 })
        );
        assert_eq!(digits.check_domain(6), Ok(()));
        let ff1 = Ff1::new(&SecretKey::random(), digits.clone());
        assert!(matches!(
            ff1.encrypt(b"", "12345"),
            Err(FormatError::DomainTooSmall { .. })
        ));
        assert!(ff1.encrypt(b"", "123456").is_ok());
        let p = Pseudonym::new(&SecretKey::random());
        assert!(matches!(
            p.map(&digits, b"", "12345"),
            Err(FormatError::DomainTooSmall { .. })
        ));
        // 2^20 > 10^6 > 2^19.
        let bits = Alphabet::new("01").unwrap();
        assert!(bits.check_domain(19).is_err());
        assert!(bits.check_domain(20).is_ok());
        assert!(matches!(
            digits.check_domain(MAX_LEN + 1),
            Err(FormatError::TooLong { .. })
        ));
    }

    #[test]
    fn bad_alphabets_and_inputs_are_refused_without_the_value() {
        assert!(Alphabet::new("0").is_err());
        assert!(Alphabet::new("0120").is_err());
        let ff1 = Ff1::new(&SecretKey::random(), Alphabet::new("0123456789").unwrap());
        let e = ff1.encrypt(b"", "1234x67890").unwrap_err();
        assert_eq!(e, FormatError::NotInAlphabet { position: 4 });
        assert!(!e.to_string().contains("1234"));
        assert_eq!(
            format!("{ff1:?}"),
            r#"Ff1 { key: "[REDACTED]", radix: 10 }"#
        );
    }

    #[test]
    fn non_ascii_alphabets_work() {
        let alphabet = Alphabet::new("αβγδεζηθικλμ").unwrap();
        let ff1 = Ff1::new(&SecretKey::random(), alphabet.clone());
        let c = ff1.encrypt(b"t", "αβγδεζηθ").unwrap();
        assert!(c.chars().all(|ch| alphabet.contains(ch)));
        assert_eq!(ff1.decrypt(b"t", &c).unwrap().as_str(), "αβγδεζηθ");
    }

    #[test]
    fn pseudonyms_are_shaped_deterministic_and_keyed() {
        let digits = Alphabet::new("0123456789").unwrap();
        let k = SecretKey::random();
        let p = Pseudonym::new(&k);
        let a = p.map(&digits, b"role", "123456789").unwrap();
        assert_eq!(a.len(), 9);
        assert!(a.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(a, p.map(&digits, b"role", "123456789").unwrap());
        assert_ne!(a, p.map(&digits, b"other", "123456789").unwrap());
        assert_ne!(
            a,
            Pseudonym::new(&SecretKey::random())
                .map(&digits, b"role", "123456789")
                .unwrap()
        );
    }

    proptest::proptest! {
        #[test]
        fn ff1_round_trips(s in "[0-9a-z]{4,40}", tweak in proptest::collection::vec(0u8.., 0..16)) {
            let ff1 = Ff1::new(&key(NIST_KEY_256), Alphabet::new(BASE36).unwrap());
            let c = ff1.encrypt(&tweak, &s).unwrap();
            proptest::prop_assert_eq!(c.len(), s.len());
            let back = ff1.decrypt(&tweak, &c).unwrap();
            proptest::prop_assert_eq!(back.as_str(), s.as_str());
        }
    }
}
