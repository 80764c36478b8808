//! Test support: a small async-graphql federation subgraph that records what it received, the
//! dev issuer, and the gateway composed over them, all on real loopback servers.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::{Context, ErrorExtensions as _, ID, Object, Schema, Subscription};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use gateway::{GatewayConfig, SubgraphEndpoint, SupergraphSource};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What the subgraph saw.
#[derive(Default)]
pub struct Seen {
    /// HTTP GraphQL requests answered (after start-up).
    pub requests: AtomicUsize,
    /// Subscription streams currently open.
    pub open_streams: AtomicUsize,
    /// WebSocket connections currently open.
    pub open_sockets: AtomicUsize,
    /// Mutations run.
    pub bumps: AtomicUsize,
}

/// The headers a request arrived with.
#[derive(Clone, Default)]
struct Received {
    identity: Option<String>,
    authorization: Option<String>,
}

impl Received {
    fn from(headers: &HeaderMap) -> Self {
        let read = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            identity: read(auth::IDENTITY_HEADER),
            authorization: read("authorization"),
        }
    }
}

/// A product.
#[derive(Clone)]
struct Product {
    id: ID,
    name: String,
    price: i32,
}

#[Object]
impl Product {
    async fn id(&self) -> &ID {
        &self.id
    }

    async fn name(&self) -> &str {
        &self.name
    }

    async fn price(&self) -> i32 {
        self.price
    }

    /// Every other product (for nesting).
    async fn similar(&self) -> Vec<Product> {
        menu().into_iter().filter(|p| p.id != self.id).collect()
    }
}

fn menu() -> Vec<Product> {
    vec![
        Product {
            id: ID::from("p1"),
            name: "Strawberry cake".into(),
            price: 32_000,
        },
        Product {
            id: ID::from("p2"),
            name: "Macaron".into(),
            price: 3_000,
        },
    ]
}

struct Query;

#[Object]
impl Query {
    /// Public.
    async fn menu(&self) -> Vec<Product> {
        menu()
    }

    /// The identity header this subgraph received, verbatim.
    async fn seen_identity(&self, ctx: &Context<'_>) -> Option<String> {
        ctx.data_opt::<Received>().and_then(|r| r.identity.clone())
    }

    /// The authorization header this subgraph received.
    async fn seen_authorization(&self, ctx: &Context<'_>) -> Option<String> {
        ctx.data_opt::<Received>()
            .and_then(|r| r.authorization.clone())
    }

    /// The caller's username; signed-in callers only.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let headers = ctx.data_opt::<Received>().cloned().unwrap_or_default();
        let mut map = HeaderMap::new();
        if let Some(identity) = headers.identity.and_then(|v| v.parse().ok()) {
            map.insert(auth::IDENTITY_HEADER, identity);
        }
        match auth::Identity::from_headers(&map) {
            Ok(Some(identity)) => Ok(identity.username),
            _ => Err(async_graphql::Error::new("sign in first")
                .extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))),
        }
    }

    /// Always fails (partial data).
    async fn broken(&self) -> async_graphql::Result<Option<String>> {
        Err(async_graphql::Error::new("the oven is cold")
            .extend_with(|_, e| e.set("code", "OVEN_COLD")))
    }

    #[graphql(entity)]
    async fn product_by_id(&self, id: ID) -> Option<Product> {
        menu().into_iter().find(|p| p.id == id)
    }
}

struct Mutation;

#[Object]
impl Mutation {
    /// Counts a mutation.
    async fn bump(&self, ctx: &Context<'_>) -> i32 {
        let seen = ctx.data_unchecked::<Arc<Seen>>();
        i32::try_from(seen.bumps.fetch_add(1, Ordering::SeqCst) + 1).unwrap_or(i32::MAX)
    }
}

struct Subscription;

