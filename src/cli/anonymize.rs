//! `tresor anonymize` and `tresor sample-payroll` (docs/anonymize.md): the command-line side of
//! [`crate::anonymize`]: arguments, connections, the progress bar, the summary, interrupts.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::Exit;
use super::connection::ConnectionArgs;
use super::output::{self, Format};
use crate::anonymize::{self, Options, Summary, rules::Rules};

#[derive(Args, Debug)]
pub(crate) struct AnonymizeArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The rules file (TOML; see examples/payroll-rules.toml).
    #[arg(long, value_name = "RULES.toml")]
    rules: PathBuf,
    /// The extract: CSV with a header row, or JSON Lines (`.jsonl`, `.ndjson`).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// The analyst's extract, in the input's format; written only if the run succeeds.
    #[arg(long = "out", value_name = "FILE")]
    output: PathBuf,
    /// Connections to the server, each with batches in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    connections: u64,
    /// Rows per batch request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Fail, writing nothing, when the extract is less than k-anonymous over its
    /// quasi-identifier columns.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    min_k: Option<u64>,
    /// The summary: text, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args, Debug)]
pub(crate) struct SamplePayrollArgs {
    /// Rows to write (besides the header).
    #[arg(long, default_value_t = 1000)]
    rows: u64,
    /// Seed: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The CSV file to write (refused if it exists).
    #[arg(long = "out", value_name = "FILE")]
    output: PathBuf,
}

/// Writes a synthetic payroll extract (invented people; for tests, benchmarks and docs).
pub(crate) fn sample_payroll(args: SamplePayrollArgs) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    anonymize::generate::payroll(&mut out, args.rows, args.seed)
        .and_then(|()| std::io::Write::flush(&mut out))
        .with_context(|| format!("writing {}", args.output.display()))
}

pub(crate) async fn run(args: AnonymizeArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("reading {}", args.rules.display()))?;
    let rules = Rules::parse(&text).with_context(|| args.rules.display().to_string())?;
    let clients = (0..args.connections)
        .map(|_| args.connection.client())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let total = std::fs::metadata(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?
        .len();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {percent:>3}% {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let started = std::time::Instant::now();
    let shown = bar.clone();
    let progress: Arc<anonymize::Progress> = Arc::new(move |rows: u64, bytes: u64| {
        if let Some(bar) = &shown {
            bar.inc(bytes.saturating_sub(bar.position()));
            bar.set_position(bytes);
            let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
        }
    });
    let options = Options {
        input: args.input.clone(),
        output: args.output.clone(),
        batch_rows: args.batch as usize,
        min_k: args.min_k,
    };
    let work = anonymize::run(clients, rules, options, progress);
    let result = tokio::select! {
        result = work => result,
        () = interrupted() => {
            // Dropping the run removed its partial file.
            if let Some(bar) = &bar { bar.abandon(); }
            eprintln!("tresor: interrupted: no output written");
            return Err(Exit(130).into());
        }
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = result?;
    output::print(args.format, &summary, summary_text)
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn summary_text(s: &Summary) -> String {
    let mut out = format!(
        "rows: {} read, {} written, {} skipped, {} marked ({:.0} rows/s)\ncolumns: {}\ndropped: {}",
        s.rows_in,
        s.rows_out,
        s.skipped,
        s.marked,
        s.rows_per_second,
        s.columns.join(", "),
        if s.dropped.is_empty() {
            "none".to_owned()
        } else {
            s.dropped.join(", ")
        },
    );
    for (column, count) in &s.errors {
        out.push_str(&format!("\nerrors in {column}: {count}"));
    }
    if let Some(k) = &s.k_anonymity {
        out.push_str(&format!(
            "\nk-anonymity over {}: k = {} ({} groups; smallest: {:?})",
            k.quasi_identifiers.join(", "),
            k.k,
            k.groups,
            k.smallest_groups
        ));
    }
    out
}
