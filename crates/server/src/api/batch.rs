//! What batch operations share: Vault's `batch_input` limits, putting results back in order,
//! and the status of a batch that failed in part.

use super::params;
use super::reply::ApiError;
use crate::config::Limits;

/// Puts a batch back in order: `decoded` holds every item (refused at decoding, or valid), and
/// `outcomes` the vault's results for the valid ones, in order.
pub(crate) fn merge_batch<D, T>(
    decoded: &[Result<D, ApiError>],
    outcomes: Vec<Result<T, tresor_core::Error>>,
) -> Vec<Result<T, ApiError>> {
    let mut outcomes = outcomes.into_iter();
    decoded
        .iter()
        .map(|item| match item {
            Ok(_) => outcomes
                .next()
                .expect("one outcome per valid item")
                .map_err(ApiError::from),
            Err(e) => Err(e.clone()),
        })
        .collect()
}

/// The `batch_results` of a batch reply.
#[derive(serde::Serialize)]
pub(crate) struct BatchResults<T> {
    pub(crate) batch_results: Vec<T>,
}

/// Refuses an empty batch or one over `limits.max_batch_items`.
pub(crate) fn check_batch(items: usize, limits: &Limits) -> Result<(), ApiError> {
    if items == 0 {
        return Err(ApiError::bad_request("missing batch input to process"));
    }
    if items > limits.max_batch_items {
        return Err(ApiError::bad_request(format!(
            "batch_input has {items} items, more than the limit of {} (limits.max_batch_items)",
            limits.max_batch_items
        )));
    }
    Ok(())
}

/// The caller's status for a batch that failed in part: one that can carry the batch results,
/// so not a 1xx (not a final answer: it breaks the connection) nor 204, 205 or 304 (no body).
pub(crate) fn partial_failure_code(code: Option<params::Int>) -> Result<Option<u16>, ApiError> {
    match code {
        None => Ok(None),
        Some(params::Int(c)) if (200..=599).contains(&c) && !matches!(c, 204 | 205 | 304) => {
            Ok(Some(c as u16))
        }
        Some(params::Int(c)) => Err(ApiError::bad_request(format!(
            "invalid partial_failure_response_code {c}: use 200 to 599 (not 204, 205 or 304, which carry no body)"
        ))),
    }
}
