//! What handlers return, and how it goes on the wire: Vault's `{"data": …}` envelope, its
//! `{"errors": [...]}` body, and its status codes.

use hyper::StatusCode;
use serde::Serialize;

use tresor_core::{CiphertextError, Error, ErrorKind};

use crate::audit::{ApprovalRef, CustodianRef};

/// A handler's successful answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: ReplyBody,
    pub(crate) warnings: Vec<String>,
    /// What the audit trail records about the outcome.
    pub(crate) summary: Summary,
}

#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// The JSON of the `data` object, to be wrapped in the envelope.
    Data(Data),
    /// No body (204).
    Empty,
    /// A JSON body sent as is (sys/health, sys/seal-status are not enveloped in Vault).
    Bare(Vec<u8>),
    /// A body of another type (Prometheus text).
    Text {
        content_type: &'static str,
        body: String,
    },
}

/// The JSON of a `data` object, written after room for the envelope's head: the answer is made
/// in this buffer, without copying the data (which may be plaintext) into another.
#[derive(Debug)]
pub(crate) struct Data(Vec<u8>);

/// The envelope up to `data`, with a request id of [`REQUEST_ID_LEN`] spaces.
const ENVELOPE_HEAD: &[u8] = br#"{"request_id":"                                    ","lease_id":"","renewable":false,"lease_duration":0,"data":"#;
/// Where the request id goes in [`ENVELOPE_HEAD`].
const REQUEST_ID_AT: usize = br#"{"request_id":""#.len();
/// The length of the request ids the server makes (UUIDs).
const REQUEST_ID_LEN: usize = 36;
const _: () = assert!(ENVELOPE_HEAD[REQUEST_ID_AT + REQUEST_ID_LEN] == b'"');

impl Data {
    fn of<T: Serialize>(data: &T) -> Data {
        let mut buffer = Vec::with_capacity(ENVELOPE_HEAD.len() + 128);
        buffer.extend_from_slice(ENVELOPE_HEAD);
        serde_json::to_writer(&mut buffer, data).expect("response data serializes");
        Data(buffer)
    }

    /// The envelope around the data, for `request_id`.
    fn into_envelope(self, request_id: &str, warnings: &[u8], mount_type: &str) -> Vec<u8> {
        let tail = [
            &br#","wrap_info":null,"warnings":"#[..],
            warnings,
            br#","auth":null,"mount_type":""#,
            mount_type.as_bytes(),
            br#""}"#,
        ];
        let tail_len: usize = tail.iter().map(|part| part.len()).sum();
        let mut out = if request_id.len() == REQUEST_ID_LEN {
            let mut out = self.0;
            out[REQUEST_ID_AT..REQUEST_ID_AT + REQUEST_ID_LEN]
                .copy_from_slice(request_id.as_bytes());
            if out.capacity() - out.len() < tail_len {
                // Grown by hand so that the buffer left behind is wiped.
                let old = zeroize::Zeroizing::new(out);
                out = Vec::with_capacity(old.len() + tail_len);
                out.extend_from_slice(&old);
            }
            out
        } else {
            // Not an id of ours: the head is written again around the data (copied; the copy
            // left behind is wiped).
            let data = zeroize::Zeroizing::new(self.0);
            let mut out = Vec::with_capacity(data.len() + request_id.len() + tail_len);
            out.extend_from_slice(&ENVELOPE_HEAD[..REQUEST_ID_AT]);
            out.extend_from_slice(request_id.as_bytes());
            out.extend_from_slice(&ENVELOPE_HEAD[REQUEST_ID_AT + REQUEST_ID_LEN..]);
            out.extend_from_slice(&data[ENVELOPE_HEAD.len()..]);
            out
        };
        for part in tail {
            out.extend_from_slice(part);
        }
        out
    }
}

impl std::ops::Deref for Data {
    type Target = [u8];

    /// The data's JSON.
    fn deref(&self) -> &[u8] {
        &self.0[ENVELOPE_HEAD.len()..]
    }
}

