//! The text form shared by ciphertexts and HMAC tokens: `tresor:v<N>:<base64>` (docs/format.md).
//!
//! `N` is the data key version (decimal, no leading zeros, 1 ≤ N < 2³²) and the base64 is the
//! standard alphabet with padding.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::CiphertextError;

const PREFIX: &str = "tresor:v";
/// Vault's and OpenBao's prefix, read for imported versions only (docs/format.md).
const VAULT_PREFIX: &str = "vault:v";

/// Who wrote a ciphertext: Tresor, or Vault/OpenBao under a key since imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `tresor:v<N>:`.
    Tresor,
    /// `vault:v<N>:`.
    Vault,
}

/// Splits a `tresor:v<N>:` or `vault:v<N>:` text into its origin, version and decoded payload.
pub(crate) fn parse_any(text: &str) -> Result<(Origin, u32, Vec<u8>), CiphertextError> {
    match text.strip_prefix(VAULT_PREFIX) {
        Some(rest) => {
            let (version, payload) = rest.split_once(':').ok_or(CiphertextError::WrongPrefix)?;
            let version = parse_version(version)?;
            let payload = STANDARD
                .decode(payload)
                .map_err(|_| CiphertextError::NotBase64)?;
            Ok((Origin::Vault, version, payload))
        }
        None => parse(text).map(|(version, payload)| (Origin::Tresor, version, payload)),
    }
}

/// Splits `text` into its version and decoded payload.
pub(crate) fn parse(text: &str) -> Result<(u32, Vec<u8>), CiphertextError> {
    let rest = text
        .strip_prefix(PREFIX)
        .ok_or(CiphertextError::WrongPrefix)?;
    let (version, payload) = rest.split_once(':').ok_or(CiphertextError::WrongPrefix)?;
    let version = parse_version(version)?;
    let payload = STANDARD
        .decode(payload)
        .map_err(|_| CiphertextError::NotBase64)?;
    Ok((version, payload))
}

fn parse_version(text: &str) -> Result<u32, CiphertextError> {
    let bad = || CiphertextError::BadVersion(text.chars().take(12).collect());
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u32>().map_err(|_| bad())
}

/// Formats a version and payload.
pub(crate) fn format(version: u32, payload: &[u8]) -> String {
    let mut out = String::with_capacity(PREFIX.len() + 11 + payload.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    out.push_str(itoa(version, &mut [0u8; 10]));
    out.push(':');
    STANDARD.encode_string(payload, &mut out);
    out
}

fn itoa(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for version in [1, 9, 10, 4_294_967_295] {
            let text = format(version, b"\x00\x01payload");
            assert_eq!(
                parse(&text).unwrap(),
                (version, b"\x00\x01payload".to_vec())
            );
        }
        assert_eq!(format(12, b"abc"), "tresor:v12:YWJj");
    }

    #[test]
    fn vault_texts_are_read_with_their_origin() {
        assert_eq!(
            parse_any("vault:v3:YWJj").unwrap(),
            (Origin::Vault, 3, b"abc".to_vec())
        );
        assert_eq!(
            parse_any("tresor:v3:YWJj").unwrap(),
            (Origin::Tresor, 3, b"abc".to_vec())
        );
        use CiphertextError::*;
        assert_eq!(parse_any("vault:v0:YWJj"), Err(BadVersion("0".into())));
        assert_eq!(parse_any("vault:v1"), Err(WrongPrefix));
        assert_eq!(parse_any("vault:v1:Y*"), Err(NotBase64));
        assert_eq!(parse_any("Vault:v1:YWJj"), Err(WrongPrefix));
    }

    #[test]
    fn rejections_are_specific() {
        use CiphertextError::*;
        assert_eq!(parse("vault:v1:YWJj"), Err(WrongPrefix));
        assert_eq!(parse("tresor:v1"), Err(WrongPrefix));
        assert_eq!(parse(""), Err(WrongPrefix));
        assert_eq!(parse("tresor:v0:YWJj"), Err(BadVersion("0".into())));
        assert_eq!(parse("tresor:v01:YWJj"), Err(BadVersion("01".into())));
        assert_eq!(parse("tresor:v-1:YWJj"), Err(BadVersion("-1".into())));
        assert_eq!(
            parse("tresor:v4294967296:YWJj"),
            Err(BadVersion("4294967296".into()))
        );
        assert_eq!(parse("tresor:vx:YWJj"), Err(BadVersion("x".into())));
        assert_eq!(parse("tresor:v1:YWJj*"), Err(NotBase64));
        assert_eq!(parse("tresor:v1:YWJ"), Err(NotBase64));
    }
}
