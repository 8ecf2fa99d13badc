//! Counters for `GET /v1/sys/metrics` in Prometheus text format: requests by operation and
//! status, latency and batch-size histograms, failed handshakes by reason, denials by tenant and
//! reason (who was denied is in the audit log: a label per principal would grow with the number
//! of certificates),
//! rate-limit hits, connections, seal state, key cache hits and misses, audit write failures.
//!
//! Recording costs a few relaxed atomic increments into fixed arrays; nothing is allocated or
//! locked on the request path except when a principal is denied.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Statuses counted separately; anything else counts as `other`.
const STATUSES: [u16; 14] = [
    200, 202, 204, 400, 403, 404, 405, 408, 413, 429, 500, 501, 503, 0,
];
/// Latency bucket bounds in microseconds.
const LATENCY_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];
/// Batch size bucket bounds.
const BATCH_ITEMS: [u64; 6] = [1, 10, 100, 1_000, 10_000, 100_000];
/// Distinct tenants kept in the denial counter; beyond it denials count under `other`.
const MAX_DENIED_TENANTS: usize = 1_000;
/// The `tenant` label of denials of vault-wide operations (`sys/…`, `pins/…`).
pub const NO_TENANT: &str = "-";
/// The `tenant` label of denials in tenants beyond [`MAX_DENIED_TENANTS`] or no policy names.
pub const OTHER_TENANT: &str = "other";

/// Which row a request is counted in: one of the names given to [`Metrics::new`] (the server
/// gives its operations, then the routes without one and `unrouted`). The name is the
/// `operation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row(usize);

