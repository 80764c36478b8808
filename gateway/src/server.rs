//! The gateway server: its routes, its start-up (supergraph, verifier, limits) and `serve`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt as _;
use telemetry::{PrometheusHandle, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::apq::PersistedQueries;
use crate::authentication::Authenticator;
use crate::config::{GatewayConfig, SupergraphSource};
use crate::error::GatewayError;
use crate::graphiql::Graphiql;
use crate::metrics::OperationNames;
use crate::operation::Shared;
use crate::rate::RateLimit;
use crate::ws::ConnectionSlots;

/// The readiness check that stays pending until the supergraph is loaded.
pub const SUPERGRAPH_CHECK: &str = "supergraph";
/// How often idle rate-limit buckets are forgotten.
const RATE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// What the route handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Engine, auth, limits.
    pub(crate) shared: Arc<Shared>,
    /// GraphiQL, when on.
    pub(crate) graphiql: Option<Graphiql>,
}

/// A configured gateway: build it, take its [`Gateway::router`], then [`Gateway::load`] the
/// supergraph (routes answer `SUPERGRAPH_NOT_READY` until then).
pub struct Gateway {
    config: GatewayConfig,
    state: AppState,
    readiness: Readiness,
}

impl Gateway {
    /// Builds the verifier, caches and limiters; streams end when `shutdown` is cancelled.
    /// `readiness` gets a `supergraph` check, passing once the supergraph is loaded.
    pub fn new(
        config: GatewayConfig,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) -> Result<Self, GatewayError> {
        if config.body_limit == 0 {
            return Err(GatewayError::Config(
                "the body limit must be positive".into(),
            ));
        }
        if config.ws_keepalive.is_zero() {
            return Err(GatewayError::Config(
                "the WebSocket keepalive interval must be positive".into(),
            ));
        }
        readiness.set_check(SUPERGRAPH_CHECK, false);
        let shared = Arc::new(Shared {
            engine: OnceLock::new(),
            auth: Authenticator::new(config.cognito.clone())?
                .with_signer(config.identity_signer.clone()),
            apq: PersistedQueries::new(config.apq_cache_size),
            rate: RateLimit::new(config.rate_limits),
            trusted_proxies: config.trusted_proxies.clone(),
            ws_slots: ConnectionSlots::new(config.max_ws_connections_per_user),
            names: OperationNames::default(),
            body_limit: config.body_limit,
            ws_init_timeout: config.ws_init_timeout,
            ws_keepalive: config.ws_keepalive,
            shutdown,
        });
        let graphiql = config
            .graphiql
            .as_ref()
            .map(|g| Graphiql::new(g.assets_dir.clone()));
        Ok(Self {
            config,
            state: AppState { shared, graphiql },
            readiness,
        })
    }

    /// `/graphql` (HTTP, SSE, WebSocket), `/graphiql`, and `/healthz`, `/readyz`, `/metrics`.
    pub fn router(&self, metrics: PrometheusHandle) -> Router {
        let mut router = Router::new()
            .route("/graphql", post(crate::http::post).get(crate::http::get))
            .layer(middleware::from_fn(trace))
            .with_state(self.state.clone());
        if let Some(graphiql) = &self.state.graphiql {
            router = router.merge(graphiql.router());
        }
        router.merge(telemetry::ops_router(metrics, self.readiness.clone()))
    }

    /// Loads the supergraph (composing it if so configured, retrying until the subgraphs
    /// answer) and starts serving it. Returns early if `shutdown` comes first.
    pub async fn load(&self, shutdown: &CancellationToken) -> Result<(), GatewayError> {
        let retrying = matches!(self.config.supergraph, SupergraphSource::Compose(_));
        let mut delay = Duration::from_millis(200);
        loop {
            let Some(sdl) = crate::supergraph::load_sdl(&self.config.supergraph, shutdown).await?
            else {
                return Ok(());
            };
            match crate::supergraph::engine(&sdl, &self.config) {
                Ok(engine) => {
                    let _ = self.state.shared.engine.set(engine);
                    self.readiness.set_check(SUPERGRAPH_CHECK, true);
                    tracing::info!("supergraph loaded");
                    return Ok(());
                }
                Err(err) if retrying => {
                    tracing::warn!(error = %err, "the composed supergraph is not usable yet");
                }
                Err(err) => return Err(err),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Whether the supergraph is loaded.
    pub fn is_loaded(&self) -> bool {
        self.state.shared.engine.get().is_some()
    }

    /// Open WebSocket connections counted against `key` (`user:{sub}` or `ip:{addr}`).
    pub fn open_ws_connections(&self, key: &str) -> usize {
        self.state.shared.ws_slots.open(key)
    }
}

/// Serves `config` on `listener` until `shutdown`, with its own readiness and the process's
/// Prometheus recorder.
pub async fn serve(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let metrics = telemetry::install_metrics_recorder()?;
    let readiness = Readiness::new();
    readiness.set_ready(true);
    serve_with(config, listener, shutdown, metrics, readiness).await
}

/// Like [`serve`], reporting on a caller's `readiness` and `metrics` (as `up` does).
pub async fn serve_with(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
    metrics: PrometheusHandle,
    readiness: Readiness,
) -> Result<(), GatewayError> {
    let background = matches!(config.supergraph, SupergraphSource::Compose(_));
    let gateway = Arc::new(Gateway::new(config, readiness, shutdown.clone())?);
    if !background {
        gateway.load(&shutdown).await?;
    }
    let router = gateway.router(metrics);
    let sweeper = tokio::spawn(sweep_rate_limits(gateway.clone(), shutdown.clone()));
    let loader = background.then(|| {
        let (gateway, shutdown) = (gateway.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(err) = gateway.load(&shutdown).await {
                tracing::error!(error = %err, "cannot load the supergraph");
            }
        })
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "gateway listening");
    }
    // Without TCP_NODELAY the tail segment of a large response waits for the client's delayed
    // ACK (up to 40 ms on Linux) under Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on a connection");
        }
    });
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await
    .map_err(GatewayError::Serve);
    shutdown.cancel();
    let _ = sweeper.await;
    if let Some(loader) = loader {
        let _ = loader.await;
    }
    served
}

async fn sweep_rate_limits(gateway: Arc<Gateway>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(RATE_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => gateway.state.shared.rate.retain_recent(),
        }
    }
}

/// One span per request, child of the caller's W3C trace context.
async fn trace(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "graphql request",
        otel.kind = "server",
        http.method = %request.method(),
        http.status_code = tracing::field::Empty,
        client.address = tracing::field::Empty,
    );
    let parent = telemetry::extract_http_headers(request.headers());
    if let Err(err) = telemetry::set_parent(&span, parent) {
        tracing::debug!(error = %err, "no trace parent set");
    }
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.status_code", response.status().as_u16());
    response
}
