//! The key hierarchy below the barrier (docs/format.md, "The key hierarchy"): tenants with their
//! protection level and key-encryption key, and named, versioned data keys with their
//! configuration and the ciphertext format they produce.

pub(crate) mod ciphertext;
pub mod config;
pub(crate) mod kek;
pub(crate) mod records;
pub(crate) mod ring;

pub use config::{HmacAlgorithm, KeyConfig, KeyConfigUpdate, KeySpec};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Names that cannot be tenants because they are API mounts of their own.
pub const RESERVED_TENANT_NAMES: &[&str] = &["sys", "pins", "auth", "audit", "identity", "metrics"];

/// How many wrapping layers protect a tenant's data keys.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum ProtectionLevel {
    /// Data keys are protected by the barrier only.
    One,
    /// Data keys are wrapped by the tenant's KEK, which the barrier protects (the default).
    #[default]
    Two,
    /// As two, and the KEK is also wrapped by a custody key that only the tenant's own
    /// custodians hold: after every unseal the tenant stays locked until one of them unlocks it.
    Three,
}

impl TryFrom<u8> for ProtectionLevel {
    type Error = String;
    fn try_from(level: u8) -> Result<Self, String> {
        match level {
            1 => Ok(ProtectionLevel::One),
            2 => Ok(ProtectionLevel::Two),
            3 => Ok(ProtectionLevel::Three),
            other => Err(format!("protection level must be 1, 2 or 3, not {other}")),
        }
    }
}

impl From<ProtectionLevel> for u8 {
    fn from(level: ProtectionLevel) -> u8 {
        match level {
            ProtectionLevel::One => 1,
            ProtectionLevel::Two => 2,
            ProtectionLevel::Three => 3,
        }
    }
}

/// Checks a tenant name: `[a-z0-9][a-z0-9_-]{0,62}` and not reserved.
pub fn validate_tenant_name(name: &str) -> Result<(), Error> {
    if !is_name(
        name,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-',
    ) {
        return Err(Error::invalid(
            "tenant",
            format!(
                "`{}` is not a valid tenant name: use 1–63 of a-z 0-9 _ -, starting with a letter or digit",
                Shown(name)
            ),
        ));
    }
    if RESERVED_TENANT_NAMES.contains(&name) {
        return Err(Error::invalid("tenant", format!("`{name}` is reserved")));
    }
    Ok(())
}

/// Checks a key name: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
pub fn validate_key_name(name: &str) -> Result<(), Error> {
    if is_name(
        name,
        128,
        |c| c.is_ascii_alphanumeric(),
        |c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-',
    ) {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "`{}` is not a valid key name: use 1–128 of A-Z a-z 0-9 . _ -, starting with a letter or digit",
                Shown(name)
            ),
        ))
    }
}

/// Checks an environment name (`production`, `test`, …): same rule as tenant names.
pub fn validate_environment_name(name: &str) -> Result<(), Error> {
    if is_name(
        name,
        63,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-',
    ) {
        Ok(())
    } else {
        Err(Error::invalid(
            "environment",
            format!(
                "`{}` is not a valid environment name: use 1–63 of a-z 0-9 _ -",
                Shown(name)
            ),
        ))
    }
}

fn is_name(
    name: &str,
    max: usize,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
) -> bool {
    let mut chars = name.chars();
    name.len() <= max && chars.next().is_some_and(first) && chars.all(rest)
}

/// Shows a refused name in an error without letting a huge or control-laden input through.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown: String = self
            .0
            .chars()
            .take(64)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if self.0.chars().count() > 64 {
            shown.push('…');
        }
        f.write_str(&shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        for ok in ["payments", "a", "dev-1", "x_y", &"a".repeat(63)] {
            assert!(validate_tenant_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Payments",
            "-a",
            "_a",
            "a/b",
            "a.b",
            "sys",
            "pins",
            "metrics",
            &"a".repeat(64),
            "ä",
        ] {
            assert!(validate_tenant_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_names() {
        for ok in ["card-pan", "IBAN", "a.b_c-d", &"k".repeat(128)] {
            assert!(validate_key_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", &"k".repeat(129), "a\u{0}"] {
            assert!(validate_key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refused_names_are_shown_safely() {
        let err = validate_key_name(&format!("{}\n", "x".repeat(100)))
            .unwrap_err()
            .to_string();
        assert!(err.contains('…') && !err.contains('\n'), "{err}");
    }
}
