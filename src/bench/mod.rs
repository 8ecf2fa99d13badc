//! The load tool behind `tresor bench`: drives a running vault over mutual TLS with keep-alive
//! connections and measures what it gets, and can run the same load against a bare hyper +
//! rustls server (the *ceiling*) to show what the vault itself costs.
//!
//! The pieces:
//!
//! - [`Plan`]: how much load (connections, duration or request count, operation, payload size,
//!   batch size, optional fixed rate). [`Plan::validate`] refuses nonsense with a clear message.
//! - [`Workload::prepare`]: makes sure the tenant and key exist (creating `bench`/`bench` when
//!   none are named), makes the ciphertexts that `decrypt` and `rewrap` need, and builds every
//!   request body once, so the load loop only copies a reference.
//! - [`run`]: one task per connection, each with its own TLS connection and HTTP/1.1 keep-alive.
//!   Closed loop by default (each connection sends its next request when the previous answer has
//!   arrived). With a rate the loop is open: a pacer thread hands request *g* to connection
//!   *g* mod *c* at `start + g / rate` whatever happened before (a thread, because tokio's
//!   millisecond timer would send the requests in bursts). When the connection was still busy
//!   at that time, latency counts from the time the request was *due*, not from when it could
//!   be sent, so a stall shows in the percentiles instead of silently lowering the load
//!   (coordinated omission). Requests still waiting when the run ends, or beyond a backlog of
//!   10,000 per connection, count as errors of kind `not sent`.
//! - [`Recorder`] and [`Report`]: counts, errors by kind and an HDR histogram of latencies
//!   (nanosecond values, three significant digits), turned into requests/s, items/s, MB/s and
//!   p50/p90/p99/p99.9/max.
//! - [`Ceiling`]: the in-process baseline server, with the vault's TLS configuration, answering
//!   each route with a recorded vault answer of the same size and doing nothing else.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tresor::bench::{Live, Operation, Plan, Stop, Target, Workload, run};
//! use tresor_client::ClientSettings;
//!
//! let settings = ClientSettings {
//!     addr: "https://127.0.0.1:8200".into(),
//!     ca_cert: "ca.pem".into(),
//!     client_cert: "client.pem".into(),
//!     client_key: "client-key.pem".into(),
//! };
//! let plan = Plan { operation: Operation::Encrypt, stop: Stop::Requests(1000), ..Plan::default() };
//! plan.validate()?;
//! let target = Target::from_settings(&settings)?;
//! let workload = Workload::prepare(&settings, &plan, None, None).await?;
//! let recorder = run(&target, &workload, &plan, Arc::new(Live::default())).await?;
//! let report = recorder.report();
//! println!("{} requests/s, p99 {} µs", report.requests_per_sec, report.latency.p99_us);
//! # Ok(()) }
//! ```

mod ceiling;
mod load;
mod stats;
mod workload;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use ceiling::Ceiling;
pub use load::{Live, Target, probe, run};
pub use stats::{Latency, Recorder, Report};
pub use workload::{Template, Workload};

/// The most connections one run may open.
pub const MAX_CONNECTIONS: usize = 10_000;
/// The largest payload per item (bytes).
pub const MAX_SIZE: usize = 16 * 1024 * 1024;
/// The largest batch (the server's default `limits.max_batch_items`).
pub const MAX_BATCH: usize = 10_000;

/// Why a run could not be set up or carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The plan is not usable.
    #[error("{0}")]
    Invalid(String),
    /// Setting up the tenant, key or sample ciphertexts failed.
    #[error("setting up the benchmark: {0}")]
    Setup(#[from] tresor_client::ClientError),
    /// TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] tresor_client::tls::TlsError),
    /// No connection could be opened to the target.
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        /// The target.
        addr: String,
        /// Why.
        message: String,
    },
    /// The target refused the requests of the plan (checked with one request of each kind
    /// before the load starts).
    #[error("the target refused the benchmark's requests: {0}")]
    Refused(String),
    /// The baseline server could not start.
    #[error("cannot start the baseline server: {0}")]
    Ceiling(String),
}

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `encrypt/:key`.
    Encrypt,
    /// `decrypt/:key`, of ciphertexts made at setup.
    Decrypt,
    /// `rewrap/:key`, of ciphertexts made at setup.
    Rewrap,
    /// `datakey/plaintext/:key`, 256 bits (no batch form).
    DataKey,
    /// `hmac/:key` (sha2-256).
    Hmac,
    /// The five above in turn: request *g* does operation *g* mod 5.
    Mixed,
}

