//! `tresor bench`: load on a running vault over mutual TLS, and (`--baseline`) the same load on
//! a bare hyper + rustls server in this process, to show what the vault itself costs.
//! The engine is `tresor::bench`; this file parses arguments, draws progress and prints.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::bench::{
    self, BenchError, Ceiling, Live, Operation, Plan, Recorder, Report, Stop, Target, Workload,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::connection::ConnectionArgs;
use super::output::{self, Format};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// encrypt, decrypt, rewrap, datakey, hmac or mixed (the five in turn).
    #[arg(default_value = "encrypt", value_parser = operation)]
    operation: Operation,
    /// Keep-alive connections, each driven by its own task.
    #[arg(short = 'c', long, default_value_t = 1)]
    connections: usize,
    /// How long to run: 500ms, 10s, 2m (default 10s unless -n is given).
    #[arg(short = 'd', long, value_parser = duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// How many requests to send over all connections (instead of -d).
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Plaintext (or HMAC input) bytes per item.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Items per request (batch_input); 1 sends the single-item form.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Target requests per second over all connections: open loop, latency counted from each
    /// request's scheduled time (no coordinated omission). Default: as fast as answers come.
    #[arg(long)]
    rate: Option<f64>,
    /// Load sent before measuring, not recorded.
    #[arg(long, value_parser = duration, default_value = "0s")]
    warmup: Duration,
    /// Tenant to use as it is (default: `bench`, created if missing).
    #[arg(long)]
    tenant: Option<String>,
    /// Key to use as it is (default: `bench`, created if missing).
    #[arg(long)]
    key: Option<String>,
    /// Run against a Vault-compatible server (OpenBao's transit mounted at --tenant) instead of
    /// Tresor: every request carries this token as X-Vault-Token, nothing is set up (--tenant
    /// and --key must exist), only encrypt, hmac and datakey. The same client, paths and bodies
    /// as against Tresor, for side-by-side figures.
    #[arg(long, value_name = "TOKEN", env = "TRESOR_BENCH_VAULT_TOKEN", hide_env_values = true,
          requires_all = ["tenant", "key"])]
    vault_token: Option<String>,
    /// Also run the same load against a bare mTLS server in this process (the ceiling) and
    /// print the ratio vault/ceiling.
    #[arg(long)]
    baseline: bool,
    /// Run this many times (alternating vault and ceiling with --baseline); the ratio is the
    /// median of the rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    #[command(flatten)]
    connection: ConnectionArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn operation(text: &str) -> Result<Operation, String> {
    text.parse().map_err(|e: BenchError| e.to_string())
}

fn duration(text: &str) -> Result<Duration, String> {
    bench::parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct Round {
    vault_requests_per_sec: f64,
    ceiling_requests_per_sec: Option<f64>,
    ratio: Option<f64>,
}

#[derive(Serialize)]
struct Output<'a> {
    plan: String,
    operation: &'static str,
    connections: usize,
    size: usize,
    batch: usize,
    rate: Option<f64>,
    target: &'a str,
    tenant: &'a str,
    key: &'a str,
    created: &'a [String],
    vault: Report,
    ceiling: Option<Report>,
    /// Median over the rounds of vault requests/s ÷ ceiling requests/s.
    ratio: Option<f64>,
    rounds: Vec<Round>,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = Plan {
        connections: args.connections,
        stop: match (args.duration, args.requests) {
            (_, Some(n)) => Stop::Requests(n),
            (Some(d), None) => Stop::Duration(d),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        },
        operation: args.operation,
        size: args.size,
        batch: args.batch,
        rate: args.rate,
        warmup: args.warmup,
    };
    plan.validate()?;
    let settings = args.connection.settings()?;
    let mut target = Target::from_settings(&settings)?;
    let workload = match (&args.vault_token, &args.tenant, &args.key) {
        (Some(token), Some(tenant), Some(key)) => {
            target = target.with_vault_token(token)?;
            Workload::for_peer(&plan, tenant, key)?
        }
        _ => {
            Workload::prepare(
                &settings,
                &plan,
                args.tenant.as_deref(),
                args.key.as_deref(),
            )
            .await?
        }
    };
    let answers = bench::probe(&target, &workload).await?;
    let ceiling = if args.baseline {
        Some(Ceiling::start(answers).await?)
    } else {
        None
    };

    let mut vault_total = Recorder::new();
    let mut ceiling_total = Recorder::new();
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let label = |what: &str| {
            if args.rounds > 1 {
                format!("{what} {round}/{}", args.rounds)
            } else {
                what.to_owned()
            }
        };
        let vault = with_progress(&label("vault"), &plan, |live| {
            bench::run(&target, &workload, &plan, live)
        })
        .await?;
        let vault_rps = vault.report().requests_per_sec;
        vault_total.merge(&vault);
        let ceiling_rps = match &ceiling {
            Some(ceiling) => {
                let recorded = with_progress(&label("ceiling"), &plan, |live| {
                    bench::run(ceiling.target(), &workload, &plan, live)
                })
                .await?;
                ceiling_total.merge(&recorded);
                Some(recorded.report().requests_per_sec)
            }
            None => None,
        };
        rounds.push(Round {
            vault_requests_per_sec: vault_rps,
            ceiling_requests_per_sec: ceiling_rps,
            ratio: ceiling_rps.filter(|c| *c > 0.0).map(|c| vault_rps / c),
        });
    }
    let ratio = median(rounds.iter().filter_map(|r| r.ratio).collect());
    let out = Output {
        plan: plan.describe(),
        operation: plan.operation.name(),
        connections: plan.connections,
        size: plan.size,
        batch: plan.batch,
        rate: plan.rate,
        target: target.addr(),
        tenant: &workload.tenant,
        key: &workload.key,
        created: &workload.created,
        vault: vault_total.report(),
        ceiling: ceiling.as_ref().map(|_| ceiling_total.report()),
        ratio,
        rounds,
    };
    output::print(args.format, &out, text)
}

