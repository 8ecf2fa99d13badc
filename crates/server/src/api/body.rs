//! Reading a request body within `limits.max_body_bytes` and `limits.body_read_timeout`
//! (docs/configuration.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::{CONTENT_LENGTH, EXPECT, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};

use super::reply::ApiError;
use crate::config::Limits;

/// The body of a `POST` or `PUT`; other methods' bodies are not kept (but read: see [`drain`]).
pub(crate) async fn read<B>(parts: &Parts, body: B, limits: &Limits) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if matches!(parts.method, Method::POST | Method::PUT) {
        // A client that waits for `100 Continue` has not sent the body: reading it to discard it
        // would only ask for it.
        read_limited(
            body,
            parts.headers.get(CONTENT_LENGTH),
            limits,
            !expects_continue(parts),
        )
        .await
    } else {
        drain(parts, body, limits).await;
        Ok(Bytes::new())
    }
}

/// Reads and throws away a body the answer did not need (a refusal before it was read, a route
/// that takes none), within the bounds of a body that is too large: so that the answer reaches
/// clients still sending it. Nothing to do for a body already complete (most requests), for a
/// client waiting for `100 Continue`, or for one declared past the bound.
pub(crate) async fn drain<B>(parts: &Parts, body: B, limits: &Limits)
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.is_end_stream() || expects_continue(parts) {
        return;
    }
    let bound = limits.max_body_bytes.saturating_add(drain_limit(limits));
    if declared_length(parts.headers.get(CONTENT_LENGTH)).is_some_and(|n| n > bound) {
        return;
    }
    let over = AtomicBool::new(false);
    let _ = tokio::time::timeout(
        Duration::from_secs(limits.body_read_timeout),
        collect(body, 0, 0, bound, &over),
    )
    .await;
}

fn expects_continue(parts: &Parts) -> bool {
    parts
        .headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn declared_length(length: Option<&HeaderValue>) -> Option<usize> {
    length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// How much of a body over `limits.max_body_bytes` is read and thrown away before the 413 goes
/// out: clients that send the whole body before reading (python-requests and so hvac, axios: no
/// `Expect: 100-continue`) only see the answer if the server reads what they send, since closing
/// a connection with unread data resets it. Bounded (and by `limits.body_read_timeout`): beyond
/// it the connection is closed after the 413.
fn drain_limit(limits: &Limits) -> usize {
    limits.max_body_bytes.saturating_mul(16).max(16 << 20)
}

/// Why a body was not taken.
enum Refused {
    TooLarge,
    Unreadable,
}

async fn read_limited<B>(
    body: B,
    length: Option<&HeaderValue>,
    limits: &Limits,
    drain: bool,
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
    let drain_limit = if drain { drain_limit(limits) } else { 0 };
    let keep = match declared_length(length) {
        // Too large whatever it holds: at most drained, never kept.
        Some(n) if n > limits.max_body_bytes => {
            if n > limits.max_body_bytes.saturating_add(drain_limit) {
                return Err(too_large());
            }
            0
        }
        _ => limits.max_body_bytes,
    };
    let too_large_declared = keep == 0;
    // A small body usually arrives with the head: take it without arming a timer (a timer per
    // request is a measurable share of a small request's cost). Only a body still on its way
    // gets the timeout.
    // Set once more than max_body_bytes arrived: a body that then stalls is still too large.
    let over = AtomicBool::new(too_large_declared);
    let mut collect = std::pin::pin!(collect(
        body,
        keep,
        limits.max_body_bytes,
        drain_limit,
        &over
    ));
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
        Ok(Ok(_)) if too_large_declared => Err(too_large()),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(Refused::TooLarge)) => Err(too_large()),
        Ok(Err(Refused::Unreadable)) if too_large_declared => Err(too_large()),
        Ok(Err(Refused::Unreadable)) => {
            Err(ApiError::bad_request("request body could not be read"))
        }
        Err(_) if over.load(Ordering::Relaxed) => Err(too_large()),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {}s (limits.body_read_timeout)",
                limits.body_read_timeout
            ),
        )),
    }
}

/// Reads `body` to its end, keeping it if it holds at most `keep` bytes (and `max`); a body
/// over `max` is read on and thrown away up to `max + drain` bytes, then refused as too large
/// (`over` says so as soon as it is known).
async fn collect<B>(
    body: B,
    keep: usize,
    max: usize,
    drain: usize,
    over: &AtomicBool,
) -> Result<Bytes, Refused>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body: std::pin::Pin<&mut B> = std::pin::pin!(body);
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| Refused::Unreadable)?.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > max {
            over.store(true, Ordering::Relaxed);
        }
        if seen > max.saturating_add(drain) {
            return Err(Refused::TooLarge);
        }
        if seen <= keep {
            chunks.push(data);
        } else {
            chunks.clear();
        }
    }
    if seen > keep.min(max) {
        return Err(Refused::TooLarge);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(seen);
            for chunk in chunks {
                all.extend_from_slice(&chunk);
            }
            all.freeze()
        }
    })
}
