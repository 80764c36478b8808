//! The OpenTelemetry tracer provider, exporting spans over OTLP/gRPC when configured.

use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::TelemetryError;

/// Environment variables that name an OTLP collector; any non-empty one turns export on.
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The OTLP endpoint from the environment, if one is set.
pub(crate) fn configured_endpoint() -> Option<String> {
    ENDPOINT_VARS
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|value| !value.trim().is_empty())
}

/// A tracer provider for `service_name`.
///
/// With an endpoint it batches spans to the collector over gRPC (which needs a running
/// Tokio runtime); without one it still creates sampled spans, so trace ids exist and
/// propagate across hops, but exports nothing.
/// The exporter reads the endpoint (and timeouts, headers) from the standard
/// `OTEL_EXPORTER_OTLP_*` variables itself; `export` only says whether to build it.
pub(crate) fn tracer_provider(
    service_name: &str,
    export: bool,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    if !export {
        return Ok(builder.build());
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(TelemetryError::NoRuntime);
    }
    let exporter = SpanExporter::builder().with_tonic().build()?;
    Ok(builder.with_batch_exporter(exporter).build())
}
