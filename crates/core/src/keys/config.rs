//! Per-key configuration, with the rules of Vault's transit engine (`keys/:name/config`,
//! `keys/:name/trim`) so that Vault clients see the behaviour they expect.

use serde::{Deserialize, Serialize};

use crate::Error;
pub use tresor_wire::keys::KeyConfigUpdate;

/// Shortest accepted `auto_rotate_period` (one hour, as in Vault).
pub const MIN_AUTO_ROTATE_PERIOD: u64 = 3600;

/// A key's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Each `context` gets its own key, derived with HKDF-SHA256; `context` is then required.
    pub derived: bool,
    /// Same plaintext and context give the same ciphertext (for equality lookups). Needs `derived`.
    pub convergent_encryption: bool,
    /// Key material may be exported. Once enabled it cannot be disabled.
    pub exportable: bool,
    /// The key may be deleted.
    pub deletion_allowed: bool,
    /// Ciphertexts of older versions are refused.
    pub min_decryption_version: u32,
    /// Encryption with older versions is refused; 0 means "latest only by default".
    pub min_encryption_version: u32,
    /// Versions below this have been destroyed; 0 means none has.
    pub min_available_version: u32,
    /// Rotate automatically after this many seconds; 0 disables.
    pub auto_rotate_period: u64,
    /// Seconds between an approved deletion and the key's destruction (docs/custody.md,
    /// "Scheduled deletion"); absent means [`DEFAULT_DELETION_WINDOW`], 0 destroys at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_window: Option<u64>,
}

/// Options for creating a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// See [`KeyConfig::derived`].
    pub derived: bool,
    /// See [`KeyConfig::convergent_encryption`].
    pub convergent_encryption: bool,
    /// See [`KeyConfig::exportable`].
    pub exportable: bool,
    /// See [`KeyConfig::auto_rotate_period`].
    pub auto_rotate_period: u64,
    /// See [`KeyConfig::deletion_window`].
    pub deletion_window: Option<u64>,
}

impl KeySpec {
    pub(crate) fn into_config(self) -> Result<KeyConfig, Error> {
        if self.convergent_encryption && !self.derived {
            return Err(Error::invalid(
                "convergent_encryption",
                "convergent encryption requires derived: true (each context gets its own deterministic key)",
            ));
        }
        check_auto_rotate_period(self.auto_rotate_period)?;
        if let Some(window) = self.deletion_window {
            check_deletion_window(window)?;
        }
        Ok(KeyConfig {
            derived: self.derived,
            convergent_encryption: self.convergent_encryption,
            exportable: self.exportable,
            deletion_allowed: false,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            auto_rotate_period: self.auto_rotate_period,
            deletion_window: self.deletion_window,
        })
    }
}

impl KeyConfig {
    /// The configuration after this update, or why it is refused. Follows Vault: a
    /// `min_decryption_version` of 0 means 1, `exportable: false` on an exportable key is a
    /// no-op (export cannot be revoked), and lowering `min_decryption_version` is allowed (the
    /// caller decides whether it needs approval, see [`KeyConfig::weakened_by`]).
    pub fn updated(
        &self,
        update: &KeyConfigUpdate,
        latest_version: u32,
    ) -> Result<KeyConfig, Error> {
        let current = self;
        let mut next = current.clone();
        if let Some(min) = update.min_decryption_version {
            let min = min.max(1);
            if min > latest_version {
                return Err(Error::invalid(
                    "min_decryption_version",
                    format!("cannot be {min}: the latest key version is {latest_version}"),
                ));
            }
            next.min_decryption_version = min;
        }
        if let Some(min) = update.min_encryption_version {
            if min > latest_version {
                return Err(Error::invalid(
                    "min_encryption_version",
                    format!("cannot be {min}: the latest key version is {latest_version}"),
                ));
            }
            next.min_encryption_version = min;
        }
        if next.min_encryption_version != 0
            && next.min_encryption_version < next.min_decryption_version
        {
            return Err(Error::invalid(
                "min_encryption_version",
                format!(
                    "{} is below min_decryption_version {}: new ciphertexts would not decrypt",
                    next.min_encryption_version, next.min_decryption_version
                ),
            ));
        }
        if let Some(allowed) = update.deletion_allowed {
            next.deletion_allowed = allowed;
        }
        if update.exportable == Some(true) {
            next.exportable = true;
        }
        if let Some(period) = update.auto_rotate_period {
            check_auto_rotate_period(period)?;
            next.auto_rotate_period = period;
        }
        if let Some(window) = update.deletion_window {
            check_deletion_window(window)?;
            next.deletion_window = Some(window);
        }
        let trimmed_below = next.min_available_version;
        if trimmed_below > 0 {
            if next.min_decryption_version < trimmed_below {
                return Err(Error::invalid(
                    "min_decryption_version",
                    format!(
                        "cannot be {}: versions below {trimmed_below} were destroyed by trim",
                        next.min_decryption_version
                    ),
                ));
            }
            if next.min_encryption_version < trimmed_below {
                return Err(Error::invalid(
                    "min_encryption_version",
                    format!(
                        "cannot be {}: versions below {trimmed_below} were destroyed by trim, so it must stay at least {trimmed_below}",
                        next.min_encryption_version
                    ),
                ));
            }
        }
        Ok(next)
    }

