//! The Toss-compatible test server: a real HTTP server speaking the parts of the Toss Payments
//! API this platform uses, for tests and the embedded mode (default port 4010).
//!
//! Payments API: `POST /v1/payments/confirm`, `POST /v1/payments/{paymentKey}/cancel`,
//! `GET /v1/payments/{paymentKey}`, with Basic auth (any `test_sk_...` secret key) and
//! `Idempotency-Key` (same key and body replay the stored answer, with no second effect).
//! Test controls: `POST /v1/test/payment-keys {orderId, amount}` mints a payment key as the
//! payment widget would; `POST /v1/test/failures {mode, paymentKey?}` switches failures
//! (`declined`, `provider_error`, `internal_error`, `timeout`, `cancel_refused`, `consecutive`,
//! `too_soon`, `duplicate`, `slow`, `none`); `GET /v1/test/stats` counts requests.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::check_payment_key;
use super::error::{TossError, TossErrorBody, codes};
use super::ledger::{CancelRequest, ConfirmRequest, FailureMode, Ledger, Reply, TestStats};
use super::payment::TossPayment;

/// Default port of the test server in the platform.
pub const DEFAULT_PORT: u16 = 4010;

/// Prefix of the secret keys the test server accepts.
pub const TEST_SECRET_PREFIX: &str = "test_sk_";

/// The secret key the embedded mode uses with the test server when `TOSS_SECRET_KEY` is unset
/// (a test key: it moves no money anywhere).
pub const EMBEDDED_SECRET_KEY: &str = "test_sk_bloody_sweet_embedded";

/// Builds a [`TossTestServer`].
#[derive(Debug, Clone)]
pub struct TossTestServerBuilder {
    timeout_delay: Duration,
    slow_delay: Duration,
}

impl TossTestServerBuilder {
    /// How long a request waits in `timeout` mode before answering (make it longer than the
    /// client's request timeout). Default 35 s.
    pub fn timeout_delay(mut self, delay: Duration) -> Self {
        self.timeout_delay = delay;
        self
    }

    /// How long a request applied in `slow` mode waits before it is answered (keep it shorter
    /// than the client's request timeout). Default 200 ms.
    pub fn slow_delay(mut self, delay: Duration) -> Self {
        self.slow_delay = delay;
        self
    }

    /// The server, with empty books.
    pub fn build(self) -> TossTestServer {
        TossTestServer {
            inner: Arc::new(Inner {
                ledger: Mutex::new(Ledger::default()),
                timeout_delay: self.timeout_delay,
                slow_delay: self.slow_delay,
            }),
        }
    }
}

struct Inner {
    ledger: Mutex<Ledger>,
    timeout_delay: Duration,
    slow_delay: Duration,
}

/// The test server's state; clone it to keep a handle for assertions while it serves.
#[derive(Clone)]
pub struct TossTestServer {
    inner: Arc<Inner>,
}

impl Default for TossTestServer {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// Serves a fresh test server on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    TossTestServer::default().serve(listener, shutdown).await
}

impl TossTestServer {
    /// A builder with the defaults.
    pub fn builder() -> TossTestServerBuilder {
        TossTestServerBuilder {
            timeout_delay: Duration::from_secs(35),
            slow_delay: Duration::from_millis(200),
        }
    }

