//! Payloads of published events that other subgraphs consume, by event type.
//!
//! The owner appends these (as the `data` of events of the given type) and others decode
//! them from the relay's envelopes. Adding a field is compatible; renaming one is not.

use serde::{Deserialize, Serialize};

use crate::StockLine;

/// Event type of [`OrderPlaced`] in the `order` category.
pub const ORDER_PLACED: &str = "OrderPlaced";
/// Event type of [`PaymentRequested`] in the `order` category.
pub const PAYMENT_REQUESTED: &str = "PaymentRequested";
/// Event type of [`PaymentConfirmed`] in the `payment` category.
pub const PAYMENT_CONFIRMED: &str = "PaymentConfirmed";
/// Event type of [`PaymentFailed`] in the `payment` category.
pub const PAYMENT_FAILED: &str = "PaymentFailed";
/// Event type of [`PaymentRefunded`] in the `payment` category.
pub const PAYMENT_REFUNDED: &str = "PaymentRefunded";

/// An order line with its price at order time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    /// The product and quantity.
    #[serde(flatten)]
    pub line: StockLine,
    /// Name at order time.
    pub product_name: String,
    /// KRW per unit at order time.
    pub unit_price: i64,
}

/// A customer placed an order (order category, stream `order-{order_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: String,
    /// Cognito `sub` of the customer.
    pub customer_id: String,
    /// What was ordered.
    pub lines: Vec<PricedLine>,
    /// KRW, computed by the server.
    pub total: i64,
    /// When it was placed.
    pub placed_at: chrono::DateTime<chrono::Utc>,
}

/// Stock is reserved: the order now waits for the customer's payment (order category).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequested {
    /// The order.
    pub order_id: String,
    /// The customer who must pay.
    pub customer_id: String,
    /// KRW the payment must confirm, exactly.
    pub amount: i64,
    /// When the saga stops waiting (RFC 3339).
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Toss confirmed the payment (payment category, stream `payment-{order_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentConfirmed {
    /// The order.
    pub order_id: String,
    /// Toss's payment key.
    pub payment_key: String,
    /// KRW confirmed.
    pub amount: i64,
}

/// The payment failed for good (declined card, provider error) (payment category).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// The order.
    pub order_id: String,
    /// Toss's error code.
    pub code: String,
    /// Toss's message.
    pub reason: String,
}

/// Part or all of a confirmed payment was refunded, by the saga or at Toss (payment category).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: String,
    /// The saga's refund id, or `toss-{transactionKey}` for a cancel made at Toss.
    pub refund_id: String,
    /// KRW refunded.
    pub amount: i64,
    /// Why.
    pub reason: String,
    /// KRW left after this refund.
    pub balance: i64,
}
