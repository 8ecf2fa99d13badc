//! POST `sys/rekey`: new custodians and/or threshold; needs approval (docs/custody.md).

use tresor_wire::api::sys;
use tresor_wire::approvals::Dangerous;

use super::init::custody;
use super::mount::propose;
use crate::api::endpoint::{Call, Endpoint};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Change the vault's custodians or threshold (also needs approval).
pub(crate) const REKEY: Operation = Operation::new("rekey", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::REKEY, REKEY, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let request = custody(params::body(call.body)?)?;
    propose(
        call,
        Dangerous::Rekey {
            custodians: request.custodians,
            threshold: request.threshold,
            four_eyes: request.four_eyes,
        },
    )
}