    /// The HTTP routes, over this server's state.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/payments/confirm", post(confirm))
            .route("/v1/payments/{payment_key}/cancel", post(cancel))
            .route("/v1/payments/{payment_key}", get(lookup))
            .route("/v1/test/payment-keys", post(mint))
            .route("/v1/test/failures", post(failures))
            .route("/v1/test/stats", get(stats))
            .fallback(|| async { reply(Reply::error(404, "NOT_FOUND", "no such endpoint")) })
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "toss test server listening");
        }
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// What the server has seen so far.
    pub fn stats(&self) -> TestStats {
        self.ledger().stats
    }

    /// Mints a payment key for an order (what `POST /v1/test/payment-keys` does).
    pub fn mint(&self, order_id: &str, amount: i64) -> String {
        self.ledger().mint(order_id, amount)
    }

    /// Switches a failure for one payment key or globally (what `POST /v1/test/failures` does).
    pub fn set_failure(&self, mode: FailureMode, payment_key: Option<&str>) {
        self.ledger().set_failure(mode, payment_key);
    }

    /// A confirmed (or aborted) payment as the server holds it.
    pub fn payment(&self, payment_key: &str) -> Option<TossPayment> {
        self.ledger().payment(payment_key)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding the lock leaves consistent books (every change is one step).
        self.inner
            .ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sleeps in `timeout` mode; `Some` is the answer to give afterwards.
    async fn maybe_time_out(&self, payment_key: &str) -> Option<Reply> {
        let mode = self.ledger().failure_for(payment_key);
        if mode != FailureMode::Timeout {
            return None;
        }
        tokio::time::sleep(self.inner.timeout_delay).await;
        Some(Reply::error(
            504,
            codes::FAILED_INTERNAL_SYSTEM_PROCESSING,
            "timed out",
        ))
    }

    /// Waits before answering a request applied in `slow` mode.
    async fn maybe_answer_slowly(&self, payment_key: &str) {
        if self.ledger().failure_for(payment_key) == FailureMode::Slow {
            tokio::time::sleep(self.inner.slow_delay).await;
        }
    }

    /// Runs `apply` once per idempotency key (scoped by secret key, method and path).
    fn idempotent(
        &self,
        headers: &HeaderMap,
        scope: String,
        request: Value,
        apply: impl FnOnce(&mut Ledger) -> Reply,
    ) -> Reply {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut ledger = self.ledger();
        let Some(key) = key else {
            return apply(&mut ledger);
        };
        if key.is_empty() || key.len() > 300 {
            return Reply::error(400, codes::INVALID_REQUEST, "invalid Idempotency-Key");
        }
        let scope = format!("{scope} {key}");
        if let Some(stored) = ledger.replay(&scope, &request) {
            return stored;
        }
        let answer = apply(&mut ledger);
        ledger.remember(scope, request, &answer);
        answer
    }
}

fn reply(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(reply.body)).into_response()
}

/// Checks `Authorization: Basic base64("test_sk_...:")`; returns the secret key.
fn authenticate(headers: &HeaderMap) -> Result<String, Reply> {
    let unauthorized = || {
        Reply::error(
            401,
            codes::UNAUTHORIZED_KEY,
            "unauthorized secret key or client key",
        )
    };
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let encoded = value.strip_prefix("Basic ").ok_or_else(unauthorized)?;
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| unauthorized())?;
    let text = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let secret = text.strip_suffix(':').ok_or_else(unauthorized)?;
    if secret.len() > TEST_SECRET_PREFIX.len() && secret.starts_with(TEST_SECRET_PREFIX) {
        Ok(secret.to_owned())
    } else {
        Err(unauthorized())
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<(T, Value), Reply> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| Reply::error(400, codes::INVALID_REQUEST, "the body is not JSON"))?;
    let parsed = serde_json::from_value(value.clone())
        .map_err(|e| Reply::error(400, codes::INVALID_REQUEST, &format!("invalid body: {e}")))?;
    Ok((parsed, value))
}

async fn confirm(
    State(server): State<TossTestServer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = match authenticate(&headers) {
        Ok(secret) => secret,
        Err(denied) => return reply(denied),
    };
    let (request, raw): (ConfirmRequest, Value) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(bad) => return reply(bad),
    };
    server.ledger().stats.confirm_requests += 1;
    if check_payment_key(&request.payment_key).is_err() {
        return reply(Reply::error(
            400,
            codes::INVALID_REQUEST,
            "invalid paymentKey",
        ));
    }
    if let Some(late) = server.maybe_time_out(&request.payment_key).await {
        return reply(late);
    }
    let scope = format!("{secret} {} /v1/payments/confirm", Method::POST);
    let answer = server.idempotent(&headers, scope, raw, |ledger| ledger.confirm(&request));
    server.maybe_answer_slowly(&request.payment_key).await;
    reply(answer)
}

