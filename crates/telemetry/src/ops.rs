//! The ops endpoints every service serves: `/metrics`, `/healthz`, `/readyz`.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::{Readiness, TelemetryError};

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct OpsState {
    handle: PrometheusHandle,
    readiness: Readiness,
}

/// A router serving `GET /metrics`, `GET /healthz` and `GET /readyz`.
///
/// Merge it into a service's router, or serve it alone with [`serve_ops`].
pub fn ops_router(handle: PrometheusHandle, readiness: Readiness) -> Router {
    metrics_and_readiness_router(handle, readiness).route("/healthz", get(healthz))
}

/// A router serving `GET /metrics` and `GET /readyz`, for a service whose own router already
/// answers `/healthz`.
pub fn metrics_and_readiness_router(handle: PrometheusHandle, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(OpsState { handle, readiness })
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve_ops(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TelemetryError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "ops server listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(TelemetryError::Serve)
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
        state.handle.render(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, String) {
    let pending = state.readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", pending.join(", ")),
        )
    }
}
