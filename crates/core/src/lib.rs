//! The vault core: the key hierarchy, the barrier, storage, the seal and tenants.
//!
//! A [`Vault`] holds tenants; each tenant holds named, versioned data keys under one to three
//! layers of wrapping (its [`ProtectionLevel`]). Callers encrypt, decrypt, rewrap, make data
//! keys and HMAC tokens; the key material never leaves the vault unless a key is explicitly
//! made exportable. The core knows no HTTP, no policy, no approval workflow and no pins: the
//! server builds those as services around it, each holding a [`SealedStore`] handle
//! (docs/architecture.md).
//!
//! ```
//! use std::sync::Arc;
//! use tresor_core::{DecryptRequest, EncryptRequest, KeySpec, SledStore, TenantSpec, Vault,
//!                   VaultOptions};
//! use tresor_crypto::identity::CustodianIdentity;
//! use tresor_wire::custody::InitRequest;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let vault = Vault::open(Arc::new(SledStore::open(dir.path())?), VaultOptions::new("test"))?;
//!
//! // One custodian, threshold 1: the root key's only share is sealed to Alice.
//! let alice = CustodianIdentity::generate("alice")?;
//! vault.init(&InitRequest {
//!     custodians: vec![alice.public().clone()],
//!     threshold: 1,
//!     four_eyes: None,
//! })?;
//! let share = vault.sealed_share("alice")?.open(&alice)?;
//! vault.unseal(vec![share])?;
//!
//! vault.create_tenant("payments", &TenantSpec::default())?;
//! vault.create_key("payments", "card-pan", KeySpec::default())?;
//! let sealed = vault.encrypt("payments", "card-pan", &EncryptRequest {
//!     plaintext: b"4111 1111 1111 1111",
//!     ..Default::default()
//! })?;
//! assert_eq!(sealed.version, 1);
//! assert!(sealed.text.starts_with("tresor:v1:"));
//! let plaintext = vault.decrypt("payments", "card-pan", &DecryptRequest {
//!     ciphertext: &sealed.text,
//!     ..Default::default()
//! })?;
//! assert_eq!(plaintext.as_slice(), b"4111 1111 1111 1111");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod barrier;
pub mod clock;
mod error;
pub mod keys;
pub mod store;
mod vault;

#[cfg(any(test, feature = "manual-clock"))]
pub use clock::ManualClock;
pub use clock::{Clock, SystemClock};
pub use error::{CiphertextError, Error, ErrorKind, UnsealError};
pub use keys::records::ScheduledDeletion;
pub use keys::ring::{DecryptRequest, EncryptRequest, ExportKind, Versioned};
pub use keys::{HmacAlgorithm, KeyConfig, KeySpec, ProtectionLevel};
pub use store::{SledStore, Store};
pub use tresor_wire::custody::StoreGeneration;
pub use vault::{
    BatchResult, Custodians, DataKey, Deletion, DueDeletion, KeyInfo, SealedRecords, SealedStore,
    Snapshot, TenantSpec, UnsealGuard, Vault, VaultOptions, check_principal, restore_into,
    validate_custody,
};