/// Decrements the open-stream count when a subscription stream is dropped.
struct StreamGuard(Arc<Seen>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

#[Subscription]
impl Subscription {
    /// `count` numbers, one every `interval_ms`.
    async fn ticks(
        &self,
        ctx: &Context<'_>,
        count: i32,
        interval_ms: Option<i32>,
    ) -> impl Stream<Item = i32> {
        let seen = ctx.data_unchecked::<Arc<Seen>>().clone();
        seen.open_streams.fetch_add(1, Ordering::SeqCst);
        let guard = StreamGuard(seen);
        let interval =
            Duration::from_millis(u64::try_from(interval_ms.unwrap_or(10)).unwrap_or(10));
        async_stream_ticks(count, interval, guard)
    }

    /// The username the subscription's connection was authenticated as.
    async fn whoami(&self, ctx: &Context<'_>) -> impl Stream<Item = String> {
        let received = ctx.data_opt::<Received>().cloned().unwrap_or_default();
        let mut map = HeaderMap::new();
        if let Some(identity) = received.identity.and_then(|v| v.parse().ok()) {
            map.insert(auth::IDENTITY_HEADER, identity);
        }
        let name = match auth::Identity::from_headers(&map) {
            Ok(Some(identity)) => identity.username,
            _ => "anonymous".to_owned(),
        };
        futures::stream::once(async move { name })
    }
}

fn async_stream_ticks(
    count: i32,
    interval: Duration,
    guard: StreamGuard,
) -> impl Stream<Item = i32> {
    futures::stream::unfold((0, guard), move |(n, guard)| async move {
        if n >= count {
            return None;
        }
        tokio::time::sleep(interval).await;
        Some((n, (n + 1, guard)))
    })
}

type ShopSchema = Schema<Query, Mutation, Subscription>;

/// The running test subgraph.
pub struct Subgraph {
    /// Its GraphQL URL.
    pub url: String,
    /// What it saw.
    pub seen: Arc<Seen>,
}

#[derive(Clone)]
struct SubgraphState {
    schema: ShopSchema,
    seen: Arc<Seen>,
}

impl Subgraph {
    /// Starts it on a loopback port until `shutdown`.
    pub async fn start(shutdown: CancellationToken) -> Self {
        let seen = Arc::new(Seen::default());
        let schema = Schema::build(Query, Mutation, Subscription)
            .enable_federation()
            .enable_subscription_in_federation()
            .data(seen.clone())
            .finish();
        let app = Router::new()
            .route("/graphql", get(subscribe).post(graphql))
            .with_state(SubgraphState {
                schema,
                seen: seen.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .unwrap();
        });
        Self { url, seen }
    }

    /// HTTP GraphQL requests it answered so far.
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
}

async fn graphql(
    State(state): State<SubgraphState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let request = request.into_inner();
    if !request.query.contains("_service") {
        state.seen.requests.fetch_add(1, Ordering::SeqCst);
    }
    state
        .schema
        .execute(request.data(Received::from(&headers)))
        .await
        .into()
}

/// Decrements the open-socket count when a subgraph WebSocket ends.
struct SocketGuard(Arc<Seen>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.open_sockets.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn subscribe(
    State(state): State<SubgraphState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let received = Received::from(&headers);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            state.seen.open_sockets.fetch_add(1, Ordering::SeqCst);
            let _guard = SocketGuard(state.seen.clone());
            let mut data = async_graphql::Data::default();
            data.insert(received);
            GraphQLWebSocket::new(socket, state.schema, protocol)
                .with_data(data)
                .serve()
                .await;
        })
        .into_response()
}

