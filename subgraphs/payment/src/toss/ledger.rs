//! The Toss test server's books: minted payment keys, payments and their cancels, stored
//! idempotent replies, and the failures switched on. Pure state, no I/O; the HTTP layer in
//! [`super::server`] holds it behind a lock.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::codes;
use super::payment::{TossCancel, TossPayment, TossReceipt, TossStatus};

/// A failure the test server can be told to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Confirms are declined: 403 `REJECT_CARD_COMPANY` (cancels and lookups work).
    Declined,
    /// Confirms and cancels fail with 400 `PROVIDER_ERROR`, as Toss answers when the card
    /// company or bank fails (lookups work). A 400 is stored under the idempotency key.
    ProviderError,
    /// Confirms and cancels fail with 500 `FAILED_INTERNAL_SYSTEM_PROCESSING`: Toss itself
    /// is failing (lookups work). A 5xx is not stored: the same request may be tried again.
    InternalError,
    /// Confirms and cancels answer only after the server's timeout delay, doing nothing.
    Timeout,
    /// Cancels are refused for good: 403 `NOT_CANCELABLE_PAYMENT` (confirms and lookups work).
    CancelRefused,
    /// Confirms and cancels are applied, then answered 403 `FORBIDDEN_CONSECUTIVE_REQUEST`, as
    /// Toss answers a request right after another ("try again in a while") when the earlier
    /// one went through (lookups show it). Stored under the idempotency key like any 4xx.
    Consecutive,
    /// Confirms and cancels are refused with 403 `FORBIDDEN_CONSECUTIVE_REQUEST` and not
    /// applied: the earlier request did not go through either.
    TooSoon,
    /// Confirms are applied, then answered 400 `ALREADY_PROCESSED_PAYMENT`, as Toss answers a
    /// duplicate of a request whose first answer was lost: the money is taken all the same.
    Duplicate,
    /// Confirms and cancels are applied at once and answered only after the server's slow
    /// delay: the window in which a webhook can report them before the caller hears back.
    Slow,
    /// No failure.
    None,
}

/// What the test server has seen, for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestStats {
    /// Authenticated confirm requests received (replays included).
    pub confirm_requests: u64,
    /// Payments actually confirmed.
    pub confirmed: u64,
    /// Authenticated cancel requests received (replays included).
    pub cancel_requests: u64,
    /// Cancels actually applied.
    pub cancels: u64,
    /// Requests answered from the idempotency store.
    pub replays: u64,
}

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Reply {
    fn ok(payment: &TossPayment) -> Self {
        Self {
            status: 200,
            body: serde_json::to_value(payment).unwrap_or(Value::Null),
        }
    }

    /// A Toss error answer.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            body: json!({ "code": code, "message": message }),
        }
    }
}

/// Toss's answer when the card company or bank failed (a 400, as Toss sends it).
fn provider_error() -> Reply {
    Reply::error(
        400,
        codes::PROVIDER_ERROR,
        "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요.",
    )
}

/// Toss's answer to a request that came right after another on the same payment.
fn consecutive_request() -> Reply {
    Reply::error(
        403,
        codes::FORBIDDEN_CONSECUTIVE_REQUEST,
        "반복적인 요청은 허용되지 않습니다. 잠시 후 다시 시도해주세요.",
    )
}

/// Toss's answer when Toss itself failed.
fn internal_error() -> Reply {
    Reply::error(
        500,
        codes::FAILED_INTERNAL_SYSTEM_PROCESSING,
        "internal error while processing",
    )
}

/// A payment key handed out by the (simulated) widget, before its confirm.
#[derive(Debug, Clone)]
struct Minted {
    order_id: String,
    amount: i64,
}

/// A reply stored under an idempotency key, with the request it answered.
#[derive(Debug, Clone)]
struct Stored {
    request: Value,
    reply: Reply,
}

/// The books of the test server.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    minted: HashMap<String, Minted>,
    payments: HashMap<String, TossPayment>,
    paid_orders: HashMap<String, String>,
    replies: HashMap<String, Stored>,
    global_failure: Option<FailureMode>,
    key_failures: HashMap<String, FailureMode>,
    pub(crate) stats: TestStats,
}

