//! Serves the order subgraph over HTTP: `POST /graphql`, WebSocket subscriptions on
//! `GET /graphql` (graphql-transport-ws), identity from the gateway's header, and `GET /healthz`.

use async_graphql::{Data, Executor as _};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use auth::Identity;
use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use subgraph::{Coded, unauthenticated};

use crate::schema::OrderSchema;

/// The subgraph's routes.
pub fn router(schema: OrderSchema) -> Router {
    Router::new()
        .route("/graphql", get(subscribe).post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(schema)
}

/// Serves `router` on `listener` until `shutdown` resolves.
/// The identity header is read unsigned: a process that shares an `IDENTITY_SECRET` serves
/// [`router`] behind `subgraph::verify_identities` instead.
pub async fn run(
    listener: tokio::net::TcpListener,
    schema: OrderSchema,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    subgraph::serve(listener, router(schema), "order", shutdown).await
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
