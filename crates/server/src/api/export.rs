//! GET `export/:type/:name[/:version]`: key material of a key created or configured as
//! exportable (making a key exportable needs custodian approval).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use zeroize::Zeroizing;

use super::KeyCtx;
use super::reply::{ApiError, Reply};
use tresor_core::ExportKind;

#[derive(Serialize)]
struct Data<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    key_type: &'static str,
    keys: BTreeMap<String, Zeroizing<String>>,
}

pub(crate) fn handle(
    ctx: &KeyCtx<'_>,
    kind: &str,
    version: Option<&str>,
) -> Result<Reply, ApiError> {
    let kind = match kind {
        "encryption-key" => ExportKind::EncryptionKey,
        "hmac-key" => ExportKind::HmacKey,
        "signing-key" | "public-key" | "certificate-chain" => {
            return Err(ApiError::bad_request(format!(
                "{kind} export is not supported: {} keys do not sign",
                super::keys::KEY_TYPE
            )));
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid export type: use encryption-key or hmac-key",
            ));
        }
    };
    // No version: every version held; `latest`: the newest; a number: that one.
    let (version, latest_only) = match version {
        None => (None, false),
        Some("latest") => (None, true),
        Some(v) => (
            Some(v.parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| {
                ApiError::bad_request("invalid version: use a positive number or `latest`")
            })?),
            false,
        ),
    };
    let mut exported = ctx
        .vault
        .export_key(ctx.tenant, ctx.key, kind, version)
        .map_err(ApiError::from_read)?;
    if latest_only {
        exported = exported.split_off(exported.len().saturating_sub(1));
    }
    let keys = exported
        .iter()
        .map(|(v, key)| {
            let mut text = Zeroizing::new(String::new());
            STANDARD.encode_string(key.expose(), &mut text);
            (v.to_string(), text)
        })
        .collect();
    Ok(Reply::data(&Data {
        name: ctx.key,
        key_type: super::keys::KEY_TYPE,
        keys,
    }))
}
