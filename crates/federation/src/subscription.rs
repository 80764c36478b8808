//! Subscriptions: the primary fetch goes to the owning subgraph over WebSocket
//! (graphql-transport-ws) and every event runs the rest of the plan before it is projected.

use std::sync::Arc;

use futures::SinkExt;
use futures::stream::{BoxStream, StreamExt};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::engine::{Engine, RequestContext};
use crate::error::{GraphQLError, PathSegment, RequestError, Response};
use crate::execution::plan::{ExecNode, RootFetch};
use crate::execution::subgraph_failed;
use crate::operation::OperationKind;
use crate::prepare::PreparedOperation;
use crate::variables;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The subscription fetch and the nodes to run per event.
fn split_plan(node: &ExecNode) -> Option<(&Arc<RootFetch>, &[ExecNode])> {
    match node {
        ExecNode::Subscription(fetch) => Some((fetch, &[])),
        ExecNode::Sequence(nodes) => match nodes.split_first() {
            Some((ExecNode::Subscription(fetch), rest)) => Some((fetch, rest)),
            _ => None,
        },
        _ => None,
    }
}

/// The WebSocket URL of a subgraph HTTP URL (same path).
fn ws_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_owned()
    }
}

/// Per-stream state.
struct Upstream {
    engine: Engine,
    op: Arc<PreparedOperation>,
    variables: Map<String, Value>,
    ctx: RequestContext,
    socket: Socket,
    done: bool,
}

impl Engine {
    /// Starts a subscription; each subgraph event becomes one projected response.
    pub async fn subscribe(
        &self,
        op: Arc<PreparedOperation>,
        variables: Map<String, Value>,
        ctx: RequestContext,
    ) -> Result<BoxStream<'static, Response>, Response> {
        if op.kind != OperationKind::Subscription {
            return Err(RequestError::UnsupportedOperation(
                "Only subscriptions can be subscribed to.".to_owned(),
            )
            .into_response());
        }
        let variables = variables::coerce(&self.inner.supergraph.schema, &op.variables, variables)
            .map_err(RequestError::into_response)?;
        let Some((fetch, _)) = op.exec.as_ref().and_then(split_plan) else {
            return Err(RequestError::Planning(
                "The subscription plan has no primary fetch.".to_owned(),
            )
            .into_response());
        };
        let failed = || Response::new(Some(Value::Null), vec![located_failure(fetch)]);
        let Some(url) = self.inner.urls.get(&fetch.service) else {
            return Err(failed());
        };
        let socket = match open(&ws_url(url), fetch, &variables, &ctx).await {
            Ok(socket) => socket,
            Err(error) => {
                tracing::warn!(subgraph = %fetch.service, error = %error, "subscription upstream failed");
                return Err(failed());
            }
        };
        let state = Upstream {
            engine: self.clone(),
            op,
            variables,
            ctx,
            socket,
            done: false,
        };
        Ok(futures::stream::unfold(state, next_event).boxed())
    }
}

fn located_failure(fetch: &RootFetch) -> GraphQLError {
    let error = subgraph_failed(&fetch.service);
    match fetch.root_keys.first() {
        Some(key) => error.with_path(vec![PathSegment::Key(key.clone())]),
        None => error,
    }
}

/// Connects, initialises the graphql-transport-ws session and sends `subscribe`.
async fn open(
    url: &str,
    fetch: &RootFetch,
    variables: &Map<String, Value>,
    ctx: &RequestContext,
) -> Result<Socket, String> {
    let mut request = url
        .into_client_request()
        .map_err(|error| error.to_string())?;
    let headers = request.headers_mut();
    for (name, value) in &ctx.headers {
        if name == http::header::AUTHORIZATION
            || name.as_str().starts_with("x-")
            || name.as_str() == "traceparent"
        {
            headers.append(name.clone(), value.clone());
        }
    }
    telemetry::inject_http_headers(headers);
    headers.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|error| error.to_string())?;
    let init = json!({ "type": "connection_init", "payload": {} });
    socket
        .send(Message::text(init.to_string()))
        .await
        .map_err(|error| error.to_string())?;
    loop {
        let message = socket
            .next()
            .await
            .ok_or("closed before connection_ack")?
            .map_err(|error| error.to_string())?;
        let Message::Text(text) = message else {
            continue;
        };
        let parsed: Value =
            serde_json::from_str(text.as_str()).map_err(|error| error.to_string())?;
        match parsed.get("type").and_then(Value::as_str) {
            Some("connection_ack") => break,
            Some("ping") => {
                let pong = json!({ "type": "pong" });
                socket
                    .send(Message::text(pong.to_string()))
                    .await
                    .map_err(|error| error.to_string())?;
            }
            other => return Err(format!("unexpected message before ack: {other:?}")),
        }
    }
    let used: Map<String, Value> = fetch
        .variable_usages
        .iter()
        .filter_map(|name| {
            variables
                .get(name)
                .map(|value| (name.clone(), value.clone()))
        })
        .collect();
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": fetch.query, "variables": used },
    });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .map_err(|error| error.to_string())?;
    Ok(socket)
}

/// Reads the next upstream event and turns it into a client response.
async fn next_event(mut state: Upstream) -> Option<(Response, Upstream)> {
    if state.done {
        return None;
    }
    loop {
        let message = match state.socket.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::warn!(error = %error, "subscription upstream error");
                return None;
            }
            None => return None,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return None,
            _ => continue,
        };
        let Ok(parsed) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        match parsed.get("type").and_then(Value::as_str) {
            Some("next") => {
                let payload = parsed.get("payload").cloned().unwrap_or(Value::Null);
                let response = state.event(payload).await;
                return Some((response, state));
            }
            Some("error") => {
                state.done = true;
                let errors = parsed
                    .get("payload")
                    .and_then(Value::as_array)
                    .map(|errors| {
                        errors
                            .iter()
                            .map(|error| {
                                GraphQLError::new(
                                    error
                                        .get("message")
                                        .and_then(Value::as_str)
                                        .unwrap_or("subscription error"),
                                    "DOWNSTREAM_SERVICE_ERROR",
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                return Some((Response::new(None, errors), state));
            }
            Some("complete") => return None,
            Some("ping") => {
                let pong = json!({ "type": "pong" });
                if state
                    .socket
                    .send(Message::text(pong.to_string()))
                    .await
                    .is_err()
                {
                    return None;
                }
            }
            _ => {}
        }
    }
}

impl Upstream {
    /// Runs the rest of the plan for one event payload (a GraphQL response).
    async fn event(&self, payload: Value) -> Response {
        let (data, errors) = match payload {
            Value::Object(mut object) => {
                let data = object
                    .remove("data")
                    .filter(|d| !d.is_null())
                    .unwrap_or(Value::Object(Map::new()));
                let errors = object
                    .remove("errors")
                    .and_then(|errors| serde_json::from_value::<Vec<GraphQLError>>(errors).ok())
                    .unwrap_or_default();
                (data, errors)
            }
            _ => (Value::Object(Map::new()), Vec::new()),
        };
        let rest = self
            .op
            .exec
            .as_ref()
            .and_then(split_plan)
            .map(|(_, rest)| rest)
            .unwrap_or(&[]);
        self.engine
            .run_nodes(
                &self.op,
                rest,
                &self.variables,
                &self.ctx.headers,
                data,
                errors,
            )
            .await
    }
}
