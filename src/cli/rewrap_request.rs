//! What `tresor rewrap` over a file (src/cli/rewrap_file.rs) and over a PostgreSQL table
//! (src/cli/rewrap_table.rs) share: how a stored value stands against the key's latest version,
//! the census of a dry run, the batched rewrap request, and the progress bar.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Value, json};
use tresor_client::Client;

/// How a value stands against the latest version.
#[derive(PartialEq)]
pub(crate) enum Standing {
    Empty,
    Latest,
    Older,
    Malformed,
}

/// `tresor:v3` / `vault:v1`, whether it is a Tresor one, and the version; `None` when the value
/// is no ciphertext.
pub(crate) fn version_label(value: &str) -> Option<(String, bool, u32)> {
    for (prefix, tresor) in [("tresor:v", true), ("vault:v", false)] {
        if let Some(rest) = value.strip_prefix(prefix) {
            let (digits, _) = rest.split_once(':')?;
            let version: u32 = digits.parse().ok().filter(|v| *v > 0)?;
            return Some((format!("{prefix}{version}"), tresor, version));
        }
    }
    None
}

pub(crate) fn standing(value: Option<&str>, latest: u32) -> Standing {
    match value {
        None => Standing::Empty,
        Some(v) => match version_label(v) {
            None => Standing::Malformed,
            Some((_, true, version)) if version == latest => Standing::Latest,
            Some(_) => Standing::Older,
        },
    }
}

/// What a dry run counts: values per version label, empty and malformed ones, and how many a
/// rewrap would write.
#[derive(Default)]
pub(crate) struct Census {
    rows: u64,
    versions: BTreeMap<String, u64>,
    empty: u64,
    malformed: u64,
    to_rewrap: u64,
}

impl Census {
    /// Counts `n` stored values like `value` (`None`: empty) against the `latest` version.
    pub(crate) fn count(&mut self, value: Option<&str>, latest: u32, n: u64) {
        self.rows += n;
        let Some(value) = value else {
            self.empty += n;
            return;
        };
        match version_label(value) {
            None => self.malformed += n,
            Some((label, tresor, version)) => {
                if !(tresor && version == latest) {
                    self.to_rewrap += n;
                }
                *self.versions.entry(label).or_default() += n;
            }
        }
    }

    /// The summary `tresor rewrap --dry-run` prints for key `tenant/key`.
    pub(crate) fn summary(&self, tenant: &str, key: &str, latest: u32) -> Value {
        json!({
            "key": format!("{tenant}/{key}"),
            "latest_version": latest,
            "rows": self.rows,
            "versions": self.versions,
            "empty": self.empty,
            "malformed": self.malformed,
            "to_rewrap": self.to_rewrap,
            "dry_run": true,
        })
    }
}

pub(crate) async fn latest_version(
    client: &Client,
    tenant: &str,
    key: &str,
) -> anyhow::Result<u32> {
    let (status, body) = client
        .raw(Method::GET, &format!("{tenant}/keys/{key}"), None)
        .await?;
    if !status.is_success() {
        bail!("cannot read key {tenant}/{key}: {status} {body}");
    }
    body["data"]["latest_version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .context("the key description has no latest_version")
}

/// Rewraps `ciphertexts` in one request: one result per item, in order (`ciphertext`, or
/// `error` for that item alone). The request fails as a whole only when the server answers
/// no per-item results (the key is missing, the caller may not use it…).
pub(crate) async fn rewrap_batch(
    client: &Client,
    tenant: &str,
    key: &str,
    ciphertexts: &[&str],
) -> anyhow::Result<Vec<Value>> {
    if ciphertexts.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<Value> = ciphertexts
        .iter()
        .map(|c| json!({ "ciphertext": c }))
        .collect();
    let body = json!({ "batch_input": items, "partial_failure_response_code": 200 });
    let (status, answer) = client
        .raw(Method::POST, &format!("{tenant}/rewrap/{key}"), Some(&body))
        .await?;
    match answer["data"]["batch_results"].as_array() {
        Some(results) if results.len() == ciphertexts.len() => Ok(results.clone()),
        _ => bail!("rewrap request failed: {status} {answer}"),
    }
}

/// A progress bar of `rows` rows (rows/s and ETA); indicatif draws it only on a terminal.
pub(crate) fn progress_bar(rows: u64) -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::new(rows);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  ETA {eta}")
            .expect("valid template"),
    );
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standings() {
        assert!(standing(Some("tresor:v3:AA"), 3) == Standing::Latest);
        assert!(standing(Some("tresor:v2:AA"), 3) == Standing::Older);
        assert!(standing(Some("vault:v3:AA"), 3) == Standing::Older);
        assert!(standing(Some("tresor:v0:AA"), 3) == Standing::Malformed);
        assert!(standing(Some("plain"), 3) == Standing::Malformed);
        assert!(standing(None, 3) == Standing::Empty);
    }
}
