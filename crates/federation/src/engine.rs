//! The engine: configuration, the prepared-operation cache, and request execution.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use serde_json::{Map, Value};

use crate::error::{EngineError, GraphQLError, RequestError, Response};
use crate::execution::inflight::Inflight;
use crate::execution::plan::ExecNode;
use crate::execution::subgraph::{HttpTransport, SharedAnswer, SubgraphTransport};
use crate::execution::tree::Node;
use crate::execution::{Execution, Fetcher, subgraph};
use crate::introspection::Introspection;
use crate::limits::OperationLimits;
use crate::operation::OperationKind;
use crate::prepare::{self, PreparedOperation};
use crate::projection::Projection;
use crate::supergraph::Supergraph;
use crate::variables;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How many prepared operations to keep.
    pub plan_cache_capacity: usize,
    /// Operation limits.
    pub limits: OperationLimits,
    /// Timeout of each subgraph request.
    pub subgraph_timeout: Duration,
    /// Subgraph URL overrides by subgraph name.
    pub subgraph_urls: HashMap<String, String>,
    /// Whether `__schema`/`__type` are answered.
    pub introspection: bool,
    /// Whether identical subgraph queries in flight at once share one request (never
    /// mutations).
    pub dedupe_subgraph_requests: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            plan_cache_capacity: 1024,
            limits: OperationLimits::default(),
            subgraph_timeout: Duration::from_secs(30),
            subgraph_urls: HashMap::new(),
            introspection: true,
            dedupe_subgraph_requests: true,
        }
    }
}

/// Headers and other per-request data passed to subgraphs.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Copied onto every subgraph request (plus `traceparent`).
    pub headers: http::HeaderMap,
}

type CacheKey = (u64, Option<String>);

pub(crate) struct EngineInner {
    pub(crate) supergraph: Supergraph,
    pub(crate) config: EngineConfig,
    pub(crate) transport: Arc<dyn SubgraphTransport>,
    pub(crate) urls: HashMap<String, String>,
    inflight: Inflight<SharedAnswer>,
    cache: Mutex<LruCache<CacheKey, Arc<PreparedOperation>>>,
    introspection: Introspection,
}

/// The federation engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Engine {
    /// Builds an engine for a supergraph that reaches its subgraphs over HTTP.
    pub fn new(supergraph: Supergraph, config: EngineConfig) -> Result<Engine, EngineError> {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|error| EngineError::HttpClient(error.to_string()))?;
        Self::with_transport(supergraph, config, Arc::new(HttpTransport::new(client)))
    }

    /// Builds an engine whose subgraph requests go through `transport` (tests and benchmarks
    /// answer in process).
    pub fn with_transport(
        supergraph: Supergraph,
        config: EngineConfig,
        transport: Arc<dyn SubgraphTransport>,
    ) -> Result<Engine, EngineError> {
        let mut urls = HashMap::new();
        for subgraph in supergraph.subgraphs() {
            let url = config
                .subgraph_urls
                .get(&subgraph.name)
                .cloned()
                .unwrap_or_else(|| subgraph.url.clone());
            if reqwest::Url::parse(&url).is_err() {
                return Err(EngineError::InvalidUrl {
                    name: subgraph.name.clone(),
                    url,
                });
            }
            urls.insert(subgraph.name.clone(), url);
        }
        let capacity = NonZeroUsize::new(config.plan_cache_capacity).unwrap_or(NonZeroUsize::MIN);
        let introspection = Introspection::new(&supergraph.api_schema_sdl())?;
        Ok(Engine {
            inner: Arc::new(EngineInner {
                supergraph,
                config,
                transport,
                urls,
                inflight: Inflight::new(subgraph::parse_shared),
                cache: Mutex::new(LruCache::new(capacity)),
                introspection,
            }),
        })
    }

    /// The supergraph this engine serves.
    pub fn supergraph(&self) -> &Supergraph {
        &self.inner.supergraph
    }

    /// Parses, validates, checks limits and plans an operation (cached by text and name).
    pub fn prepare(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<PreparedOperation>, RequestError> {
        let key = prepare::cache_key(query, operation_name);
        if let Some(hit) = self.cache_get(&key)
            && hit.query == query
        {
            return Ok(hit);
        }
        let inner = &self.inner;
        let prepared = Arc::new(prepare::prepare(
            &inner.supergraph,
            inner.config.limits,
            inner.config.introspection,
            query,
            operation_name,
        )?);
        let mut cache = inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.put(key, prepared.clone());
        Ok(prepared)
    }

    fn cache_get(&self, key: &CacheKey) -> Option<Arc<PreparedOperation>> {
        let mut cache = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.get(key).cloned()
    }

    /// Runs a prepared query or mutation.
    pub async fn execute(
        &self,
        op: &PreparedOperation,
        variables: Map<String, Value>,
        ctx: &RequestContext,
    ) -> Response {
        if op.kind == OperationKind::Subscription {
            return RequestError::UnsupportedOperation(
                "Subscriptions must be run with subscribe (over WebSocket).".to_owned(),
            )
            .into_response();
        }
        let variables =
            match variables::coerce(&self.inner.supergraph.schema, &op.variables, variables) {
                Ok(variables) => variables,
                Err(error) => return error.into_response(),
            };
        let (data, errors) = match &op.introspection {
            Some(query) => {
                self.inner
                    .introspection
                    .execute(query, op.name.as_deref(), &variables)
                    .await
            }
            None => (Value::Object(Map::new()), Vec::new()),
        };
        self.run_plan(op, &variables, &ctx.headers, data, errors)
            .await
    }

    /// Runs the plan of `op` starting from `data`, then projects the response.
    pub(crate) async fn run_plan(
        &self,
        op: &PreparedOperation,
        variables: &Map<String, Value>,
        headers: &http::HeaderMap,
        data: Value,
        initial_errors: Vec<GraphQLError>,
    ) -> Response {
        let nodes = op.exec.as_slice();
        self.run_nodes(op, nodes, variables, headers, data, initial_errors)
            .await
    }

    /// Runs plan nodes in order starting from `data`, then projects the response.
    pub(crate) async fn run_nodes(
        &self,
        op: &PreparedOperation,
        nodes: &[ExecNode],
        variables: &Map<String, Value>,
        headers: &http::HeaderMap,
        data: Value,
        initial_errors: Vec<GraphQLError>,
    ) -> Response {
        let inner = &self.inner;
        let schema = &inner.supergraph.schema;
        let fetcher = Fetcher {
            transport: &inner.transport,
            inflight: (inner.config.dedupe_subgraph_requests && op.kind != OperationKind::Mutation)
                .then_some(&inner.inflight),
            urls: &inner.urls,
            headers: subgraph::forwarded_headers(headers),
            timeout: inner.config.subgraph_timeout,
        };
        let execution = Execution::new(schema, variables, fetcher, Node::from_value(data));
        for node in nodes {
            execution.run(node).await;
        }
        let state = execution.finish();
        let mut errors = initial_errors;
        errors.extend(state.errors);
        let data = Projection::run(
            schema,
            variables,
            &op.root_type,
            &op.selections,
            &state.data,
            &mut errors,
            op.response_size.load(Ordering::Relaxed),
        );
        op.response_size.store(data.len(), Ordering::Relaxed);
        Response::with_json(data, errors)
    }
}
