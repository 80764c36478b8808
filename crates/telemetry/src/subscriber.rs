//! `init`: the process-wide tracing subscriber (logs + OpenTelemetry) and its guard.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::logging::{self, LogFormat};
use crate::{TelemetryError, otlp, propagation};

/// Set by the first `init` that gets past the check; later calls fail fast.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Keeps the tracer provider alive; dropping it flushes and shuts down span export.
///
/// Drop it at the very end of `main`, from a multi-threaded Tokio runtime (or outside
/// any runtime) when OTLP export is on: the final flush waits for the gRPC exporter.
#[must_use = "dropping the guard shuts down span export"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "tracer provider shutdown failed");
        }
    }
}

/// Installs the global tracing subscriber and the W3C trace-context propagator.
///
/// Logs go to stdout as JSON lines (`LOG_FORMAT=pretty` for humans), filtered by
/// `RUST_LOG` (default `info`). Spans always carry OpenTelemetry context so trace ids
/// propagate; they are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, which requires a Tokio runtime.
/// A second call returns [`TelemetryError::AlreadyInitialized`].
pub fn init(service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    if INITIALIZED.swap(true, Ordering::SeqCst) {
        return Err(TelemetryError::AlreadyInitialized);
    }
    install(service_name).inspect_err(|_| INITIALIZED.store(false, Ordering::SeqCst))
}

fn install(service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    let filter = logging::env_filter()?;
    let format = LogFormat::from_env();
    let export = otlp::configured_endpoint().is_some();
    let provider = otlp::tracer_provider(service_name, export)?;
    let tracer = provider.tracer(service_name.to_owned());

    let subscriber = Registry::default()
        .with(filter)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(logging::fmt_layer(format));
    if let Err(error) = tracing::subscriber::set_global_default(subscriber) {
        // Nothing was exported yet; the shutdown result adds nothing to the error.
        let _ = provider.shutdown();
        return Err(error.into());
    }
    propagation::install_propagator();
    opentelemetry::global::set_tracer_provider(provider.clone());

    tracing::info!(
        service = service_name,
        log_format = format.as_str(),
        otlp_export = export,
        "telemetry initialised"
    );
    Ok(TelemetryGuard { provider })
}
