//! POST `{tenant}/transform/decode/{key}`: decode a value, or a `batch_input`, with the role
//! `{key}` (fpe transformations only). A separate operation from encode: a principal allowed
//! only `transform-encode` is refused here (403, audited). FF1 output carries no key version:
//! decode uses the transformation's one key (see docs/anonymize.md on rotation).

use std::borrow::Cow;

use tresor_wire::api::transform::{self, CodeRequest, DecodeResult};
use zeroize::Zeroizing;

use super::mount::{self, Direction};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transform::DECODE, mount::DECODE, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: CodeRequest = crate::api::params::body(call.body)?;
    mount::run(call, &body, Direction::Decode, result)
}

fn result<'r>(
    outcome: Result<(Zeroizing<String>, Option<String>), ApiError>,
    reference: Cow<'r, str>,
) -> DecodeResult<'r> {
    match outcome {
        Ok((value, _)) => DecodeResult {
            decoded_value: Some(value.to_string()),
            error: None,
            reference,
        },
        Err(e) => DecodeResult {
            decoded_value: None,
            error: Some(e.message),
            reference,
        },
    }
}
