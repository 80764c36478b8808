//! Serves the order subgraph over HTTP: `POST /graphql`, WebSocket subscriptions on
//! `GET /graphql` (graphql-transport-ws), identity from the gateway's header.

use async_graphql::{Data, Executor as _};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use auth::Identity;
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::schema::OrderSchema;

/// The subgraph's routes.
pub fn router(schema: OrderSchema) -> Router {
    Router::new()
        .route("/graphql", get(subscribe).post(graphql))
        .with_state(schema)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    schema: OrderSchema,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(schema))
        .with_graceful_shutdown(shutdown)
        .await
}

fn identity(headers: &HeaderMap) -> Result<Option<Identity>, auth::AuthError> {
    Identity::from_headers(headers)
}

async fn graphql(
    State(schema): State<OrderSchema>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let who = match identity(&headers) {
        Ok(who) => who,
        Err(err) => return unauthenticated(err),
    };
    let response = Coded(schema).execute(request.into_inner().data(who)).await;
    GraphQLResponse::from(response).into_response()
}

/// The schema, with every error given an `extensions.code` (over HTTP and WebSocket alike).
#[derive(Clone)]
struct Coded(OrderSchema);

impl async_graphql::Executor for Coded {
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        with_codes(self.0.execute(request).await)
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<std::sync::Arc<Data>>,
    ) -> futures::stream::BoxStream<'static, async_graphql::Response> {
        use futures::StreamExt as _;
        async_graphql::Executor::execute_stream(&self.0, request, session_data)
            .map(with_codes)
            .boxed()
    }
}

fn with_codes(mut response: async_graphql::Response) -> async_graphql::Response {
    for error in &mut response.errors {
        ensure_code(error);
    }
    response
}

/// Errors async-graphql raises itself (parsing, validation, limits) carry no code: add one.
fn ensure_code(error: &mut async_graphql::ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        let code = if error.path.is_empty() {
            "GRAPHQL_VALIDATION_FAILED"
        } else {
            "INTERNAL_SERVER_ERROR"
        };
        extensions.set("code", code);
    }
}

async fn subscribe(
    State(schema): State<OrderSchema>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let who = match identity(&headers) {
        Ok(who) => who,
        Err(err) => return unauthenticated(err),
    };
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let mut data = Data::default();
            data.insert(who);
            GraphQLWebSocket::new(socket, Coded(schema), protocol)
                .with_data(data)
                .serve()
        })
}

fn unauthenticated(err: auth::AuthError) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": err.to_string(), "extensions": { "code": err.code() } }]
    });
    (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}
