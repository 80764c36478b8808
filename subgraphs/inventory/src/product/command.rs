//! What can be asked of a product, and what it records.

use eventstore::DomainEvent;
use serde::{Deserialize, Serialize};

use super::ProductId;

/// The details of a new product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Display name, 1..=100 characters.
    pub name: String,
    /// Description, up to 2,000 characters.
    pub description: String,
    /// KRW, 1..=10,000,000.
    pub price: i64,
    /// Category such as `cake`, 1..=50 characters.
    pub category: String,
    /// An `http(s)` URL of its picture.
    pub image_url: Option<String>,
    /// Units on hand at creation, 0..=10,000.
    pub initial_stock: i64,
}

/// What can be asked of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCommand {
    /// Puts a new product on sale (idempotent when repeated with the same details).
    Create {
        /// Its id.
        id: ProductId,
        /// Its details.
        details: NewProduct,
    },
    /// Sets the price (KRW).
    ChangePrice {
        /// The new price.
        price: i64,
    },
    /// Adds units on hand (once per `restock_id`, when given).
    Restock {
        /// Units, 1..=10,000.
        quantity: i64,
        /// The caller's idempotency key: asked again with it, the restock adds nothing.
        restock_id: Option<String>,
    },
    /// Stops selling the product (idempotent).
    Discontinue,
    /// Holds units for a reservation (idempotent by reservation id).
    Reserve {
        /// The reservation.
        reservation_id: String,
        /// Units, 1..=10,000.
        quantity: i64,
    },
    /// Gives a reservation's units back: its open hold, or with `sold` the units it bought (a
    /// refund; the reservation, which knows it was committed, says how many).
    Release {
        /// The reservation.
        reservation_id: String,
        /// Units it had bought, when it was committed.
        sold: Option<u32>,
    },
    /// Turns a reservation's held units into sold units (nothing when it holds none).
    Commit {
        /// The reservation.
        reservation_id: String,
    },
}

/// What happened to a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ProductEvent {
    /// A product was put on sale.
    ProductCreated {
        /// Its id.
        product_id: ProductId,
        /// Display name.
        name: String,
        /// Description.
        description: String,
        /// KRW.
        price: i64,
        /// Category.
        category: String,
        /// Picture.
        image_url: Option<String>,
    },
    /// The price changed.
    PriceChanged {
        /// KRW before.
        previous_price: i64,
        /// KRW now.
        price: i64,
    },
    /// Units were added on hand.
    Restocked {
        /// Units added.
        quantity: u32,
        /// The restock's idempotency key, when the caller gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restock_id: Option<String>,
    },
    /// The product is no longer sold.
    ProductDiscontinued,
    /// Units were held for a reservation.
    StockReserved {
        /// The reservation.
        reservation_id: String,
        /// Units held.
        quantity: u32,
    },
    /// A reservation's units went back to stock.
    StockReleased {
        /// The reservation.
        reservation_id: String,
        /// Units returned.
        quantity: u32,
        /// Whether they had been sold (a refund): they return on hand rather than from held.
        after_commit: bool,
    },
    /// A reservation's held units were sold.
    StockCommitted {
        /// The reservation.
        reservation_id: String,
        /// Units sold.
        quantity: u32,
    },
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ProductCreated { .. } => "ProductCreated",
            Self::PriceChanged { .. } => "PriceChanged",
            Self::Restocked { .. } => "Restocked",
            Self::ProductDiscontinued => "ProductDiscontinued",
            Self::StockReserved { .. } => "StockReserved",
            Self::StockReleased { .. } => "StockReleased",
            Self::StockCommitted { .. } => "StockCommitted",
        }
    }
}
