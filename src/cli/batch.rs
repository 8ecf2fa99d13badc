//! `tresor encrypt|decrypt TENANT/KEY --batch FILE`: JSON Lines in, JSON Lines out.
//!
//! Each input line is one item, in Vault's `batch_input` shape: for encrypt `plaintext`
//! (base64), for decrypt `ciphertext`; optionally `context` and `associated_data` (base64),
//! `key_version` (encrypt) and `reference` (echoed back). Each input line gets exactly one
//! output line, in order: the result (`ciphertext` and `key_version`, or `plaintext` in base64)
//! or `{"error": …}` for that item alone. Items travel in batched requests (up to
//! [`ITEMS_PER_REQUEST`] items or about [`BYTES_PER_REQUEST`] bytes each), so a million lines
//! are a thousand requests. An encrypt's output lines are valid decrypt input.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::{Map, Value, json};
use tresor_client::Client;
use zeroize::Zeroizing;

/// Most items per request (the server's default `max_batch_items` is 10000).
pub(crate) const ITEMS_PER_REQUEST: usize = 1000;
/// A request is sent once its items reach this many bytes (the server's default
/// `max_body_bytes` is 4 MiB).
pub(crate) const BYTES_PER_REQUEST: usize = 1024 * 1024;

/// Which operation, and the fields its items may carry.
#[derive(Clone, Copy)]
pub(crate) enum Operation {
    Encrypt,
    Decrypt,
}

impl Operation {
    fn path(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
        }
    }

    /// The field every item needs.
    fn input(self) -> &'static str {
        match self {
            Operation::Encrypt => "plaintext",
            Operation::Decrypt => "ciphertext",
        }
    }

    /// The fields passed on to the server; others (an encrypt's `key_version` in decrypt
    /// input, say) are ignored, as the server ignores them.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Operation::Encrypt => &[
                "plaintext",
                "context",
                "associated_data",
                "key_version",
                "reference",
            ],
            Operation::Decrypt => &["ciphertext", "context", "associated_data", "reference"],
        }
    }
}

/// Values from the command line that apply to items without their own.
#[derive(Default)]
pub(crate) struct Defaults {
    pub(crate) context: Option<String>,
    pub(crate) associated_data: Option<String>,
    pub(crate) key_version: Option<u32>,
}

/// One input line: an item to send, or the error to print in its place.
enum Line {
    Item(Value),
    Refused(String),
}

/// Runs the batch; fails at the end if any item failed (its output line says why).
pub(crate) async fn run(
    client: &Client,
    tenant: &str,
    key: &str,
    operation: Operation,
    file: &Path,
    defaults: &Defaults,
) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?,
        ))
    };
    let path = format!("{tenant}/{}/{key}", operation.path());
    let mut stdout = std::io::stdout().lock();
    let (mut total, mut failed) = (0usize, 0usize);
    let mut chunk: Vec<Line> = Vec::new();
    let mut bytes = 0;
    let mut lines = reader.lines();
    loop {
        let next = lines.next();
        let end = next.is_none();
        if let Some(line) = next {
            let line = Zeroizing::new(line.with_context(|| format!("reading {}", file.display()))?);
            total += 1;
            bytes += line.len();
            chunk.push(parse(&line, total, operation, defaults));
        }
        if chunk.len() >= ITEMS_PER_REQUEST
            || bytes >= BYTES_PER_REQUEST
            || (end && !chunk.is_empty())
        {
            let results = send(client, &path, std::mem::take(&mut chunk)).await?;
            for result in results {
                failed += usize::from(result.get("error").is_some());
                let written = serde_json::to_writer(&mut stdout, &result)
                    .map_err(std::io::Error::from)
                    .and_then(|()| stdout.write_all(b"\n"));
                if let Err(e) = written {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(e).context("writing the results");
                }
            }
            match stdout.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                other => other.context("writing the results")?,
            }
            bytes = 0;
        }
        if end {
            break;
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} item(s) failed; their output lines say why");
    }
    Ok(())
}