struct Histogram {
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: usize) -> Self {
        Histogram {
            buckets: (0..bounds).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, bounds: &[u64], value: u64) {
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every counter the server keeps.
pub struct Metrics {
    /// The `operation` label of each row.
    rows: Box<[&'static str]>,
    requests: Vec<AtomicU64>,
    latency: Vec<Histogram>,
    batch_items: Histogram,
    handshake_failures: Mutex<BTreeMap<&'static str, u64>>,
    denials: Mutex<HashMap<(String, &'static str), u64>>,
    rate_limited: AtomicU64,
    refused_connections: AtomicU64,
    open_connections: AtomicU64,
}

impl Metrics {
    /// Counters for requests counted in `rows`, each labelled with its name (distinct names).
    pub fn new(rows: impl IntoIterator<Item = &'static str>) -> Metrics {
        let rows: Box<[&'static str]> = rows.into_iter().collect();
        Metrics {
            requests: (0..rows.len() * STATUSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: (0..rows.len())
                .map(|_| Histogram::new(LATENCY_US.len()))
                .collect(),
            rows,
            batch_items: Histogram::new(BATCH_ITEMS.len()),
            handshake_failures: Mutex::default(),
            denials: Mutex::default(),
            rate_limited: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            open_connections: AtomicU64::new(0),
        }
    }

    /// The row labelled `name`.
    pub fn row(&self, name: &str) -> Option<Row> {
        self.rows.iter().position(|r| *r == name).map(Row)
    }
}

/// State read from elsewhere when the metrics are rendered.
pub struct Gauges {
    /// The vault is sealed.
    pub sealed: bool,
    /// Key ring cache hits and misses.
    pub cache: (u64, u64),
    /// Audit lines that could not be written.
    pub audit_write_failures: u64,
    /// On PostgreSQL: the change-log position applied, and the age of the last confirmed read
    /// in milliseconds.
    pub change_log: Option<(i64, u64)>,
    /// On PostgreSQL: whether this node holds the background-job lease.
    pub job_lease_held: Option<bool>,
    /// SHA-256 (hex) of the loaded policy set.
    pub policy_set_sha256: String,
}

impl Metrics {
    /// Counts one request.
    pub fn record_request(&self, row: Row, status: u16, latency: Duration, batch_items: usize) {
        let status_slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[row.0 * STATUSES.len() + status_slot].fetch_add(1, Ordering::Relaxed);
        self.latency[row.0].observe(&LATENCY_US, latency.as_micros() as u64);
        if batch_items > 0 {
            self.batch_items.observe(&BATCH_ITEMS, batch_items as u64);
        }
    }

    /// Counts a policy denial in `tenant` ([`NO_TENANT`] for vault-wide operations; the caller
    /// gives [`OTHER_TENANT`] for a tenant no policy names, so request paths cannot grow the
    /// label set) for `reason` (a fixed label).
    pub fn record_denial(&self, tenant: &str, reason: &'static str) {
        let mut denials = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = denials.get_mut(&(tenant.to_owned(), reason)) {
            *count += 1;
        } else if denials.len() < MAX_DENIED_TENANTS {
            denials.insert((tenant.to_owned(), reason), 1);
        } else {
            *denials
                .entry((OTHER_TENANT.to_owned(), reason))
                .or_default() += 1;
        }
    }

    /// Counts a request refused by a rate limit.
    pub fn record_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed TLS handshake by reason.
    pub fn record_handshake_failure(&self, reason: &'static str) {
        *self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Counts a connection closed at once because `max_connections` were open.
    pub fn record_refused_connection(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Failed TLS handshakes by reason (`no_client_certificate`, `unknown_ca`, `timeout`, …).
    pub fn handshake_failures(&self) -> BTreeMap<&'static str, u64> {
        self.handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Connections closed at once because `max_connections` were open.
    pub fn refused_connections(&self) -> u64 {
        self.refused_connections.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed) as usize
    }

    /// Requests counted in `row` with `status`.
    pub fn requests(&self, row: Row, status: u16) -> u64 {
        let status_slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[row.0 * STATUSES.len() + status_slot].load(Ordering::Relaxed)
    }

    /// Requests refused by rate limits.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Denials in `tenant` for `reason`.
    pub fn denials(&self, tenant: &str, reason: &'static str) -> u64 {
        self.denials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(tenant.to_owned(), reason))
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        header(
            &mut out,
            "tresor_requests_total",
            "counter",
            "Requests by operation and HTTP status.",
        );
        for (row, name) in self.rows.iter().enumerate() {
            for (slot, status) in STATUSES.iter().enumerate() {
                let value = self.requests[row * STATUSES.len() + slot].load(Ordering::Relaxed);
                if value > 0 {
                    let status = if *status == 0 {
                        "other".to_owned()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "tresor_requests_total{{operation=\"{name}\",status=\"{status}\"}} {value}"
                    );
                }
            }
        }
        header(
            &mut out,
            "tresor_request_duration_seconds",
            "histogram",
            "Time to serve a request.",
        );
        for (histogram, name) in self.latency.iter().zip(&self.rows) {
            if histogram.count.load(Ordering::Relaxed) > 0 {
                let label = format!("operation=\"{name}\"");
                write_histogram(
                    &mut out,
                    "tresor_request_duration_seconds",
                    &label,
                    histogram,
                    &LATENCY_US,
                    micros_as_seconds,
                );
            }
        }
        header(
            &mut out,
            "tresor_batch_items",
            "histogram",
            "Items per batch request.",
        );
        write_histogram(
            &mut out,
            "tresor_batch_items",
            "",
            &self.batch_items,
            &BATCH_ITEMS,
            |n| n.to_string(),
        );
        header(
            &mut out,
            "tresor_handshake_failures_total",
            "counter",
            "Failed TLS handshakes by reason.",
        );
        for (reason, count) in self.handshake_failures() {
            let _ = writeln!(
                out,
                "tresor_handshake_failures_total{{reason=\"{reason}\"}} {count}"
            );
        }
        header(
            &mut out,
            "tresor_denials_total",
            "counter",
            "Requests refused by policy, by tenant and reason.",
        );
        let denials = self
            .denials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut denials: Vec<_> = denials.into_iter().collect();
        denials.sort();
        for ((tenant, reason), count) in denials {
            let _ = writeln!(
                out,
                "tresor_denials_total{{tenant=\"{}\",reason=\"{reason}\"}} {count}",
                escape(&tenant)
            );
        }
        single(
            &mut out,
            "tresor_rate_limited_total",
            "counter",
            "Requests refused by a rate limit.",
            self.rate_limited(),
        );
        single(
            &mut out,
            "tresor_connections_open",
            "gauge",
            "Open client connections.",
            self.open_connections() as u64,
        );
        single(
            &mut out,
            "tresor_connections_refused_total",
            "counter",
            "Connections refused at max_connections.",
            self.refused_connections(),
        );
        single(
            &mut out,
            "tresor_sealed",
            "gauge",
            "1 while the vault is sealed.",
            u64::from(gauges.sealed),
        );
        single(
            &mut out,
            "tresor_key_cache_hits_total",
            "counter",
            "Key ring lookups served from memory.",
            gauges.cache.0,
        );
        single(
            &mut out,
            "tresor_key_cache_misses_total",
            "counter",
            "Key ring lookups that loaded from storage.",
            gauges.cache.1,
        );
        single(
            &mut out,
            "tresor_audit_write_failures_total",
            "counter",
            "Audit lines that could not be written (their requests failed).",
            gauges.audit_write_failures,
        );
        header(
            &mut out,
            "tresor_policy_set_info",
            "gauge",
            "The loaded policy set, by the SHA-256 of its files (nodes that disagree differ).",
        );
        let _ = writeln!(
            out,
            "tresor_policy_set_info{{sha256=\"{}\"}} 1",
            gauges.policy_set_sha256
        );
        if let Some(held) = gauges.job_lease_held {
            single(
                &mut out,
                "tresor_job_lease_held",
                "gauge",
                "1 while this node holds the background-job lease and runs the jobs (PostgreSQL).",
                u64::from(held),
            );
        }
        if let Some((position, age_ms)) = gauges.change_log {
            single(
                &mut out,
                "tresor_change_log_position",
                "gauge",
                "The storage change-log position this node has applied (PostgreSQL).",
                u64::try_from(position).unwrap_or(0),
            );
            header(
                &mut out,
                "tresor_change_log_age_seconds",
                "gauge",
                "Time since this node's last confirmed read of the change log (its lag bound; past storage.max_staleness it answers 503).",
            );
            let _ = writeln!(
                out,
                "tresor_change_log_age_seconds {}",
                micros_as_seconds(age_ms * 1000)
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Microseconds as exact decimal seconds (`50` → `0.00005`).
fn micros_as_seconds(micros: u64) -> String {
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn write_histogram(
    out: &mut String,
    name: &str,
    label: &str,
    histogram: &Histogram,
    bounds: &[u64],
    unit: fn(u64) -> String,
) {
    let sep = if label.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (bound, bucket) in bounds.iter().zip(&histogram.buckets) {
        cumulative += bucket.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}{sep}le=\"{}\"}} {cumulative}",
            unit(*bound)
        );
    }
    let count = histogram.count.load(Ordering::Relaxed);
    let braces = if label.is_empty() {
        String::new()
    } else {
        format!("{{{label}}}")
    };
    let _ = writeln!(out, "{name}_bucket{{{label}{sep}le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "{name}_sum{braces} {}",
        unit(histogram.sum.load(Ordering::Relaxed))
    );
    let _ = writeln!(out, "{name}_count{braces} {count}");
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new(["encrypt", "health", "unrouted"]);
        let encrypt = metrics.row("encrypt").unwrap();
        metrics.record_request(encrypt, 200, Duration::from_micros(80), 0);
        metrics.record_request(encrypt, 200, Duration::from_micros(3000), 100);
        metrics.record_request(
            metrics.row("health").unwrap(),
            503,
            Duration::from_micros(10),
            0,
        );
        metrics.record_denial("pay\"ments", "no_grant");
        metrics.record_denial("pay\"ments", "no_grant");
        metrics.record_denial(NO_TENANT, "source_not_allowed");
        metrics.record_handshake_failure("unknown_ca");
        let text = metrics.render(&Gauges {
            sealed: false,
            cache: (5, 1),
            audit_write_failures: 0,
            change_log: Some((7, 1250)),
            job_lease_held: Some(true),
            policy_set_sha256: "ab".repeat(32),
        });
        assert!(
            text.contains(&format!(
                "tresor_policy_set_info{{sha256=\"{}\"}} 1\n",
                "ab".repeat(32)
            )),
            "{text}"
        );
        assert!(text.contains("tresor_change_log_position 7\n"), "{text}");
        assert!(text.contains("tresor_job_lease_held 1\n"), "{text}");
        assert!(
            text.contains("tresor_change_log_age_seconds 1.25\n"),
            "{text}"
        );
        assert!(
            text.contains("tresor_requests_total{operation=\"encrypt\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tresor_requests_total{operation=\"health\",status=\"503\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "tresor_request_duration_seconds_bucket{operation=\"encrypt\",le=\"0.0001\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "tresor_request_duration_seconds_bucket{operation=\"encrypt\",le=\"+Inf\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("tresor_batch_items_bucket{le=\"100\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tresor_denials_total{tenant=\"pay\\\"ments\",reason=\"no_grant\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tresor_denials_total{tenant=\"-\",reason=\"source_not_allowed\"} 1"),
            "{text}"
        );
        assert!(!text.contains("principal="), "{text}");
        assert_eq!(metrics.denials("pay\"ments", "no_grant"), 2);
        assert!(
            text.contains("tresor_handshake_failures_total{reason=\"unknown_ca\"} 1"),
            "{text}"
        );
        assert!(text.contains("tresor_key_cache_misses_total 1"), "{text}");
        assert_eq!(metrics.requests(encrypt, 200), 2);
        assert_eq!(metrics.row("nope"), None);
    }
}
