//! The Toss Payments API client: confirm, cancel and look up payments, with Basic auth,
//! idempotency keys, timeouts and bounded retries of what is safe to retry.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{TossError, TossErrorBody, codes};
use super::payment::TossPayment;

/// The production Toss Payments API.
pub const TOSS_API_BASE: &str = "https://api.tosspayments.com";

/// Longest idempotency key Toss accepts.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 300;

/// Longest payment key Toss issues.
pub const MAX_PAYMENT_KEY_LEN: usize = 200;

/// Longest cancel reason Toss accepts, in characters.
pub const MAX_CANCEL_REASON_CHARS: usize = 200;

/// How often and how patiently a failed call is tried again.
///
/// Only transient failures are retried (connection errors, timeouts, 5xx, 429), and a POST only
/// with an idempotency key, which is sent unchanged on every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, at least 1.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based), with up to 25% jitter.
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exp.min(self.max_delay);
        let jitter_ms = (capped.as_millis() as u64) / 4;
        let jitter = if jitter_ms > 0 {
            Duration::from_millis(rand::random_range(0..=jitter_ms))
        } else {
            Duration::ZERO
        };
        capped + jitter
    }
}

/// Timeouts of every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// The whole request, from sending to the last byte of the answer.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(30),
        }
    }
}

/// A client of the Toss Payments API (or of the Toss test server); cheap to clone.
#[derive(Clone)]
pub struct TossClient {
    http: reqwest::Client,
    base_url: String,
    authorization: SecretString,
    retry: RetryPolicy,
    timeouts: Timeouts,
}

