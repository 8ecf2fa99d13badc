//! Pinned-certificate rotation manifests (docs/pinning.md).
//!
//! Apps pin the SPKI SHA-256 of a server *key*. The vault keeps, per app, the keys that may be
//! pinned and their life cycle (`staged → active → retiring → retired`, plus `compromised`),
//! and signs a versioned manifest of the accepted pins after every change and before the last
//! one expires. Before anything is signed the invariants that keep apps from being bricked are
//! checked (see [`Rule`]); every signed manifest is appended to a hash-chained log.
//!
//! This crate holds what apps, operators and TLS terminators see of pinning (the manifest and
//! its verification, exports, pins of keys and certificates, delivered keys, the log); the
//! vault side (state, invariants, signing) is the server's `pins` service.
//!
//! - [`spki`]: pins of certificates, CSRs and public keys.
//! - [`manifest`]: the manifest, its DSSE-style envelope, and client-side [`verify`].
//! - [`export`](mod@export): Android, TrustKit, `NSPinnedDomains`, OkHttp and JSON renderings.
//! - [`keys`]: pinned key pairs; [`delivery`]: private keys sealed to a TLS terminator.
//! - [`log`]: the hash-chained log of every signed manifest.

pub mod delivery;
pub mod export;
pub mod keys;
pub mod log;
pub mod manifest;
pub mod spki;
mod types;

use serde::{Deserialize, Serialize};

pub use delivery::{DeliveredKey, open_delivered_key, pem_key_pin};
pub use export::{ExportFormat, export};
pub use keys::KeyAlgorithm;
pub use log::{LogEntry, LogError, verify_log};
pub use manifest::{
    ClientState, Envelope, Host, Manifest, ManifestPin, PinState, SubdomainScope, Verified,
    VerifyError, manifest_key_pem, parse_manifest_key, verify,
};
pub use spki::{KeySource, PublicKeyInfo, pin_of_spki, public_key_from};
pub use types::{ActivationMode, ManifestKeyInfo, PinApp, PinChange, PinKeyInfo};

/// An invariant checked before a manifest is signed. Every refusal names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Every host has at least two accepted pins.
    TwoPinsPerHost,
    /// At least one accepted pin is a backup that is not serving (`staged`).
    BackupNotServing,
    /// A pin becomes active only after it has been published for `max_update_lag`.
    PublishedForUpdateLag,
    /// An active pin is never removed from the manifest (it goes through `retiring`).
    ActiveNeverRemoved,
    /// Versions and issue times strictly increase.
    VersionsIncrease,
    /// A state change must follow the life cycle.
    LifeCycle,
}

