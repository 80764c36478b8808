//! GraphQL over HTTP: `POST /graphql` (JSON, or SSE with `Accept: text/event-stream`) and
//! `GET /graphql` (queries only; a browser gets GraphiQL; an upgrade becomes a WebSocket).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts as _, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use federation::OperationKind;
use futures::StreamExt as _;
use futures::stream::BoxStream;

use crate::error::Refusal;
use crate::operation::{Rejection, Shared, authorization};
use crate::request::{GetParams, GraphqlRequest, ResponseFormat, wants_html};
use crate::server::AppState;

/// How long an oversized body is drained before the 413 is sent anyway.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// `POST /graphql`.
pub async fn post(State(app): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let format = match ResponseFormat::negotiate(&parts.headers) {
        Ok(format) => format,
        Err(refusal) => return reject(ResponseFormat::Json, refusal.into()),
    };
    let shared = &app.shared;
    if declared_length(&parts).is_some_and(|len| len > shared.body_limit.saturating_mul(2)) {
        return reject(format, Refusal::too_large(shared.body_limit).into());
    }
    let caller = match shared
        .admit(authorization(&parts.headers), client_ip(shared, &parts))
        .await
    {
        Ok(caller) => caller,
        Err(refusal) => return reject(format, refusal.into()),
    };
    let body = match read_body(body, shared.body_limit).await {
        Ok(body) => body,
        Err(refusal) => return reject(format, refusal.into()),
    };
    let request = match GraphqlRequest::from_json(&body) {
        Ok(request) => request,
        Err(refusal) => return reject(format, refusal.into()),
    };
    let ready = match shared.prepare(request, started) {
        Ok(ready) => ready,
        Err(rejection) => return reject(format, rejection),
    };
    if format == ResponseFormat::EventStream {
        return match shared.stream(ready, &caller) {
            Ok(responses) => event_stream(responses),
            Err(refusal) => reject(format, refusal.into()),
        };
    }
    if ready.kind == OperationKind::Subscription {
        return reject(
            format,
            Refusal::bad_request(
                "subscriptions need `Accept: text/event-stream` or a WebSocket (graphql-transport-ws)",
            )
            .into(),
        );
    }
    match shared.execute(ready, &caller).await {
        Ok(response) => single(format, StatusCode::OK, response),
        Err(refusal) => reject(format, refusal.into()),
    }
}

/// `GET /graphql`: a WebSocket upgrade, GraphiQL for browsers, or a query.
pub async fn get(State(app): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let (mut parts, _body) = request.into_parts();
    if is_upgrade(&parts) {
        return match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await
        {
            Ok(upgrade) => crate::ws::upgrade(
                app.shared.clone(),
                upgrade,
                client_ip(&app.shared, &parts),
                &parts.headers,
            ),
            Err(rejection) => rejection.into_response(),
        };
    }
    let params = Query::<GetParams>::try_from_uri(&parts.uri)
        .map(|Query(params)| params)
        .unwrap_or_default();
    if params.query.is_none() && params.extensions.is_none() && wants_html(&parts.headers) {
        return match &app.graphiql {
            Some(graphiql) => graphiql.page(),
            None => (
                StatusCode::NOT_FOUND,
                "GraphiQL is turned off on this gateway",
            )
                .into_response(),
        };
    }
    let format = match ResponseFormat::negotiate(&parts.headers) {
        Ok(ResponseFormat::EventStream) | Err(_) => ResponseFormat::Json,
        Ok(format) => format,
    };
    let shared: &Arc<Shared> = &app.shared;
    let caller = match shared
        .admit(authorization(&parts.headers), client_ip(shared, &parts))
        .await
    {
        Ok(caller) => caller,
        Err(refusal) => return reject(format, refusal.into()),
    };
    let request = match GraphqlRequest::from_params(params) {
        Ok(request) => request,
        Err(refusal) => return reject(format, refusal.into()),
    };
    let ready = match shared.prepare(request, started) {
        Ok(ready) => ready,
        Err(rejection) => return reject(format, rejection),
    };
    if ready.kind != OperationKind::Query {
        let refusal = Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "only queries may be sent with GET; send mutations and subscriptions with POST",
        );
        let mut response = reject(format, refusal.into());
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    match shared.execute(ready, &caller).await {
        Ok(response) => single(format, StatusCode::OK, response),
        Err(refusal) => reject(format, refusal.into()),
    }
}

