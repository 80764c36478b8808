//! Getting the supergraph: read from a file, given, or composed from live subgraphs (retried
//! until every subgraph answers), then turned into the engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use federation::{Engine, EngineConfig, Supergraph};
use tokio_util::sync::CancellationToken;

use crate::config::{GatewayConfig, SubgraphEndpoint, SupergraphSource};
use crate::error::GatewayError;

/// Longest wait between two composition attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The supergraph SDL; `None` when `shutdown` came first while composing.
pub async fn load_sdl(
    source: &SupergraphSource,
    shutdown: &CancellationToken,
) -> Result<Option<String>, GatewayError> {
    match source {
        SupergraphSource::File(path) => {
            tokio::fs::read_to_string(path)
                .await
                .map(Some)
                .map_err(|source| GatewayError::ReadSupergraph {
                    path: path.clone(),
                    source,
                })
        }
        SupergraphSource::Sdl(sdl) => Ok(Some(sdl.clone())),
        SupergraphSource::Compose(endpoints) => Ok(compose_until_ready(endpoints, shutdown).await),
    }
}

/// Composes `endpoints`, retrying with backoff until it works or `shutdown`.
async fn compose_until_ready(
    endpoints: &[SubgraphEndpoint],
    shutdown: &CancellationToken,
) -> Option<String> {
    // reqwest is built without a TLS provider; the first caller in the process installs ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut delay = Duration::from_millis(100);
    loop {
        match compose_once(&client, endpoints).await {
            Ok(sdl) => {
                tracing::info!(subgraphs = endpoints.len(), "supergraph composed");
                return Some(sdl);
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "cannot compose the supergraph yet")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

async fn compose_once(
    client: &reqwest::Client,
    endpoints: &[SubgraphEndpoint],
) -> Result<String, GatewayError> {
    let fetches = endpoints
        .iter()
        .map(|endpoint| federation::fetch_subgraph_sdl(client, &endpoint.url));
    let sdls = futures::future::join_all(fetches).await;
    let mut sources = Vec::with_capacity(endpoints.len());
    for (endpoint, sdl) in endpoints.iter().zip(sdls) {
        let sdl = sdl.map_err(|e| GatewayError::Supergraph(e.to_string()))?;
        sources.push(federation::SubgraphSource {
            name: endpoint.name.clone(),
            url: endpoint.url.clone(),
            sdl,
        });
    }
    federation::compose(&sources).map_err(|e| GatewayError::Supergraph(e.to_string()))
}

/// The engine over `sdl`, configured from `config`.
pub fn engine(sdl: &str, config: &GatewayConfig) -> Result<Arc<Engine>, GatewayError> {
    let supergraph = Supergraph::parse(sdl).map_err(|e| GatewayError::Supergraph(e.to_string()))?;
    let subgraph_urls: HashMap<String, String> = match &config.supergraph {
        SupergraphSource::Compose(endpoints) => endpoints
            .iter()
            .map(|e| (e.name.clone(), e.url.clone()))
            .collect(),
        SupergraphSource::File(_) | SupergraphSource::Sdl(_) => HashMap::new(),
    };
    for subgraph in supergraph.subgraphs() {
        tracing::info!(subgraph = %subgraph.name, url = %subgraph.url, "subgraph");
    }
    let engine_config = EngineConfig {
        plan_cache_capacity: config.plan_cache_capacity,
        limits: config.limits,
        subgraph_timeout: config.subgraph_timeout,
        subgraph_urls,
        introspection: config.introspection,
        dedupe_subgraph_requests: config.dedupe_subgraph_requests,
    };
    let engine = Engine::new(supergraph, engine_config)
        .map_err(|e| GatewayError::Supergraph(e.to_string()))?;
    Ok(Arc::new(engine))
}
