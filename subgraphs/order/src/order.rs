//! The `Order` aggregate: lines priced at order time, the total, and the status timeline.

use chrono::{DateTime, Utc};
use contracts::events::{OrderPlaced, PaymentRequested, PricedLine};
use eventstore::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Most units of one product in one line.
pub const MAX_QUANTITY: u32 = 99;
/// The reason an order shows while a refused refund is tried again.
pub const REFUND_RETRIED: &str = "refund retried";

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Not placed yet (no events).
    #[default]
    New,
    /// Placed; stock not reserved yet.
    Placed,
    /// Stock reserved.
    StockReserved,
    /// Waiting for the customer's payment.
    PaymentPending,
    /// Paid.
    Paid,
    /// Accepted by the shop.
    Accepted,
    /// Being prepared.
    Preparing,
    /// Ready for pick-up.
    Ready,
    /// Picked up.
    Completed,
    /// Cancelled by the customer or because payment failed.
    Cancelled,
    /// Rejected by the shop or for lack of stock.
    Rejected,
    /// Money returned: after a cancel or reject, or cancelled at Toss outside the platform.
    Refunded,
    /// Payment did not arrive in time.
    Expired,
    /// Cancelled, rejected or expired while paid, and Toss refused the refund for good: the
    /// money is still taken and staff must see to it.
    RefundFailed,
}

impl OrderStatus {
    /// Whether money is held once the order enters this status, `before` saying whether it was
    /// held before: paid, or a refund refused (the money is held whether or not the order saw
    /// it arrive: a late payment), until refunded.
    pub fn holds_money(self, before: bool) -> bool {
        match self {
            Self::Paid | Self::RefundFailed => true,
            Self::Refunded => false,
            _ => before,
        }
    }

    /// Whether no further change is possible (refunds aside).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Cancelled | Self::Rejected | Self::Refunded | Self::Expired
        )
    }

    /// The status name as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::Placed => "PLACED",
            Self::StockReserved => "STOCK_RESERVED",
            Self::PaymentPending => "PAYMENT_PENDING",
            Self::Paid => "PAID",
            Self::Accepted => "ACCEPTED",
            Self::Preparing => "PREPARING",
            Self::Ready => "READY",
            Self::Completed => "COMPLETED",
            Self::Cancelled => "CANCELLED",
            Self::Rejected => "REJECTED",
            Self::Refunded => "REFUNDED",
            Self::Expired => "EXPIRED",
            Self::RefundFailed => "REFUND_FAILED",
        }
    }
}

/// One step of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The status entered.
    pub status: OrderStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, for cancellations, rejections, refunds and expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The order's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order id.
    pub id: String,
    /// Cognito `sub` of the customer.
    pub customer_id: String,
    /// Lines priced at order time.
    pub lines: Vec<PricedLine>,
    /// KRW.
    pub total: i64,
    /// Current status.
    pub status: OrderStatus,
    /// Every status entered, oldest first.
    pub timeline: Vec<StatusChange>,
    /// Whether money was taken (and not yet returned).
    pub paid: bool,
    /// Toss payment key once paid.
    pub payment_key: Option<String>,
}