impl Rule {
    /// The rule's name, as used in refusals.
    pub fn name(self) -> &'static str {
        match self {
            Rule::TwoPinsPerHost => "two-pins-per-host",
            Rule::BackupNotServing => "backup-not-serving",
            Rule::PublishedForUpdateLag => "published-for-update-lag",
            Rule::ActiveNeverRemoved => "active-never-removed",
            Rule::VersionsIncrease => "versions-increase",
            Rule::LifeCycle => "life-cycle",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a pinning operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// No app by that name.
    #[error("pinning app `{0}` does not exist")]
    AppNotFound(String),
    /// An app by that name exists already.
    #[error("pinning app `{0}` already exists")]
    AppExists(String),
    /// No key with that id in the app.
    #[error("app `{app}` has no pinned key `{kid}`")]
    KeyNotFound {
        /// App.
        app: String,
        /// Key id.
        kid: String,
    },
    /// The same key is pinned in the app already.
    #[error("app `{app}` already pins this key as `{kid}`")]
    KeyExists {
        /// App.
        app: String,
        /// The existing key id.
        kid: String,
    },
    /// No manifest with that version (or none signed yet).
    #[error("app `{app}` has no manifest{}", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    ManifestNotFound {
        /// App.
        app: String,
        /// The version asked for.
        version: Option<u64>,
    },
    /// The change would break an invariant; nothing was changed or signed.
    #[error("refused by rule `{rule}`: {detail}")]
    Rule {
        /// The rule.
        rule: Rule,
        /// What would have broken it.
        detail: String,
    },
    /// An input is malformed or out of range.
    #[error("invalid {field}: {reason}")]
    Input {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The key's private half is not (or no longer) in the vault.
    #[error("key `{kid}` of app `{app}` has no private key in the vault: {reason}")]
    NoPrivateKey {
        /// App.
        app: String,
        /// Key id.
        kid: String,
        /// Why (imported, retired, compromised).
        reason: String,
    },
    /// A platform format cannot express the manifest.
    #[error("the {format} export cannot express this manifest: {reason}")]
    Export {
        /// The format.
        format: &'static str,
        /// What it cannot express.
        reason: String,
    },
    /// A delivered key could not be opened.
    #[error("delivered key does not open: {0}")]
    Delivery(String),
}

impl PinError {
    /// A refusal by `rule`.
    pub fn rule(rule: Rule, detail: impl Into<String>) -> Self {
        PinError::Rule {
            rule,
            detail: detail.into(),
        }
    }
}

/// What an app is created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Hosts the pins apply to.
    pub hosts: Vec<Host>,
    /// Seconds between a pin's publication and its earliest activation: longer than the
    /// slowest app update.
    pub max_update_lag: u64,
    /// Seconds a signed manifest stays fresh.
    pub expires: u64,
    /// Seconds a client may keep enforcing the last good manifest.
    pub enforce_until: u64,
}

/// Checks an app name: `[a-z0-9][a-z0-9_-]{0,62}`, not `sys`.
pub fn validate_app_name(name: &str) -> Result<(), PinError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name != "sys"
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PinError::Input {
            field: "app",
            reason: format!(
                "`{}` is not an app name: use [a-z0-9][a-z0-9_-]{{0,62}}, not `sys`",
                name.chars().take(64).collect::<String>()
            ),
        })
    }
}

/// Parses `HOST[:none|one|all]` and checks the host is a lower-case DNS name.
pub fn parse_host(text: &str) -> Result<Host, PinError> {
    let (name, scope) = match text.rsplit_once(':') {
        Some((name, scope)) => (
            name,
            match scope {
                "none" => SubdomainScope::None,
                "one" => SubdomainScope::One,
                "all" => SubdomainScope::All,
                other => {
                    return Err(PinError::Input {
                        field: "host",
                        reason: format!(
                            "subdomain scope `{}` is not none, one or all",
                            other.chars().take(16).collect::<String>()
                        ),
                    });
                }
            },
        ),
        None => (text, SubdomainScope::None),
    };
    let host = Host {
        name: name.to_owned(),
        subdomains: scope,
    };
    validate_host(&host)?;
    Ok(host)
}

/// Checks a host is a lower-case DNS name with at least two labels.
pub fn validate_host(host: &Host) -> Result<(), PinError> {
    let name = &host.name;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if name.len() > 253 || !name.contains('.') || !name.split('.').all(label_ok) {
        return Err(PinError::Input {
            field: "host",
            reason: format!(
                "`{}` is not a lower-case DNS name with at least two labels (no wildcards: use the subdomain scope)",
                name.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_names() {
        assert_eq!(
            parse_host("api.example.com:all").unwrap(),
            Host {
                name: "api.example.com".into(),
                subdomains: SubdomainScope::All
            }
        );
        assert_eq!(
            parse_host("api.example.com").unwrap().subdomains,
            SubdomainScope::None
        );
        for bad in [
            "API.example.com",
            "*.example.com",
            "localhost",
            "a..b",
            "api.example.com:two",
            "-a.b",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
        assert!(validate_app_name("ios-banking").is_ok());
        for bad in ["", "sys", "Ios", "-a", "a/b", &"a".repeat(64)] {
            assert!(validate_app_name(bad).is_err(), "{bad}");
        }
    }
}
