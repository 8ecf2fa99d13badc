//! The vault core and the services beside it, composed: what the API serves and the background
//! jobs run. The one place that knows every service, so that none of them knows another: the
//! approval workflow runs an approved operation through [`Runner`], implemented here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tresor_core::{Deletion, Error, KeySpec, Vault};
use tresor_wire::approvals::{ApprovalOutcome, Dangerous, Decision};
use tresor_wire::custody::InitRequest;
use tresor_wire::pins::ActivationMode;
use tresor_wire::time::rfc3339;

use crate::approvals::{Approvals, Runner, Signer};
use crate::audit::AuditKey;
use crate::peers::Nodes;
use crate::pins::{Pins, PinsError};
use crate::transform::Transforms;

/// The vault and its services.
#[derive(Clone)]
pub struct Services {
    /// The vault core.
    pub vault: Vault,
    /// Pinning apps, keys and manifests.
    pub pins: Pins,
    /// Dual control.
    pub approvals: Approvals,
    /// The audit HMAC key.
    pub audit_key: AuditKey,
    /// Transform roles, transformations and templates (issue 16).
    pub transforms: Transforms,
    /// The nodes enrolled for peer unseal (issue 13).
    pub nodes: Nodes,
}

impl Services {
    /// The services of `vault`; approvals wait `approval_ttl` seconds for signatures.
    pub fn new(vault: Vault, approval_ttl: u64) -> Self {
        let store = vault.sealed_store();
        Services {
            pins: Pins::new(store.clone()),
            approvals: Approvals::new(store.clone(), approval_ttl),
            transforms: Transforms::new(store.clone()),
            nodes: Nodes::new(store.clone()),
            audit_key: AuditKey::new(store),
            vault,
        }
    }

    /// Deletes a shredded tenant's transform roles, transformations and keys (issue 16): they
    /// live beside the key hierarchy, so the tenant's shred does not reach them by itself.
    pub(crate) fn purge_transforms(&self, tenant: &str) -> Result<(), Error> {
        self.transforms
            .purge_tenant(tenant)
            .map(drop)
            .map_err(|e| match e {
                crate::transform::TransformError::Vault(e) => e,
                other => Error::NotPermitted(format!(
                    "tenant {tenant} shredded, but its transform records were not purged: {other}"
                )),
            })
    }

    /// Adds a custodian's signed decision to an approval; the last approval needed runs the
    /// operation (see [`Approvals::decide`]).
    pub fn decide(
        &self,
        id: &str,
        decision: Decision,
        signer: Signer<'_>,
    ) -> Result<ApprovalOutcome, Error> {
        self.approvals.decide(id, decision, signer, self)
    }
}

/// In an executed key transfer's outcome, what precedes the sealed package (base64).
pub use tresor_wire::approvals::PACKAGE_MARK;

