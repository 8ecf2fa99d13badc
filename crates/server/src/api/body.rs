//! Reading a request body within `limits.max_body_bytes` and `limits.body_read_timeout`
//! (docs/configuration.md).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::header::{CONTENT_LENGTH, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};

use super::reply::ApiError;
use crate::config::Limits;

/// The body of a `POST` or `PUT`; other methods' bodies are not read.
pub(crate) async fn read<B>(parts: &Parts, body: B, limits: &Limits) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if matches!(parts.method, Method::POST | Method::PUT) {
        read_limited(body, parts.headers.get(CONTENT_LENGTH), limits).await
    } else {
        Ok(Bytes::new())
    }
}

async fn read_limited<B>(
    body: B,
    length: Option<&HeaderValue>,
    limits: &Limits,
) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than the limit of {} bytes (limits.max_body_bytes)",
                limits.max_body_bytes
            ),
        )
    };
    if length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limits.max_body_bytes)
    {
        return Err(too_large());
    }
    let limited = Limited::new(body, limits.max_body_bytes);
    // A small body usually arrives with the head: take it without arming a timer (a timer per
    // request is a measurable share of a small request's cost). Only a body still on its way
    // gets the timeout.
    let mut collect = std::pin::pin!(limited.collect());
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(collect.as_mut(), cx))
    })
    .await;
    let collected = match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => {
            tokio::time::timeout(Duration::from_secs(limits.body_read_timeout), collect).await
        }
    };
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::bad_request("request body could not be read")),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {}s (limits.body_read_timeout)",
                limits.body_read_timeout
            ),
        )),
    }
}
