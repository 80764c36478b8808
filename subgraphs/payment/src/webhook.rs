//! `POST /webhooks/toss`: Toss's payment status webhooks. Nothing in the body is trusted: only
//! the payment key (and order id) are read, the payment is fetched from Toss, and what Toss
//! says is recorded idempotently (a cancel made in the Toss console becomes one refund).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::reconcile::Reconciled;
use crate::service::PaymentService;

/// The webhook event type this endpoint acts on.
pub const PAYMENT_STATUS_CHANGED: &str = "PAYMENT_STATUS_CHANGED";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Webhook {
    event_type: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn malformed(message: &str) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        json!({ "code": "BAD_REQUEST", "message": message }),
    )
}

/// Handles one Toss webhook: 200 when recorded, unchanged or ignored; 400 when malformed; 503
/// when Toss or a store is unavailable, or Toss asks to try again in a while (Toss sends the
/// webhook again).
#[tracing::instrument(skip_all)]
pub async fn toss_webhook(State(service): State<PaymentService>, body: Bytes) -> Response {
    let Ok(webhook) = serde_json::from_slice::<Webhook>(&body) else {
        return malformed("the body is not a Toss webhook");
    };
    if webhook.event_type != PAYMENT_STATUS_CHANGED {
        tracing::debug!(event_type = %webhook.event_type, "webhook ignored");
        return answer(StatusCode::OK, json!({ "status": "ignored" }));
    }
    let data = webhook.data.unwrap_or_default();
    let Some(payment_key) = data.get("paymentKey").and_then(|v| v.as_str()) else {
        return malformed("data.paymentKey is required");
    };
    if crate::toss::client::check_payment_key(payment_key).is_err() {
        return malformed("data.paymentKey is malformed");
    }
    let order_id = data.get("orderId").and_then(|v| v.as_str());
    match service.reconcile(order_id, payment_key).await {
        Ok(Reconciled::Recorded { events }) => {
            tracing::info!(events, "webhook recorded toss's payment state");
            answer(
                StatusCode::OK,
                json!({ "status": "recorded", "events": events }),
            )
        }
        Ok(Reconciled::Voided) => answer(StatusCode::OK, json!({ "status": "voided" })),
        Ok(Reconciled::Unchanged) => answer(StatusCode::OK, json!({ "status": "unchanged" })),
        Ok(Reconciled::Ignored(reason)) => {
            tracing::info!(reason, "webhook ignored");
            answer(
                StatusCode::OK,
                json!({ "status": "ignored", "reason": reason }),
            )
        }
        Err(err) if err.is_transient() || err.is_try_later() => {
            tracing::warn!(code = err.code(), error = %err, "webhook not processed; toss will retry");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "code": err.code(), "message": "try again later" }),
            )
        }
        Err(err) => {
            tracing::error!(code = err.code(), error = %err, "webhook failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "code": err.code(), "message": "webhook failed" }),
            )
        }
    }
}
