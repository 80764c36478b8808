//! The `Payment` aggregate (stream `payment-{order_id}`): what the order asked for, what Toss
//! confirmed, a failure, and refunds with the balance left. Business rules live in
//! [`Aggregate::handle`]; [`Aggregate::apply`] only folds. No I/O.
//!
//! The events `PaymentConfirmed` and `PaymentFailed` are the cross-subgraph contract: their
//! JSON carries every field of [`contracts::events::PaymentConfirmed`] /
//! [`contracts::events::PaymentFailed`] (plus a `type` tag and details the saga ignores).

use chrono::{DateTime, Utc};
use eventstore::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Event type of [`PaymentEvent::Requested`].
pub const PAYMENT_REQUEST_RECEIVED: &str = "PaymentRequestReceived";
/// Event type of [`PaymentEvent::Refunded`] (decodes as [`contracts::events::PaymentRefunded`]).
pub use contracts::events::PAYMENT_REFUNDED;

/// Where a payment stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Nothing recorded yet.
    #[default]
    New,
    /// The order waits for the customer's payment.
    Requested,
    /// Toss confirmed the payment.
    Confirmed,
    /// Part of the payment was refunded.
    PartiallyRefunded,
    /// Everything was refunded.
    Refunded,
    /// The payment failed for good.
    Failed,
}

impl PaymentStatus {
    /// Whether money was taken (and maybe refunded since).
    pub fn was_confirmed(self) -> bool {
        matches!(
            self,
            Self::Confirmed | Self::PartiallyRefunded | Self::Refunded
        )
    }
}

/// The refund id prefix of cancels made elsewhere (`toss-{transactionKey}`), seen at Toss.
pub const AT_TOSS_PREFIX: &str = "toss-";

/// Prefix of the refund ids of staff's partial refunds (`staff-{order}-{key}`; the saga's are
/// `{order}:refund…`).
pub const STAFF_REFUND_PREFIX: &str = "staff-";

/// One refund (a Toss cancel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// Our id of the refund (the saga's `refund_id`, or `toss-{transactionKey}` for a cancel
    /// made elsewhere, e.g. in the Toss console).
    pub refund_id: String,
    /// Toss's cancel transaction key, when known.
    pub transaction_key: Option<String>,
    /// KRW refunded.
    pub amount: i64,
    /// Why.
    pub reason: String,
    /// When Toss cancelled.
    pub canceled_at: DateTime<Utc>,
}

/// What can be asked of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Record the order's payment request (idempotent).
    Request {
        /// The order.
        order_id: String,
        /// The customer who must pay.
        customer_id: String,
        /// KRW to confirm, exactly.
        amount: i64,
        /// When the order stops waiting.
        expires_at: DateTime<Utc>,
    },
    /// Record Toss's confirmation (idempotent by payment key).
    Confirm {
        /// Toss's payment key.
        payment_key: String,
        /// KRW Toss confirmed.
        amount: i64,
        /// How the customer paid.
        method: Option<String>,
        /// When Toss approved.
        approved_at: Option<DateTime<Utc>>,
        /// The receipt.
        receipt_url: Option<String>,
    },
    /// Record a failure for good (idempotent).
    Fail {
        /// The payment key that failed, if any.
        payment_key: Option<String>,
        /// Toss's code.
        code: String,
        /// Toss's message.
        reason: String,
    },
    /// Record refunds Toss made (idempotent by refund id and by transaction key).
    Refund {
        /// The refunds, oldest first.
        refunds: Vec<Refund>,
    },
}

/// What a payment records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PaymentEvent {
    /// The order asked for payment.
    #[serde(rename = "PaymentRequestReceived")]
    Requested {
        /// The order.
        order_id: String,
        /// The customer who must pay.
        customer_id: String,
        /// KRW to confirm, exactly.
        amount: i64,
        /// When the order stops waiting.
        expires_at: DateTime<Utc>,
    },
    /// Toss confirmed the payment (decodes as [`contracts::events::PaymentConfirmed`]).
    #[serde(rename = "PaymentConfirmed")]
    Confirmed {
        /// The order.
        order_id: String,
        /// Toss's payment key.
        payment_key: String,
        /// KRW confirmed.
        amount: i64,
        /// How the customer paid.
        #[serde(default)]
        method: Option<String>,
        /// When Toss approved.
        #[serde(default)]
        approved_at: Option<DateTime<Utc>>,
        /// The receipt.
        #[serde(default)]
        receipt_url: Option<String>,
    },
    /// The payment failed for good (decodes as [`contracts::events::PaymentFailed`]).
    #[serde(rename = "PaymentFailed")]
    Failed {
        /// The order.
        order_id: String,
        /// The payment key that failed, if any.
        #[serde(default)]
        payment_key: Option<String>,
        /// Toss's code.
        code: String,
        /// Toss's message.
        reason: String,
    },
    /// Part or all of the payment was refunded (decodes as
    /// [`contracts::events::PaymentRefunded`]).
    #[serde(rename = "PaymentRefunded")]
    Refunded {
        /// The order.
        order_id: String,
        /// Our id of the refund.
        refund_id: String,
        /// Toss's cancel transaction key, when known.
        #[serde(default)]
        transaction_key: Option<String>,
        /// KRW refunded.
        amount: i64,
        /// Why.
        reason: String,
        /// When Toss cancelled.
        canceled_at: DateTime<Utc>,
        /// KRW left after this refund.
        balance: i64,
    },
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Requested { .. } => PAYMENT_REQUEST_RECEIVED,
            Self::Confirmed { .. } => contracts::events::PAYMENT_CONFIRMED,
            Self::Failed { .. } => contracts::events::PAYMENT_FAILED,
            Self::Refunded { .. } => PAYMENT_REFUNDED,
        }
    }
}

