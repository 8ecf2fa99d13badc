//! What the vault tells about pinning apps and their keys.

use serde::{Deserialize, Serialize};

use super::AppSpec;
use super::manifest::{ChainLink, PinState};

/// Why a key became active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationMode {
    /// After being published for the app's `max_update_lag`.
    Lag,
    /// Earlier, with custodian approval (dual control).
    Override,
    /// Promoted because the serving key was compromised.
    Emergency,
}

/// A pinned key as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinKeyInfo {
    /// Key id within the app.
    pub kid: String,
    /// Algorithm.
    pub algorithm: String,
    /// `generated`, `certificate`, `csr` or `public-key`.
    pub origin: String,
    /// base64(SHA-256(DER SubjectPublicKeyInfo)).
    pub pin: String,
    /// Life-cycle state.
    pub state: PinState,
    /// When it was added.
    pub created_at: u64,
    /// When it first appeared in a signed manifest.
    pub published_at: Option<u64>,
    /// Earliest time it may become active without an override.
    pub activatable_at: Option<u64>,
    /// When it became active.
    pub activated_at: Option<u64>,
    /// How it became active.
    pub activation: Option<ActivationMode>,
    /// When it was retired or compromised.
    pub ended_at: Option<u64>,
    /// Whether the vault holds its private key.
    pub private_key: bool,
}

/// An app as shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinApp {
    /// Name.
    pub name: String,
    /// Settings.
    #[serde(flatten)]
    pub spec: AppSpec,
    /// Keys in every state.
    pub keys: Vec<PinKeyInfo>,
    /// Latest signed manifest version (none before the first).
    pub manifest_version: Option<u64>,
    /// Its issued_at.
    pub manifest_issued_at: Option<u64>,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinChange {
    /// The key acted on (none for a plain re-issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PinKeyInfo>,
    /// Keys the change also touched (a promoted backup, a new backup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<PinKeyInfo>,
    /// The manifest version signed for it; none while the app has fewer pins than its first
    /// manifest needs.
    pub manifest_version: Option<u64>,
}

/// The manifest signing key chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestKeyInfo {
    /// Id of the current key.
    pub keyid: String,
    /// The current key as PEM SubjectPublicKeyInfo.
    pub public_key_pem: String,
    /// Every key from the first.
    pub key_chain: Vec<ChainLink>,
}
