//! What every subgraph's HTTP server shares: [`Coded`], an executor wrapper that gives every
//! GraphQL error an `extensions.code` (over HTTP and WebSocket alike; `BAD_USER_INPUT` for an
//! argument value that cannot be coerced, such as a `null` for an argument with a default),
//! [`unauthenticated`], the answer to a request whose identity header is malformed,
//! [`verify_identities`], which holds a subgraph's routes to the gateway's signature,
//! [`cursor`], opaque Relay cursors, and [`serve`], which serves a subgraph's routes.

pub mod cursor;

use std::sync::Arc;

use async_graphql::{Data, Executor, Response, ServerError};
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use futures::StreamExt as _;
use futures::stream::BoxStream;

/// A schema whose every error carries an `extensions.code`.
#[derive(Clone)]
pub struct Coded<E>(pub E);

impl<E: Executor> Executor for Coded<E> {
    async fn execute(&self, request: async_graphql::Request) -> Response {
        with_codes(self.0.execute(request).await)
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        self.0
            .execute_stream(request, session_data)
            .map(with_codes)
            .boxed()
    }
}

/// Gives each error of `response` a code when it has none.
pub fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        ensure_code(error);
    }
    response
}

/// Errors async-graphql raises itself (parsing, validation, limits, argument coercion) carry
/// no code: add one.
fn ensure_code(error: &mut ServerError) {
    let code = if error.path.is_empty() {
        "GRAPHQL_VALIDATION_FAILED"
    } else if is_argument_coercion(&error.message) {
        "BAD_USER_INPUT"
    } else {
        "INTERNAL_SERVER_ERROR"
    };
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}

/// Whether `message` is async-graphql's failure to coerce an argument value while resolving a
/// field: what validation cannot see, such as a `null` reaching an argument declared `Int! = 10`
/// through a nullable variable that was left out or defaults to `null`. These are the messages
/// of `InputValueError::expected_type` and `InputValueError::custom`, the only errors it raises
/// from argument values, and they carry no other mark of their kind.
fn is_argument_coercion(message: &str) -> bool {
    message.starts_with("Expected input type \"") || message.starts_with("Failed to parse \"")
}

/// `router` behind the gateway's signature when there is a `signer` (the process has an
/// `IDENTITY_SECRET`): a request whose identity header is unsigned, signed with another
/// secret, altered or expired is refused with 401 `UNAUTHENTICATED`; a signed one reaches the routes
/// with the plain identity they read; one without the header stays anonymous. Without a
/// signer, `router` as it is.
pub fn verify_identities(
    router: axum::Router,
    signer: Option<auth::IdentitySigner>,
) -> axum::Router {
    match signer {
        Some(signer) => router.layer(axum::middleware::from_fn_with_state(signer, verified)),
        None => router,
    }
}

/// Passes a request on with its verified identity, or answers 401.
async fn verified(
    axum::extract::State(signer): axum::extract::State<auth::IdentitySigner>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match signer.verify(request.headers(), now) {
        Ok(Some(identity)) => {
            match axum::http::HeaderValue::from_str(&identity.to_header_value()) {
                Ok(plain) => {
                    request.headers_mut().insert(auth::IDENTITY_HEADER, plain);
                }
                Err(_) => return unauthenticated(auth::AuthError::Malformed),
            }
            next.run(request).await
        }
        Ok(None) => next.run(request).await,
        Err(err) => unauthenticated(err),
    }
}

/// The 401 answer, as a GraphQL error with the auth error's code, to a request whose identity
/// header could not be read.
pub fn unauthenticated(err: auth::AuthError) -> axum::response::Response {
    let body = serde_json::json!({
        "errors": [{ "message": err.to_string(), "extensions": { "code": err.code() } }]
    });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

/// Serves the `name` subgraph's `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    name: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "{name} subgraph listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
