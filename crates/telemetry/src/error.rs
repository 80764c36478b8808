//! The one error type of this crate, with a stable code per variant.

/// Everything that can go wrong while installing or using telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `init` already ran in this process; the first subscriber stays installed.
    #[error("telemetry is already initialised in this process")]
    AlreadyInitialized,
    /// Another global tracing subscriber was installed before `init`.
    #[error("a global tracing subscriber is already installed: {0}")]
    SubscriberInstalled(#[from] tracing::subscriber::SetGlobalDefaultError),
    /// `RUST_LOG` holds directives that do not parse.
    #[error("invalid RUST_LOG filter: {0}")]
    InvalidFilter(#[from] tracing_subscriber::filter::FromEnvError),
    /// The OTLP exporter needs a Tokio runtime and none was running.
    #[error("OTLP export needs a running tokio runtime; call init from inside one")]
    NoRuntime,
    /// The OTLP span exporter could not be built from its configuration.
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The Prometheus recorder could not be installed as the global `metrics` recorder.
    #[error("cannot install the prometheus recorder: {0}")]
    MetricsRecorder(#[from] metrics_exporter_prometheus::BuildError),
    /// A background thread could not be started.
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// Why the spawn failed.
        source: std::io::Error,
    },
    /// A `traceparent` string is not a valid W3C trace context.
    #[error("invalid traceparent: {0:?}")]
    InvalidTraceparent(String),
    /// A span's parent could not be set (already started, or no OpenTelemetry layer).
    #[error("cannot set the span's parent context: {0}")]
    SetParent(#[from] tracing_opentelemetry::SetParentError),
    /// Serving the ops endpoints failed.
    #[error("ops server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl TelemetryError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyInitialized => "TELEMETRY_ALREADY_INITIALIZED",
            Self::SubscriberInstalled(_) => "TELEMETRY_SUBSCRIBER_INSTALLED",
            Self::InvalidFilter(_) => "TELEMETRY_INVALID_FILTER",
            Self::NoRuntime => "TELEMETRY_NO_RUNTIME",
            Self::Exporter(_) => "TELEMETRY_EXPORTER",
            Self::MetricsRecorder(_) => "TELEMETRY_METRICS_RECORDER",
            Self::Thread { .. } => "TELEMETRY_THREAD",
            Self::InvalidTraceparent(_) => "TELEMETRY_INVALID_TRACEPARENT",
            Self::SetParent(_) => "TELEMETRY_SET_PARENT",
            Self::Serve(_) => "TELEMETRY_SERVE",
        }
    }
}
