//! Request parameters the way Vault clients send them: an empty body (or the JSON `null` that
//! `vault write -f` / `bao write -f` sends) means no fields, no
//! Content-Type is needed, booleans and integers may arrive as strings, durations as `"1h"`
//! (the lenient types are shared with the client: [`tresor_wire::api::params`]). Unknown fields
//! are ignored on Vault-compatible routes (as Vault does; key creation and configuration name
//! them in Vault's warning, [`ignored_fields`]) and refused on Tresor's own routes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::reply::ApiError;
pub(crate) use tresor_wire::api::params::Int;

/// Parses a JSON object body; an empty body and a `null` body are `{}` (Vault's CLI sends `null`
/// for `write -f`, and Vault reads it as no fields).
pub(crate) fn body<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let bytes = if no_fields(bytes) { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(json_error)
}

/// Whether a body carries no fields: empty, blank, or the JSON `null`.
fn no_fields(bytes: &[u8]) -> bool {
    bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null"
}

/// The top-level field names of a JSON object body, sorted, each cut to
/// [`MAX_FIELD_NAME_SHOWN`] characters; none for a body with no fields or one that is not an
/// object (parsing it as the request says what is wrong with it). Values are skipped unread.
pub(crate) fn field_names(bytes: &[u8]) -> Vec<String> {
    if no_fields(bytes) {
        return Vec::new();
    }
    serde_json::from_slice::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(bytes)
        .map(|fields| fields.into_keys().map(|name| shown_name(&name)).collect())
        .unwrap_or_default()
}

/// A field name as messages show it: at most [`MAX_FIELD_NAME_SHOWN`] characters.
fn shown_name(name: &str) -> String {
    match name.char_indices().nth(MAX_FIELD_NAME_SHOWN) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

/// Names listed in one warning about ignored fields.
const MAX_IGNORED_SHOWN: usize = 16;

/// Vault's warning for fields an endpoint does not read (`warnings` in the answer), or `None`
/// if every field in `names` is in `known`.
pub(crate) fn ignored_fields(names: &[String], known: &[&str]) -> Option<String> {
    let ignored: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| !known.contains(name))
        .collect();
    if ignored.is_empty() {
        return None;
    }
    let mut shown = ignored[..ignored.len().min(MAX_IGNORED_SHOWN)].join(" ");
    if ignored.len() > MAX_IGNORED_SHOWN {
        shown.push_str(&format!(" …and {} more", ignored.len() - MAX_IGNORED_SHOWN));
    }
    Some(format!(
        "Endpoint ignored these unrecognized parameters: [{shown}]"
    ))
}

/// A JSON error without echoing the caller's values (they may be plaintext): see
/// [`redact_values`].
pub(crate) fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = match e.classify() {
        Category::Syntax | Category::Eof => {
            format!(
                "malformed JSON request body at line {} column {}",
                e.line(),
                e.column()
            )
        }
        Category::Data | Category::Io => {
            format!("invalid request body: {}", redact_values(&e.to_string()))
        }
    };
    ApiError::bad_request(message)
}

/// Characters of a field name an error message repeats.
const MAX_FIELD_NAME_SHOWN: usize = 64;

/// serde's data errors quote the offending value: strings in `"…"`, numbers, booleans and
/// variants in backticks (e.g. ``invalid type: integer `4111111111111111` ``). A card number sent
/// as a JSON number is as secret as one sent as text, so every quoted value is blanked; only field
/// names (``missing field `plaintext` ``) and what serde expected (our own vocabulary) remain.
fn redact_values(text: &str) -> String {
    let (told, expected) = match text.find(", expected") {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = told;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        let before = &rest[..open];
        out.push_str(before);
        let inner_and_after = &rest[open + 1..];
        let Some(close) = inner_and_after.find(quote) else {
            // An unterminated quote: drop the remainder rather than risk echoing a value.
            out.push(quote);
            out.push('…');
            rest = "";
            break;
        };
        let inner = &inner_and_after[..close];
        out.push(quote);
        if quote == '`' && before.ends_with("field ") {
            // The caller's own text: named, but not at any length (it goes into the audit line).
            match inner.char_indices().nth(MAX_FIELD_NAME_SHOWN) {
                Some((cut, _)) => {
                    out.push_str(&inner[..cut]);
                    out.push('…');
                }
                None => out.push_str(inner),
            }
        } else {
            out.push('…');
        }
        out.push(quote);
        rest = &inner_and_after[close + 1..];
    }
    out.push_str(rest);
    out.push_str(expected);
    out
}

/// Decodes a standard, padded base64 field (Go's `StdEncoding`, which skips CR and LF) into a
/// zeroizing buffer.
pub(crate) fn base64_field(field: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let mut out = Zeroizing::new(Vec::new());
    base64_into(field, text, &mut out)?;
    Ok(out)
}

