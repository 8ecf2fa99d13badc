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
/// except as HMACs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditEvent {
    /// The request id returned to the caller (`X-Request-Id`), empty for handshake failures.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// The principal, if the handshake got that far.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// Peer address.
    pub source: String,
    /// Operation name (policy vocabulary), or the route when none applies.
    pub operation: String,
    /// Tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Key name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Key version used or produced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// Items in a batch (0 if not a batch).
    #[serde(skip_serializing_if = "is_zero")]
    pub batch_items: usize,
    /// Failed items in a batch.
    #[serde(skip_serializing_if = "is_zero")]
    pub batch_errors: usize,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// HTTP status (0 for handshake failures).
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub status: u16,
    /// Why it was refused or failed, without any input value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Time spent serving, in microseconds.
    pub latency_us: u64,
    /// HMACs of inputs (ciphertexts, HMAC inputs, contexts, associated data) under the audit
    /// key, in request order; empty when the vault was sealed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input_hmacs: Vec<String>,
    /// The custodian whose identity made this act (a share, an unlock, a signature), next to
    /// the principal whose certificate carried it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custodian: Option<CustodianRef>,
    /// The dangerous operation this line settles (ran, failed, rejected or cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
    /// On `unsealed` lines: how far the store had been written (docs/custody.md, "Rollback").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<tresor_core::StoreGeneration>,
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
