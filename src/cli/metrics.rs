//! `tresor metrics`: the server's Prometheus text as served at `/v1/sys/metrics`, or
//! (`--summary`) what an operator looks at first: seal state, requests and errors, latency,
//! refusals, handshake failures, connections, audit write failures, key cache.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Args;
use hyper::Method;
use serde::Serialize;

use super::connection::ConnectionArgs;
use super::output::{self, Format};

#[derive(Args)]
pub(crate) struct MetricsArgs {
    /// Print a summary instead of the Prometheus text.
    #[arg(long)]
    summary: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The summary's format (json implies --summary).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub(crate) async fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let body = args
        .connection
        .client()?
        .fetch_ok(Method::GET, "sys/metrics")
        .await?;
    let text = std::str::from_utf8(&body).context("the metrics are not UTF-8 text")?;
    if !args.summary && args.format == Format::Text {
        return output::line(text.trim_end());
    }
    let summary = Summary::of(&parse(text));
    output::print(args.format, &summary, Summary::text)
}

/// One sample: metric name, labels, value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format (the subset the server writes: no timestamps).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => (
                name.to_owned(),
                labels(rest.strip_suffix('}').unwrap_or(rest)),
            ),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// `a="x",b="y\"z"` into a map (values unescaped).
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        map.insert(name.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    map
}

#[derive(Serialize, Default, Debug)]
struct Summary {
    sealed: bool,
    requests: u64,
    /// By status class: `2xx`, `4xx`, `5xx`, `other`.
    requests_by_status: BTreeMap<String, u64>,
    /// The busiest operations.
    requests_by_operation: BTreeMap<String, u64>,
    /// Upper bounds of the latency buckets holding the median and the 99th percentile, over
    /// every operation, in seconds.
    latency_p50_seconds: Option<f64>,
    latency_p99_seconds: Option<f64>,
    denied: u64,
    /// By tenant (`-`: vault-wide operations).
    denied_by_tenant: BTreeMap<String, u64>,
    rate_limited: u64,
    handshake_failures: u64,
    handshake_failures_by_reason: BTreeMap<String, u64>,
    connections_open: u64,
    connections_refused: u64,
    audit_write_failures: u64,
    key_cache_hits: u64,
    key_cache_misses: u64,
}

