//! The HTTP response: status, body in Vault's envelope (or bare), `Content-Type`,
//! `X-Request-Id` and `Retry-After`; and the request id itself.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use super::reply::{ApiError, Reply};

/// The response for `result` (without a body for `HEAD`).
pub(crate) fn respond(
    result: Result<Reply, ApiError>,
    request_id: &str,
    mount_type: &str,
    head: bool,
) -> Response<Full<Bytes>> {
    let (status, content_type, body, retry_after) = match result {
        Ok(reply) => (
            reply.status,
            reply.content_type(),
            reply.into_bytes(request_id, mount_type),
            None,
        ),
        Err(error) => (
            error.status,
            "application/json",
            error.body(),
            error.retry_after,
        ),
    };
    // A body may carry plaintext, data keys or an exported key: its buffer is wiped when hyper
    // drops the last reference, once it has been written to the connection.
    let mut response = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from_owner(zeroize::Zeroizing::new(body))
    }));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // Exactly `application/json`: hvac reads error messages only then.
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    if let Some(seconds) = retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// A request id: a UUID's text, kept on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestId([u8; 36]);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a request id is ASCII")
    }
}

/// A random (version 4) UUID in its text form, written digit by digit (no formatting machinery
/// and no allocation on the per-request path).
pub(crate) fn new_request_id() -> RequestId {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = tresor_crypto::random_array();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        id[at] = DIGITS[usize::from(byte >> 4)];
        id[at + 1] = DIGITS[usize::from(byte & 0x0f)];
        at += 2;
    }
    RequestId(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23]);
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(id, new_request_id());
    }
}