async fn cancel(
    State(server): State<TossTestServer>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = match authenticate(&headers) {
        Ok(secret) => secret,
        Err(denied) => return reply(denied),
    };
    let (request, raw): (CancelRequest, Value) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(bad) => return reply(bad),
    };
    server.ledger().stats.cancel_requests += 1;
    if let Some(late) = server.maybe_time_out(&payment_key).await {
        return reply(late);
    }
    let scope = format!(
        "{secret} {} /v1/payments/{payment_key}/cancel",
        Method::POST
    );
    let answer = server.idempotent(&headers, scope, raw, |ledger| {
        ledger.cancel(&payment_key, &request)
    });
    server.maybe_answer_slowly(&payment_key).await;
    reply(answer)
}

async fn lookup(
    State(server): State<TossTestServer>,
    Path(payment_key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authenticate(&headers) {
        return reply(denied);
    }
    reply(server.ledger().get(&payment_key))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MintRequest {
    order_id: String,
    amount: i64,
}

async fn mint(State(server): State<TossTestServer>, body: Bytes) -> Response {
    let (request, _): (MintRequest, Value) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(bad) => return reply(bad),
    };
    if request.order_id.is_empty() || request.order_id.len() > 64 || request.amount <= 0 {
        return reply(Reply::error(
            400,
            codes::INVALID_REQUEST,
            "orderId must be 1..=64 characters and amount positive",
        ));
    }
    let key = server.mint(&request.order_id, request.amount);
    reply(Reply {
        status: 200,
        body: json!({ "paymentKey": key }),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureRequest {
    mode: FailureMode,
    #[serde(default)]
    payment_key: Option<String>,
}

async fn failures(State(server): State<TossTestServer>, body: Bytes) -> Response {
    let (request, raw): (FailureRequest, Value) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(bad) => return reply(bad),
    };
    server.set_failure(request.mode, request.payment_key.as_deref());
    reply(Reply {
        status: 200,
        body: raw,
    })
}

async fn stats(State(server): State<TossTestServer>) -> Response {
    reply(Reply {
        status: 200,
        body: serde_json::to_value(server.stats()).unwrap_or(Value::Null),
    })
}

/// Mints a payment key on the test server at `base_url`, as the payment widget would.
pub async fn mint_payment_key(
    base_url: &str,
    order_id: &str,
    amount: i64,
) -> Result<String, TossError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Minted {
        payment_key: String,
    }
    let minted: Minted = admin_post(
        base_url,
        "/v1/test/payment-keys",
        json!({ "orderId": order_id, "amount": amount }),
    )
    .await?;
    Ok(minted.payment_key)
}

/// Switches a failure on the test server at `base_url`, for one payment key or globally.
pub async fn set_failure(
    base_url: &str,
    mode: FailureMode,
    payment_key: Option<&str>,
) -> Result<(), TossError> {
    let _: Value = admin_post(
        base_url,
        "/v1/test/failures",
        json!({ "mode": mode, "paymentKey": payment_key }),
    )
    .await?;
    Ok(())
}

async fn admin_post<T: for<'de> Deserialize<'de>>(
    base_url: &str,
    path: &str,
    body: Value,
) -> Result<T, TossError> {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let unreachable = |e: reqwest::Error| TossError::local(codes::TOSS_UNREACHABLE, e.to_string());
    let response = reqwest::Client::new()
        .post(format!("{}{path}", base_url.trim_end_matches('/')))
        .json(&body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(unreachable)?;
    if (200..300).contains(&status) {
        serde_json::from_slice(&bytes)
            .map_err(|e| TossError::api(status, codes::TOSS_BAD_RESPONSE, e.to_string()))
    } else {
        match serde_json::from_slice::<TossErrorBody>(&bytes) {
            Ok(err) => Err(TossError::api(status, err.code, err.message)),
            Err(_) => Err(TossError::api(
                status,
                codes::TOSS_BAD_RESPONSE,
                "no error body",
            )),
        }
    }
}