/// A confirm request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfirmRequest {
    pub payment_key: String,
    pub order_id: String,
    pub amount: i64,
}

/// A cancel request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CancelRequest {
    pub cancel_reason: String,
    #[serde(default)]
    pub cancel_amount: Option<i64>,
}

fn kst_now() -> DateTime<FixedOffset> {
    let now = Utc::now();
    let seconds = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    match FixedOffset::east_opt(9 * 3600) {
        Some(kst) => seconds.with_timezone(&kst),
        None => seconds.fixed_offset(),
    }
}

fn new_key(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl Ledger {
    /// Hands out a payment key for an order, as the payment widget would.
    pub(crate) fn mint(&mut self, order_id: &str, amount: i64) -> String {
        let key = new_key("tbs_");
        self.minted.insert(
            key.clone(),
            Minted {
                order_id: order_id.to_owned(),
                amount,
            },
        );
        key
    }

    /// Switches a failure on (or off with [`FailureMode::None`]) for one key or globally;
    /// `None` without a key clears every failure.
    pub(crate) fn set_failure(&mut self, mode: FailureMode, payment_key: Option<&str>) {
        match (mode, payment_key) {
            (FailureMode::None, Some(key)) => {
                self.key_failures.remove(key);
            }
            (FailureMode::None, None) => {
                self.key_failures.clear();
                self.global_failure = None;
            }
            (mode, Some(key)) => {
                self.key_failures.insert(key.to_owned(), mode);
            }
            (mode, None) => self.global_failure = Some(mode),
        }
    }

    /// The failure that applies to `payment_key`.
    pub(crate) fn failure_for(&self, payment_key: &str) -> FailureMode {
        self.key_failures
            .get(payment_key)
            .copied()
            .or(self.global_failure)
            .unwrap_or(FailureMode::None)
    }

    /// The stored reply for an idempotency key: `Some(Ok)` to replay, `Some(Err)` when the key
    /// was used for a different request, `None` when unused.
    pub(crate) fn replay(&mut self, scope: &str, request: &Value) -> Option<Reply> {
        let stored = self.replies.get(scope)?;
        if &stored.request == request {
            self.stats.replays += 1;
            Some(stored.reply.clone())
        } else {
            Some(Reply::error(
                422,
                codes::INVALID_REQUEST,
                "the idempotency key was used for a different request",
            ))
        }
    }

    /// Stores a reply under an idempotency key; server errors are not stored, so a retry
    /// with the same key runs again.
    pub(crate) fn remember(&mut self, scope: String, request: Value, reply: &Reply) {
        if reply.status < 500 {
            self.replies.insert(
                scope,
                Stored {
                    request,
                    reply: reply.clone(),
                },
            );
        }
    }

    /// Confirms a minted payment.
    pub(crate) fn confirm(&mut self, req: &ConfirmRequest) -> Reply {
        let Some(minted) = self.minted.get(&req.payment_key) else {
            return Reply::error(
                404,
                codes::NOT_FOUND_PAYMENT_SESSION,
                "no payment session has this payment key",
            );
        };
        if minted.order_id != req.order_id || minted.amount != req.amount {
            return Reply::error(
                400,
                codes::INVALID_REQUEST,
                "orderId or amount does not match the payment",
            );
        }
        if self
            .payments
            .get(&req.payment_key)
            .is_some_and(|p| p.status.was_approved())
        {
            return Reply::error(400, codes::ALREADY_PROCESSED_PAYMENT, "already processed");
        }
        if self
            .paid_orders
            .get(&req.order_id)
            .is_some_and(|key| key != &req.payment_key)
        {
            return Reply::error(
                400,
                codes::DUPLICATED_ORDER_ID,
                "another payment of this order id was already approved",
            );
        }
        match self.failure_for(&req.payment_key) {
            FailureMode::Declined => {
                let mut payment = self.payment_of(req, TossStatus::Aborted);
                payment.method = Some("카드".to_owned());
                self.payments.insert(req.payment_key.clone(), payment);
                return Reply::error(403, codes::REJECT_CARD_COMPANY, "the card was declined");
            }
            FailureMode::ProviderError => return provider_error(),
            FailureMode::InternalError => return internal_error(),
            FailureMode::TooSoon => return consecutive_request(),
            FailureMode::Timeout
            | FailureMode::CancelRefused
            | FailureMode::Consecutive
            | FailureMode::Duplicate
            | FailureMode::Slow
            | FailureMode::None => {}
        }
        let mut payment = self.payment_of(req, TossStatus::Done);
        payment.method = Some("카드".to_owned());
        payment.approved_at = Some(kst_now());
        payment.receipt = Some(TossReceipt {
            url: format!(
                "https://dashboard.tosspayments.com/receipt/redirection?transactionId={}&ref=PX",
                new_key("tx_")
            ),
        });
        self.payments
            .insert(req.payment_key.clone(), payment.clone());
        self.paid_orders
            .insert(req.order_id.clone(), req.payment_key.clone());
        self.stats.confirmed += 1;
        match self.failure_for(&req.payment_key) {
            FailureMode::Duplicate => Reply::error(
                400,
                codes::ALREADY_PROCESSED_PAYMENT,
                "이미 처리된 결제 입니다.",
            ),
            FailureMode::Consecutive => consecutive_request(),
            _ => Reply::ok(&payment),
        }
    }

    fn payment_of(&self, req: &ConfirmRequest, status: TossStatus) -> TossPayment {
        TossPayment {
            payment_key: req.payment_key.clone(),
            order_id: req.order_id.clone(),
            status,
            total_amount: req.amount,
            balance_amount: req.amount,
            method: None,
            approved_at: None,
            receipt: None,
            cancels: Vec::new(),
        }
    }

    /// Cancels all or part of what is left of a payment.
    pub(crate) fn cancel(&mut self, payment_key: &str, req: &CancelRequest) -> Reply {
        let failure = self.failure_for(payment_key);
        let Some(payment) = self.payments.get_mut(payment_key) else {
            return Reply::error(404, codes::NOT_FOUND_PAYMENT, "no payment has this key");
        };
        if !payment.status.was_approved() {
            return Reply::error(
                403,
                codes::NOT_CANCELABLE_PAYMENT,
                "the payment was never approved",
            );
        }
        match failure {
            FailureMode::ProviderError => return provider_error(),
            FailureMode::InternalError => return internal_error(),
            FailureMode::TooSoon => return consecutive_request(),
            FailureMode::CancelRefused => {
                return Reply::error(
                    403,
                    codes::NOT_CANCELABLE_PAYMENT,
                    "the card company refused to cancel the payment",
                );
            }
            FailureMode::Declined
            | FailureMode::Timeout
            | FailureMode::Consecutive
            | FailureMode::Duplicate
            | FailureMode::Slow
            | FailureMode::None => {}
        }
        let reason = req.cancel_reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Reply::error(400, codes::INVALID_REQUEST, "cancelReason is required");
        }
        if payment.balance_amount == 0 {
            return Reply::error(
                400,
                codes::ALREADY_CANCELED_PAYMENT,
                "이미 취소된 결제 입니다.",
            );
        }
        let amount = req.cancel_amount.unwrap_or(payment.balance_amount);
        if amount <= 0 {
            return Reply::error(400, codes::INVALID_REQUEST, "cancelAmount must be positive");
        }
        if amount > payment.balance_amount {
            return Reply::error(
                403,
                codes::NOT_CANCELABLE_AMOUNT,
                "cancelAmount exceeds what is left",
            );
        }
        payment.balance_amount -= amount;
        payment.status = if payment.balance_amount == 0 {
            TossStatus::Canceled
        } else {
            TossStatus::PartialCanceled
        };
        payment.cancels.push(TossCancel {
            cancel_amount: amount,
            cancel_reason: reason.to_owned(),
            canceled_at: kst_now(),
            transaction_key: Some(new_key("tx_")),
        });
        let reply = if failure == FailureMode::Consecutive {
            consecutive_request()
        } else {
            Reply::ok(payment)
        };
        self.stats.cancels += 1;
        reply
    }

    /// Looks a payment up: confirmed (or aborted) payments as they stand, minted keys as
    /// `IN_PROGRESS`.
    pub(crate) fn get(&self, payment_key: &str) -> Reply {
        if let Some(payment) = self.payments.get(payment_key) {
            return Reply::ok(payment);
        }
        match self.minted.get(payment_key) {
            Some(minted) => Reply::ok(&TossPayment {
                payment_key: payment_key.to_owned(),
                order_id: minted.order_id.clone(),
                status: TossStatus::InProgress,
                total_amount: minted.amount,
                balance_amount: minted.amount,
                method: None,
                approved_at: None,
                receipt: None,
                cancels: Vec::new(),
            }),
            None => Reply::error(404, codes::NOT_FOUND_PAYMENT, "no payment has this key"),
        }
    }

    /// The payment under `payment_key`, if confirmed or aborted.
    pub(crate) fn payment(&self, payment_key: &str) -> Option<TossPayment> {
        self.payments.get(payment_key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirm(ledger: &mut Ledger, key: &str, order: &str, amount: i64) -> Reply {
        ledger.confirm(&ConfirmRequest {
            payment_key: key.into(),
            order_id: order.into(),
            amount,
        })
    }

    fn cancel(ledger: &mut Ledger, key: &str, amount: Option<i64>) -> Reply {
        ledger.cancel(
            key,
            &CancelRequest {
                cancel_reason: "changed mind".into(),
                cancel_amount: amount,
            },
        )
    }

    #[test]
    fn confirms_only_what_was_minted() {
        let mut ledger = Ledger::default();
        let key = ledger.mint("o-1", 1000);
        assert_eq!(confirm(&mut ledger, &key, "o-1", 999).status, 400);
        assert_eq!(confirm(&mut ledger, "tbs_nope", "o-1", 1000).status, 404);
        assert_eq!(confirm(&mut ledger, &key, "o-1", 1000).status, 200);
        let again = confirm(&mut ledger, &key, "o-1", 1000);
        assert_eq!(again.body["code"], codes::ALREADY_PROCESSED_PAYMENT);
        let other = ledger.mint("o-1", 1000);
        let dup = confirm(&mut ledger, &other, "o-1", 1000);
        assert_eq!(dup.body["code"], codes::DUPLICATED_ORDER_ID);
    }

    #[test]
    fn tracks_the_balance_across_cancels() {
        let mut ledger = Ledger::default();
        let key = ledger.mint("o-1", 1000);
        confirm(&mut ledger, &key, "o-1", 1000);
        assert_eq!(cancel(&mut ledger, &key, Some(1001)).status, 403);
        let partial = cancel(&mut ledger, &key, Some(300));
        assert_eq!(partial.body["status"], "PARTIAL_CANCELED");
        assert_eq!(partial.body["balanceAmount"], 700);
        let rest = cancel(&mut ledger, &key, None);
        assert_eq!(rest.body["status"], "CANCELED");
        assert_eq!(rest.body["balanceAmount"], 0);
        let none = cancel(&mut ledger, &key, None);
        assert_eq!(none.status, 400);
        assert_eq!(none.body["code"], codes::ALREADY_CANCELED_PAYMENT);
    }

    #[test]
    fn failures_apply_per_key_over_global() {
        let mut ledger = Ledger::default();
        ledger.set_failure(FailureMode::ProviderError, None);
        ledger.set_failure(FailureMode::Declined, Some("k"));
        assert_eq!(ledger.failure_for("k"), FailureMode::Declined);
        assert_eq!(ledger.failure_for("j"), FailureMode::ProviderError);
        ledger.set_failure(FailureMode::None, None);
        assert_eq!(ledger.failure_for("k"), FailureMode::None);
    }
}