/// Facts about a request's outcome that are safe to record (no inputs, no outputs).
#[derive(Debug, Default, Clone)]
pub(crate) struct Summary {
    /// The key version used or produced, when there is one.
    pub(crate) key_version: Option<u32>,
    /// Items in a batch, 0 when not a batch.
    pub(crate) batch_items: usize,
    /// Items that failed in a batch.
    pub(crate) batch_errors: usize,
    /// The custodian whose identity made the act.
    pub(crate) custodian: Option<CustodianRef>,
    /// The approval this request ended (ran, failed, rejected, cancelled).
    pub(crate) approval: Option<ApprovalRef>,
    /// The seal-state change this request made (`unsealed`, `sealed`, `tenant-unlocked`,
    /// `tenant-locked`), written as a line of its own.
    pub(crate) seal_change: Option<&'static str>,
    /// With an `unsealed` change: how far the store had been written.
    pub(crate) store: Option<tresor_core::StoreGeneration>,
}

impl Reply {
    /// 200 with `data`.
    pub(crate) fn data<T: Serialize>(data: &T) -> Reply {
        Reply::with_status(StatusCode::OK, data)
    }

    /// `data` with a chosen status (batch partial failure).
    pub(crate) fn with_status<T: Serialize>(status: StatusCode, data: &T) -> Reply {
        Reply {
            status,
            body: ReplyBody::Data(Data::of(data)),
            warnings: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// 204.
    pub(crate) fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: ReplyBody::Empty,
            warnings: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// A bare JSON body.
    pub(crate) fn bare<T: Serialize>(status: StatusCode, body: &T) -> Reply {
        Reply {
            status,
            body: ReplyBody::Bare(serde_json::to_vec(body).expect("response serializes")),
            warnings: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// A non-JSON body.
    pub(crate) fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            body: ReplyBody::Text { content_type, body },
            warnings: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// The content type of the body.
    pub(crate) fn content_type(&self) -> &'static str {
        match &self.body {
            ReplyBody::Text { content_type, .. } => content_type,
            _ => "application/json",
        }
    }

    pub(crate) fn warn(mut self, warning: impl Into<String>) -> Reply {
        self.warnings.push(warning.into());
        self
    }

    pub(crate) fn version(mut self, version: u32) -> Reply {
        self.summary.key_version = Some(version);
        self
    }

    /// Names the custodian whose identity made this act.
    pub(crate) fn acted_by(mut self, custodian: Option<CustodianRef>) -> Reply {
        self.summary.custodian = custodian;
        self
    }

    /// Records that this request ended an approval (when it did).
    pub(crate) fn settles(mut self, approval: Option<ApprovalRef>) -> Reply {
        self.summary.approval = approval;
        self
    }

    /// Records a seal-state change made by this request.
    pub(crate) fn seal_change(mut self, change: &'static str) -> Reply {
        self.summary.seal_change = Some(change);
        self
    }

    /// Records the store's generation with an `unsealed` change.
    pub(crate) fn store(mut self, store: Option<tresor_core::StoreGeneration>) -> Reply {
        self.summary.store = store;
        self
    }

    pub(crate) fn batch(mut self, items: usize, errors: usize) -> Reply {
        self.summary.batch_items = items;
        self.summary.batch_errors = errors;
        self
    }

    /// The full response body for `request_id`.
    pub(crate) fn into_bytes(self, request_id: &str, mount_type: &str) -> Vec<u8> {
        match self.body {
            ReplyBody::Empty => Vec::new(),
            ReplyBody::Bare(bytes) => bytes,
            ReplyBody::Text { body, .. } => body.into_bytes(),
            ReplyBody::Data(data) => {
                let warnings = if self.warnings.is_empty() {
                    None
                } else {
                    Some(serde_json::to_vec(&self.warnings).expect("strings serialize"))
                };
                let warnings = warnings.as_deref().unwrap_or(b"null");
                data.into_envelope(request_id, warnings, mount_type)
            }
        }
    }
}

/// A refusal: status and `{"errors": [message]}` (or `{"errors": []}` for a bare 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    /// Seconds to put in `Retry-After` (429).
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Vault's answer to reading something that does not exist: 404 with no message.
    pub(crate) fn not_found_empty() -> Self {
        Self::new(StatusCode::NOT_FOUND, "")
    }

    pub(crate) fn unsupported_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, "unsupported path")
    }