impl Runner for Services {
    fn run(&self, request: &Dangerous) -> Result<String, Error> {
        match request {
            Dangerous::DeleteKey {
                tenant,
                key,
                deletion_window,
            } => self
                .vault
                .schedule_key_deletion(tenant, key, *deletion_window)
                .map(|deletion| match deletion {
                    Deletion::Destroyed => format!("key {tenant}/{key} deleted"),
                    Deletion::Scheduled(d) => format!(
                        "key {tenant}/{key} scheduled for destruction at {} (cancellable until then)",
                        rfc3339(d.destroy_at, 0)
                    ),
                }),
            Dangerous::CancelKeyDeletion { tenant, key } => self
                .vault
                .cancel_key_deletion(tenant, key)
                .map(|info| {
                    format!(
                        "key {tenant}/{key} restored with versions {:?}",
                        info.versions.keys().collect::<Vec<_>>()
                    )
                }),
            Dangerous::CancelTenantShred { tenant } => self
                .vault
                .cancel_tenant_shred(tenant)
                .map(|info| format!("tenant {tenant} restored with {} keys", info.keys)),
            Dangerous::TrimKey {
                tenant,
                key,
                min_available_version,
            } => self
                .vault
                .trim_key(tenant, key, *min_available_version)
                .map(|info| {
                    format!(
                        "key {tenant}/{key} trimmed below version {}",
                        info.config.min_available_version
                    )
                }),
            Dangerous::ShredTenant {
                tenant,
                deletion_window,
            } => self
                .vault
                .schedule_tenant_shred(tenant, *deletion_window)
                .and_then(|deletion| match deletion {
                    Deletion::Destroyed => {
                        self.purge_transforms(tenant)?;
                        Ok(format!("tenant {tenant} shredded"))
                    }
                    Deletion::Scheduled(d) => Ok(format!(
                        "tenant {tenant} scheduled for shredding at {} (cancellable until then)",
                        rfc3339(d.destroy_at, 0)
                    )),
                }),
            Dangerous::ConfigureKey {
                tenant,
                key,
                update,
            } => self
                .vault
                .configure_key(tenant, key, update)
                .map(|_| format!("key {tenant}/{key} reconfigured")),
            Dangerous::CreateExportableKey {
                tenant,
                key,
                derived,
                convergent_encryption,
                auto_rotate_period,
            } => {
                let spec = KeySpec {
                    derived: *derived,
                    convergent_encryption: *convergent_encryption,
                    exportable: true,
                    auto_rotate_period: *auto_rotate_period,
                    ..KeySpec::default()
                };
                // A key created under this name since the request was made (an application's
                // encrypt creating it) is not replaced or made exportable: the approval fails.
                self.vault
                    .create_key(tenant, key, spec)
                    .map(|_| format!("key {tenant}/{key} created exportable"))
            }
            Dangerous::RotateRoot => self
                .vault
                .rotate_root(None)
                .map(|s| format!("root key rotated (generation {})", s.root_generation)),
            Dangerous::Rekey {
                custodians,
                threshold,
                four_eyes,
            } => self
                .vault
                .rotate_root(Some(&InitRequest {
                    custodians: custodians.clone(),
                    threshold: *threshold,
                    four_eyes: *four_eyes,
                }))
                .map(|s| {
                    format!(
                        "rekeyed: {}-of-{}, generation {}",
                        s.threshold, s.shares, s.root_generation
                    )
                }),
            Dangerous::ChangeTenantCustodians {
                tenant,
                custodians,
                threshold,
            } => self
                .vault
                .change_tenant_custodians(tenant, custodians, *threshold)
                .map(|t| format!("tenant {tenant} custodians: {}", t.custodians.join(", "))),
            Dangerous::TransferKey {
                tenant,
                key,
                to_vault,
                to_key,
            } => {
                let recipient: [u8; 32] = STANDARD
                    .decode(to_key)
                    .ok()
                    .and_then(|k| k.try_into().ok())
                    .ok_or_else(|| Error::invalid("to_key", "not a 32-byte key"))?;
                self.vault
                    .export_key_sealed(tenant, key, to_vault, &recipient)
                    .map(|package| {
                        format!(
                            "key {tenant}/{key} sealed to vault {to_vault}{}{}",
                            PACKAGE_MARK,
                            STANDARD.encode(package)
                        )
                    })
            }
            Dangerous::ReceiveKey {
                tenant,
                key,
                from_vault,
                package,
                replace,
            } => {
                let package = STANDARD
                    .decode(package)
                    .map_err(|_| Error::invalid("package", "not base64"))?;
                self.vault
                    .import_key_sealed(tenant, key, from_vault, &package, *replace)
                    .map(|info| {
                        format!(
                            "key {tenant}/{key} received from vault {from_vault}: versions 1 to {}",
                            info.latest_version
                        )
                    })
            }
            Dangerous::ActivatePinEarly { app, kid } => self
                .pins
                .activate_pin_key(app, kid, ActivationMode::Override)
                .map_err(|e| match e {
                    PinsError::Vault(e) => e,
                    PinsError::Pin(e) => Error::NotPermitted(e.to_string()),
                })
                .map(|c| {
                    format!(
                        "pinned key {kid} of app {app} active early (manifest version {})",
                        c.manifest_version.map_or("none".into(), |v| v.to_string())
                    )
                }),
            Dangerous::EnrolNode {
                fingerprint,
                address,
            } => self.nodes.enrol(fingerprint, address).map(|n| {
                format!(
                    "node {} ({}) enrolled for peer unseal",
                    n.fingerprint, n.address
                )
            }),
            Dangerous::RemoveNode { fingerprint } => self
                .nodes
                .remove(fingerprint)
                .map(|()| format!("node {fingerprint} removed from peer unseal")),
        }
    }
}