    /// Parts of this update that weaken protection and so need custodian approval
    /// (docs/custody.md): lowering `min_decryption_version` and enabling export.
    pub fn weakened_by(&self, update: &KeyConfigUpdate) -> Vec<&'static str> {
        let current = self;
        let mut weakened = Vec::new();
        if update
            .min_decryption_version
            .is_some_and(|min| min < current.min_decryption_version)
        {
            weakened.push("lowers min_decryption_version");
        }
        if update.exportable == Some(true) && !current.exportable {
            weakened.push("makes the key exportable");
        }
        if update.deletion_window == Some(0) && current.deletion_window() != 0 {
            weakened.push("sets deletion_window to 0 (a deletion destroys the key at once)");
        }
        weakened
    }
}

impl KeyConfig {
    /// The deletion window in force: the configured one or [`DEFAULT_DELETION_WINDOW`].
    pub fn deletion_window(&self) -> u64 {
        self.deletion_window.unwrap_or(DEFAULT_DELETION_WINDOW)
    }
}

/// The deletion window of keys and tenants that set none: seven days, as in AWS KMS's minimum
/// and GCP KMS's default scheduled destruction.
pub const DEFAULT_DELETION_WINDOW: u64 = 7 * 86_400;

/// The longest deletion window: thirty days.
pub const MAX_DELETION_WINDOW: u64 = 30 * 86_400;

/// A deletion window must be 0 (destroy at once) to thirty days.
pub fn check_deletion_window(window: u64) -> Result<(), Error> {
    if window > MAX_DELETION_WINDOW {
        return Err(Error::invalid(
            "deletion_window",
            format!("{window} seconds is longer than 30 days ({MAX_DELETION_WINDOW} seconds)"),
        ));
    }
    Ok(())
}

/// Validates a trim to `min_available_version` and returns the new configuration.
pub fn trim(current: &KeyConfig, min_available_version: u32) -> Result<KeyConfig, Error> {
    let field = "min_available_version";
    if min_available_version == 0 {
        return Err(Error::invalid(field, "must be at least 1"));
    }
    if min_available_version < current.min_available_version {
        return Err(Error::invalid(
            field,
            format!(
                "cannot go back from {} to {min_available_version}: trimmed versions are gone",
                current.min_available_version
            ),
        ));
    }
    if current.min_encryption_version == 0 {
        return Err(Error::invalid(
            field,
            "cannot be set while min_encryption_version is 0 (set it first)",
        ));
    }
    if min_available_version > current.min_encryption_version {
        return Err(Error::invalid(
            field,
            format!(
                "{min_available_version} is above min_encryption_version {}",
                current.min_encryption_version
            ),
        ));
    }
    if min_available_version > current.min_decryption_version {
        return Err(Error::invalid(
            field,
            format!(
                "{min_available_version} is above min_decryption_version {}",
                current.min_decryption_version
            ),
        ));
    }
    let mut next = current.clone();
    next.min_available_version = min_available_version;
    Ok(next)
}

fn check_auto_rotate_period(period: u64) -> Result<(), Error> {
    if period != 0 && period < MIN_AUTO_ROTATE_PERIOD {
        return Err(Error::invalid(
            "auto_rotate_period",
            "must be 0 (never) or at least one hour",
        ));
    }
    Ok(())
}

/// Hash functions offered by the `hmac` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HmacAlgorithm {
    /// HMAC-SHA-224.
    Sha2_224,
    /// HMAC-SHA-256 (the default).
    #[default]
    Sha2_256,
    /// HMAC-SHA-384.
    Sha2_384,
    /// HMAC-SHA-512.
    Sha2_512,
}

