//! `tresor rewrap TENANT/KEY --input FILE --output FILE --field F | --column C` and
//! `tresor key census` (issue 17, point 3): re-encrypt every ciphertext stored in a JSON Lines or
//! CSV file under the key's latest version, or (`--dry-run`, `census`) count the ciphertexts per
//! key version without changing anything, so an operator knows when it is safe to raise
//! `min_decryption_version` and trim.
//!
//! Streaming: rows are read, rewrapped in batched requests (`--batch-size` items each, up to
//! `--connections` requests in flight on as many connections) and written in input order, so
//! memory stays bounded whatever the file's size. Values already on the latest Tresor version
//! are copied untouched; `vault:` ciphertexts of imported versions are rewrapped like any other.
//! Only the one field or column changes: JSON lines keep their text otherwise, CSV rows every
//! other cell byte for byte. A row whose value cannot be rewrapped keeps it and is reported.
//!
//! Resumable: each batch is written and flushed before the next, so after an interruption
//! `--resume` keeps the complete rows already in `--output` (dropping a torn last line) and
//! continues with the next input row: nothing is redone or missed. A progress bar (rows/s and
//! ETA) goes to a terminal's stderr; the JSON summary to stdout.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::connection::ConnectionArgs;
use super::rewrap_args::{FileArgs, SourceArgs};
use super::rewrap_request::{
    Census, Standing, latest_version, progress_bar, rewrap_batch, standing,
};

/// How rows hold the value.
enum Layout {
    Jsonl(String),
    Csv { column: usize },
}

/// One input row and its value.
struct Row {
    line: String,
    value: Option<String>,
}

