//! Key custodians (DESIGN.md §2, §4): the people who hold the root key between them, unlock
//! level-3 tenants, and approve dangerous operations.

mod approvals;
mod identity;

pub use approvals::{
    Approval, ApprovalOutcome, ApprovalSignature, ApprovalState, DEFAULT_APPROVAL_TTL, Dangerous,
};
pub use identity::{CustodianIdentity, CustodianPublicKey, IdentityError};