/// A gateway over the test subgraph, with the dev issuer.
pub struct Stack {
    /// The gateway's base URL, e.g. `http://127.0.0.1:1234`.
    pub base: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// The test subgraph.
    pub subgraph: Subgraph,
    /// The dev issuer the gateway trusts.
    pub issuer: auth::DevIssuer,
    /// Stops everything.
    pub shutdown: CancellationToken,
    /// The gateway's task.
    pub task: tokio::task::JoinHandle<Result<(), gateway::GatewayError>>,
    /// A client.
    pub http: reqwest::Client,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the subgraph, the dev issuer and a gateway composed over the subgraph, with
/// `tweak` applied to the gateway's configuration; waits until it is ready.
pub async fn start(tweak: impl FnOnce(&mut GatewayConfig)) -> Stack {
    testkit::init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let shutdown = CancellationToken::new();
    let subgraph = Subgraph::start(shutdown.clone()).await;
    let issuer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = auth::DevIssuer::start(issuer_listener, "test-client")
        .await
        .unwrap();
    let mut config = GatewayConfig::new(SupergraphSource::Compose(vec![SubgraphEndpoint {
        name: "shop".into(),
        url: subgraph.url.clone(),
    }]));
    config.cognito = Some(issuer.config());
    config.graphiql = None;
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(gateway::serve(config, listener, shutdown.clone()));
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let ready = testkit::eventually(Duration::from_secs(30), || {
        let (http, url) = (http.clone(), format!("{base}/readyz"));
        async move {
            http.get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    assert!(ready, "the gateway became ready");
    Stack {
        base,
        addr,
        subgraph,
        issuer,
        shutdown,
        task,
        http,
    }
}

impl Stack {
    /// The GraphQL endpoint.
    pub fn graphql(&self) -> String {
        format!("{}/graphql", self.base)
    }

    /// The WebSocket endpoint.
    pub fn ws(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    /// An access token for `username` in `customers`.
    pub fn token(&self, username: &str) -> String {
        self.issuer
            .mint(&auth::MintRequest::access(
                username,
                &[auth::Group::Customers],
            ))
            .unwrap()
    }

    /// An access token for `username` in `customers`, valid for `ttl_secs` seconds.
    pub fn short_token(&self, username: &str, ttl_secs: u64) -> String {
        let mut request = auth::MintRequest::access(username, &[auth::Group::Customers]);
        request.ttl_secs = ttl_secs;
        self.issuer.mint(&request).unwrap()
    }

    /// POSTs `body` with optional bearer token; returns status and JSON.
    pub async fn post(&self, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(self.graphql()).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a query.
    pub async fn query(&self, query: &str, token: Option<&str>) -> (u16, Value) {
        self.post(json!({ "query": query }), token).await
    }
}

/// The first error's `extensions.code`.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

/// A graphql-transport-ws client over a real WebSocket.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Connects to `url` offering `graphql-transport-ws`.
    pub async fn connect(url: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (stream, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        Self { stream }
    }

    /// Connects to `url` offering no subprotocol.
    pub async fn connect_without_protocol(url: &str) -> Self {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { stream }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, message: Value) {
        use futures::SinkExt as _;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(
                message.to_string().into(),
            ))
            .await
            .unwrap();
    }

    /// The next JSON message, or `Err(close code)` when the server closed.
    pub async fn recv(&mut self) -> Result<Value, Option<u16>> {
        use futures::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(20), self.stream.next())
                .await
                .expect("a websocket message within 20 s");
            match next {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// Reads (and so answers pings) for `period` without sending anything; the number of
    /// ping frames received, or `Err(close code)` when the server closed meanwhile.
    pub async fn idle(&mut self, period: Duration) -> Result<usize, Option<u16>> {
        use futures::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        let until = tokio::time::Instant::now() + period;
        let mut pings = 0;
        loop {
            match tokio::time::timeout_at(until, self.stream.next()).await {
                Err(_) => return Ok(pings),
                Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Err(frame.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(other))) => panic!("unexpected message while idle: {other:?}"),
                Ok(Some(Err(_)) | None) => return Err(None),
            }
        }
    }

    /// Sends `connection_init` with `token` and expects `connection_ack`.
    pub async fn init(&mut self, token: Option<&str>) {
        let payload = match token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let ack = self.recv().await.unwrap();
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    /// Sends `subscribe` for `query` under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({ "type": "subscribe", "id": id, "payload": { "query": query } }))
            .await;
    }
}
