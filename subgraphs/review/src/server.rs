//! Serves the review subgraph over HTTP: `POST /graphql`, WebSocket subscriptions on
//! `GET /graphql` (graphql-transport-ws) and `GET /healthz`, the caller from the gateway's
//! identity header, the caller's trace continued, and an `extensions.code` on every error.

use std::future::Future;
use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Data, Executor as _};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use auth::Identity;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subgraph::{Coded, unauthenticated};
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::schema::{RatingLoader, ReviewSchema, ReviewState, schema};

/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 256 * 1024;

struct App {
    schema: ReviewSchema,
    state: ReviewState,
}

/// The subgraph's routes over `state`.
pub fn router(state: ReviewState) -> Router {
    let app = App {
        schema: schema(state.clone()),
        state,
    };
    Router::new()
        .route("/graphql", get(subscribe).post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(app))
}

/// Serves the subgraph on `listener` until `shutdown` resolves, then finishes the requests in
/// flight.
/// The identity header is read unsigned: a process that shares an `IDENTITY_SECRET` serves
/// [`router`] behind `subgraph::verify_identities` instead.
pub async fn run(
    listener: TcpListener,
    state: ReviewState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    subgraph::serve(listener, router(state), "review", shutdown).await
}

async fn graphql(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let span = tracing::info_span!("graphql", subgraph = "review");
    if let Err(err) = telemetry::set_parent(&span, telemetry::extract_http_headers(&headers)) {
        tracing::debug!(error = %err, "no trace context to continue");
    }
    async move {
        let who = match Identity::from_headers(&headers) {
            Ok(who) => who,
            Err(err) => return unauthenticated(err),
        };
        let loader = DataLoader::new(
            RatingLoader(app.state.service.views().clone()),
            tokio::spawn,
        );
        let request = request.into_inner().data(who).data(loader);
        let response = Coded(app.schema.clone()).execute(request).await;
        GraphQLResponse::from(response).into_response()
    }
    .instrument(span)
    .await
}

async fn subscribe(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let who = match Identity::from_headers(&headers) {
        Ok(who) => who,
        Err(err) => return unauthenticated(err),
    };
    let schema = app.schema.clone();
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