impl std::fmt::Debug for TossClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TossClient")
            .field("base_url", &self.base_url)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl TossClient {
    /// A client of the API at `base_url` (e.g. [`TOSS_API_BASE`]) authenticating with
    /// `secret_key`, with default timeouts and retries.
    pub fn new(base_url: &str, secret_key: SecretString) -> Result<Self, TossError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|e| TossError::invalid(format!("toss base url {base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TossError::invalid("toss base url must be http or https"));
        }
        if secret_key.expose_secret().is_empty() {
            return Err(TossError::invalid("toss secret key is empty"));
        }
        let authorization = SecretString::from(format!(
            "Basic {}",
            STANDARD.encode(format!("{}:", secret_key.expose_secret()))
        ));
        let timeouts = Timeouts::default();
        Ok(Self {
            http: build_http(timeouts)?,
            base_url,
            authorization,
            retry: RetryPolicy::default(),
            timeouts,
        })
    }

    /// Replaces the timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Result<Self, TossError> {
        self.http = build_http(timeouts)?;
        self.timeouts = timeouts;
        Ok(self)
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = RetryPolicy {
            max_attempts: retry.max_attempts.max(1),
            ..retry
        };
        self
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Confirms (approves) an authenticated payment: `POST /v1/payments/confirm`.
    pub async fn confirm(
        &self,
        payment_key: &str,
        order_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<TossPayment, TossError> {
        check_payment_key(payment_key)?;
        check_idempotency_key(idempotency_key)?;
        if order_id.is_empty() || order_id.len() > 64 {
            return Err(TossError::invalid("order id must be 1..=64 characters"));
        }
        if amount <= 0 {
            return Err(TossError::invalid("amount must be positive"));
        }
        let body = json!({ "paymentKey": payment_key, "orderId": order_id, "amount": amount });
        self.call(
            Method::POST,
            "/v1/payments/confirm",
            Some(body),
            Some(idempotency_key),
        )
        .await
    }

    /// Cancels (refunds) a payment, fully when `cancel_amount` is `None`:
    /// `POST /v1/payments/{paymentKey}/cancel`.
    pub async fn cancel(
        &self,
        payment_key: &str,
        cancel_reason: &str,
        cancel_amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<TossPayment, TossError> {
        check_payment_key(payment_key)?;
        check_idempotency_key(idempotency_key)?;
        let reason = cancel_reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_CANCEL_REASON_CHARS {
            return Err(TossError::invalid(
                "cancel reason must be 1..=200 characters",
            ));
        }
        let body = match cancel_amount {
            Some(amount) if amount <= 0 => {
                return Err(TossError::invalid("cancel amount must be positive"));
            }
            Some(amount) => json!({ "cancelReason": reason, "cancelAmount": amount }),
            None => json!({ "cancelReason": reason }),
        };
        self.call(
            Method::POST,
            &format!("/v1/payments/{payment_key}/cancel"),
            Some(body),
            Some(idempotency_key),
        )
        .await
    }

    /// Looks a payment up: `GET /v1/payments/{paymentKey}`.
    pub async fn get(&self, payment_key: &str) -> Result<TossPayment, TossError> {
        check_payment_key(payment_key)?;
        self.call(
            Method::GET,
            &format!("/v1/payments/{payment_key}"),
            None,
            None,
        )
        .await
    }

    /// Sends a request, retrying transient failures when that is safe.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<T, TossError> {
        let retry_safe = method == Method::GET || idempotency_key.is_some();
        let mut attempt = 1;
        loop {
            let result = self
                .send_once(method.clone(), path, body.as_ref(), idempotency_key)
                .await;
            match result {
                Err(err)
                    if err.is_transient() && retry_safe && attempt < self.retry.max_attempts =>
                {
                    let wait = self.retry.delay(attempt);
                    tracing::warn!(
                        path,
                        attempt,
                        code = %err.code,
                        wait_ms = wait.as_millis() as u64,
                        "toss call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<T, TossError> {
        let url = format!("{}{path}", self.base_url);
        let mut authorization =
            reqwest::header::HeaderValue::from_str(self.authorization.expose_secret())
                .map_err(|_| TossError::invalid("toss secret key is not a valid header value"))?;
        authorization.set_sensitive(true);
        let mut request = self
            .http
            .request(method, &url)
            .header(reqwest::header::AUTHORIZATION, authorization);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                TossError::api(
                    status.as_u16(),
                    codes::TOSS_BAD_RESPONSE,
                    format!("unreadable payment: {e}"),
                )
            });
        }
        Err(error_from_body(status, &bytes))
    }
}

/// Reads Toss's `{code, message}` error body; a body without one keeps the status.
fn error_from_body(status: StatusCode, bytes: &[u8]) -> TossError {
    match serde_json::from_slice::<TossErrorBody>(bytes) {
        Ok(body) => TossError::api(status.as_u16(), body.code, body.message),
        Err(_) => TossError::api(
            status.as_u16(),
            codes::TOSS_BAD_RESPONSE,
            format!("http {status} without a toss error body"),
        ),
    }
}

fn transport_error(err: reqwest::Error) -> TossError {
    if err.is_timeout() {
        TossError::local(codes::TOSS_TIMEOUT, "toss did not answer in time")
    } else if err.is_decode() {
        TossError::local(
            codes::TOSS_BAD_RESPONSE,
            format!("unreadable answer: {err}"),
        )
    } else {
        TossError::local(codes::TOSS_UNREACHABLE, format!("cannot reach toss: {err}"))
    }
}

fn build_http(timeouts: Timeouts) -> Result<reqwest::Client, TossError> {
    // reqwest is built without a TLS crypto provider; install ring once per process.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .user_agent(concat!("bloody-sweet-payment/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TossError::local(codes::TOSS_UNREACHABLE, format!("http client: {e}")))
}

/// Payment keys go into URL paths: only what Toss issues is accepted.
pub fn check_payment_key(payment_key: &str) -> Result<(), TossError> {
    let ok = !payment_key.is_empty()
        && payment_key.len() <= MAX_PAYMENT_KEY_LEN
        && payment_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(TossError::invalid(
            "payment key must be 1..=200 ASCII letters, digits, '_' or '-'",
        ))
    }
}

fn check_idempotency_key(key: &str) -> Result<(), TossError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(TossError::invalid(
            "idempotency key must be 1..=300 printable ASCII characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let first = policy.delay(1);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        let third = policy.delay(3);
        assert!(third >= Duration::from_millis(300) && third <= Duration::from_millis(375));
    }

    #[test]
    fn refuses_unsafe_keys() {
        assert!(check_payment_key("tbs_abc-123").is_ok());
        for bad in ["", "a/b", "../x", "a b", &"k".repeat(201)] {
            assert!(check_payment_key(bad).is_err(), "{bad}");
        }
        assert!(check_idempotency_key("confirm-o-1").is_ok());
        assert!(check_idempotency_key("with space").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let client = TossClient::new(
            "http://127.0.0.1:1",
            SecretString::from("test_sk_secret".to_owned()),
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("test_sk_secret") && !shown.contains("dGVzdF9zaw"));
    }
}