impl Summary {
    fn of(samples: &[Sample]) -> Summary {
        let mut summary = Summary::default();
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in samples {
            let n = s.value as u64;
            let label = |name: &str| s.labels.get(name).cloned().unwrap_or_default();
            match s.name.as_str() {
                "tresor_sealed" => summary.sealed = n == 1,
                "tresor_requests_total" => {
                    summary.requests += n;
                    let status = label("status");
                    let class = match status.as_bytes().first() {
                        Some(d @ b'1'..=b'5') if status.len() == 3 => format!("{}xx", *d as char),
                        _ => "other".to_owned(),
                    };
                    *summary.requests_by_status.entry(class).or_default() += n;
                    *summary
                        .requests_by_operation
                        .entry(label("operation"))
                        .or_default() += n;
                }
                "tresor_request_duration_seconds_bucket" => {
                    let le = label("le");
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::INFINITY)
                    };
                    // Keyed by the bound's bits: sums the same bucket over every operation.
                    buckets.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += s.value;
                }
                "tresor_denials_total" => {
                    summary.denied += n;
                    *summary.denied_by_tenant.entry(label("tenant")).or_default() += n;
                }
                "tresor_rate_limited_total" => summary.rate_limited = n,
                "tresor_handshake_failures_total" => {
                    summary.handshake_failures += n;
                    summary
                        .handshake_failures_by_reason
                        .insert(label("reason"), n);
                }
                "tresor_connections_open" => summary.connections_open = n,
                "tresor_connections_refused_total" => summary.connections_refused = n,
                "tresor_audit_write_failures_total" => summary.audit_write_failures = n,
                "tresor_key_cache_hits_total" => summary.key_cache_hits = n,
                "tresor_key_cache_misses_total" => summary.key_cache_misses = n,
                _ => {}
            }
        }
        let mut cumulative: Vec<(f64, f64)> = buckets.into_values().collect();
        cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = cumulative.last().map_or(0.0, |b| b.1);
        let quantile = |q: f64| {
            (total > 0.0)
                .then(|| {
                    cumulative
                        .iter()
                        .find(|(_, count)| *count >= q * total)
                        .map(|(bound, _)| *bound)
                })
                .flatten()
                .filter(|b| b.is_finite())
        };
        summary.latency_p50_seconds = quantile(0.5);
        summary.latency_p99_seconds = quantile(0.99);
        summary
    }

    fn text(&self) -> String {
        let list = |map: &BTreeMap<String, u64>| {
            let mut entries: Vec<(&String, &u64)> = map.iter().filter(|(_, n)| **n > 0).collect();
            entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let shown: Vec<String> = entries
                .iter()
                .take(8)
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            shown.join(", ")
        };
        let detail = |map: &BTreeMap<String, u64>| match list(map) {
            text if text.is_empty() => text,
            text => format!(" ({text})"),
        };
        let latency = |seconds: Option<f64>| match seconds {
            Some(s) if s < 1.0 => format!("≤ {} ms", (s * 1e6).round() / 1e3),
            Some(s) => format!("≤ {s} s"),
            None => "-".to_owned(),
        };
        let lookups = self.key_cache_hits + self.key_cache_misses;
        let cache = if lookups == 0 {
            "no lookups yet".to_owned()
        } else {
            format!(
                "{:.1}% hits ({} hits, {} misses)",
                self.key_cache_hits as f64 * 100.0 / lookups as f64,
                self.key_cache_hits,
                self.key_cache_misses
            )
        };
        [
            format!("sealed: {}", if self.sealed { "yes" } else { "no" }),
            format!(
                "requests: {}{}",
                self.requests,
                detail(&self.requests_by_status)
            ),
            format!("  by operation: {}", list(&self.requests_by_operation)),
            format!(
                "latency: p50 {}, p99 {}",
                latency(self.latency_p50_seconds),
                latency(self.latency_p99_seconds)
            ),
            format!(
                "denied by policy: {}{}",
                self.denied,
                detail(&self.denied_by_tenant)
            ),
            format!("rate limited: {}", self.rate_limited),
            format!(
                "failed TLS handshakes: {}{}",
                self.handshake_failures,
                detail(&self.handshake_failures_by_reason)
            ),
            format!(
                "connections: {} open, {} refused at limits.max_connections",
                self.connections_open, self.connections_refused
            ),
            format!("audit write failures: {}", self.audit_write_failures),
            format!("key cache: {cache}"),
        ]
        .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP tresor_requests_total Requests by operation and HTTP status.
# TYPE tresor_requests_total counter
tresor_requests_total{operation="encrypt",status="200"} 8
tresor_requests_total{operation="decrypt",status="400"} 2
tresor_requests_total{operation="health",status="503"} 1
tresor_request_duration_seconds_bucket{operation="encrypt",le="0.001"} 7
tresor_request_duration_seconds_bucket{operation="encrypt",le="0.01"} 8
tresor_request_duration_seconds_bucket{operation="encrypt",le="+Inf"} 8
tresor_request_duration_seconds_bucket{operation="decrypt",le="0.001"} 0
tresor_request_duration_seconds_bucket{operation="decrypt",le="0.01"} 2
tresor_request_duration_seconds_bucket{operation="decrypt",le="+Inf"} 2
tresor_denials_total{tenant="pay\"ments",reason="no_grant"} 2
tresor_denials_total{tenant="pay\"ments",reason="source_not_allowed"} 1
tresor_handshake_failures_total{reason="unknown_ca"} 2
tresor_sealed 0
tresor_key_cache_hits_total 9
tresor_key_cache_misses_total 1
"#;

    #[test]
    fn summarises_the_exposition() {
        let summary = Summary::of(&parse(TEXT));
        assert_eq!(summary.requests, 11);
        assert_eq!(summary.requests_by_status["2xx"], 8);
        assert_eq!(summary.requests_by_status["4xx"], 2);
        assert_eq!(summary.requests_by_status["5xx"], 1);
        assert_eq!(summary.denied_by_tenant["pay\"ments"], 3);
        assert_eq!(summary.latency_p50_seconds, Some(0.001));
        assert_eq!(summary.latency_p99_seconds, Some(0.01));
        let text = summary.text();
        assert!(
            text.contains("requests: 11 (2xx 8, 4xx 2, 5xx 1)"),
            "{text}"
        );
        assert!(text.contains("latency: p50 ≤ 1 ms, p99 ≤ 10 ms"), "{text}");
        assert!(
            text.contains("failed TLS handshakes: 2 (unknown_ca 2)"),
            "{text}"
        );
        assert!(text.contains("key cache: 90.0% hits"), "{text}");
        assert!(text.starts_with("sealed: no\n"), "{text}");
    }
}
