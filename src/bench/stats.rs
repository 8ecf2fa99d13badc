//! Counting and summarising: a [`Recorder`] per connection, merged at the end into one, and the
//! [`Report`] computed from it.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency the histogram holds (longer ones are recorded as this).
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// What one connection (or, merged, a whole run) saw.
#[derive(Debug, Clone)]
pub struct Recorder {
    histogram: Histogram<u64>,
    requests: u64,
    items: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    examples: BTreeMap<String, String>,
    elapsed: Duration,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            histogram: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("static histogram bounds are valid"),
            requests: 0,
            items: 0,
            bytes: 0,
            errors: BTreeMap::new(),
            examples: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// A successful request: its latency, the items it carried that succeeded and their payload
    /// bytes, and the items of a batch that the server refused inside a successful answer
    /// (those also count as errors of kind `batch item`).
    pub fn record_ok(&mut self, latency: Duration, items: u64, bytes: u64, item_errors: u64) {
        let ns = (latency.as_nanos().min(u128::from(MAX_LATENCY_NS)) as u64).max(1);
        self.histogram.saturating_record(ns);
        self.requests += 1;
        self.items += items;
        self.bytes += bytes;
        if item_errors > 0 {
            // Not `entry`: it would allocate the key on every such request of the load loop.
            match self.errors.get_mut("batch item") {
                Some(total) => *total += item_errors,
                None => {
                    self.errors.insert("batch item".to_owned(), item_errors);
                }
            }
        }
    }

    /// A failed request, by kind (`HTTP 503`, `connection`, …), with a message kept as the
    /// example of the first error of that kind.
    pub fn record_error(&mut self, kind: &str, message: impl FnOnce() -> String) {
        self.record_errors(kind, 1, message);
    }

    /// `count` failed requests of one kind.
    pub fn record_errors(&mut self, kind: &str, count: u64, message: impl FnOnce() -> String) {
        match self.errors.get_mut(kind) {
            Some(total) => *total += count,
            None => {
                self.errors.insert(kind.to_owned(), count);
                self.examples.insert(kind.to_owned(), message());
            }
        }
    }

    /// Sets how long the measured part of the run took.
    pub fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
    }

    /// Adds `other`'s counts and latencies (elapsed times add up too: merging the rounds of a
    /// run gives the mean over all of them).
    pub fn merge(&mut self, other: &Recorder) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds merge");
        self.requests += other.requests;
        self.items += other.items;
        self.bytes += other.bytes;
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
            if let Some(example) = other.examples.get(kind) {
                self.examples
                    .entry(kind.clone())
                    .or_insert_with(|| example.clone());
            }
        }
        self.elapsed += other.elapsed;
    }

    /// Successful requests.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Failed requests and refused batch items.
    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The figures.
    pub fn report(&self) -> Report {
        let secs = self.elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let us = |ns: u64| ns as f64 / 1000.0;
        let h = &self.histogram;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                mean_us: h.mean() / 1000.0,
                p50_us: us(h.value_at_quantile(0.50)),
                p90_us: us(h.value_at_quantile(0.90)),
                p99_us: us(h.value_at_quantile(0.99)),
                p999_us: us(h.value_at_quantile(0.999)),
                max_us: us(h.max()),
            }
        };
        Report {
            requests: self.requests,
            items: self.items,
            errors: self.errors(),
            errors_by_kind: self.errors.clone(),
            error_examples: self.examples.clone(),
            elapsed_secs: secs,
            requests_per_sec: per_sec(self.requests),
            items_per_sec: per_sec(self.items),
            mb_per_sec: per_sec(self.bytes) / 1e6,
            latency,
        }
    }
}

/// Latency percentiles of the successful requests, in microseconds (HDR histogram, 3 significant
/// digits: each figure is within 0.1% of the exact value).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
}

/// The figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Successful requests.
    pub requests: u64,
    /// Items in them that succeeded (requests × batch, less refused items).
    pub items: u64,
    /// Failed requests plus refused batch items.
    pub errors: u64,
    /// Errors by kind: `HTTP <status>`, `connection`, `batch item`, …
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first message seen for each kind.
    pub error_examples: BTreeMap<String, String>,
    /// Measured time.
    pub elapsed_secs: f64,
    /// Successful requests per second.
    pub requests_per_sec: f64,
    /// Successful items per second.
    pub items_per_sec: f64,
    /// Payload (plaintext or HMAC input; 32 bytes per data key) in 10⁶ bytes per second.
    pub mb_per_sec: f64,
    /// Latency percentiles.
    pub latency: Latency,
}
