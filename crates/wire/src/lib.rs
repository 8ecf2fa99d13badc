//! What crosses Tresor's wire: the types a server and its clients exchange, and the message
//! formats custodians sign and seal. The server serialises these types and the client
//! deserialises the same ones, so the two cannot drift apart.
//!
//! Nothing here does I/O; the HTTP client is `tresor-client`, the server `tresor-server`.
//!
//! - [`api`]: the HTTP API's routes (method and path) and request values, shared by the
//!   server's router and the client.
//! - [`custody`]: seal status, root-key shares, tenant custody keys (docs/custody.md).
//! - [`approvals`]: dangerous operations waiting for custodians, and what they sign.
//! - [`backup`]: the signed backup file (docs/recovery.md).
//! - [`pins`]: pin manifests and their verification, exports, delivered keys (docs/pinning.md).
//! - [`peers`]: peer unseal between the nodes of one vault, and node enrolment.
//! - [`keys`], [`tenants`]: key configuration changes and tenant descriptions.
//! - [`duration`], [`time`]: durations and times as people write them.
//!
//! ```
//! use tresor_crypto::identity::CustodianIdentity;
//! use tresor_wire::approvals::{Approval, ApprovalState, Dangerous, Decision};
//!
//! // A custodian signs exactly what the vault recorded; the vault checks it against the
//! // custodian's public key.
//! let alice = CustodianIdentity::generate("alice").unwrap();
//! let approval = Approval {
//!     id: "0123456789abcdef01234567".into(),
//!     vault_id: "v".into(),
//!     request: Dangerous::RotateRoot,
//!     requested_by: "spiffe://example.org/ops".into(),
//!     created_at: 0,
//!     expires_at: 3600,
//!     required: 1,
//!     signatures: vec![],
//!     rejections: vec![],
//!     custodian_set: "set-hash".into(),
//!     four_eyes: false,
//!     tenant_quorum: None,
//!     state: ApprovalState::Pending,
//! };
//! let signature = approval.sign(&alice);
//! assert!(approval.signed_by(alice.public(), &signature, Decision::Approve));
//! assert!(!approval.signed_by(alice.public(), &signature, Decision::Reject));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod approvals;
pub mod backup;
pub mod custody;
pub mod duration;
pub mod keys;
pub mod peers;
pub mod pins;
pub mod tenants;
pub mod time;