/// Why a payment command was refused; `code()` is the GraphQL `extensions.code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRuleError {
    /// No payment was requested for this order.
    #[error("no payment was requested for this order")]
    NotRequested,
    /// The amount differs from what the order asked for.
    #[error("amount {given} does not match the order's {expected} KRW")]
    AmountMismatch {
        /// KRW the order asked for.
        expected: i64,
        /// KRW given.
        given: i64,
    },
    /// Another payment key already paid this order.
    #[error("the order is already paid")]
    AlreadyConfirmed,
    /// The payment failed for good.
    #[error("the payment failed: {reason} ({code})")]
    AlreadyFailed {
        /// Toss's code.
        code: String,
        /// Toss's message.
        reason: String,
    },
    /// Nothing was paid, so nothing can be refunded.
    #[error("the payment was never confirmed")]
    NotConfirmed,
    /// A refund exceeds what is left.
    #[error("refund of {requested} KRW exceeds the {balance} KRW left")]
    ExceedsBalance {
        /// KRW left.
        balance: i64,
        /// KRW asked.
        requested: i64,
    },
    /// An input breaks a rule.
    #[error("{0}")]
    Invalid(&'static str),
}

impl PaymentRuleError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotRequested => "PAYMENT_NOT_FOUND",
            Self::AmountMismatch { .. } => "AMOUNT_MISMATCH",
            Self::AlreadyConfirmed => crate::toss::codes::ALREADY_PROCESSED_PAYMENT,
            Self::AlreadyFailed { .. } => "PAYMENT_FAILED",
            Self::NotConfirmed => "PAYMENT_NOT_CONFIRMED",
            Self::ExceedsBalance { .. } => crate::toss::codes::NOT_CANCELABLE_AMOUNT,
            Self::Invalid(_) => "BAD_USER_INPUT",
        }
    }
}

/// A payment's state, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Where it stands.
    pub status: PaymentStatus,
    /// The order.
    pub order_id: String,
    /// The customer who pays.
    pub customer_id: String,
    /// KRW the order asked for (and, once confirmed, what was paid).
    pub amount: i64,
    /// When the order stops waiting.
    pub expires_at: Option<DateTime<Utc>>,
    /// Toss's payment key, once confirmed (or the key that failed).
    pub payment_key: Option<String>,
    /// How the customer paid.
    pub method: Option<String>,
    /// When Toss approved.
    pub approved_at: Option<DateTime<Utc>>,
    /// The receipt.
    pub receipt_url: Option<String>,
    /// KRW not refunded.
    pub balance: i64,
    /// Refunds, oldest first.
    pub refunds: Vec<Refund>,
    /// The failure, if it failed: Toss's code and message.
    pub failure: Option<(String, String)>,
}

impl Payment {
    /// The refund recorded under `refund_id` (or under Toss's transaction key).
    pub fn refund(&self, refund_id: &str) -> Option<&Refund> {
        self.refunds.iter().find(|r| r.refund_id == refund_id)
    }

    /// Whether nothing is left of a confirmed payment and a cancel other than the saga's (the
    /// Toss console, or staff's partial refunds) took part in returning it.
    pub fn emptied_at_toss(&self) -> bool {
        self.status.was_confirmed()
            && self.balance == 0
            && self.refunds.iter().any(|r| {
                r.refund_id.starts_with(AT_TOSS_PREFIX)
                    || r.refund_id.starts_with(STAFF_REFUND_PREFIX)
            })
    }

    fn knows(&self, refund: &Refund) -> bool {
        self.refunds.iter().any(|known| {
            known.refund_id == refund.refund_id
                || (known.transaction_key.is_some()
                    && known.transaction_key == refund.transaction_key)
        })
    }

    fn refuse_unless_confirmed(&self) -> Result<(), PaymentRuleError> {
        match self.status {
            PaymentStatus::New => Err(PaymentRuleError::NotRequested),
            s if s.was_confirmed() => Ok(()),
            _ => Err(PaymentRuleError::NotConfirmed),
        }
    }
}

impl Aggregate for Payment {
    const CATEGORY: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentRuleError;