/// The most bytes `text` can decode to: room to reserve before [`base64_into`].
pub(crate) fn base64_room(text: &str) -> usize {
    text.len() / 4 * 3 + 3
}

/// Like [`base64_field`], appending to `out` (a batch decodes all its items into one buffer)
/// and giving where the value is in it. On failure `out` is left as it was. `out` never
/// reallocates with a value in it: one short of room is first moved by hand, and the buffer
/// left behind wiped.
pub(crate) fn base64_into(
    field: &str,
    text: &str,
    out: &mut Zeroizing<Vec<u8>>,
) -> Result<std::ops::Range<usize>, ApiError> {
    let start = out.len();
    let room = base64_room(text);
    if out.capacity() - start < room {
        let old = std::mem::replace(out, Zeroizing::new(Vec::with_capacity(start + room)));
        out.extend_from_slice(&old);
    }
    let result = if text.contains(['\r', '\n']) {
        let cleaned: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect());
        STANDARD.decode_vec(cleaned.as_bytes(), out)
    } else {
        STANDARD.decode_vec(text, out)
    };
    if result.is_err() {
        zeroize::Zeroize::zeroize(&mut out[start..]);
        out.truncate(start);
    }
    result.map_err(|e| {
        let detail = match e {
            base64::DecodeError::InvalidByte(offset, _) => {
                format!("illegal base64 data at input byte {offset}")
            }
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidLastSymbol(..) => {
                "illegal base64 data: wrong length or padding".to_owned()
            }
            base64::DecodeError::InvalidPadding => "illegal base64 data: bad padding".to_owned(),
        };
        ApiError::bad_request(format!("invalid {field}: {detail}"))
    })?;
    Ok(start..out.len())
}

/// An optional base64 field: absent or empty means none.
pub(crate) fn optional_base64(
    field: &str,
    text: Option<&str>,
) -> Result<Option<Zeroizing<Vec<u8>>>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => base64_field(field, text).map(Some),
    }
}

/// A range check with the caller's field name in the refusal.
pub(crate) trait IntField {
    /// The value as a u32 in `0..=u32::MAX`, naming `field` if it is out of range.
    fn to_u32(self, field: &str) -> Result<u32, ApiError>;
}