/// What can be asked of an order.
#[derive(Debug, Clone)]
pub enum OrderCommand {
    /// Place it (prices computed by the server).
    Place {
        /// The order id.
        order_id: String,
        /// The customer.
        customer_id: String,
        /// Priced lines.
        lines: Vec<PricedLine>,
    },
    /// The saga reserved stock; payment is now awaited until `expires_at`.
    AwaitPayment {
        /// When the saga stops waiting.
        expires_at: DateTime<Utc>,
    },
    /// The saga saw the payment confirmed.
    MarkPaid {
        /// Toss's payment key.
        payment_key: String,
    },
    /// Staff accepts.
    Accept,
    /// Staff starts preparing.
    StartPreparing,
    /// Staff marks it ready.
    MarkReady,
    /// Staff hands it over.
    Complete,
    /// The customer cancels (before the shop accepted).
    Cancel {
        /// Why.
        reason: String,
    },
    /// Staff rejects, or the saga rejects for lack of stock.
    Reject {
        /// Why.
        reason: String,
    },
    /// The saga gave up waiting for payment.
    Expire,
    /// The payment failed; the order is cancelled.
    FailPayment {
        /// Why.
        reason: String,
    },
    /// The saga refunded the money.
    MarkRefunded {
        /// KRW refunded.
        amount: i64,
    },
    /// The whole payment was cancelled at Toss, outside the platform (the Toss console).
    MarkRefundedAtToss {
        /// Toss's cancel reason.
        reason: String,
    },
    /// Toss refused the saga's refund for good.
    MarkRefundFailed {
        /// Toss's code and message.
        reason: String,
    },
    /// Staff had the refused refund tried again: back to the status it was refunding from.
    RetryRefund,
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OrderEvent {
    /// Placed (payload shared with other subgraphs).
    Placed(OrderPlaced),
    /// Payment requested (payload shared with other subgraphs).
    PaymentRequested(PaymentRequested),
    /// Any other status change.
    Changed(StatusChanged),
}

/// A status change other than placing and requesting payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChanged {
    /// The order.
    pub order_id: String,
    /// The new status.
    pub status: OrderStatus,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Toss's payment key (on PAID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_key: Option<String>,
    /// KRW refunded (on REFUNDED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<i64>,
    /// When.
    pub at: DateTime<Utc>,
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Placed(_) => contracts::events::ORDER_PLACED,
            Self::PaymentRequested(_) => contracts::events::PAYMENT_REQUESTED,
            Self::Changed(c) => match c.status {
                OrderStatus::StockReserved => "OrderStockReserved",
                OrderStatus::Paid => "OrderPaid",
                OrderStatus::Accepted => "OrderAccepted",
                OrderStatus::Preparing => "OrderPreparing",
                OrderStatus::Ready => "OrderReady",
                OrderStatus::Completed => "OrderCompleted",
                OrderStatus::Cancelled => "OrderCancelled",
                OrderStatus::Rejected => "OrderRejected",
                OrderStatus::Refunded => "OrderRefunded",
                OrderStatus::Expired => "OrderExpired",
                OrderStatus::RefundFailed => "OrderRefundFailed",
                OrderStatus::New | OrderStatus::Placed | OrderStatus::PaymentPending => {
                    "OrderStatusChanged"
                }
            },
        }
    }
}

/// Why an order command was refused; `code()` is the GraphQL `extensions.code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The order is not in a status that allows this.
    #[error("order is {status}; cannot {action}")]
    WrongStatus {
        /// Current status.
        status: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// No such order.
    #[error("order not found")]
    NotFound,
}

impl OrderError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "BAD_USER_INPUT",
            Self::WrongStatus { .. } => "INVALID_ORDER_STATUS",
            Self::NotFound => "NOT_FOUND",
        }
    }
}

impl Order {
    /// Whether the order will change no more on its own: final, and not a paid order that was
    /// cancelled, rejected or expired, whose refund is still to come.
    pub fn settled(&self) -> bool {
        use OrderStatus as S;
        self.status.is_final()
            && !(self.paid && matches!(self.status, S::Cancelled | S::Rejected | S::Expired))
    }

    /// Whether a payment may still arrive for this order, to be refunded: unpaid, and closed
    /// (cancelled, rejected, expired) while awaiting payment, when a confirm may have been
    /// under way at Toss.
    pub fn may_see_late_payment(&self) -> bool {
        use OrderStatus as S;
        !self.paid
            && matches!(self.status, S::Cancelled | S::Rejected | S::Expired)
            && self.timeline.iter().any(|c| c.status == S::PaymentPending)
    }

    /// Whether the order was made (it reached READY): its units were used, so whatever happens
    /// to it afterwards (a rejection at pick-up, a refund) they stay sold.
    pub fn goods_made(&self) -> bool {
        self.timeline.iter().any(|c| c.status == OrderStatus::Ready)
    }

    fn change(&self, status: OrderStatus, reason: Option<String>) -> OrderEvent {
        OrderEvent::Changed(StatusChanged {
            order_id: self.id.clone(),
            status,
            reason,
            payment_key: None,
            refunded: None,
            at: Utc::now(),
        })
    }

    fn require(&self, allowed: &[OrderStatus], action: &'static str) -> Result<(), OrderError> {
        if self.status == OrderStatus::New {
            return Err(OrderError::NotFound);
        }
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(OrderError::WrongStatus {
                status: self.status.as_str(),
                action,
            })
        }
    }
}

