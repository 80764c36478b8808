//! Sending one GraphQL request to a subgraph over the pooled HTTP client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use http::{HeaderMap, HeaderValue, header};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::inflight::Inflight;
use super::tree::Node;

/// A subgraph's GraphQL response, as far as the executor reads it.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct SubgraphResponse {
    /// `data`.
    #[serde(default)]
    pub(crate) data: Option<Node>,
    /// `errors`.
    #[serde(default)]
    pub(crate) errors: Option<Vec<SubgraphError>>,
}

/// A subgraph error, kept loosely typed so odd shapes still parse.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct SubgraphError {
    /// Message.
    #[serde(default)]
    pub(crate) message: String,
    /// Path within the subgraph response.
    #[serde(default)]
    pub(crate) path: Option<Vec<Value>>,
    /// Extensions.
    #[serde(default)]
    pub(crate) extensions: Option<serde_json::Map<String, Value>>,
}

/// Why a subgraph request produced no GraphQL response.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FetchFailure {
    /// Connection, timeout or HTTP-level failure.
    #[error("transport: {0}")]
    Transport(String),
    /// Non-success status without a GraphQL body.
    #[error("status {0}")]
    Status(u16),
    /// The body is not a GraphQL response.
    #[error("bad response body: {0}")]
    Body(String),
}

/// Headers never forwarded from the client request.
const SKIPPED_HEADERS: [header::HeaderName; 9] = [
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::HOST,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::ACCEPT_ENCODING,
    header::ACCEPT,
    header::UPGRADE,
    header::TE,
];

/// The headers sent to every subgraph for one client request.
pub(crate) fn forwarded_headers(client_headers: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(client_headers.len() + 3);
    for (name, value) in client_headers {
        if !SKIPPED_HEADERS.contains(name)
            && name.as_str() != "keep-alive"
            && name.as_str() != "proxy-connection"
        {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/graphql-response+json, application/json"),
    );
    headers
}

/// A subgraph's raw answer to one request: the HTTP status and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphReply {
    /// HTTP status code.
    pub status: u16,
    /// The response body.
    pub body: bytes::Bytes,
}

/// How requests reach subgraphs: HTTP over a pooled client in production ([`HttpTransport`]);
/// tests and benchmarks may answer in process instead.
pub trait SubgraphTransport: Send + Sync + 'static {
    /// Posts `body` (a GraphQL request as JSON) to the subgraph at `url`.
    fn post<'a>(
        &'a self,
        subgraph: &'a str,
        url: &'a str,
        headers: HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SubgraphReply, TransportError>>;
}

/// Why a request got no HTTP response.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// The production transport: reqwest with a connection pool.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport over `client`.
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl SubgraphTransport for HttpTransport {
    fn post<'a>(
        &'a self,
        _subgraph: &'a str,
        url: &'a str,
        headers: HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<SubgraphReply, TransportError>> {
        async move {
            let response = self
                .client
                .post(url)
                .headers(headers)
                .timeout(timeout)
                .body(body)
                .send()
                .await
                .map_err(|error| TransportError(error.to_string()))?;
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|error| TransportError(error.to_string()))?;
            Ok(SubgraphReply { status, body })
        }
        .boxed()
    }
}

/// Posts `body` to the subgraph and parses the GraphQL response.
pub(crate) async fn send(
    transport: &Arc<dyn SubgraphTransport>,
    inflight: Option<&Inflight<SharedAnswer>>,
    subgraph: &str,
    url: &str,
    headers: &HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<SubgraphResponse, FetchFailure> {
    let span = tracing::info_span!("subgraph_fetch", subgraph = %subgraph, otel.kind = "client");
    async move {
        let started = Instant::now();
        let mut headers = headers.clone();
        telemetry::inject_http_headers(&mut headers);
        let result = request(transport, inflight, subgraph, url, headers, body, timeout).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("gateway_subgraph_requests_total", "subgraph" => subgraph.to_owned(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("gateway_subgraph_request_duration_seconds", "subgraph" => subgraph.to_owned())
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::warn!(subgraph = %subgraph, error = %error, "subgraph request failed");
        }
        result
    }
    .instrument(span)
    .await
}

/// A parsed answer as the requests that share it hold it.
pub(crate) type SharedAnswer = Result<Arc<SubgraphResponse>, FetchFailure>;

async fn request(
    transport: &Arc<dyn SubgraphTransport>,
    inflight: Option<&Inflight<SharedAnswer>>,
    subgraph: &str,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<SubgraphResponse, FetchFailure> {
    match inflight {
        Some(inflight) => {
            let (answer, joined) = inflight
                .post(transport, subgraph, url, headers, body, timeout)
                .await;
            if joined {
                metrics::counter!("gateway_subgraph_requests_deduplicated_total", "subgraph" => subgraph.to_owned())
                    .increment(1);
            }
            // The last holder takes the response; the others copy it, which is much
            // cheaper than parsing it again.
            answer.map(|shared| Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone()))
        }
        None => parse(transport.post(subgraph, url, headers, body, timeout).await),
    }
}

/// Parses a subgraph's reply once for every request that shares it (the engine's
/// [`Inflight`] finish).
pub(crate) fn parse_shared(reply: Result<SubgraphReply, TransportError>) -> SharedAnswer {
    parse(reply).map(Arc::new)
}

/// Parses a subgraph's reply as a GraphQL response.
fn parse(reply: Result<SubgraphReply, TransportError>) -> Result<SubgraphResponse, FetchFailure> {
    let reply = reply.map_err(|error| FetchFailure::Transport(error.0))?;
    let success = (200..300).contains(&reply.status);
    // One UTF-8 check of the whole body is much cheaper than serde_json's check of each string.
    let parsed = match std::str::from_utf8(&reply.body) {
        Ok(text) => serde_json::from_str::<SubgraphResponse>(text),
        Err(_) => serde_json::from_slice::<SubgraphResponse>(&reply.body),
    };
    match parsed {
        Ok(parsed) if parsed.data.is_some() || parsed.errors.is_some() => Ok(parsed),
        Ok(_) if !success => Err(FetchFailure::Status(reply.status)),
        Ok(_) => Err(FetchFailure::Body("neither data nor errors".to_owned())),
        Err(_) if !success => Err(FetchFailure::Status(reply.status)),
        Err(error) => Err(FetchFailure::Body(error.to_string())),
    }
}
