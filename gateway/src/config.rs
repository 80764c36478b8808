//! What the gateway is told at start: where the supergraph comes from, who signs tokens, and
//! every limit.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use federation::OperationLimits;

/// Everything [`crate::serve`] needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where it listens (used by binaries; [`crate::serve`] takes a bound listener).
    pub listen: SocketAddr,
    /// Where the supergraph comes from.
    pub supergraph: SupergraphSource,
    /// Cognito (or the dev issuer) for bearer tokens; `None`: every request is anonymous.
    pub cognito: Option<auth::CognitoConfig>,
    /// Operation limits the engine enforces before planning.
    pub limits: OperationLimits,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Request rate limits.
    pub rate_limits: RateLimits,
    /// Load balancers whose `X-Forwarded-For` names the client (rate limits, logs); empty:
    /// the peer address is the client.
    pub trusted_proxies: crate::TrustedProxies,
    /// How many persisted queries the APQ cache holds.
    pub apq_cache_size: usize,
    /// Open WebSocket connections allowed per user (anonymous: per client IP).
    pub max_ws_connections_per_user: usize,
    /// How long a WebSocket may wait before `connection_init`.
    pub ws_init_timeout: Duration,
    /// How often an open WebSocket is pinged; a client that answers nothing for two intervals,
    /// or takes longer than one to accept a message, is disconnected.
    pub ws_keepalive: Duration,
    /// How long one subgraph request may take.
    pub subgraph_timeout: Duration,
    /// Query plans kept in the engine's cache.
    pub plan_cache_capacity: usize,
    /// Whether identical subgraph queries in flight at once share one request.
    pub dedupe_subgraph_requests: bool,
    /// Whether schema introspection is answered.
    pub introspection: bool,
    /// GraphiQL: `None` turns it off.
    pub graphiql: Option<GraphiqlConfig>,
    /// Signs the identity passed to subgraphs (`IDENTITY_SECRET`); `None`: passed unsigned.
    pub identity_signer: Option<auth::IdentitySigner>,
}

/// Where the supergraph comes from.
#[derive(Debug, Clone)]
pub enum SupergraphSource {
    /// A supergraph SDL file, read once at start.
    File(PathBuf),
    /// A supergraph SDL given directly.
    Sdl(String),
    /// Composed at start from each subgraph's `_service { sdl }`, retried until every
    /// subgraph answers.
    Compose(Vec<SubgraphEndpoint>),
}

/// A subgraph to compose: its name and GraphQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphEndpoint {
    /// The subgraph's name in the supergraph.
    pub name: String,
    /// Its GraphQL endpoint.
    pub url: String,
}

impl SubgraphEndpoint {
    /// Parses a comma-separated `name=url` list, as `--compose` takes it.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, crate::GatewayError> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (name, url) = item.split_once('=').ok_or_else(|| {
                    crate::GatewayError::Config(format!("expected name=url, got {item:?}"))
                })?;
                let (name, url) = (name.trim(), url.trim());
                if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(crate::GatewayError::Config(format!(
                        "expected name=http(s)://..., got {item:?}"
                    )));
                }
                Ok(Self {
                    name: name.to_owned(),
                    url: url.to_owned(),
                })
            })
            .collect()
    }
}

/// Request rates allowed per user (signed-in callers) and per client IP (anonymous callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Sustained requests per second for one signed-in user.
    pub per_user_per_second: NonZeroU32,
    /// Burst allowed above the sustained rate for one user.
    pub per_user_burst: NonZeroU32,
    /// Sustained requests per second for one anonymous client IP.
    pub per_ip_per_second: NonZeroU32,
    /// Burst allowed above the sustained rate for one IP.
    pub per_ip_burst: NonZeroU32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_user_per_second: nonzero(50),
            per_user_burst: nonzero(100),
            per_ip_per_second: nonzero(100),
            per_ip_burst: nonzero(200),
        }
    }
}

/// Where GraphiQL's installed npm packages are (see `web/graphiql/install`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphiqlConfig {
    /// The `node_modules` directory holding `graphiql`, `react` and `react-dom`.
    pub assets_dir: PathBuf,
}

impl GraphiqlConfig {
    /// `GRAPHIQL_ASSETS_DIR`, else `$BLOODY_SWEET_CACHE/graphiql/node_modules`, else
    /// `$HOME/.cache/bloody-sweet/graphiql/node_modules`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let assets_dir = if let Some(dir) = var("GRAPHIQL_ASSETS_DIR") {
            PathBuf::from(dir)
        } else {
            let cache = var("BLOODY_SWEET_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(var("HOME").unwrap_or_else(|| ".".to_owned()))
                        .join(".cache/bloody-sweet")
                });
            cache.join("graphiql/node_modules")
        };
        Self { assets_dir }
    }
}

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

impl GatewayConfig {
    /// Defaults for serving `supergraph`: anonymous only, 1 MiB bodies, default limits.
    pub fn new(supergraph: SupergraphSource) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            supergraph,
            cognito: None,
            limits: OperationLimits::default(),
            body_limit: 1024 * 1024,
            rate_limits: RateLimits::default(),
            trusted_proxies: crate::TrustedProxies::default(),
            apq_cache_size: 1_000,
            max_ws_connections_per_user: 10,
            ws_init_timeout: Duration::from_secs(10),
            ws_keepalive: Duration::from_secs(15),
            subgraph_timeout: Duration::from_secs(30),
            plan_cache_capacity: 1_000,
            dedupe_subgraph_requests: true,
            introspection: true,
            graphiql: Some(GraphiqlConfig::from_env()),
            identity_signer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subgraph_lists_and_refuses_garbage() {
        let list = SubgraphEndpoint::parse_list(
            "order=http://127.0.0.1:4001/graphql, inventory=http://127.0.0.1:4002/graphql",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].name, "inventory");
        assert_eq!(list[1].url, "http://127.0.0.1:4002/graphql");
        for bad in ["order", "=http://x", "order=ftp://x"] {
            let err = SubgraphEndpoint::parse_list(bad).unwrap_err();
            assert!(err.to_string().contains("name="), "{err}");
        }
    }
}
