//! The gateway's errors: why it could not start, and why it refused a request.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// Why the gateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is unusable.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The supergraph file could not be read.
    #[error("cannot read supergraph {path}: {source}")]
    ReadSupergraph {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The supergraph could not be loaded, composed or planned over.
    #[error("supergraph: {0}")]
    Supergraph(String),
    /// The token verifier could not be built.
    #[error("token verifier: {0}")]
    Auth(String),
    /// Metrics could not be installed.
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
}

impl GatewayError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "GATEWAY_CONFIG",
            Self::ReadSupergraph { .. } | Self::Supergraph(_) => "GATEWAY_SUPERGRAPH",
            Self::Auth(_) => "GATEWAY_AUTH",
            Self::Telemetry(_) => "GATEWAY_TELEMETRY",
            Self::Serve(_) => "GATEWAY_SERVE",
        }
    }
}

/// A request the gateway refused before (or instead of) executing it: one GraphQL error with
/// a stable `extensions.code` and the HTTP status that goes with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// `extensions.code`.
    pub code: &'static str,
    /// What the client reads.
    pub message: String,
}

impl Refusal {
    /// A refusal with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 401: a token was sent and is not valid.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_TOO_LARGE",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 429: over the rate limit.
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many requests; slow down and retry later",
        )
    }

    /// 503: the supergraph is not loaded yet.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SUPERGRAPH_NOT_READY",
            "the gateway is starting; retry shortly",
        )
    }

    /// The GraphQL response body: `{"errors":[{"message","extensions":{"code"}}]}`.
    pub fn body(&self) -> Value {
        json!({
            "errors": [{
                "message": self.message,
                "extensions": { "code": self.code },
            }]
        })
    }
}