/// Reads one line into an item for the server, filling in the command line's defaults.
fn parse(line: &str, number: usize, operation: Operation, defaults: &Defaults) -> Line {
    let refused = |why: String| Line::Refused(format!("line {number}: {why}"));
    let object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return refused("not a JSON object".to_owned()),
        Err(e) => return refused(format!("not JSON: {e}")),
    };
    if !object.get(operation.input()).is_some_and(Value::is_string) {
        return refused(format!(
            "no `{}` string{}",
            operation.input(),
            match operation {
                Operation::Encrypt => " (the plaintext, base64)",
                Operation::Decrypt => "",
            }
        ));
    }
    let mut item: Map<String, Value> = object
        .into_iter()
        .filter(|(name, _)| operation.fields().contains(&name.as_str()))
        .collect();
    let mut default = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            item.entry(name).or_insert(value);
        }
    };
    default(
        "context",
        defaults.context.as_ref().map(|c| STANDARD.encode(c).into()),
    );
    default(
        "associated_data",
        defaults
            .associated_data
            .as_ref()
            .map(|a| STANDARD.encode(a).into()),
    );
    if let Operation::Encrypt = operation {
        default("key_version", defaults.key_version.map(Value::from));
    }
    Line::Item(Value::Object(item))
}

/// Sends the items of `chunk` in one request; one result per line, in order. A refusal of the
/// whole request (policy, sealed vault, limits) ends the batch.
async fn send(client: &Client, path: &str, chunk: Vec<Line>) -> anyhow::Result<Vec<Value>> {
    let items: Vec<&Value> = chunk
        .iter()
        .filter_map(|line| match line {
            Line::Item(item) => Some(item),
            Line::Refused(_) => None,
        })
        .collect();
    let mut answers = Vec::new();
    if !items.is_empty() {
        let (status, body) = client
            .raw(Method::POST, path, Some(&json!({ "batch_input": items })))
            .await?;
        let Some(results) = body
            .pointer("/data/batch_results")
            .and_then(Value::as_array)
        else {
            let errors: Vec<&str> = body["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            bail!(
                "the server refused the batch ({status}): {}",
                if errors.is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("no reason given")
                        .to_owned()
                } else {
                    errors.join("; ")
                }
            );
        };
        if results.len() != items.len() {
            bail!(
                "the server answered {} results for {} items",
                results.len(),
                items.len()
            );
        }
        answers = results.clone();
    }
    let mut answers = answers.into_iter();
    Ok(chunk
        .into_iter()
        .map(|line| match line {
            Line::Refused(error) => json!({ "error": error }),
            Line::Item(item) => {
                let mut result = answers.next().unwrap_or(Value::Null);
                if let Value::Object(fields) = &mut result {
                    // The server echoes `reference` always; keep it only where it was given.
                    if item.get("reference").is_none() {
                        fields.remove("reference");
                    }
                    if fields.get("error").is_some_and(|e| e == "") {
                        fields.remove("error");
                    }
                }
                result
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_items_with_the_defaults_or_errors() {
        let defaults = Defaults {
            context: Some("ctx".into()),
            associated_data: None,
            key_version: Some(2),
        };
        let Line::Item(item) = parse(
            r#"{"plaintext":"aGk=","reference":"r1","extra":1}"#,
            1,
            Operation::Encrypt,
            &defaults,
        ) else {
            panic!("refused")
        };
        assert_eq!(
            item,
            json!({"plaintext":"aGk=","reference":"r1","context":"Y3R4","key_version":2})
        );
        // Decrypt takes an encrypt's output line as it is.
        let Line::Item(item) = parse(
            r#"{"ciphertext":"tresor:v1:AAAA","key_version":1}"#,
            2,
            Operation::Decrypt,
            &Defaults::default(),
        ) else {
            panic!("refused")
        };
        assert_eq!(item, json!({"ciphertext":"tresor:v1:AAAA"}));
        for (line, why) in [
            ("nope", "line 3: not JSON"),
            ("[1]", "line 3: not a JSON object"),
            (r#"{"ciphertext":"x"}"#, "line 3: no `plaintext` string"),
        ] {
            match parse(line, 3, Operation::Encrypt, &defaults) {
                Line::Refused(error) => assert!(error.starts_with(why), "{error}"),
                Line::Item(item) => panic!("accepted {item}"),
            }
        }
    }
}
