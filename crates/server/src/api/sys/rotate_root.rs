//! POST `sys/rotate-root`: a new root key; needs approval (docs/custody.md).

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;

use super::mount::propose;
use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Rotate the root key (also needs approval).
pub(crate) const ROTATE_ROOT: Operation = Operation::new("rotate-root", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(sys::ROTATE_ROOT, ROTATE_ROOT, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    propose(call, Dangerous::RotateRoot)
}