impl std::str::FromStr for HmacAlgorithm {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self, Error> {
        match name {
            "sha2-224" => Ok(HmacAlgorithm::Sha2_224),
            "sha2-256" => Ok(HmacAlgorithm::Sha2_256),
            "sha2-384" => Ok(HmacAlgorithm::Sha2_384),
            "sha2-512" => Ok(HmacAlgorithm::Sha2_512),
            other => Err(Error::invalid(
                "algorithm",
                format!(
                    "`{}` is not supported: use sha2-224, sha2-256, sha2-384 or sha2-512",
                    other.chars().take(32).collect::<String>()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KeyConfig {
        KeySpec::default().into_config().unwrap()
    }

    #[test]
    fn convergent_needs_derived_and_rotation_period_floor() {
        assert!(
            KeySpec {
                convergent_encryption: true,
                ..Default::default()
            }
            .into_config()
            .is_err()
        );
        assert!(
            KeySpec {
                convergent_encryption: true,
                derived: true,
                ..Default::default()
            }
            .into_config()
            .is_ok()
        );
        assert!(
            KeySpec {
                auto_rotate_period: 59,
                ..Default::default()
            }
            .into_config()
            .is_err()
        );
        assert!(
            KeySpec {
                auto_rotate_period: 3600,
                ..Default::default()
            }
            .into_config()
            .is_ok()
        );
    }

    #[test]
    fn min_versions_follow_vault_rules() {
        let c = config();
        let up = |u: KeyConfigUpdate, latest| c.updated(&u, latest);
        assert!(
            up(
                KeyConfigUpdate {
                    min_decryption_version: Some(4),
                    ..Default::default()
                },
                3
            )
            .is_err()
        );
        let zero = up(
            KeyConfigUpdate {
                min_decryption_version: Some(0),
                ..Default::default()
            },
            3,
        )
        .unwrap();
        assert_eq!(zero.min_decryption_version, 1, "0 means 1, as in Vault");
        assert!(
            up(
                KeyConfigUpdate {
                    min_encryption_version: Some(4),
                    ..Default::default()
                },
                3
            )
            .is_err()
        );
        let both = up(
            KeyConfigUpdate {
                min_decryption_version: Some(2),
                min_encryption_version: Some(3),
                ..Default::default()
            },
            3,
        )
        .unwrap();
        assert_eq!(
            (both.min_decryption_version, both.min_encryption_version),
            (2, 3)
        );
        assert!(
            up(
                KeyConfigUpdate {
                    min_decryption_version: Some(3),
                    min_encryption_version: Some(2),
                    ..Default::default()
                },
                3
            )
            .is_err()
        );
    }

    #[test]
    fn export_is_one_way_and_weakenings_are_named() {
        let mut c = config();
        c.min_decryption_version = 3;
        let export = KeyConfigUpdate {
            exportable: Some(true),
            ..Default::default()
        };
        assert_eq!(c.weakened_by(&export), ["makes the key exportable"]);
        let exported = c.updated(&export, 3).unwrap();
        let revoke = KeyConfigUpdate {
            exportable: Some(false),
            ..Default::default()
        };
        let revoke = exported.updated(&revoke, 3).unwrap();
        assert!(
            revoke.exportable,
            "export cannot be revoked; like Vault, false is a no-op"
        );
        let lower = KeyConfigUpdate {
            min_decryption_version: Some(2),
            ..Default::default()
        };
        assert_eq!(c.weakened_by(&lower), ["lowers min_decryption_version"]);
        let raise = KeyConfigUpdate {
            min_decryption_version: Some(3),
            ..Default::default()
        };
        assert!(c.weakened_by(&raise).is_empty());
    }

    #[test]
    fn trim_rules() {
        let mut c = config();
        assert!(trim(&c, 1).is_err(), "min_encryption_version unset");
        c.min_encryption_version = 3;
        c.min_decryption_version = 2;
        assert!(trim(&c, 0).is_err());
        assert!(trim(&c, 3).is_err(), "above min_decryption_version");
        let trimmed = trim(&c, 2).unwrap();
        assert_eq!(trimmed.min_available_version, 2);
        assert!(trim(&trimmed, 1).is_err(), "cannot go back");
        assert!(
            trim(&trimmed, 2).is_ok(),
            "repeating the current value is fine"
        );
        let back_to_zero = KeyConfigUpdate {
            min_encryption_version: Some(0),
            ..Default::default()
        };
        assert!(
            trimmed.updated(&back_to_zero, 3).is_err(),
            "after a trim min_encryption_version stays set"
        );
        let below = KeyConfigUpdate {
            min_decryption_version: Some(1),
            ..Default::default()
        };
        assert!(
            trimmed.updated(&below, 3).is_err(),
            "destroyed versions cannot be allowed again"
        );
    }
}