/// Splits one CSV line into its cells' byte ranges (quotes included) and unquoted values.
fn csv_cells(line: &str) -> anyhow::Result<Vec<(std::ops::Range<usize>, String)>> {
    let bytes = line.as_bytes();
    let mut cells = Vec::new();
    let mut start = 0;
    loop {
        let (end, value) = if bytes.get(start) == Some(&b'"') {
            let mut value = String::new();
            let mut i = start + 1;
            loop {
                match bytes.get(i) {
                    None => bail!("unterminated quoted cell (cells spanning lines are not read)"),
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                        value.push('"');
                        i += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => {
                        let ch = line[i..].chars().next().expect("in bounds");
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            let end = i + 1;
            if !matches!(bytes.get(end), None | Some(b',')) {
                bail!("text after a closing quote");
            }
            (end, value)
        } else {
            let end = line[start..].find(',').map_or(line.len(), |i| start + i);
            let value = &line[start..end];
            if value.contains('"') {
                bail!("a quote inside an unquoted cell");
            }
            (end, value.to_owned())
        };
        cells.push((start..end, value));
        if end >= line.len() {
            return Ok(cells);
        }
        start = end + 1;
        if start == line.len() {
            cells.push((start..start, String::new()));
            return Ok(cells);
        }
    }
}

impl Layout {
    fn value(&self, line: &str, row: u64) -> anyhow::Result<Option<String>> {
        Ok(match self {
            Layout::Jsonl(field) => {
                let parsed: Value = serde_json::from_str(line)
                    .with_context(|| format!("row {row}: not a JSON object"))?;
                match parsed.get(field) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.is_empty() => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => bail!("row {row}: field `{field}` is not a string"),
                }
            }
            Layout::Csv { column } => {
                let cells = csv_cells(line).with_context(|| format!("row {row}"))?;
                let (_, value) = cells.get(*column).with_context(|| {
                    format!("row {row}: {} cells, no column {}", cells.len(), column + 1)
                })?;
                (!value.is_empty()).then(|| value.clone())
            }
        })
    }

    /// The row with its value replaced by `new`, everything else as it was.
    fn replace(&self, line: &str, old: &str, new: &str) -> anyhow::Result<String> {
        match self {
            Layout::Jsonl(field) => {
                let spliced = line.replacen(&format!("\"{old}\""), &format!("\"{new}\""), 1);
                let check: Value = serde_json::from_str(&spliced)?;
                if check.get(field).and_then(Value::as_str) == Some(new) {
                    return Ok(spliced);
                }
                let mut parsed: Value = serde_json::from_str(line)?;
                parsed[field.as_str()] = Value::String(new.to_owned());
                Ok(serde_json::to_string(&parsed)?)
            }
            Layout::Csv { column } => {
                let cells = csv_cells(line)?;
                let (range, _) = &cells[*column];
                Ok(format!(
                    "{}{new}{}",
                    &line[..range.start],
                    &line[range.end..]
                ))
            }
        }
    }
}

/// Complete lines already in `output`; a torn last line is cut off.
fn complete_lines(output: &Path) -> anyhow::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(output)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if keep < bytes.len() {
        file.set_len(keep as u64)?;
        file.seek(SeekFrom::End(0))?;
    }
    Ok(bytes[..keep].iter().filter(|b| **b == b'\n').count() as u64)
}

fn layout_of(source: &SourceArgs, header: Option<&str>) -> anyhow::Result<Layout> {
    match (&source.field, &source.column) {
        (Some(field), None) => Ok(Layout::Jsonl(field.clone())),
        (None, Some(column)) => {
            let header = header.context("the CSV file is empty: it needs a header line")?;
            let cells = csv_cells(header).context("header line")?;
            let index = cells
                .iter()
                .position(|(_, name)| name == column)
                .with_context(|| format!("no column `{column}` in the header line"))?;
            Ok(Layout::Csv { column: index })
        }
        _ => bail!("name where the ciphertexts are: --field (JSON Lines) or --column (CSV)"),
    }
}

/// Counts the ciphertexts per version label in the file.
pub(crate) async fn census(
    tenant: &str,
    key: &str,
    source: &SourceArgs,
    connection: &ConnectionArgs,
) -> anyhow::Result<Value> {
    let input = source.input.as_ref().context("--input FILE is required")?;
    let client = connection.client()?;
    let latest = latest_version(&client, tenant, key).await?;
    let mut lines =
        BufReader::new(File::open(input).with_context(|| input.display().to_string())?).lines();
    let header = match &source.column {
        Some(_) => lines.next().transpose()?,
        None => None,
    };
    let layout = layout_of(source, header.as_deref())?;
    let mut census = Census::default();
    for (number, line) in (1..).zip(lines) {
        let value = layout.value(&line?, number)?;
        census.count(value.as_deref(), latest, 1);
    }
    Ok(census.summary(tenant, key, latest))
}

/// Rewraps the file; returns the summary.
pub(crate) async fn run(
    tenant: &str,
    key: &str,
    args: &FileArgs,
    connection: &ConnectionArgs,
) -> anyhow::Result<Value> {
    if args.dry_run {
        return census(tenant, key, &args.source, connection).await;
    }
    let input = args
        .source
        .input
        .as_ref()
        .context("--input FILE is required")?;
    let output = args
        .output
        .as_ref()
        .context("--output FILE is required (or --dry-run)")?;
    if input == output {
        bail!("--output must be another file than --input");
    }
    let clients = (0..args.connections)
        .map(|_| connection.client())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let latest = latest_version(&clients[0], tenant, key).await?;
    let total = BufReader::new(File::open(input).with_context(|| input.display().to_string())?)
        .lines()
        .count() as u64;
    let mut lines = BufReader::new(File::open(input)?).lines();
    let header = match &args.source.column {
        Some(_) => lines.next().transpose()?,
        None => None,
    };
    let layout = layout_of(&args.source, header.as_deref())?;
    let data_rows = total - u64::from(header.is_some());

    // Resume: the complete lines already written (the CSV header among them).
    let exists = output.exists();
    let done_lines = match (exists, args.resume) {
        (true, false) => bail!(
            "{} exists: pass --resume to continue an interrupted run, or remove it",
            output.display()
        ),
        (true, true) => complete_lines(output)?,
        (false, _) => 0,
    };
    let mut out = BufWriter::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .with_context(|| output.display().to_string())?,
    );
    let mut skip = done_lines;
    if let Some(header) = &header {
        if skip == 0 {
            writeln!(out, "{header}")?;
        } else {
            skip -= 1;
        }
    }
    let resumed_from = skip;

    let progress = progress_bar(data_rows);
    progress.set_position(skip);

    let started = Instant::now();
    let (mut rewrapped, mut already, mut empty, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut error_rows: Vec<Value> = Vec::new();
    let mut row_number = 0u64;
    let mut written = skip;
    let batch_size = args.batch_size as usize;
    let mut finished = false;
    while !finished {
        // Read up to `connections` batches, send them at once, write them in order.
        let mut batches: Vec<Vec<Row>> = Vec::new();
        'fill: for _ in 0..clients.len() {
            let mut batch = Vec::with_capacity(batch_size);
            while batch.len() < batch_size {
                let Some(line) = lines.next() else {
                    finished = true;
                    if !batch.is_empty() {
                        batches.push(batch);
                    }
                    break 'fill;
                };
                let line = line?;
                row_number += 1;
                if row_number <= skip {
                    continue;
                }
                let value = layout.value(&line, row_number)?;
                batch.push(Row { line, value });
            }
            batches.push(batch);
        }
        let mut pending = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            let items: Vec<String> = batch
                .iter()
                .filter(|r| standing(r.value.as_deref(), latest) == Standing::Older)
                .filter_map(|r| r.value.clone())
                .collect();
            let client = clients[i % clients.len()].clone();
            let (tenant, key) = (tenant.to_owned(), key.to_owned());
            pending.push(tokio::spawn(async move {
                let items: Vec<&str> = items.iter().map(String::as_str).collect();
                rewrap_batch(&client, &tenant, &key, &items).await
            }));
        }
        for (batch, handle) in batches.into_iter().zip(pending) {
            let mut results = handle.await??.into_iter();
            for row in batch {
                let number = written + 1;
                let line = match standing(row.value.as_deref(), latest) {
                    Standing::Empty => {
                        empty += 1;
                        row.line
                    }
                    Standing::Latest => {
                        already += 1;
                        row.line
                    }
                    Standing::Malformed => {
                        errors += 1;
                        if error_rows.len() < 20 {
                            error_rows.push(json!({"row": number, "error": "not a tresor: or vault: ciphertext"}));
                        }
                        row.line
                    }
                    Standing::Older => {
                        let result = results.next().context("a result per item")?;
                        match result["ciphertext"].as_str() {
                            Some(new) => {
                                rewrapped += 1;
                                layout.replace(
                                    &row.line,
                                    row.value.as_deref().unwrap_or_default(),
                                    new,
                                )?
                            }
                            None => {
                                errors += 1;
                                if error_rows.len() < 20 {
                                    error_rows
                                        .push(json!({"row": number, "error": result["error"]}));
                                }
                                row.line
                            }
                        }
                    }
                };
                writeln!(out, "{line}")?;
                written += 1;
                if args.stop_after.is_some_and(|n| written >= n) {
                    out.flush()?;
                    out.get_ref().sync_data()?;
                    progress.abandon();
                    bail!(
                        "stopped after {written} rows, as asked (--stop-after): continue with --resume"
                    );
                }
            }
            out.flush()?;
            progress.set_position(written);
        }
    }
    out.flush()?;
    out.get_ref().sync_data()?;
    progress.finish_and_clear();
    Ok(json!({
        "key": format!("{tenant}/{key}"),
        "latest_version": latest,
        "rows": written,
        "resumed_from": resumed_from,
        "rewrapped": rewrapped,
        "already_latest": already,
        "empty": empty,
        "errors": errors,
        "error_rows": error_rows,
        "seconds": started.elapsed().as_secs_f64(),
        "dry_run": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_and_splicing() {
        let cells = csv_cells(r#"1,"a ""b"", c",tresor:v1:QQ==,"#).unwrap();
        let values: Vec<&str> = cells.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["1", r#"a "b", c"#, "tresor:v1:QQ==", ""]);
        let layout = Layout::Csv { column: 2 };
        assert_eq!(
            layout
                .replace(
                    r#"1,"a ""b"", c",tresor:v1:QQ==,x"#,
                    "tresor:v1:QQ==",
                    "tresor:v2:Qg=="
                )
                .unwrap(),
            r#"1,"a ""b"", c",tresor:v2:Qg==,x"#
        );
        assert!(csv_cells(r#"1,"open"#).is_err());
        assert!(csv_cells(r#"1,a"b"#).is_err());
        assert!(csv_cells(r#""a"b,1"#).is_err());
    }

    #[test]
    fn json_lines_keep_their_text() {
        let layout = Layout::Jsonl("ct".into());
        let line = r#"{"id": 7, "ct": "tresor:v1:QQ==", "note": "tresor:v1:QQ=="}"#;
        assert_eq!(
            layout
                .replace(line, "tresor:v1:QQ==", "tresor:v2:Qg==")
                .unwrap(),
            r#"{"id": 7, "ct": "tresor:v2:Qg==", "note": "tresor:v1:QQ=="}"#
        );
        // The same text first in another field: the field is set, the other left alone.
        let line = r#"{"note": "tresor:v1:QQ==", "ct": "tresor:v1:QQ=="}"#;
        let replaced: Value = serde_json::from_str(
            &layout
                .replace(line, "tresor:v1:QQ==", "tresor:v2:Qg==")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(replaced["ct"], "tresor:v2:Qg==");
        assert_eq!(replaced["note"], "tresor:v1:QQ==");
        assert_eq!(layout.value(r#"{"ct": null}"#, 1).unwrap(), None);
        assert!(layout.value(r#"{"ct": 5}"#, 1).is_err());
        assert!(layout.value("not json", 1).is_err());
    }
}