impl IntField for Int {
    fn to_u32(self, field: &str) -> Result<u32, ApiError> {
        u32::try_from(self.0).map_err(|_| {
            ApiError::bad_request(format!("invalid {field}: {} is out of range", self.0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_wire::api::params::{Flag, Seconds, Text};

    #[derive(Deserialize, Default)]
    struct Fields<'a> {
        #[serde(borrow)]
        text: Text<'a>,
        flag: Option<Flag>,
        int: Option<Int>,
        secs: Option<Seconds>,
    }

    #[test]
    fn lenient_types_like_vault() {
        let f: Fields =
            body(br#"{"text":"x","flag":"true","int":"7","secs":"1h","other":1}"#).unwrap();
        assert_eq!(
            (f.text.as_deref(), f.flag, f.int, f.secs),
            (
                Some("x"),
                Some(Flag(true)),
                Some(Int(7)),
                Some(Seconds(3600))
            )
        );
        let f: Fields = body(b"").unwrap();
        assert!(f.text.is_none() && f.flag.is_none());
        // `vault write -f` / `bao write -f` send `null`: no fields, as in Vault.
        for nothing in [&b"null"[..], b" null\n", b"\n"] {
            let f: Fields = body(nothing).unwrap();
            assert!(f.text.is_none() && f.flag.is_none());
        }
        // Anything else that is not an object is still refused.
        for not_object in [&b"nul"[..], b"[]", b"\"null\"", b"null null", b"0"] {
            assert!(body::<Fields>(not_object).is_err(), "{not_object:?}");
        }
        let f: Fields = body(br#"{"flag":false,"int":3,"secs":90}"#).unwrap();
        assert_eq!(
            (f.flag, f.int, f.secs),
            (Some(Flag(false)), Some(Int(3)), Some(Seconds(90)))
        );
    }

    #[test]
    fn errors_do_not_echo_values() {
        let err = body::<Fields>(br#"{"flag":"my-secret-value"}"#)
            .err()
            .unwrap();
        assert!(!err.message.contains("my-secret-value"), "{}", err.message);
        let err = body::<Fields>(br#"{"text": 4111111111111111}"#)
            .err()
            .unwrap();
        assert!(
            err.message.contains("invalid type: integer `…`, expected")
                && !err.message.contains("4111"),
            "{}",
            err.message
        );
        let err = body::<Fields>(br#"{"text": 41.5}"#).err().unwrap();
        assert!(!err.message.contains("41.5"), "{}", err.message);
        let err = body::<Fields>(br#"{"flag":[true]}"#).err().unwrap();
        assert!(err.message.contains("invalid type"), "{}", err.message);
        // Field names are the caller's own vocabulary and help them fix the request.
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            name: String,
        }
        let err = body::<Strict>(br#"{"nmae":"x"}"#).err().unwrap();
        assert!(
            err.message
                .contains("unknown field `nmae`, expected `name`"),
            "{}",
            err.message
        );
        let long = format!("{{\"{}\":\"x\"}}", "n".repeat(10_000));
        let err = body::<Strict>(long.as_bytes()).err().unwrap();
        assert!(
            err.message.contains(&format!(
                "unknown field `{}…`, expected `name`",
                "n".repeat(64)
            )),
            "{}",
            err.message
        );
        let err = body::<Strict>(b"{}").err().unwrap();
        assert!(
            err.message.contains("missing field `name`"),
            "{}",
            err.message
        );
        let err = body::<Fields>(b"{\"text\": \"abc").err().unwrap();
        assert!(
            err.message.contains("malformed JSON") && !err.message.contains("abc"),
            "{}",
            err.message
        );
    }

    #[test]
    fn ignored_fields_are_named_like_vault() {
        let names = field_names(br#"{"b": {"deep": [1, 2]}, "a": "x", "known": 1}"#);
        assert_eq!(names, ["a", "b", "known"]);
        assert_eq!(
            ignored_fields(&names, &["known"]).as_deref(),
            Some("Endpoint ignored these unrecognized parameters: [a b]")
        );
        assert_eq!(ignored_fields(&names, &["a", "b", "known"]), None);
        for nothing in [&b""[..], b"null", b"[1]", b"{", b"7"] {
            assert!(field_names(nothing).is_empty(), "{nothing:?}");
        }
        let long = format!("{{\"{}\": 1}}", "n".repeat(1000));
        let names = field_names(long.as_bytes());
        assert_eq!(names, [format!("{}…", "n".repeat(64))]);
        let many: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
        let warning = ignored_fields(&many, &[]).unwrap();
        assert!(warning.ends_with("f15 …and 24 more]"), "{warning}");
    }

    #[test]
    fn base64_like_go_std_encoding() {
        assert_eq!(
            base64_field("plaintext", "aGVsbG8=").unwrap().as_slice(),
            b"hello"
        );
        assert_eq!(
            base64_field("plaintext", "aGVs\r\nbG8=")
                .unwrap()
                .as_slice(),
            b"hello"
        );
        let err = base64_field("plaintext", "aGV*bG8=").err().unwrap();
        assert_eq!(
            err.message,
            "invalid plaintext: illegal base64 data at input byte 3"
        );
        assert!(
            base64_field("plaintext", "aGVsbG8").is_err(),
            "padding is required"
        );
        assert_eq!(optional_base64("context", Some("")).unwrap(), None);
    }

    /// A batch's values in one buffer: each where it says, a refused one leaving the buffer as
    /// it was, and a buffer without room moved (not reallocated with the values in it).
    #[test]
    fn base64_into_appends_and_refuses_without_trace() {
        let texts = ["aGVsbG8=", "aGV*bG8=", "d29y\nbGQ=", "", "aGVsbG8"];
        let room = texts.iter().map(|t| base64_room(t)).sum();
        let mut out = Zeroizing::new(Vec::with_capacity(room));
        let buffer = out.as_ptr();
        assert_eq!(base64_into("plaintext", texts[0], &mut out).unwrap(), 0..5);
        let err = base64_into("plaintext", texts[1], &mut out).unwrap_err();
        assert_eq!(
            err.message,
            "invalid plaintext: illegal base64 data at input byte 3"
        );
        assert_eq!(out.as_slice(), b"hello", "a refused value leaves nothing");
        assert_eq!(base64_into("plaintext", texts[2], &mut out).unwrap(), 5..10);
        assert_eq!(
            base64_into("plaintext", texts[3], &mut out).unwrap(),
            10..10
        );
        assert!(base64_into("plaintext", texts[4], &mut out).is_err());
        assert_eq!(out.as_slice(), b"helloworld");
        assert_eq!(out.as_ptr(), buffer, "sized once for the whole batch");
        // Without room: moved into a new buffer, the values kept.
        let mut small = Zeroizing::new(Vec::with_capacity(1));
        base64_into("plaintext", texts[0], &mut small).unwrap();
        base64_into("plaintext", texts[2], &mut small).unwrap();
        assert_eq!(small.as_slice(), b"helloworld");
    }
}
