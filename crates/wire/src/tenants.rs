//! Tenants as the vault describes them.

use serde::{Deserialize, Serialize};

/// What the vault tells about a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    /// Name.
    pub name: String,
    /// Protection level, 1–3.
    pub level: u8,
    /// Creation time (Unix seconds).
    pub created_at: u64,
    /// Current KEK version (0 at level 1).
    pub kek_version: u32,
    /// Level 3: waiting for one of its custodians.
    pub locked: bool,
    /// Level 3: the tenant's custodians.
    pub custodians: Vec<String>,
    /// Level 3: custodians needed to unlock it and to approve what only they may (k).
    #[serde(default)]
    pub threshold: u8,
    /// Level 3, while locked: the custodians whose shares the current unlock round holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submitted: Vec<String>,
    /// Number of keys.
    pub keys: usize,
    /// Seconds between an approved shred and destruction.
    #[serde(default)]
    pub deletion_window: u64,
    /// While an approved shred waits for its window to end: when it was approved (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_scheduled_at: Option<u64>,
    /// While an approved shred waits: when the tenant is destroyed (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_at: Option<u64>,
}
