//! The one skeleton of Vault's batch operations (`batch_input`): check the item count, decode
//! every item (an item that does not decode fails alone), run the valid ones through the vault
//! in one call, put the outcomes back in item order, answer each item with its `reference`,
//! count the failures, and choose the status.

use std::borrow::Cow;

use hyper::StatusCode;
use serde::Serialize;
use tresor_wire::api::{BatchItem, BatchResults};

use super::params;
use super::reply::{ApiError, Reply};
use crate::config::Limits;

/// How a batch's status follows from its items.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BatchStatus {
    /// Vault's encrypt and decrypt: 200 if every item succeeded, else 400, or the caller's
    /// `partial_failure_response_code` when at least one succeeded.
    PartialFailure(Option<params::Int>),
    /// Vault's rewrap, hmac and verify: 200, with errors per item.
    AlwaysOk,
}

/// Serves a batch of `items` (see the module's description). `decode` turns an item into the
/// vault's input, `run` gives the vault's outcome for each valid input in order, and `answer`
/// makes an item's result from its outcome and reference.
pub(crate) fn run<'i, I, D, T, R>(
    limits: &Limits,
    items: &'i [I],
    status: BatchStatus,
    decode: impl FnMut(&'i I) -> Result<D, ApiError>,
    run: impl FnOnce(&[&D]) -> Result<Vec<Result<T, tresor_core::Error>>, ApiError>,
    mut answer: impl FnMut(Result<T, ApiError>, Cow<'i, str>) -> R,
) -> Result<Reply, ApiError>
where
    I: BatchItem<'i>,
    R: Serialize,
{
    check_batch(items.len(), limits)?;
    let partial = match status {
        BatchStatus::PartialFailure(code) => partial_failure_code(code)?,
        BatchStatus::AlwaysOk => None,
    };
    let decoded: Vec<Result<D, ApiError>> = items.iter().map(decode).collect();
    let valid: Vec<&D> = decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
    let outcomes = run(&valid)?;
    drop(valid);
    let merged = merge_batch(&decoded, outcomes);
    let errors = merged.iter().filter(|r| r.is_err()).count();
    let batch_results: Vec<R> = merged
        .into_iter()
        .zip(items)
        .map(|(outcome, item)| answer(outcome, item.reference()))
        .collect();
    let count = batch_results.len();
    let status = match status {
        BatchStatus::PartialFailure(_) => batch_status(count, errors, partial),
        BatchStatus::AlwaysOk => StatusCode::OK,
    };
    Ok(Reply::with_status(status, &BatchResults { batch_results }).batch(count, errors))
}

/// Puts a batch back in order: `decoded` holds every item (refused at decoding, or valid), and
/// `outcomes` the vault's results for the valid ones, in order.
fn merge_batch<D, T>(
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

/// Refuses an empty batch or one over `limits.max_batch_items`.
fn check_batch(items: usize, limits: &Limits) -> Result<(), ApiError> {
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
fn partial_failure_code(code: Option<params::Int>) -> Result<Option<u16>, ApiError> {
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

/// The status of a batch whose items failed in part: Vault's rules for encrypt and decrypt.
/// All good → 200; any failure → 400, or the caller's `partial_failure_response_code` if at
/// least one item succeeded.
fn batch_status(items: usize, errors: usize, partial_failure_code: Option<u16>) -> StatusCode {
    match (errors, partial_failure_code) {
        (0, _) => StatusCode::OK,
        (e, Some(code)) if e < items => {
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(&'static str);

    impl<'a> BatchItem<'a> for Item {
        fn reference(&self) -> Cow<'a, str> {
            Cow::Borrowed(self.0)
        }
    }

    fn limits() -> Limits {
        Limits::default()
    }

    /// Items "1", "x", "3": "x" does not decode; the vault refuses 3.
    fn doubled(status: BatchStatus) -> Result<(StatusCode, serde_json::Value, usize), ApiError> {
        let items = [Item("1"), Item("x"), Item("3")];
        let reply = run(
            &limits(),
            &items,
            status,
            |item| {
                item.0
                    .parse::<u32>()
                    .map_err(|_| ApiError::bad_request("nan"))
            },
            |valid| {
                assert_eq!(valid, [&1, &3], "only valid items reach the vault");
                Ok(vec![Ok(2), Err(tresor_core::Error::Sealed)])
            },
            |outcome, reference| match outcome {
                Ok(n) => format!("{reference}:{n}"),
                Err(e) => format!("{reference}:{}", e.message),
            },
        )?;
        let errors = reply.summary.batch_errors;
        let status = reply.status;
        let super::super::reply::ReplyBody::Data(data) = reply.body else {
            panic!("batch replies are data")
        };
        Ok((status, serde_json::from_slice(&data).unwrap(), errors))
    }

    #[test]
    fn one_skeleton_in_item_order() {
        let (status, body, errors) = doubled(BatchStatus::AlwaysOk).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(errors, 2);
        assert_eq!(
            body,
            serde_json::json!({"batch_results": ["1:2", "x:nan", "3:Vault is sealed"]})
        );
        let partial = BatchStatus::PartialFailure(Some(params::Int(207)));
        assert_eq!(doubled(partial).unwrap().0, StatusCode::MULTI_STATUS);
        let bad_code = BatchStatus::PartialFailure(Some(params::Int(204)));
        assert_eq!(
            doubled(bad_code).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let empty: [Item; 0] = [];
        let refused = run(
            &limits(),
            &empty,
            BatchStatus::AlwaysOk,
            |_| Ok(()),
            |_| Ok(Vec::<Result<(), _>>::new()),
            |_, _| (),
        );
        assert_eq!(
            refused.unwrap_err().message,
            "missing batch input to process"
        );
    }

    #[test]
    fn batch_status_follows_vault() {
        assert_eq!(batch_status(3, 0, None), StatusCode::OK);
        assert_eq!(batch_status(3, 1, None), StatusCode::BAD_REQUEST);
        assert_eq!(batch_status(3, 1, Some(207)), StatusCode::MULTI_STATUS);
        assert_eq!(batch_status(3, 3, Some(207)), StatusCode::BAD_REQUEST);
    }
}
