//! The messages that cross subgraph boundaries, and nothing else.
//!
//! Subgraphs never call each other: the order saga sends [`InventoryCommand`]s and
//! [`PaymentCommand`]s over the message bus (topics [`INVENTORY_COMMANDS`],
//! [`PAYMENT_COMMANDS`]), handlers answer with [`SagaReply`]s on [`SAGA_REPLIES`] keyed by
//! order id (where the payment service also announces confirmed payments, ahead of their
//! relayed events), and subgraphs that need another's facts consume its published events (the
//! payload types in [`events`]). Every message carries a `message_id` (handlers are
//! idempotent by it, or by the reservation / order id it names) and the saga's correlation id.
//! This crate holds types and their JSON form only; no behaviour.

pub mod events;
pub mod labels;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Topic of commands for the inventory handler.
pub const INVENTORY_COMMANDS: &str = "inventory.commands";
/// Topic of commands for the payment handler.
pub const PAYMENT_COMMANDS: &str = "payment.commands";
/// Topic of replies to the order saga.
pub const SAGA_REPLIES: &str = "saga.replies";

/// One line of an order, as inventory needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// The product.
    pub product_id: String,
    /// Units, 1..=99.
    pub quantity: u32,
}

/// Envelope of every saga message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Unique id of this message (UUID v7); redeliveries keep it.
    pub message_id: Uuid,
    /// The order (and saga) this message belongs to.
    pub order_id: String,
    /// W3C `traceparent` of the sender's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The message itself.
    pub body: T,
}

impl<T> Envelope<T> {
    /// Wraps `body` for `order_id` with a fresh message id.
    pub fn new(order_id: impl Into<String>, body: T) -> Self {
        Self {
            message_id: Uuid::now_v7(),
            order_id: order_id.into(),
            traceparent: None,
            body,
        }
    }
}

/// What the saga asks of inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum InventoryCommand {
    /// Reserve every line or none; idempotent by `reservation_id`.
    ReserveStock {
        /// Identifies the reservation across retries.
        reservation_id: String,
        /// What to reserve.
        lines: Vec<StockLine>,
    },
    /// Give reserved (or committed) units back; idempotent.
    ReleaseStock {
        /// The reservation.
        reservation_id: String,
    },
    /// Turn reserved units into sold units; idempotent.
    CommitStock {
        /// The reservation.
        reservation_id: String,
    },
}

/// What the saga asks of payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PaymentCommand {
    /// Refund (cancel) the order's payment, fully or partly; idempotent by `refund_id`.
    RefundPayment {
        /// Identifies the refund across retries.
        refund_id: String,
        /// KRW to refund; `None` refunds what is left.
        amount: Option<i64>,
        /// Why, shown to the customer and sent to Toss.
        reason: String,
    },
}

/// A handler's answer, or the payment service's notice, to the saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SagaReply {
    /// Every line is reserved.
    StockReserved {
        /// The reservation.
        reservation_id: String,
    },
    /// Nothing is reserved.
    StockRejected {
        /// The reservation.
        reservation_id: String,
        /// Why (e.g. "product p-1 has 2 available, 3 requested").
        reason: String,
    },
    /// The reservation's units are back in stock.
    StockReleased {
        /// The reservation.
        reservation_id: String,
    },
    /// The reservation's units are sold.
    StockCommitted {
        /// The reservation.
        reservation_id: String,
    },
    /// The payment was refunded.
    PaymentRefunded {
        /// The refund.
        refund_id: String,
        /// KRW refunded (0: nothing was left, a cancel at Toss had returned it all).
        amount: i64,
    },
    /// A payment was recorded as confirmed (the relayed `PaymentConfirmed` event follows).
    ///
    /// Not an answer to a command: the saga keys it by order and payment key, not by the
    /// envelope's message id, so it and the relayed event are one input.
    PaymentConfirmed {
        /// Toss's key of the payment.
        payment_key: String,
        /// KRW approved.
        amount: i64,
    },
    /// The refund failed for good (e.g. not cancelable).
    RefundFailed {
        /// The refund.
        refund_id: String,
        /// Toss's code or ours.
        code: String,
        /// Toss's message or ours.
        reason: String,
        /// Toss asked for the refund to be tried again later (`PROVIDER_ERROR`,
        /// `FORBIDDEN_CONSECUTIVE_REQUEST`), as a new
        /// request: its answer to this one is kept under this refund's idempotency key.
        #[serde(default)]
        temporary: bool,
    },
}
