//! `tresor anonymize`: a production extract in, an analyst's extract out (docs/anonymize.md).
//!
//! Streaming: a reader thread parses rows (CSV with a header row, or JSON Lines) into chunks;
//! each chunk's vault-transformed cells go to the server in one `transform/encode` batch (each
//! item names its transformation), chunks travel over several connections at once, and results
//! are written in input order. Memory is bounded by the chunks in flight (and, for the
//! disclosure report, by the number of distinct quasi-identifier combinations), not by the
//! file. The output is written to a hidden temporary file beside `--out` and renamed only when
//! the run succeeds (and meets `--min-k`): a failed or interrupted run leaves no `--out` file.

pub mod csv;
pub mod generate;
pub mod kanon;
pub mod rules;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hyper::Method;
use serde::Serialize;
use serde_json::{Value, json};
use tresor_client::Client;

use self::kanon::{Groups, Report};
use self::rules::{Action, MARK, OnError, Rules};

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// JSON Lines for `.jsonl` and `.ndjson`, else CSV.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Format::JsonLines,
            _ => Format::Csv,
        }
    }
}

/// What a run needs besides the rules.
#[derive(Debug, Clone)]
pub struct Options {
    /// The input file.
    pub input: PathBuf,
    /// The output file (written only on success).
    pub output: PathBuf,
    /// Rows per chunk (one encode request each).
    pub batch_rows: usize,
    /// With a k-anonymity below this, the run fails and writes nothing.
    pub min_k: Option<u64>,
}

/// Why a run failed. Never carries a value of the input.
#[derive(Debug, thiserror::Error)]
pub enum AnonymizeError {
    /// The input or output file.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The input's columns do not fit the rules.
    #[error("{0}")]
    Columns(String),
    /// A bad row with `on_error = "fail"`.
    #[error("row at line {line}: {reason} (on_error = \"fail\"; nothing was written)")]
    Row {
        /// Where the row starts.
        line: u64,
        /// What is wrong (the column and the server's refusal, never the value).
        reason: String,
    },
    /// The server refused a whole request, or could not be reached.
    #[error("the vault refused: {0}")]
    Vault(String),
    /// `--min-k` not met.
    #[error(
        "the extract is {k}-anonymous over {columns}, less than --min-k {min_k} ({groups} group(s) with {rows} row(s) below it); nothing was written"
    )]
    MinK {
        /// The k reached.
        k: u64,
        /// The minimum.
        min_k: u64,
        /// The quasi-identifiers.
        columns: String,
        /// Groups below the minimum.
        groups: u64,
        /// Rows in them.
        rows: u64,
    },
}

/// What a run did (counts only).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Rows read (broken records included).
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Rows left out (`on_error = "skip"`).
    pub skipped: u64,
    /// Rows written with marked cells (`on_error = "mark"`).
    pub marked: u64,
    /// Failed cells by column (`<record>` for broken records).
    pub errors: BTreeMap<String, u64>,
    /// The output's columns, in order.
    pub columns: Vec<String>,
    /// The input's columns left out.
    pub dropped: Vec<String>,
    /// The disclosure report, when the rules mark quasi-identifiers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k_anonymity: Option<Report>,
    /// Wall time.
    pub seconds: f64,
    /// Rows read per second.
    pub rows_per_second: f64,
}

/// Progress, as rows and input bytes done.
pub type Progress = dyn Fn(u64, u64) + Send + Sync;

/// One cell: its text and, for JSON Lines, the value as given.
#[derive(Debug, Clone)]
struct Cell {
    text: String,
    json: Option<Value>,
}

/// One input row, or a broken record.
#[derive(Debug)]
struct Row {
    line: u64,
    /// `None`: broken; the reason.
    cells: Result<Vec<(Arc<str>, Cell)>, String>,
}

/// A chunk of rows, as read.
struct Chunk {
    rows: Vec<Row>,
    bytes: u64,
}

