//! The process-wide Prometheus recorder behind the `metrics` facade.

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::TelemetryError;

/// How often the upkeep thread drains histogram buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Bucket bounds (seconds) of every `*_seconds` histogram: Prometheus client libraries'
/// default buckets, widened to 1 ms below and 60 s above. Without them the exporter renders
/// summaries, whose quantiles cannot be aggregated across instances.
const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The installed recorder's handle; the lock also serialises first installs.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder as the global `metrics` recorder, once.
///
/// Metrics named `*_seconds` are rendered as histograms (`_bucket`, `_sum`, `_count`).
/// Later calls return the same handle. Fails if some other `metrics` recorder was
/// installed first. Starts a background thread that runs the recorder's upkeep.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, TelemetryError> {
    let mut slot = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    // Start the thread before installing, so a failed spawn leaves nothing installed.
    let (sender, receiver) = mpsc::channel::<PrometheusHandle>();
    std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || upkeep(receiver))
        .map_err(|source| TelemetryError::Thread {
            name: "metrics-upkeep",
            source,
        })?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &DURATION_BUCKETS)?
        .install_recorder()?;
    // The thread only exits early if it panicked; the recorder still works without it.
    let _ = sender.send(handle.clone());
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Runs upkeep forever once a handle arrives; returns if installation failed.
fn upkeep(receiver: mpsc::Receiver<PrometheusHandle>) {
    let Ok(handle) = receiver.recv() else {
        return;
    };
    loop {
        std::thread::sleep(UPKEEP_INTERVAL);
        handle.run_upkeep();
    }
}