/// Runs `work` while a progress line on stderr (when it is a terminal) shows requests, rate and
/// errors.
async fn with_progress<F, Fut>(label: &str, plan: &Plan, work: F) -> Result<Recorder, BenchError>
where
    F: FnOnce(Arc<Live>) -> Fut,
    Fut: std::future::Future<Output = Result<Recorder, BenchError>>,
{
    let live = Arc::new(Live::default());
    let bar = match plan.stop {
        Stop::Requests(n) => ProgressBar::new(n),
        Stop::Duration(d) => ProgressBar::new((d + plan.warmup).as_millis() as u64),
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let ticker = {
        let live = live.clone();
        let bar = bar.clone();
        let stop = plan.stop;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let done = live.done.load(Ordering::Relaxed);
                let failed = live.failed.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                bar.set_position(match stop {
                    Stop::Requests(_) => done,
                    Stop::Duration(_) => started.elapsed().as_millis() as u64,
                });
                bar.set_message(format!(
                    "{secs:5.1} s  {done} requests  {:.0}/s  {failed} errors",
                    if secs > 0.0 { done as f64 / secs } else { 0.0 }
                ));
            }
        })
    };
    let result = work(live).await;
    ticker.abort();
    bar.finish_and_clear();
    result
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

fn text(out: &Output<'_>) -> String {
    let mut lines = vec![format!("tresor bench: {}", out.plan)];
    let created = if out.created.is_empty() {
        String::new()
    } else {
        format!("; created {}", out.created.join(", "))
    };
    lines.push(format!(
        "vault    {} (tenant {}, key {}{created})",
        out.target, out.tenant, out.key
    ));
    describe(&mut lines, &out.vault);
    if let Some(ceiling) = &out.ceiling {
        lines.push(
            "ceiling  hyper + rustls mTLS in this process (own runtime), same answers, no vault work"
                .into(),
        );
        describe(&mut lines, ceiling);
    }
    if let Some(ratio) = out.ratio {
        let rounds: Vec<String> = out
            .rounds
            .iter()
            .filter_map(|r| r.ratio)
            .map(|r| format!("{r:.2}"))
            .collect();
        let detail = if rounds.len() > 1 {
            format!(" (median of {} rounds: {})", rounds.len(), rounds.join(" "))
        } else {
            String::new()
        };
        lines.push(format!(
            "vault/ceiling: {ratio:.2} of the ceiling's requests/s{detail}"
        ));
    }
    lines.join("\n")
}

fn describe(lines: &mut Vec<String>, report: &Report) {
    lines.push(format!(
        "  requests   {} ok, {} errors in {:.2} s",
        report.requests, report.errors, report.elapsed_secs
    ));
    lines.push(format!(
        "  throughput {:.0} requests/s, {:.0} items/s, {:.2} MB/s",
        report.requests_per_sec, report.items_per_sec, report.mb_per_sec
    ));
    let l = &report.latency;
    lines.push(format!(
        "  latency    p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
        micros(l.p50_us),
        micros(l.p90_us),
        micros(l.p99_us),
        micros(l.p999_us),
        micros(l.max_us)
    ));
    for (kind, count) in &report.errors_by_kind {
        let example = report
            .error_examples
            .get(kind)
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default();
        lines.push(format!("  errors     {kind}: {count}{example}"));
    }
}

fn micros(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