/// A row's outcome: its output cells (by output column), or why it failed.
struct Done {
    line: u64,
    cells: Vec<(Arc<str>, Cell)>,
    failures: Vec<(String, String)>,
}

/// Runs the rules over `options.input` with `clients` (one connection each).
pub async fn run(
    clients: Vec<Client>,
    rules: Rules,
    options: Options,
    progress: Arc<Progress>,
) -> Result<Summary, AnonymizeError> {
    let started = Instant::now();
    let format = Format::of(&options.input);
    let input = File::open(&options.input).map_err(|e| file_error(&options.input, e))?;
    let (partial, file) = create_partial(&options.output)?;
    let mut guard = PartialGuard(Some(partial.clone()));
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let rules = Arc::new(rules);

    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<Chunk, AnonymizeError>>(clients.len() * 2);
    let reader_rules = rules.clone();
    let batch_rows = options.batch_rows.max(1);
    let header = std::sync::Mutex::new(None::<Vec<String>>);
    let header = Arc::new(header);
    let reader_header = header.clone();
    let reader = std::thread::spawn(move || {
        read_chunks(
            BufReader::with_capacity(1 << 20, input),
            format,
            &reader_rules,
            batch_rows,
            &sender,
            &reader_header,
        )
    });

    let mut summary = Summary {
        rows_in: 0,
        rows_out: 0,
        skipped: 0,
        marked: 0,
        errors: BTreeMap::new(),
        columns: Vec::new(),
        dropped: Vec::new(),
        k_anonymity: None,
        seconds: 0.0,
        rows_per_second: 0.0,
    };
    let quasi: Vec<String> = rules
        .columns
        .iter()
        .filter(|(_, a)| a.quasi())
        .map(|(c, _)| c.clone())
        .collect();
    let mut groups = Groups::default();
    let mut header_written = false;
    let mut in_flight: VecDeque<tokio::task::JoinHandle<Result<Vec<Done>, AnonymizeError>>> =
        VecDeque::new();
    let mut bytes_done = 0u64;
    let mut next_client = 0usize;
    let mut finish = |done: Vec<Done>,
                      summary: &mut Summary,
                      out: &mut BufWriter<File>,
                      header_written: &mut bool|
     -> Result<(), AnonymizeError> {
        if !*header_written && format == Format::Csv {
            let columns = header
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            summary.columns = columns
                .iter()
                .filter(|c| rules.action(c) != Some(Action::Drop))
                .cloned()
                .collect();
            summary.dropped = columns
                .iter()
                .filter(|c| rules.action(c) == Some(Action::Drop))
                .cloned()
                .collect();
            csv::write_record(out, &summary.columns).map_err(|e| file_error(&partial, e))?;
            *header_written = true;
        }
        for row in done {
            summary.rows_in += 1;
            for (column, _) in &row.failures {
                *summary.errors.entry(column.clone()).or_insert(0) += 1;
            }
            if !row.failures.is_empty() {
                match rules.on_error {
                    OnError::Fail => {
                        let (column, reason) = &row.failures[0];
                        return Err(AnonymizeError::Row {
                            line: row.line,
                            reason: format!("column `{column}`: {reason}"),
                        });
                    }
                    OnError::Skip => {
                        summary.skipped += 1;
                        continue;
                    }
                    OnError::Mark => summary.marked += 1,
                }
            }
            if !quasi.is_empty() {
                let tuple = quasi
                    .iter()
                    .map(|q| {
                        row.cells
                            .iter()
                            .find(|(c, _)| &**c == q.as_str())
                            .map(|(_, cell)| cell.text.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                groups.add(tuple);
            }
            write_row(out, format, &summary.columns, &row.cells)
                .map_err(|e| file_error(&partial, e))?;
            summary.rows_out += 1;
        }
        Ok(())
    };

    while let Some(chunk) = receiver.recv().await {
        let chunk = chunk?;
        bytes_done += chunk.bytes;
        let client = clients[next_client % clients.len()].clone();
        next_client += 1;
        let task_rules = rules.clone();
        in_flight.push_back(tokio::spawn(async move {
            transform_chunk(&client, &task_rules, chunk.rows).await
        }));
        if in_flight.len() >= clients.len() {
            let done = join(in_flight.pop_front().expect("not empty")).await?;
            finish(done, &mut summary, &mut out, &mut header_written)?;
            progress(summary.rows_in, bytes_done);
        }
    }
    while let Some(task) = in_flight.pop_front() {
        let done = join(task).await?;
        finish(done, &mut summary, &mut out, &mut header_written)?;
        progress(summary.rows_in, bytes_done);
    }
    reader
        .join()
        .map_err(|_| AnonymizeError::Columns("the reader thread failed".into()))??;
    if !header_written && format == Format::Csv {
        finish(Vec::new(), &mut summary, &mut out, &mut header_written)?;
    }
    if !quasi.is_empty() {
        let report = groups.report(&quasi, options.min_k);
        if let (Some(min_k), Some(below)) = (options.min_k, &report.below_min_k) {
            if report.k < min_k {
                return Err(AnonymizeError::MinK {
                    k: report.k,
                    min_k,
                    columns: quasi.join(", "),
                    groups: below.groups,
                    rows: below.rows,
                });
            }
        }
        summary.k_anonymity = Some(report);
    } else if options.min_k.is_some() {
        return Err(AnonymizeError::Columns(
            "--min-k needs quasi-identifier columns: mark them with `quasi = true` in the rules"
                .into(),
        ));
    }
    if format == Format::JsonLines {
        summary.columns = rules
            .columns
            .iter()
            .filter(|(_, a)| **a != Action::Drop)
            .map(|(c, _)| c.clone())
            .collect();
    }
    let file = out
        .into_inner()
        .map_err(|e| file_error(&partial, e.into_error()))?;
    file.sync_all().map_err(|e| file_error(&partial, e))?;
    std::fs::rename(&partial, &options.output).map_err(|e| file_error(&options.output, e))?;
    guard.0 = None;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.rows_per_second = summary.rows_in as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

async fn join(
    task: tokio::task::JoinHandle<Result<Vec<Done>, AnonymizeError>>,
) -> Result<Vec<Done>, AnonymizeError> {
    task.await
        .map_err(|e| AnonymizeError::Vault(format!("a worker failed: {e}")))?
}

/// Removes the partial output unless the run succeeded (also when the run is dropped, as on
/// an interrupt).
struct PartialGuard(Option<PathBuf>);

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn file_error(path: &Path, e: std::io::Error) -> AnonymizeError {
    AnonymizeError::File {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// The hidden file beside `output` the run writes (owner-only: it is an extract).
fn create_partial(output: &Path) -> Result<(PathBuf, File), AnonymizeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = output
        .file_name()
        .ok_or_else(|| AnonymizeError::File {
            path: output.to_owned(),
            message: "not a file name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let partial = output.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| file_error(&partial, e))?;
    Ok((partial, file))
}

/// Reads the input into chunks, checking its columns against the rules.
fn read_chunks<R: BufRead>(
    input: R,
    format: Format,
    rules: &Rules,
    batch_rows: usize,
    sender: &tokio::sync::mpsc::Sender<Result<Chunk, AnonymizeError>>,
    header_slot: &std::sync::Mutex<Option<Vec<String>>>,
) -> Result<(), AnonymizeError> {
    let send = |chunk: Result<Chunk, AnonymizeError>| sender.blocking_send(chunk).is_ok();
    let mut rows = Vec::with_capacity(batch_rows);
    let mut last_position = 0u64;
    match format {
        Format::Csv => {
            let mut reader = csv::Reader::new(input);
            let header = match reader.record() {
                None => Vec::new(),
                Some(Ok(h)) => h,
                Some(Err(e)) => {
                    let error = AnonymizeError::Columns(format!("the header row: {e}"));
                    send(Err(error));
                    return Ok(());
                }
            };
            if let Err(e) = check_columns(rules, &header) {
                send(Err(e));
                return Ok(());
            }
            *header_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(header.clone());
            let names: Vec<Arc<str>> = header.iter().map(|h| Arc::from(h.as_str())).collect();
            while let Some(record) = reader.record() {
                let line = reader.line();
                let cells = match record {
                    Ok(fields) if fields.len() == names.len() => Ok(names
                        .iter()
                        .cloned()
                        .zip(fields.into_iter().map(|text| Cell { text, json: None }))
                        .collect()),
                    Ok(fields) => Err(format!(
                        "{} fields where the header has {}",
                        fields.len(),
                        names.len()
                    )),
                    Err(e) => Err(e.to_string()),
                };
                rows.push(Row { line, cells });
                if rows.len() == batch_rows {
                    let bytes = reader.position - last_position;
                    last_position = reader.position;
                    if !send(Ok(Chunk {
                        rows: std::mem::take(&mut rows),
                        bytes,
                    })) {
                        return Ok(());
                    }
                }
            }
            let bytes = reader.position - last_position;
            if !rows.is_empty() {
                send(Ok(Chunk { rows, bytes }));
            }
        }
        Format::JsonLines => {
            let mut bytes = 0u64;
            for (index, line) in input.lines().enumerate() {
                let line_number = index as u64 + 1;
                let line = line.map_err(|e| AnonymizeError::Columns(format!("reading: {e}")))?;
                bytes += line.len() as u64 + 1;
                if line.trim().is_empty() {
                    continue;
                }
                let cells = match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(map)) => {
                        let names: Vec<String> = map.keys().cloned().collect();
                        if let Err(e) = check_columns(rules, &names) {
                            send(Err(e));
                            return Ok(());
                        }
                        Ok(map
                            .into_iter()
                            .map(|(k, v)| {
                                let text = match &v {
                                    Value::String(s) => s.clone(),
                                    Value::Null => String::new(),
                                    other => other.to_string(),
                                };
                                (
                                    Arc::from(k.as_str()),
                                    Cell {
                                        text,
                                        json: Some(v),
                                    },
                                )
                            })
                            .collect())
                    }
                    Ok(_) => Err("not a JSON object".to_owned()),
                    Err(e) => Err(format!("not JSON (column {})", e.column())),
                };
                rows.push(Row {
                    line: line_number,
                    cells,
                });
                if rows.len() == batch_rows {
                    if !send(Ok(Chunk {
                        rows: std::mem::take(&mut rows),
                        bytes,
                    })) {
                        return Ok(());
                    }
                    bytes = 0;
                }
            }
            if !rows.is_empty() {
                send(Ok(Chunk { rows, bytes }));
            }
        }
    }
    Ok(())
}

/// Refuses columns the rules do not name (unless they set `default`), and JSON/CSV inputs that
/// lack a column the rules name (a typo would otherwise pass a column through unseen).
fn check_columns(rules: &Rules, columns: &[String]) -> Result<(), AnonymizeError> {
    let unnamed: Vec<&str> = columns
        .iter()
        .filter(|c| rules.action(c).is_none())
        .map(String::as_str)
        .collect();
    if !unnamed.is_empty() {
        return Err(AnonymizeError::Columns(format!(
            "the rules do not name column(s) {}: name them, or set default = \"drop\" or \"keep\"",
            unnamed.join(", ")
        )));
    }
    Ok(())
}

/// Applies the local rules to a chunk and sends its vault cells in one batch.
async fn transform_chunk(
    client: &Client,
    rules: &Rules,
    rows: Vec<Row>,
) -> Result<Vec<Done>, AnonymizeError> {
    let mut done = Vec::with_capacity(rows.len());
    // (row, cell index) of each batch item.
    let mut items = Vec::new();
    let mut batch = Vec::new();
    for row in rows {
        let cells = match row.cells {
            Ok(cells) => cells,
            Err(reason) => {
                done.push(Done {
                    line: row.line,
                    cells: Vec::new(),
                    failures: vec![("<record>".to_owned(), reason)],
                });
                continue;
            }
        };
        let mut out = Vec::with_capacity(cells.len());
        let mut failures = Vec::new();
        for (column, cell) in cells {
            let action = rules.action(&column).expect("checked when read");
            match &action {
                Action::Drop => continue,
                Action::Keep { .. } => out.push((column, cell)),
                Action::Mask {
                    keep_last, char, ..
                } => out.push((
                    column,
                    Cell {
                        text: rules::mask(&cell.text, *keep_last, *char),
                        json: None,
                    },
                )),
                Action::Generalize { how, .. } => match rules::generalize(how, &cell.text) {
                    Some(text) => out.push((column, Cell { text, json: None })),
                    None => {
                        failures.push((
                            column.to_string(),
                            "the value cannot be generalised as the rule says".to_owned(),
                        ));
                        out.push((
                            column,
                            Cell {
                                text: MARK.to_owned(),
                                json: None,
                            },
                        ));
                    }
                },
                Action::Fpe {
                    transformation,
                    email_domain,
                    ..
                }
                | Action::Pseudonym {
                    transformation,
                    email_domain,
                    ..
                } => {
                    items.push((done.len(), out.len(), *email_domain));
                    batch.push(json!({"value": cell.text, "transformation": transformation}));
                    out.push((
                        column,
                        Cell {
                            text: String::new(),
                            json: None,
                        },
                    ));
                }
            }
        }
        done.push(Done {
            line: row.line,
            cells: out,
            failures,
        });
    }
    if !batch.is_empty() {
        let path = format!("{}/transform/encode/{}", rules.tenant, rules.role);
        let answer = client
            .call(Method::POST, &path, Some(&json!({ "batch_input": batch })))
            .await
            .map_err(|e| AnonymizeError::Vault(e.to_string()))?;
        let results = answer["data"]["batch_results"]
            .as_array()
            .filter(|r| r.len() == items.len())
            .ok_or_else(|| {
                AnonymizeError::Vault("an answer without one result per value".into())
            })?;
        for ((row, cell, email_domain), result) in items.into_iter().zip(results) {
            let target = &mut done[row];
            match result["encoded_value"].as_str() {
                Some(value) => target.cells[cell].1.text = email_domain.apply(value),
                None => {
                    let column = target.cells[cell].0.to_string();
                    let reason = result["error"].as_str().unwrap_or("refused").to_owned();
                    target.failures.push((column, reason));
                    target.cells[cell].1.text = MARK.to_owned();
                }
            }
        }
    }
    Ok(done)
}

fn write_row(
    out: &mut impl Write,
    format: Format,
    columns: &[String],
    cells: &[(Arc<str>, Cell)],
) -> std::io::Result<()> {
    match format {
        Format::Csv => {
            if cells.is_empty() {
                // A broken record, marked.
                let marks: Vec<&str> = columns.iter().map(|_| MARK).collect();
                return csv::write_record(out, &marks);
            }
            let fields: Vec<&str> = cells.iter().map(|(_, c)| c.text.as_str()).collect();
            csv::write_record(out, &fields)
        }
        Format::JsonLines => {
            let object: serde_json::Map<String, Value> = cells
                .iter()
                .map(|(k, c)| {
                    (
                        k.to_string(),
                        c.json
                            .clone()
                            .unwrap_or_else(|| Value::String(c.text.clone())),
                    )
                })
                .collect();
            let object = if cells.is_empty() {
                json!({ "error": MARK })
            } else {
                Value::Object(object)
            };
            serde_json::to_writer(&mut *out, &object)?;
            out.write_all(b"\n")
        }
    }
}
