//! One GraphQL operation from request to response, shared by every transport: admission
//! (auth, rate), the query text (APQ), preparation by the engine, and execution as a single
//! response or a stream.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use federation::{Engine, OperationKind, PreparedOperation, RequestContext};
use futures::stream::{BoxStream, Stream, StreamExt as _};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::apq::PersistedQueries;
use crate::authentication::{Authenticator, Caller};
use crate::error::Refusal;
use crate::metrics::{self, OperationNames, Outcome};
use crate::rate::{RateKey, RateLimit};
use crate::request::GraphqlRequest;
use crate::ws::ConnectionSlots;

/// What every request handler shares.
pub struct Shared {
    /// The engine, once the supergraph is loaded.
    pub engine: OnceLock<Arc<Engine>>,
    /// Bearer-token verification.
    pub auth: Authenticator,
    /// Automatic persisted queries.
    pub apq: PersistedQueries,
    /// Rate limits.
    pub rate: RateLimit,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::TrustedProxies,
    /// Open WebSocket connections per user or IP.
    pub ws_slots: Arc<ConnectionSlots>,
    /// Operation-name label values.
    pub names: OperationNames,
    /// Largest request body (and WebSocket message).
    pub body_limit: usize,
    /// How long a WebSocket may wait before `connection_init`.
    pub ws_init_timeout: Duration,
    /// WebSocket ping interval, and how long one message may take to send.
    pub ws_keepalive: Duration,
    /// Cancelled when the server stops: streams end.
    pub shutdown: CancellationToken,
}

/// A request refused before execution: the response to send and its status per format.
#[derive(Debug)]
pub struct Rejection {
    /// Status under `application/json`.
    pub json_status: StatusCode,
    /// Status under `application/graphql-response+json` (and SSE).
    pub graphql_status: StatusCode,
    /// The body.
    pub response: Box<federation::Response>,
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        Self {
            json_status: refusal.status,
            graphql_status: refusal.status,
            response: Box::new(federation::Response::from_error(
                federation::GraphQLError::new(refusal.message, refusal.code),
            )),
        }
    }
}

impl From<federation::RequestError> for Rejection {
    fn from(error: federation::RequestError) -> Self {
        Self {
            json_status: StatusCode::OK,
            graphql_status: StatusCode::BAD_REQUEST,
            response: Box::new(error.into_response()),
        }
    }
}

/// An operation ready to run.
pub struct Ready {
    /// The engine's prepared operation.
    pub operation: Arc<PreparedOperation>,
    /// Variable values.
    pub variables: Map<String, Value>,
    /// The `operation` metric label.
    pub label: String,
    /// Query, mutation or subscription.
    pub kind: OperationKind,
    /// When the request arrived.
    pub started: Instant,
}

impl Shared {
    /// Authenticates and rate-limits a caller (by user when signed in, else by IP).
    pub async fn admit(&self, authorization: Option<&str>, ip: IpAddr) -> Result<Caller, Refusal> {
        let caller = match self.auth.authenticate(authorization).await {
            Ok(caller) => caller,
            Err(refusal) => {
                // Failed sign-ins still count against the client's IP.
                let _ = self.rate.check(RateKey::Ip(ip));
                return Err(refusal);
            }
        };
        match &caller.identity {
            Some(identity) => self.rate.check(RateKey::User(&identity.sub))?,
            None => self.rate.check(RateKey::Ip(ip))?,
        }
        Ok(caller)
    }

    /// The engine, or `SUPERGRAPH_NOT_READY`.
    pub fn engine(&self) -> Result<&Arc<Engine>, Refusal> {
        self.engine.get().ok_or_else(Refusal::not_ready)
    }

    /// Resolves the query text (APQ) and prepares the operation; records rejections.
    pub fn prepare(&self, request: GraphqlRequest, started: Instant) -> Result<Ready, Rejection> {
        let result = self.try_prepare(request, started);
        if result.is_err() {
            metrics::record(
                metrics::UNKNOWN.to_owned(),
                metrics::UNKNOWN,
                Outcome::Rejected,
                started.elapsed(),
            );
        }
        result
    }

    fn try_prepare(&self, request: GraphqlRequest, started: Instant) -> Result<Ready, Rejection> {
        let engine = self.engine()?;
        let resolved = self
            .apq
            .resolve(request.query, request.extensions.as_ref())?;
        let operation = engine.prepare(&resolved.text, request.operation_name.as_deref())?;
        if let Some(hash) = resolved.register {
            self.apq.register(hash, resolved.text);
        }
        let kind = operation.kind();
        Ok(Ready {
            label: self.names.label(request.operation_name.as_deref()),
            operation,
            variables: request.variables.unwrap_or_default(),
            kind,
            started,
        })
    }

    /// Runs a query or mutation to its one response.
    pub async fn execute(
        &self,
        ready: Ready,
        caller: &Caller,
    ) -> Result<federation::Response, Refusal> {
        let engine = self.engine()?.clone();
        let context = request_context(caller);
        let response = engine
            .execute(&ready.operation, ready.variables, &context)
            .await;
        metrics::record(
            ready.label,
            metrics::kind_label(ready.kind),
            Outcome::of(&response),
            ready.started.elapsed(),
        );
        Ok(response)
    }

    /// Runs any operation as a stream of responses: a subscription's events, or the one
    /// response of a query or mutation. Ends when the server shuts down.
    pub fn stream(
        &self,
        ready: Ready,
        caller: &Caller,
    ) -> Result<BoxStream<'static, federation::Response>, Refusal> {
        let engine = self.engine()?.clone();
        let context = request_context(caller);
        let kind = ready.kind;
        let record = Recorder {
            label: Some(ready.label),
            kind: metrics::kind_label(kind),
            started: ready.started,
            outcome: Outcome::Success,
        };
        let (operation, variables) = (ready.operation, ready.variables);
        let responses: BoxStream<'static, federation::Response> = match kind {
            OperationKind::Subscription => futures::stream::once(async move {
                match engine.subscribe(operation, variables, context).await {
                    Ok(events) => events,
                    Err(response) => futures::stream::once(async move { response }).boxed(),
                }
            })
            .flatten()
            .boxed(),
            OperationKind::Query | OperationKind::Mutation => futures::stream::once(async move {
                engine.execute(&operation, variables, &context).await
            })
            .boxed(),
        };
        let until = self.shutdown.clone().cancelled_owned();
        Ok(Recorded {
            inner: responses.take_until(until).boxed(),
            recorder: record,
        }
        .boxed())
    }
}

/// The headers forwarded to subgraphs for `caller`.
fn request_context(caller: &Caller) -> RequestContext {
    RequestContext {
        headers: caller.subgraph_headers.clone(),
    }
}

/// The client's `Authorization` header, if any.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    crate::authentication::authorization(headers)
}

/// Records a streamed operation's metrics when the stream is dropped.
struct Recorder {
    label: Option<String>,
    kind: &'static str,
    started: Instant,
    outcome: Outcome,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(label) = self.label.take() {
            metrics::record(label, self.kind, self.outcome, self.started.elapsed());
        }
    }
}

/// A response stream that notes the worst outcome it carried.
struct Recorded {
    inner: BoxStream<'static, federation::Response>,
    recorder: Recorder,
}

impl Stream for Recorded {
    type Item = federation::Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(response)) = &polled {
            let outcome = Outcome::of(response);
            if outcome != Outcome::Success {
                self.recorder.outcome = outcome;
            }
        }
        polled
    }
}
