//! Serves the payment subgraph over HTTP: `POST /graphql` (identity from the gateway's
//! header), `POST /webhooks/toss` and `GET /healthz`.

use async_graphql::Executor as _;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use auth::Identity;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::schema::{PaymentSchema, schema};
use crate::service::PaymentService;
use crate::webhook::toss_webhook;

#[derive(Clone)]
struct AppState {
    schema: PaymentSchema,
    service: PaymentService,
}

impl FromRef<AppState> for PaymentSchema {
    fn from_ref(state: &AppState) -> Self {
        state.schema.clone()
    }
}

impl FromRef<AppState> for PaymentService {
    fn from_ref(state: &AppState) -> Self {
        state.service.clone()
    }
}

/// The subgraph's routes over `service`.
pub fn router(service: PaymentService) -> Router {
    let state = AppState {
        schema: schema(service.clone()),
        service,
    };
    Router::new()
        .route("/graphql", post(graphql))
        .route("/webhooks/toss", post(toss_webhook))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// Serves the subgraph on `listener` until `shutdown` resolves.
/// The identity header is read unsigned: a process that shares an `IDENTITY_SECRET` serves
/// [`router`] behind `subgraph::verify_identities` instead.
pub async fn run(
    listener: tokio::net::TcpListener,
    service: PaymentService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    subgraph::serve(listener, router(service), "payment", shutdown).await
}

async fn graphql(
    State(schema): State<PaymentSchema>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let who = match Identity::from_headers(&headers) {
        Ok(who) => who,
        Err(err) => return subgraph::unauthenticated(err),
    };
    GraphQLResponse::from(
        subgraph::Coded(schema)
            .execute(request.into_inner().data(who))
            .await,
    )
    .into_response()
}
