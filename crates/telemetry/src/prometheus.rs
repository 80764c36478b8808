//! The process-wide Prometheus recorder behind the `metrics` facade.

use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::TelemetryError;

/// How often the upkeep thread drains histogram buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The installed recorder's handle; the lock also serialises first installs.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder as the global `metrics` recorder, once.
///
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
    let handle = PrometheusBuilder::new().install_recorder()?;
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
