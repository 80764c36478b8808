//! A real local OpenAI-compatible chat-completions server with deterministic answers.
//!
//! It speaks the wire format of `POST /v1/chat/completions` (JSON, or SSE `data:` chunks
//! ending with `data: [DONE]` when `stream` is true), checks the bearer key, answers from
//! the prompt's first cited passage ([`answer_for`]), records every request, and can be
//! switched to fail ([`Fault`]). Tests and the embedded demo run it; it never calls out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Prompt;

/// How the server misbehaves, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer `500 Internal Server Error` with a plain-text body.
    ServerError,
    /// Wait this long before answering at all.
    SlowStart(Duration),
    /// Stream the first chunk, then pause this long before the rest.
    StallMidStream(Duration),
    /// Stream the first chunk, then a `data:` line that is not JSON.
    MalformedChunk,
    /// Stream the first chunk, then end without a finish reason or `[DONE]`.
    CutMidStream,
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Whether the bearer key matched.
    pub authorized: bool,
    /// The requested model.
    pub model: String,
    /// Whether a streamed answer was asked for.
    pub stream: bool,
    /// The system message.
    pub system: String,
    /// The user message.
    pub user: String,
    /// The W3C `traceparent` header, if sent.
    pub traceparent: Option<String>,
}

/// A running test server; it stops when dropped.
#[derive(Debug)]
pub struct OpenAiTestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct ServerState {
    api_key: String,
    fault: Mutex<Fault>,
    chunk_delay: Mutex<Duration>,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl OpenAiTestServer {
    /// Starts a server on 127.0.0.1 at a free port, accepting bearer key `api_key`.
    pub async fn start(api_key: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(listener, api_key)
    }

    /// Starts a server on `listener`, accepting bearer key `api_key`.
    pub fn start_on(listener: TcpListener, api_key: &str) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(ServerState {
            api_key: api_key.to_owned(),
            fault: Mutex::new(Fault::None),
            chunk_delay: Mutex::new(Duration::ZERO),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::warn!(error = %err, "openai test server stopped");
            }
        });
        tracing::info!(%addr, "openai test server listening");
        Ok(Self { addr, state, task })
    }

    /// The base URL to configure clients with (`http://127.0.0.1:<port>/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes the following requests misbehave as `fault` says.
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.state.fault) = fault;
    }

    /// Pauses this long between streamed chunks (zero by default).
    pub fn set_chunk_delay(&self, delay: Duration) {
        *lock(&self.state.chunk_delay) = delay;
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }
}

impl Drop for OpenAiTestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The answer the server gives to user message `user`: the first cited passage, quoted
/// with its citation, or a fixed reply when there is none.
pub fn answer_for(user: &str) -> String {
    let prompt = Prompt {
        system: String::new(),
        user: user.to_owned(),
    };
    match prompt.context().next() {
        Some(line) => format!("리뷰에 따르면 \"{}\" [{}]", line.text, line.number),
        None => "관련 리뷰를 찾지 못했습니다.".to_owned(),
    }
}

/// The answer split the way the server streams it: word by word, spaces kept.
pub(crate) fn answer_chunks(answer: &str) -> Vec<&str> {
    answer.split_inclusive(' ').collect()
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    content: Value,
}

impl ChatMessage {
    /// The message text: a string, or the text parts of a content array.
    fn text(&self) -> String {
        match &self.content {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        }
    }
}

async fn chat_completions(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {err}"),
                "invalid_request_error",
                None,
            );
        }
    };
    let message = |role: &str| {
        request
            .messages
            .iter()
            .filter(|m| m.role == role)
            .map(ChatMessage::text)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        == Some(state.api_key.as_str());
    let recorded = RecordedRequest {
        authorized,
        model: request.model.clone(),
        stream: request.stream,
        system: message("system"),
        user: message("user"),
        traceparent: headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    let answer = answer_for(&recorded.user);
    lock(&state.requests).push(recorded);

    if !authorized {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
    }
    let fault = *lock(&state.fault);
    match fault {
        Fault::ServerError => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "the model crashed").into_response();
        }
        Fault::SlowStart(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    if request.stream {
        let delay = *lock(&state.chunk_delay);
        streamed(&request.model, &answer, fault, delay)
    } else {
        Json(completion(&request.model, &answer)).into_response()
    }
}

fn completion(model: &str, answer: &str) -> Value {
    json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": answer, "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0 },
    })
}

/// The SSE body: a role chunk, one chunk per word, a finish chunk, `[DONE]`; or a fault.
fn streamed(model: &str, answer: &str, fault: Fault, delay: Duration) -> Response {
    let id = completion_id();
    let created = now_secs();
    let chunk = |delta: Value, finish: Option<&str>| {
        let chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        format!("data: {chunk}\n\n")
    };
    let mut events = vec![(
        Duration::ZERO,
        chunk(json!({"role": "assistant", "content": ""}), None),
    )];
    for (index, piece) in answer_chunks(answer).into_iter().enumerate() {
        let pause = match fault {
            Fault::StallMidStream(stall) if index == 1 => stall,
            _ if index == 0 => Duration::ZERO,
            _ => delay,
        };
        events.push((pause, chunk(json!({ "content": piece }), None)));
        if index == 0 {
            match fault {
                Fault::MalformedChunk => {
                    events.push((Duration::ZERO, "data: {\"id\": oops\n\n".to_owned()));
                    break;
                }
                Fault::CutMidStream => break,
                _ => {}
            }
        }
    }
    if !matches!(fault, Fault::MalformedChunk | Fault::CutMidStream) {
        events.push((Duration::ZERO, chunk(json!({}), Some("stop"))));
        events.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
    }
    let body = futures::stream::iter(events).then(|(pause, event)| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Ok::<_, Infallible>(Bytes::from(event))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

fn api_error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    (status, Json(body)).into_response()
}

fn completion_id() -> String {
    format!("chatcmpl-{}", now_secs())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
