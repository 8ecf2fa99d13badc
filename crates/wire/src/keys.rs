//! Keys as callers configure them.

use serde::{Deserialize, Serialize};

/// A change to a key's configuration; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfigUpdate {
    /// New `KeyConfig::min_decryption_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_decryption_version: Option<u32>,
    /// New `KeyConfig::min_encryption_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_encryption_version: Option<u32>,
    /// New `KeyConfig::deletion_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_allowed: Option<bool>,
    /// New `KeyConfig::exportable` (only `true` is a change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exportable: Option<bool>,
    /// New `KeyConfig::auto_rotate_period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rotate_period: Option<u64>,
    /// New `KeyConfig::deletion_window` (seconds; 0 destroys at once, which needs approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_window: Option<u64>,
}