    pub(crate) fn unsupported_operation() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "unsupported operation")
    }

    pub(crate) fn sealed() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed")
    }

    pub(crate) fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Errors<'a> {
            errors: &'a [&'a str],
        }
        let errors: &[&str] = if self.message.is_empty() {
            &[]
        } else {
            &[self.message.as_str()]
        };
        serde_json::to_vec(&Errors { errors }).expect("serializes")
    }
}

impl From<Error> for ApiError {
    /// The default mapping. Vault answers most transit refusals with 400, including a missing
    /// key on an operation (only reads answer 404); handlers that read use
    /// [`ApiError::from_read`].
    fn from(error: Error) -> Self {
        // A ciphertext is an input (audited only as an HMAC, docs/audit.md): its version field
        // is not quoted back, whatever the vault's message holds.
        if let Error::Ciphertext(CiphertextError::BadVersion(_)) = &error {
            return ApiError::bad_request(
                "invalid ciphertext: its version field is not a positive integer",
            );
        }
        let status = match (&error, error.kind()) {
            (Error::Sealed, _) => return ApiError::sealed(),
            (Error::TenantNotFound(_), _) => StatusCode::NOT_FOUND,
            (_, ErrorKind::InvalidInput | ErrorKind::NotFound | ErrorKind::Conflict) => {
                StatusCode::BAD_REQUEST
            }
            (_, ErrorKind::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
            (_, ErrorKind::Forbidden) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl ApiError {
    /// For reads: a missing key is Vault's bare 404.
    pub(crate) fn from_read(error: Error) -> Self {
        match error {
            Error::KeyNotFound { .. } => ApiError::not_found_empty(),
            other => other.into(),
        }
    }

    /// For Tresor's own routes: conflicts are 409 and missing things 404.
    pub(crate) fn from_native(error: Error) -> Self {
        match error.kind() {
            ErrorKind::Conflict => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            ErrorKind::NotFound => ApiError::new(StatusCode::NOT_FOUND, error.to_string()),
            _ => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_every_field_vault_clients_require() {
        let reply = Reply::data(&serde_json::json!({"ciphertext": "tresor:v1:x"})).warn("careful");
        let body: serde_json::Value =
            serde_json::from_slice(&reply.into_bytes("rid", "transit")).unwrap();
        assert_eq!(body["request_id"], "rid");
        assert_eq!(body["lease_id"], "");
        assert_eq!(body["lease_duration"], 0);
        assert_eq!(body["renewable"], false);
        assert_eq!(body["data"]["ciphertext"], "tresor:v1:x");
        assert_eq!(body["warnings"][0], "careful");
        assert!(body["auth"].is_null());
    }

    #[test]
    fn the_envelope_is_the_same_for_any_request_id() {
        for id in ["0123456789abcdef0123456789abcdef0123", "short", ""] {
            let reply = Reply::data(&serde_json::json!({"plaintext": "aGk="}));
            let bytes = reply.into_bytes(id, "transit");
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                format!(
                    r#"{{"request_id":"{id}","lease_id":"","renewable":false,"lease_duration":0,"data":{{"plaintext":"aGk="}},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"transit"}}"#
                )
            );
        }
    }

    #[test]
    fn ciphertext_fields_are_not_quoted() {
        let error = ApiError::from(Error::Ciphertext(CiphertextError::BadVersion(
            "4111x".into(),
        )));
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(!error.message.contains("4111"), "{}", error.message);
        assert!(error.message.contains("version field"), "{}", error.message);
    }

    #[test]
    fn error_bodies() {
        assert_eq!(ApiError::not_found_empty().body(), br#"{"errors":[]}"#);
        assert_eq!(ApiError::bad_request("x").body(), br#"{"errors":["x"]}"#);
        assert_eq!(
            ApiError::from(Error::Sealed).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from_read(Error::KeyNotFound {
                tenant: "t".into(),
                key: "k".into()
            }),
            ApiError::not_found_empty()
        );
    }
}