    fn handle(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentRuleError> {
        match command {
            PaymentCommand::Request {
                order_id,
                customer_id,
                amount,
                expires_at,
            } => {
                if self.status != PaymentStatus::New {
                    return Ok(Vec::new());
                }
                if order_id.is_empty() || customer_id.is_empty() {
                    return Err(PaymentRuleError::Invalid("order and customer are required"));
                }
                if amount <= 0 {
                    return Err(PaymentRuleError::Invalid("amount must be positive"));
                }
                Ok(vec![PaymentEvent::Requested {
                    order_id,
                    customer_id,
                    amount,
                    expires_at,
                }])
            }
            PaymentCommand::Confirm {
                payment_key,
                amount,
                method,
                approved_at,
                receipt_url,
            } => match self.status {
                PaymentStatus::New => Err(PaymentRuleError::NotRequested),
                s if s.was_confirmed() => {
                    if self.payment_key.as_deref() == Some(payment_key.as_str()) {
                        Ok(Vec::new())
                    } else {
                        Err(PaymentRuleError::AlreadyConfirmed)
                    }
                }
                PaymentStatus::Failed => {
                    let (code, reason) = self.failure.clone().unwrap_or_default();
                    Err(PaymentRuleError::AlreadyFailed { code, reason })
                }
                _ if amount != self.amount => Err(PaymentRuleError::AmountMismatch {
                    expected: self.amount,
                    given: amount,
                }),
                _ if payment_key.is_empty() => {
                    Err(PaymentRuleError::Invalid("payment key is required"))
                }
                _ => Ok(vec![PaymentEvent::Confirmed {
                    order_id: self.order_id.clone(),
                    payment_key,
                    amount,
                    method,
                    approved_at,
                    receipt_url,
                }]),
            },
            PaymentCommand::Fail {
                payment_key,
                code,
                reason,
            } => match self.status {
                PaymentStatus::New => Err(PaymentRuleError::NotRequested),
                PaymentStatus::Failed => Ok(Vec::new()),
                s if s.was_confirmed() => Err(PaymentRuleError::AlreadyConfirmed),
                _ => Ok(vec![PaymentEvent::Failed {
                    order_id: self.order_id.clone(),
                    payment_key,
                    code,
                    reason,
                }]),
            },
            PaymentCommand::Refund { refunds } => {
                self.refuse_unless_confirmed()?;
                let mut balance = self.balance;
                let mut events = Vec::new();
                let mut seen = self.clone();
                for refund in refunds {
                    if seen.knows(&refund) {
                        continue;
                    }
                    if refund.amount <= 0 {
                        return Err(PaymentRuleError::Invalid("refund amount must be positive"));
                    }
                    if refund.amount > balance {
                        return Err(PaymentRuleError::ExceedsBalance {
                            balance,
                            requested: refund.amount,
                        });
                    }
                    balance -= refund.amount;
                    seen.refunds.push(refund.clone());
                    events.push(PaymentEvent::Refunded {
                        order_id: self.order_id.clone(),
                        refund_id: refund.refund_id,
                        transaction_key: refund.transaction_key,
                        amount: refund.amount,
                        reason: refund.reason,
                        canceled_at: refund.canceled_at,
                        balance,
                    });
                }
                Ok(events)
            }
        }
    }

    fn apply(&mut self, event: &PaymentEvent) {
        match event {
            PaymentEvent::Requested {
                order_id,
                customer_id,
                amount,
                expires_at,
            } => {
                self.status = PaymentStatus::Requested;
                self.order_id.clone_from(order_id);
                self.customer_id.clone_from(customer_id);
                self.amount = *amount;
                self.expires_at = Some(*expires_at);
            }
            PaymentEvent::Confirmed {
                payment_key,
                amount,
                method,
                approved_at,
                receipt_url,
                ..
            } => {
                self.status = PaymentStatus::Confirmed;
                self.payment_key = Some(payment_key.clone());
                self.amount = *amount;
                self.balance = *amount;
                self.method.clone_from(method);
                self.approved_at = *approved_at;
                self.receipt_url.clone_from(receipt_url);
            }
            PaymentEvent::Failed {
                payment_key,
                code,
                reason,
                ..
            } => {
                self.status = PaymentStatus::Failed;
                self.payment_key.clone_from(payment_key);
                self.failure = Some((code.clone(), reason.clone()));
            }
            PaymentEvent::Refunded {
                refund_id,
                transaction_key,
                amount,
                reason,
                canceled_at,
                balance,
                ..
            } => {
                self.balance = *balance;
                self.status = if *balance == 0 {
                    PaymentStatus::Refunded
                } else {
                    PaymentStatus::PartiallyRefunded
                };
                self.refunds.push(Refund {
                    refund_id: refund_id.clone(),
                    transaction_key: transaction_key.clone(),
                    amount: *amount,
                    reason: reason.clone(),
                    canceled_at: *canceled_at,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
