//! The operations a policy grants, and the scope each one lives in.

use std::fmt;
use std::str::FromStr;

/// Where an operation applies, which decides what kind of rule can grant it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On one key of one tenant: grantable per tenant with key globs.
    Key,
    /// On one tenant as a whole (no key): grantable per tenant.
    Tenant,
    /// On the vault as a whole: only an operator rule can grant it.
    Vault,
}

macro_rules! operations {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $scope:ident; )*) => {
        /// Something a principal asks the vault to do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $( $(#[$doc])* $variant, )*
        }

        impl Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant),*];

            /// The name used in policy files and audit lines.
            pub fn name(self) -> &'static str {
                match self { $(Operation::$variant => $name,)* }
            }

            /// Where the operation applies.
            pub fn scope(self) -> Scope {
                match self { $(Operation::$variant => Scope::$scope,)* }
            }
        }

        impl FromStr for Operation {
            type Err = UnknownOperation;
            fn from_str(name: &str) -> Result<Self, UnknownOperation> {
                match name {
                    $($name => Ok(Operation::$variant),)*
                    _ => Err(UnknownOperation(name.chars().take(64).collect())),
                }
            }
        }
    };
}

operations! {
    /// Create a key (`POST keys/:name`, or encrypt on a missing key).
    CreateKey = "create", Key;
    /// Read a key's metadata.
    ReadKey = "read", Key;
    /// List a tenant's keys.
    ListKeys = "list", Tenant;
    /// Delete a key (also needs custodian approval).
    DeleteKey = "delete", Key;
    /// Change a key's configuration.
    ConfigureKey = "config", Key;
    /// Rotate a key.
    RotateKey = "rotate", Key;
    /// Destroy old key versions.
    TrimKey = "trim", Key;
    /// Encrypt.
    Encrypt = "encrypt", Key;
    /// Decrypt.
    Decrypt = "decrypt", Key;
    /// Rewrap a ciphertext to a newer version.
    Rewrap = "rewrap", Key;
    /// Generate a data key.
    DataKey = "datakey", Key;
    /// Compute HMAC tokens.
    Hmac = "hmac", Key;
    /// Verify HMAC tokens.
    Verify = "verify", Key;
    /// Export key material of an exportable key.
    Export = "export", Key;
    /// Read a tenant's description.
    ReadTenant = "tenant-read", Tenant;
    /// Lock a level-3 tenant.
    LockTenant = "tenant-lock", Tenant;
    /// Unlock a level-3 tenant (also needs the tenant custodian's identity).
    UnlockTenant = "tenant-unlock", Tenant;
    /// Rotate a tenant's KEK.
    RotateTenantKek = "tenant-rotate-kek", Tenant;
    /// Change a level-3 tenant's custodians (also needs approval).
    ChangeTenantCustody = "tenant-custody", Tenant;
    /// Shred a tenant (also needs custodian approval).
    ShredTenant = "tenant-shred", Tenant;
    /// Create a tenant.
    CreateTenant = "tenant-create", Vault;
    /// List tenants.
    ListTenants = "tenant-list", Vault;
    /// Initialise the vault.
    Init = "init", Vault;
    /// Submit an unseal share.
    Unseal = "unseal", Vault;
    /// Seal the vault.
    Seal = "seal", Vault;
    /// Rotate the root key (also needs approval).
    RotateRoot = "rotate-root", Vault;
    /// Change the vault's custodians or threshold (also needs approval).
    Rekey = "rekey", Vault;
    /// List pending approvals.
    ListApprovals = "approval-list", Vault;
    /// Approve a pending operation (also needs the custodian's identity).
    Approve = "approval-approve", Vault;
    /// Read Prometheus metrics.
    Metrics = "metrics", Vault;
    /// Compute audit hashes of known values.
    AuditHash = "audit-hash", Vault;
    /// Read pinning manifests and pins.
    ReadPins = "pins-read", Vault;
    /// Manage pinning apps and pinned keys.
    ManagePins = "pins-manage", Vault;
    /// Receive a pinned private key sealed to a TLS terminator's key.
    DeliverPinKey = "pins-deliver", Vault;
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation `{0}`")]
pub struct UnknownOperation(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for op in Operation::ALL {
            assert_eq!(op.name().parse::<Operation>().unwrap(), *op);
        }
        let mut names: Vec<_> = Operation::ALL.iter().map(|o| o.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
        assert!("encrypt ".parse::<Operation>().is_err());
    }
}
