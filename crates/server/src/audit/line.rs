//! What one audit line says, and how lines and checkpoints are encoded.
//!
//! ```text
//! event line:      {"seq":N,"time":…,"prev":"<hex SHA-256 of the previous line>", …fields…}
//! checkpoint line: {"seq":N,"time":…,"prev":"…","type":"checkpoint","reason":…,"key":"<b64>",
//!                   "signature":"<b64 Ed25519 over LP(label) ‖ LP(the line without its signature)>"}
//! ```
//! The signature is the last field; "the line without its signature" is the line's exact bytes
//! with `,"signature":"…"` removed (so it ends in `}`). Every byte of a checkpoint is signed:
//! its time, reason and key as much as its place in the chain.
//! A line's hash is SHA-256 over its bytes without the newline. The first line of the first file
//! has `prev` = 64 zeros; the first line of a rotated file continues from the last hash of the
//! file before it.

use serde::Serialize;

/// How a request ended, as the audit trail records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// About to make a change (written before it is made).
    Started,
    /// Served (2xx).
    Ok,
    /// Refused by policy (deny by default, or the source address).
    Denied,
    /// Refused by a rate limit.
    RateLimited,
    /// Refused as invalid, or failed (4xx/5xx other than the above).
    Error,
    /// The TLS handshake failed or the certificate named no principal.
    HandshakeFailed,
}

/// One request or attempt. Only facts safe to keep: no plaintext, no key material, no inputs
/// except as HMACs. Its line is that of [`AuditEvent::as_ref`], the one definition of the
/// format.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// The request id returned to the caller (`X-Request-Id`), empty for handshake failures.
    pub request_id: String,
    /// The principal, if the handshake got that far.
    pub principal: String,
    /// Peer address.
    pub source: String,
    /// Operation name (policy vocabulary), or the route when none applies.
    pub operation: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// Key name.
    pub key: Option<String>,
    /// Key version used or produced.
    pub key_version: Option<u32>,
    /// Items in a batch (0 if not a batch).
    pub batch_items: usize,
    /// Failed items in a batch.
    pub batch_errors: usize,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// HTTP status (0 for handshake failures).
    pub status: u16,
    /// Why it was refused or failed, without any input value.
    pub reason: String,
    /// Time spent serving, in microseconds.
    pub latency_us: u64,
    /// HMACs of inputs (ciphertexts, HMAC inputs, contexts, associated data) under the audit
    /// key, in request order; empty when the vault was sealed.
    pub input_hmacs: Vec<String>,
    /// The custodian whose identity made this act (a share, an unlock, a signature), next to
    /// the principal whose certificate carried it.
    pub custodian: Option<CustodianRef>,
    /// The dangerous operation this line settles (ran, failed, rejected or cancelled).
    pub approval: Option<ApprovalRef>,
    /// On `unsealed` lines: how far the store had been written (docs/custody.md, "Rollback").
    pub store: Option<tresor_core::StoreGeneration>,
}

impl AuditEvent {
    /// The same event, borrowing its strings.
    pub fn as_ref(&self) -> AuditEventRef<'_> {
        AuditEventRef {
            request_id: &self.request_id,
            principal: &self.principal,
            source: &self.source,
            operation: &self.operation,
            tenant: self.tenant.as_deref(),
            key: self.key.as_deref(),
            key_version: self.key_version,
            batch_items: self.batch_items,
            batch_errors: self.batch_errors,
            outcome: self.outcome,
            status: self.status,
            reason: &self.reason,
            latency_us: self.latency_us,
            input_hmacs: InputHmacs::Text(&self.input_hmacs),
            custodian: self.custodian.as_ref(),
            approval: self.approval.as_ref(),
            store: self.store,
        }
    }
}

impl Serialize for AuditEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_ref().serialize(serializer)
    }
}

/// An [`AuditEvent`] that borrows its strings from the request it records: a request's line
/// is written without copying its principal, address, names or reason first. The fields mean
/// what [`AuditEvent`]'s of the same name do; this type's field order and rules are the line
/// format.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct AuditEventRef<'a> {
    /// [`AuditEvent::request_id`].
    #[serde(skip_serializing_if = "is_empty")]
    pub request_id: &'a str,
    /// [`AuditEvent::principal`].
    #[serde(skip_serializing_if = "is_empty")]
    pub principal: &'a str,
    /// [`AuditEvent::source`].
    pub source: &'a str,
    /// [`AuditEvent::operation`].
    pub operation: &'a str,
    /// [`AuditEvent::tenant`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    /// [`AuditEvent::key`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// [`AuditEvent::key_version`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// [`AuditEvent::batch_items`].
    #[serde(skip_serializing_if = "is_zero")]
    pub batch_items: usize,
    /// [`AuditEvent::batch_errors`].
    #[serde(skip_serializing_if = "is_zero")]
    pub batch_errors: usize,
    /// [`AuditEvent::outcome`].
    pub outcome: Option<Outcome>,
    /// [`AuditEvent::status`].
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub status: u16,
    /// [`AuditEvent::reason`].
    #[serde(skip_serializing_if = "is_empty")]
    pub reason: &'a str,
    /// [`AuditEvent::latency_us`].
    pub latency_us: u64,
    /// [`AuditEvent::input_hmacs`].
    #[serde(skip_serializing_if = "InputHmacs::is_empty")]
    pub input_hmacs: InputHmacs<'a>,
    /// [`AuditEvent::custodian`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custodian: Option<&'a CustodianRef>,
    /// [`AuditEvent::approval`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<&'a ApprovalRef>,
    /// [`AuditEvent::store`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<tresor_core::StoreGeneration>,
}