/// A JSON response in `format`.
pub fn single(
    format: ResponseFormat,
    status: StatusCode,
    response: federation::Response,
) -> Response {
    let content_type = match format {
        ResponseFormat::EventStream => ResponseFormat::Json.content_type(),
        other => other.content_type(),
    };
    match response.into_json_parts() {
        Ok(parts) => (
            status,
            [(header::CONTENT_TYPE, content_type)],
            Body::new(JsonParts::new(parts)),
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialise a response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, content_type)],
                r#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#,
            )
                .into_response()
        }
    }
}

/// A body of a few JSON pieces with a known total length; hyper writes them out one after
/// another (vectored), so the executor's data is never copied into one buffer first.
struct JsonParts {
    parts: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl JsonParts {
    fn new(parts: Vec<Bytes>) -> Self {
        let remaining = parts.iter().map(|part| part.len() as u64).sum();
        Self {
            parts: parts.into_iter(),
            remaining,
        }
    }
}

impl http_body::Body for JsonParts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let next = self.parts.next();
        if let Some(part) = &next {
            self.remaining -= part.len() as u64;
        }
        std::task::Poll::Ready(next.map(|part| Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// A refusal in `format`, with `WWW-Authenticate` and `Retry-After` where they apply.
pub fn reject(format: ResponseFormat, rejection: Rejection) -> Response {
    let status = match format {
        ResponseFormat::Json => rejection.json_status,
        ResponseFormat::GraphqlResponseJson | ResponseFormat::EventStream => {
            rejection.graphql_status
        }
    };
    let mut response = single(format, status, *rejection.response);
    let headers = response.headers_mut();
    match status {
        StatusCode::UNAUTHORIZED => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        StatusCode::TOO_MANY_REQUESTS => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

/// GraphQL over SSE, distinct connections mode: `event: next` per response, then
/// `event: complete`.
fn event_stream(responses: BoxStream<'static, federation::Response>) -> Response {
    let events = responses
        .map(|response| {
            let data = response
                .to_json()
                .map_err(|err| err.to_string())
                .and_then(|body| String::from_utf8(body).map_err(|err| err.to_string()))
                .unwrap_or_else(|err| {
                tracing::error!(error = %err, "cannot serialise a response");
                r#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#.to_owned()
            });
            Ok::<_, Infallible>(Event::default().event("next").data(data))
        })
        .chain(futures::stream::once(async {
            Ok(Event::default().event("complete").data(""))
        }));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Reads the body up to `limit` bytes. Past the limit it drains (up to another `limit`
/// bytes, briefly) before refusing, so the client reads the 413 instead of a reset.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let mut chunks = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|_| Refusal::bad_request("the request body could not be read"))?;
        if buf.len() + chunk.len() > limit {
            let mut seen = buf.len() + chunk.len();
            let drain = async {
                while let Some(Ok(chunk)) = chunks.next().await {
                    seen += chunk.len();
                    if seen > limit.saturating_mul(2) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
            return Err(Refusal::too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn declared_length(parts: &Parts) -> Option<usize> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn is_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The client's IP: the peer's, or from `X-Forwarded-For` when the peer is a trusted proxy.
pub fn client_ip(shared: &Shared, parts: &Parts) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let ip = shared.trusted_proxies.client_ip(peer, &parts.headers);
    tracing::Span::current().record("client.address", tracing::field::display(ip));
    ip
}
