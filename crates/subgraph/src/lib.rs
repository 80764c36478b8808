//! What every subgraph's HTTP server shares: [`Coded`], an executor wrapper that gives every
//! GraphQL error an `extensions.code` (over HTTP and WebSocket alike), and [`unauthenticated`],
//! the answer to a request whose identity header is malformed.

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

/// Errors async-graphql raises itself (parsing, validation, limits) carry no code: add one.
fn ensure_code(error: &mut ServerError) {
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

/// The 401 answer, as a GraphQL error with the auth error's code, to a request whose identity
/// header could not be read.
pub fn unauthenticated(err: auth::AuthError) -> axum::response::Response {
    let body = serde_json::json!({
        "errors": [{ "message": err.to_string(), "extensions": { "code": err.code() } }]
    });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}