/// The input HMACs of a line: as text already, or as the raw 128 bits
/// ([`super::AuditHasher::hash_raw`]), hexed straight into the line.
#[derive(Debug, Clone, Copy)]
pub enum InputHmacs<'a> {
    /// Lowercase hex, 32 digits each.
    Text(&'a [String]),
    /// The truncated HMACs themselves.
    Raw(&'a [[u8; 16]]),
}

impl Default for InputHmacs<'_> {
    fn default() -> Self {
        InputHmacs::Raw(&[])
    }
}

impl InputHmacs<'_> {
    fn is_empty(&self) -> bool {
        match self {
            InputHmacs::Text(hmacs) => hmacs.is_empty(),
            InputHmacs::Raw(hmacs) => hmacs.is_empty(),
        }
    }
}

impl Serialize for InputHmacs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self {
            InputHmacs::Text(hmacs) => hmacs.serialize(serializer),
            InputHmacs::Raw(hmacs) => {
                let mut seq = serializer.serialize_seq(Some(hmacs.len()))?;
                for hmac in *hmacs {
                    let mut text = [0u8; 32];
                    hex_into(hmac, &mut text);
                    seq.serialize_element(std::str::from_utf8(&text).expect("hex is ASCII"))?;
                }
                seq.end()
            }
        }
    }
}

/// Writes lowercase hex of `bytes` into `out` (twice as long).
pub(crate) fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// A custodian as the log names it: the name and the fingerprint of its public keys, so a
/// reader can tell two identities of one name apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustodianRef {
    /// The custodian's name.
    pub name: String,
    /// Its fingerprint (docs/custody.md).
    pub fingerprint: String,
}

/// What an approval did, for the line that records its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRef {
    /// The approval's id.
    pub id: String,
    /// The operation (`rotate-root`, `delete-key`, …).
    pub operation: String,
    /// What it acts on: `tenant/key`, a tenant, or `vault`.
    pub target: String,
    /// The principal that asked for it.
    pub requested_by: String,
    /// How it ended: `executed`, `failed`, `rejected` or `cancelled`.
    pub state: String,
    /// Every custodian whose approval counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<CustodianRef>,
    /// Every custodian whose rejection counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected_by: Vec<CustodianRef>,
    /// What it did, or why it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub result: String,
}

fn is_empty(text: &&str) -> bool {
    text.is_empty()
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

/// Label of the checkpoint signature (v1 signed only `seq` and `prev`, leaving the rest of the
/// line open to edits; v2 signs the whole line).
pub(crate) const CHECKPOINT_LABEL: &[u8] = b"tresor-audit-checkpoint-v2";

/// What separates a checkpoint's signed part from its signature: the signature is always the
/// last field.
const SIGNATURE_FIELD: &str = ",\"signature\":\"";

/// The bytes a checkpoint signs: LP(label) ‖ LP(the line without its signature field).
pub(crate) fn checkpoint_message(unsigned_line: &[u8]) -> Vec<u8> {
    tresor_crypto::LengthPrefixed::new()
        .bytes(CHECKPOINT_LABEL)
        .bytes(unsigned_line)
        .into_vec()
}

/// Appends the signature field to `unsigned_line` (a JSON object, ending in `}`).
pub(crate) fn with_signature(unsigned_line: &str, signature_base64: &str) -> String {
    let body = unsigned_line
        .strip_suffix('}')
        .expect("a JSON object ends in }");
    format!("{body}{SIGNATURE_FIELD}{signature_base64}\"}}")
}

/// Splits a checkpoint line into the line without its signature (what was signed) and the
/// signature text, if the line ends in a signature field.
pub(crate) fn split_signature(line: &str) -> Option<(String, &str)> {
    let at = line.rfind(SIGNATURE_FIELD)?;
    let signature = line[at + SIGNATURE_FIELD.len()..].strip_suffix("\"}")?;
    if signature.contains('"') {
        return None;
    }
    Some((format!("{}}}", &line[..at]), signature))
}
pub(crate) use tresor_crypto::hex;

/// Parses 64 hex digits.
pub(crate) fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_split_off_exactly() {
        let unsigned = r#"{"seq":3,"type":"checkpoint"}"#;
        let line = with_signature(unsigned, "c2ln");
        assert_eq!(line, r#"{"seq":3,"type":"checkpoint","signature":"c2ln"}"#);
        assert_eq!(split_signature(&line), Some((unsigned.to_owned(), "c2ln")));
        assert_eq!(split_signature(&format!("{line} ")), None);
        assert_eq!(split_signature(r#"{"seq":3}"#), None);
    }

    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}
