//! GET `{tenant}/export/{kind}/{key}[/{version}]`: key material of a key created or configured
//! as exportable (making a key exportable needs custodian approval).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use tresor_core::ExportKind;
use tresor_wire::api::transit;
use zeroize::Zeroizing;

use super::mount::{KEY_TYPE, KeyCtx};
use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};
use crate::policy::{Operation, Scope};

/// Export key material of an exportable key.
pub(crate) const EXPORT: Operation = Operation::new("export", Scope::Key);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(transit::EXPORT, EXPORT, handle);

#[derive(Serialize)]
struct Data<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    key_type: &'static str,
    keys: BTreeMap<String, Zeroizing<String>>,
}

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let ctx = &KeyCtx::of(call);
    let version = call.param("version");
    let kind = call.path("kind");
    let kind = match kind {
        "encryption-key" => ExportKind::EncryptionKey,
        "hmac-key" => ExportKind::HmacKey,
        "signing-key" | "public-key" | "certificate-chain" => {
            return Err(ApiError::bad_request(format!(
                "{kind} export is not supported: {} keys do not sign",
                KEY_TYPE
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
        key_type: KEY_TYPE,
        keys,
    }))
}
