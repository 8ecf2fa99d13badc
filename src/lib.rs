//! Tresor: a standalone key vault with per-tenant envelope encryption.
//!
//! A [`Vault`] holds tenants; each tenant holds named, versioned data keys under one to three
//! layers of wrapping (its [`ProtectionLevel`]). Callers encrypt, decrypt, rewrap, make data
//! keys and HMAC tokens; the key material never leaves the vault unless a key is explicitly
//! made exportable.
//!
//! The [`pins`] module keeps the keys that client apps pin and signs the rotation manifests
//! they follow (DESIGN.md §6, docs/pinning.md); [`pins::verify`] is the check an app runs.
//!
//! ```
//! use std::sync::Arc;
//! use tresor::{CustodianIdentity, EncryptRequest, DecryptRequest, InitRequest, KeySpec, SledStore,
//!              TenantSpec, Vault, VaultOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let vault = Vault::open(Arc::new(SledStore::open(dir.path())?), VaultOptions::new("test"))?;
//!
//! // One custodian, threshold 1: the root key's only share is sealed to Alice.
//! let alice = CustodianIdentity::generate("alice")?;
//! vault.init(&InitRequest { custodians: vec![alice.public().clone()], threshold: 1 })?;
//! let share = alice.open_root_share(&vault.sealed_share("alice")?)?;
//! vault.unseal(vec![share])?;
//!
//! vault.create_tenant("payments", &TenantSpec::default())?;
//! vault.create_key("payments", "card-pan", KeySpec::default())?;
//! let ciphertext = vault.encrypt("payments", "card-pan", &EncryptRequest {
//!     plaintext: b"4111 1111 1111 1111",
//!     ..Default::default()
//! })?;
//! assert!(ciphertext.starts_with("tresor:v1:"));
//! let plaintext = vault.decrypt("payments", "card-pan", &DecryptRequest {
//!     ciphertext: &ciphertext,
//!     ..Default::default()
//! })?;
//! assert_eq!(plaintext.as_slice(), b"4111 1111 1111 1111");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
pub mod audit;
mod barrier;
pub mod bench;
pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod custody;
pub mod duration;
mod error;
pub mod keys;
pub mod metrics;
pub mod pins;
pub mod policy;
pub mod server;
pub mod store;
pub mod tls;
mod vault;

pub use clock::{Clock, ManualClock, SystemClock};
pub use crypto::SecretKey;
pub use custody::{CustodianIdentity, CustodianPublicKey, IdentityError};
pub use error::{CiphertextError, Error, ErrorKind, UnsealError};
pub use keys::ring::{DecryptRequest, EncryptRequest, ExportKind};
pub use keys::{HmacAlgorithm, KeyConfig, KeyConfigUpdate, KeySpec, ProtectionLevel};
pub use store::{SledStore, Store};
pub use vault::{
    BatchResult, DataKey, InitRequest, KeyInfo, RootShare, SealStatus, SealedShare,
    TenantCustodyKey, TenantInfo, TenantSpec, UnsealProgress, Vault, VaultOptions,
};
