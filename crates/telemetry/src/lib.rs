//! Telemetry owns how every service is observed: JSON log lines, tracing spans exported
//! over OTLP, Prometheus metrics, the ops endpoints and W3C trace-context propagation.
//!
//! Layout: [`init`] (in `subscriber`) installs the global subscriber built from
//! `logging` (format and `RUST_LOG` filter) and `otlp` (the tracer provider), and returns
//! a [`TelemetryGuard`] that flushes spans on drop; `prometheus` installs the global
//! `metrics` recorder; `health` holds [`Readiness`]; `ops` serves `/metrics`, `/healthz`
//! and `/readyz`; `propagation` injects and extracts trace context through the
//! Injector/Extractor adapters in `carrier` (HTTP headers, Kafka headers, Redis stream
//! fields, gRPC metadata) and converts `traceparent` strings.
//!
//! It must not know any domain: no orders, events or adapters live here, it does not
//! open connections other than the OTLP exporter's, and it never logs secrets or
//! request bodies. Binaries call `init` once at the edge; libraries only use `tracing`
//! and `metrics` macros and the propagation helpers.

#![warn(missing_docs)]

mod carrier;
mod error;
mod health;
mod logging;
mod ops;
mod otlp;
mod prometheus;
mod propagation;
mod subscriber;

pub use carrier::{
    HeaderExtractor, HeaderInjector, KafkaHeadersExtractor, KafkaHeadersInjector,
    MetadataExtractor, MetadataInjector, StreamFieldsExtractor, StreamFieldsInjector,
};
pub use error::TelemetryError;
pub use health::{Readiness, STARTUP_CHECK};
pub use logging::LogFormat;
pub use metrics_exporter_prometheus::PrometheusHandle;
pub use opentelemetry::Context;
pub use ops::{PROMETHEUS_CONTENT_TYPE, metrics_and_readiness_router, ops_router, serve_ops};
pub use prometheus::install_metrics_recorder;
pub use propagation::{
    TRACEPARENT, context_from_traceparent, current_traceparent, extract_context,
    extract_grpc_metadata, extract_http_headers, extract_kafka_headers, extract_stream_fields,
    inject_context, inject_current, inject_grpc_metadata, inject_http_headers,
    inject_kafka_headers, inject_stream_fields, install_propagator, set_parent,
    set_parent_from_traceparent,
};
pub use subscriber::{TelemetryGuard, init};
