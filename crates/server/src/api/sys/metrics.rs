//! GET `sys/metrics`: the server's counters (`crate::metrics`) in Prometheus text format.

use hyper::StatusCode;
use tresor_wire::api::sys;

use crate::api::endpoint::{Call, Endpoint};
use crate::api::reply::{ApiError, Reply};
use crate::metrics::Gauges;
use crate::policy::{Operation, Scope};

/// Read Prometheus metrics.
pub(crate) const METRICS: Operation = Operation::new("metrics", Scope::Vault);

pub(crate) const ENDPOINT: Endpoint = Endpoint::new(sys::METRICS, METRICS, handle);

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let state = call.state;
    let gauges = Gauges {
        sealed: state.services.vault.is_sealed(),
        cache: state.services.vault.key_cache_stats(),
        audit_write_failures: state.audit.as_ref().map_or(0, |a| a.write_failures()),
        change_log: state.coherence.as_ref().map(|c| {
            let status = c.status();
            (status.position(), status.age().as_millis() as u64)
        }),
        policy_set_sha256: state.policies.current().digest().to_owned(),
        job_lease_held: state.coherence.as_ref().map(|c| c.job_epoch().is_some()),
    };
    Ok(Reply::text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        state.metrics.render(&gauges),
    ))
}