impl Operation {
    /// Every operation, as named on the command line.
    pub const ALL: [Operation; 6] = [
        Operation::Encrypt,
        Operation::Decrypt,
        Operation::Rewrap,
        Operation::DataKey,
        Operation::Hmac,
        Operation::Mixed,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
            Operation::Rewrap => "rewrap",
            Operation::DataKey => "datakey",
            Operation::Hmac => "hmac",
            Operation::Mixed => "mixed",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Operation {
    type Err = BenchError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.name() == text)
            .ok_or_else(|| {
                BenchError::Invalid(format!(
                    "unknown operation `{text}`: use encrypt, decrypt, rewrap, datakey, hmac or mixed"
                ))
            })
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this long (requests due later are not sent; those in flight finish).
    Duration(Duration),
    /// After this many requests over all connections.
    Requests(u64),
}

/// How much load, of what kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Keep-alive connections, each driven by its own task.
    pub connections: usize,
    /// When to stop.
    pub stop: Stop,
    /// What each request does.
    pub operation: Operation,
    /// Plaintext (or HMAC input) bytes per item.
    pub size: usize,
    /// Items per request (1: the single-item form, no `batch_input`).
    pub batch: usize,
    /// Requests per second over all connections (open loop); `None`: as fast as answers come.
    pub rate: Option<f64>,
    /// Load sent before measuring starts (not recorded).
    pub warmup: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            connections: 1,
            stop: Stop::Duration(Duration::from_secs(10)),
            operation: Operation::Encrypt,
            size: 64,
            batch: 1,
            rate: None,
            warmup: Duration::ZERO,
        }
    }
}

impl Plan {
    /// Refuses a plan that cannot run, saying which setting is wrong and what is allowed.
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |m: String| Err(BenchError::Invalid(m));
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return invalid(format!(
                "invalid connection count {}: use 1 to {MAX_CONNECTIONS}",
                self.connections
            ));
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => {
                return invalid("invalid duration 0: the run must last longer than that".into());
            }
            Stop::Requests(0) => {
                return invalid("invalid request count 0: use at least 1".into());
            }
            _ => {}
        }
        if self.size == 0 || self.size > MAX_SIZE {
            return invalid(format!(
                "invalid size {}: use 1 to {MAX_SIZE} bytes",
                self.size
            ));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return invalid(format!(
                "invalid batch size {}: use 1 to {MAX_BATCH} items",
                self.batch
            ));
        }
        if self.batch > 1 && self.operation == Operation::DataKey {
            return invalid(
                "datakey has no batch form (Vault's transit API has none): drop --batch".into(),
            );
        }
        if let Some(rate) = self.rate {
            if !rate.is_finite() || rate <= 0.0 || rate > 10_000_000.0 {
                return invalid(format!(
                    "invalid rate {rate}: use a number of requests per second above 0 and at most 10000000"
                ));
            }
        }
        Ok(())
    }

    /// One line describing the load, for reports.
    pub fn describe(&self) -> String {
        let stop = match self.stop {
            Stop::Duration(d) => format!("{:.1} s", d.as_secs_f64()),
            Stop::Requests(n) => format!("{n} requests"),
        };
        let pace = match self.rate {
            Some(rate) => format!("open loop at {rate} requests/s"),
            None => "closed loop".to_owned(),
        };
        format!(
            "{}, {} B x {} item{}, {} connection{}, {stop}, {pace}",
            self.operation,
            self.size,
            self.batch,
            if self.batch == 1 { "" } else { "s" },
            self.connections,
            if self.connections == 1 { "" } else { "s" },
        )
    }
}

/// Parses a duration as written on the command line: `500ms`, `10s`, `2m`, `1h`, or a bare
/// number of seconds (fractions allowed: `1.5`, `0.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, BenchError> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    match number.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 && value * scale <= 1e9 => {
            Ok(Duration::from_secs_f64(value * scale))
        }
        _ => Err(BenchError::Invalid(format!(
            "invalid duration `{text}`: use a number with ms, s, m or h (e.g. 500ms, 10s, 2m)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn operations_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.name().parse::<Operation>().unwrap(), op);
        }
        assert!("encrypt2".parse::<Operation>().is_err());
    }
}
