//! The subgraph's HTTP server: `POST /graphql` (single or batched requests) and `GET /healthz`.
//!
//! The handler reads the caller from the gateway's identity header into the request data,
//! gives each request its own product loader, continues the caller's trace, and makes sure
//! every error in a response carries an `extensions.code`.

use std::future::Future;
use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{BatchRequest, Response, ServerError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::schema::{Caller, InventorySchema, InventoryState, ProductLoader, schema};

/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 256 * 1024;
/// Most operations in one batched request.
const MAX_BATCH: usize = 20;

struct App {
    schema: InventorySchema,
    state: InventoryState,
}

/// The subgraph's routes over `state`.
pub fn router(state: InventoryState) -> Router {
    let app = App {
        schema: schema(state.clone()),
        state,
    };
    Router::new()
        .route("/graphql", post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(app))
}

/// Serves the subgraph on `listener` until `shutdown` resolves, then finishes the requests
/// in flight.
/// The identity header is read unsigned: a process that shares an `IDENTITY_SECRET` serves
/// [`router`] behind `subgraph::verify_identities` instead.
pub async fn run(
    listener: TcpListener,
    state: InventoryState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    subgraph::serve(listener, router(state), "inventory", shutdown).await
}

async fn graphql(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> HttpResponse {
    let span = tracing::info_span!("graphql", subgraph = "inventory");
    if let Err(err) = telemetry::set_parent(&span, telemetry::extract_http_headers(&headers)) {
        tracing::debug!(error = %err, "no trace context to continue");
    }
    async move {
        let caller = Caller(auth::Identity::from_headers(&headers));
        let batch: BatchRequest = match serde_json::from_slice(&body) {
            Ok(batch) => batch,
            Err(err) => return bad_request(format!("the body is not a GraphQL request: {err}")),
        };
        match batch {
            BatchRequest::Single(request) => {
                axum::Json(execute(&app, request, &caller).await).into_response()
            }
            BatchRequest::Batch(requests) if requests.len() > MAX_BATCH => {
                bad_request(format!("at most {MAX_BATCH} operations per batch"))
            }
            BatchRequest::Batch(requests) => {
                let mut responses = Vec::with_capacity(requests.len());
                for request in requests {
                    responses.push(execute(&app, request, &caller).await);
                }
                axum::Json(responses).into_response()
            }
        }
    }
    .instrument(span)
    .await
}

async fn execute(app: &App, request: async_graphql::Request, caller: &Caller) -> Response {
    let loader = DataLoader::new(ProductLoader(app.state.catalog.clone()), tokio::spawn);
    let request = request.data(caller.clone()).data(loader);
    subgraph::with_codes(app.schema.execute(request).await)
}

fn bad_request(message: String) -> HttpResponse {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", "BAD_REQUEST");
    error.extensions = Some(extensions);
    let body = Response::from_errors(vec![error]);
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}
