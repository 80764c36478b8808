//! Purpose-built federation test subgraphs (async-graphql + axum on 127.0.0.1:0) and helpers.
#![allow(dead_code)]

pub mod subgraphs;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::Executor;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse, GraphQLSubscription};
use axum::Router;
use axum::routing::post;
use federation::{Engine, EngineConfig, SubgraphSource, Supergraph, compose, fetch_subgraph_sdl};

/// Requests a test subgraph has seen.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicUsize,
    pub entity_requests: AtomicUsize,
    pub active_subscriptions: AtomicUsize,
    pub bodies: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn entity_requests(&self) -> usize {
        self.entity_requests.load(Ordering::SeqCst)
    }
}

/// A running test subgraph.
pub struct Running {
    pub name: String,
    pub url: String,
    pub counters: Arc<Counters>,
}

/// Serves an async-graphql schema on `/graphql` (POST for HTTP, GET for graphql-transport-ws).
pub async fn serve<E: Executor + Clone>(name: &str, schema: E, counters: Arc<Counters>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let http_schema = schema.clone();
    let http_counters = counters.clone();
    let handler = move |request: GraphQLRequest| {
        let schema = http_schema.clone();
        let counters = http_counters.clone();
        async move {
            let request = request.into_inner();
            counters.requests.fetch_add(1, Ordering::SeqCst);
            if request.query.contains("_entities") {
                counters.entity_requests.fetch_add(1, Ordering::SeqCst);
            }
            if let Ok(mut bodies) = counters.bodies.lock() {
                bodies.push(request.query.clone());
            }
            GraphQLResponse::from(schema.execute(request).await)
        }
    };
    let app = Router::new().route(
        "/graphql",
        post(handler).get_service(GraphQLSubscription::new(schema)),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Running {
        name: name.to_owned(),
        url: format!("http://{address}/graphql"),
        counters,
    }
}

/// A TCP server that accepts connections and closes them at once (a broken subgraph).
pub async fn closing_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    format!("http://{address}/graphql")
}

/// Composes running subgraphs (SDL fetched over `_service { sdl }`) into an engine.
pub async fn engine(subgraphs: &[&Running], config: EngineConfig) -> Engine {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut sources = Vec::new();
    for subgraph in subgraphs {
        let sdl = fetch_subgraph_sdl(&client, &subgraph.url)
            .await
            .expect("sdl");
        sources.push(SubgraphSource {
            name: subgraph.name.clone(),
            url: subgraph.url.clone(),
            sdl,
        });
    }
    let supergraph_sdl = compose(&sources).expect("compose");
    let supergraph = Supergraph::parse(&supergraph_sdl).expect("supergraph");
    Engine::new(supergraph, config).expect("engine")
}

/// Prepares and executes a query, returning the response as JSON.
pub async fn run(engine: &Engine, query: &str, variables: serde_json::Value) -> serde_json::Value {
    let prepared = match engine.prepare(query, None) {
        Ok(prepared) => prepared,
        Err(error) => return serde_json::to_value(error.into_response()).expect("json"),
    };
    let variables = match variables {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let response = engine
        .execute(&prepared, variables, &federation::RequestContext::default())
        .await;
    serde_json::to_value(response).expect("json")
}

/// The four standard test subgraphs, running.
pub struct World {
    pub products: Running,
    pub reviews: Running,
    pub accounts: Running,
    pub inventory: Running,
}

impl World {
    pub async fn start() -> World {
        let counters = Arc::new(Counters::default());
        World {
            products: serve(
                "products",
                subgraphs::products_schema_with(counters.clone()),
                counters,
            )
            .await,
            reviews: serve("reviews", subgraphs::reviews_schema(), Arc::default()).await,
            accounts: serve("accounts", subgraphs::accounts_schema(), Arc::default()).await,
            inventory: serve("inventory", subgraphs::inventory_schema(), Arc::default()).await,
        }
    }

    pub async fn engine(&self, config: EngineConfig) -> Engine {
        engine(
            &[
                &self.products,
                &self.reviews,
                &self.accounts,
                &self.inventory,
            ],
            config,
        )
        .await
    }

    pub fn total_requests(&self) -> usize {
        [
            &self.products,
            &self.reviews,
            &self.accounts,
            &self.inventory,
        ]
        .iter()
        .map(|s| s.counters.requests())
        .sum()
    }
}