/// Checks lines as a customer sent them (before pricing).
pub fn validate_lines(lines: &[(String, u32)]) -> Result<(), OrderError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(OrderError::Invalid(format!(
            "an order has 1 to {MAX_LINES} lines, got {}",
            lines.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (product, quantity) in lines {
        if !(1..=MAX_QUANTITY).contains(quantity) {
            return Err(OrderError::Invalid(format!(
                "quantity of {product} must be 1 to {MAX_QUANTITY}, got {quantity}"
            )));
        }
        if !seen.insert(product) {
            return Err(OrderError::Invalid(format!(
                "product {product} appears in two lines; combine them"
            )));
        }
    }
    Ok(())
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn handle(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus as S;
        match command {
            OrderCommand::Place {
                order_id,
                customer_id,
                lines,
            } => {
                if self.status != S::New {
                    // Same idempotency key again: the order already exists.
                    return Ok(vec![]);
                }
                let raw: Vec<(String, u32)> = lines
                    .iter()
                    .map(|l| (l.line.product_id.clone(), l.line.quantity))
                    .collect();
                validate_lines(&raw)?;
                let mut total: i64 = 0;
                for l in &lines {
                    if l.unit_price <= 0 {
                        return Err(OrderError::Invalid(format!(
                            "product {} has no valid price",
                            l.line.product_id
                        )));
                    }
                    total = total
                        .checked_add(l.unit_price.saturating_mul(i64::from(l.line.quantity)))
                        .ok_or_else(|| OrderError::Invalid("total is too large".into()))?;
                }
                Ok(vec![OrderEvent::Placed(OrderPlaced {
                    order_id,
                    customer_id,
                    lines,
                    total,
                    placed_at: Utc::now(),
                })])
            }
            OrderCommand::AwaitPayment { expires_at } => {
                if matches!(self.status, S::StockReserved | S::PaymentPending) {
                    return Ok(vec![]);
                }
                self.require(&[S::Placed], "await payment")?;
                Ok(vec![
                    self.change(S::StockReserved, None),
                    OrderEvent::PaymentRequested(PaymentRequested {
                        order_id: self.id.clone(),
                        customer_id: self.customer_id.clone(),
                        amount: self.total,
                        expires_at,
                    }),
                ])
            }
            OrderCommand::MarkPaid { payment_key } => {
                if self.paid {
                    return Ok(vec![]);
                }
                self.require(&[S::PaymentPending, S::StockReserved], "mark paid")?;
                let OrderEvent::Changed(mut change) = self.change(S::Paid, None) else {
                    return Ok(vec![]);
                };
                change.payment_key = Some(payment_key);
                Ok(vec![OrderEvent::Changed(change)])
            }
            OrderCommand::Accept => self.step(S::Paid, S::Accepted, "accept"),
            OrderCommand::StartPreparing => self.step(S::Accepted, S::Preparing, "start preparing"),
            OrderCommand::MarkReady => self.step(S::Preparing, S::Ready, "mark ready"),
            OrderCommand::Complete => self.step(S::Ready, S::Completed, "complete"),
            OrderCommand::Cancel { reason } => {
                if self.status == S::Cancelled {
                    return Ok(vec![]);
                }
                self.require(
                    &[S::Placed, S::StockReserved, S::PaymentPending, S::Paid],
                    "cancel (the shop already accepted it)",
                )?;
                Ok(vec![self.change(S::Cancelled, Some(reason))])
            }
            OrderCommand::Reject { reason } => {
                if self.status == S::Rejected {
                    return Ok(vec![]);
                }
                self.require(
                    &[
                        S::Placed,
                        S::StockReserved,
                        S::PaymentPending,
                        S::Paid,
                        S::Accepted,
                        S::Preparing,
                        // A wrong or spoiled cake at pick-up: refunded, the units stay sold.
                        S::Ready,
                    ],
                    "reject",
                )?;
                Ok(vec![self.change(S::Rejected, Some(reason))])
            }
            OrderCommand::Expire => {
                if self.status == S::Expired {
                    return Ok(vec![]);
                }
                self.require(&[S::Placed, S::StockReserved, S::PaymentPending], "expire")?;
                Ok(vec![self.change(
                    S::Expired,
                    Some("payment did not arrive in time".into()),
                )])
            }
            OrderCommand::FailPayment { reason } => {
                if self.status == S::Cancelled {
                    return Ok(vec![]);
                }
                self.require(&[S::StockReserved, S::PaymentPending], "fail payment")?;
                Ok(vec![self.change(S::Cancelled, Some(reason))])
            }
            OrderCommand::MarkRefunded { amount } => {
                if self.status == S::Refunded {
                    return Ok(vec![]);
                }
                self.require(
                    &[S::Cancelled, S::Rejected, S::Expired, S::RefundFailed],
                    "refund",
                )?;
                // The saga refunds only money it took: a payment that came after the order was
                // cancelled or expired was never marked on it, yet its refund shows.
                let reason = if self.paid {
                    "payment refunded"
                } else {
                    "late payment refunded"
                };
                let OrderEvent::Changed(mut change) = self.change(S::Refunded, Some(reason.into()))
                else {
                    return Ok(vec![]);
                };
                change.refunded = Some(amount);
                Ok(vec![OrderEvent::Changed(change)])
            }
            OrderCommand::MarkRefundedAtToss { reason } => {
                // Unpaid, only a late payment (after a cancel or expiry) can have been refunded.
                let late = matches!(self.status, S::Cancelled | S::Rejected | S::Expired);
                if self.status == S::Refunded || (!self.paid && !late) {
                    return Ok(vec![]);
                }
                self.require(
                    &[
                        S::Paid,
                        S::Accepted,
                        S::Preparing,
                        S::Ready,
                        S::Completed,
                        S::Cancelled,
                        S::Rejected,
                        S::Expired,
                        S::RefundFailed,
                    ],
                    "refund",
                )?;
                let OrderEvent::Changed(mut change) = self.change(
                    S::Refunded,
                    Some(format!("payment cancelled at Toss: {reason}")),
                ) else {
                    return Ok(vec![]);
                };
                change.refunded = Some(self.total);
                Ok(vec![OrderEvent::Changed(change)])
            }
            OrderCommand::MarkRefundFailed { reason } => {
                // Only the saga's own refund fails, so money was taken: also a payment that
                // came after the order was cancelled or expired, never marked paid on it.
                if self.status == S::RefundFailed {
                    return Ok(vec![]);
                }
                self.require(
                    &[S::Cancelled, S::Rejected, S::Expired],
                    "record a failed refund",
                )?;
                Ok(vec![self.change(
                    S::RefundFailed,
                    Some(format!("refund failed: {reason}")),
                )])
            }
            OrderCommand::RetryRefund => {
                self.require(&[S::RefundFailed], "retry the refund")?;
                // The status the refund was for (a late payment's refund: the cancelled or
                // expired order it came after).
                let back = self
                    .timeline
                    .iter()
                    .rev()
                    .map(|c| c.status)
                    .find(|s| matches!(s, S::Cancelled | S::Rejected | S::Expired))
                    .unwrap_or(S::Cancelled);
                Ok(vec![self.change(back, Some(REFUND_RETRIED.into()))])
            }
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed(p) => {
                self.id = p.order_id.clone();
                self.customer_id = p.customer_id.clone();
                self.lines = p.lines.clone();
                self.total = p.total;
                self.enter(OrderStatus::Placed, p.placed_at, None);
            }
            OrderEvent::PaymentRequested(_) => {
                // Requested together with the stock reservation: same moment.
                let at = self.timeline.last().map(|c| c.at).unwrap_or_else(Utc::now);
                self.enter(OrderStatus::PaymentPending, at, None);
            }
            OrderEvent::Changed(c) => {
                if c.status == OrderStatus::Paid {
                    self.payment_key = c.payment_key.clone();
                }
                self.paid = c.status.holds_money(self.paid);
                self.enter(c.status, c.at, c.reason.clone());
            }
        }
    }
}

impl Order {
    fn step(
        &self,
        from: OrderStatus,
        to: OrderStatus,
        action: &'static str,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if self.status == to {
            return Ok(vec![]);
        }
        self.require(&[from], action)?;
        Ok(vec![self.change(to, None)])
    }

    fn enter(&mut self, status: OrderStatus, at: DateTime<Utc>, reason: Option<String>) {
        self.status = status;
        self.timeline.push(StatusChange { status, at, reason });
    }
}
