//! What the review subgraph knows of orders, for eligibility and the order date: the order
//! subgraph's read model `rm_orders_orders`, and the order's own events when that model has
//! not caught up yet (an order completed a moment ago).
//!
//! Only published facts are read (the `OrderPlaced` contract and the status events' `status`
//! field); the order subgraph is never called.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use contracts::events::{ORDER_PLACED, OrderPlaced, PAYMENT_REQUESTED, PricedLine};
use eventstore::{Direction, EventStore, RecordedEvent, StoreError, StreamId};
use sqlx::{AnyPool, Row};

/// The view of the order subgraph's orders read model.
pub const ORDERS_VIEW: &str = "rm_orders_orders";
/// The status of an order that was handed over.
pub const COMPLETED: &str = "COMPLETED";
/// Most events read from an order's stream.
const ORDER_EVENTS: usize = 1_000;
/// Most ids looked up in one statement.
const IDS_PER_STATEMENT: usize = 200;

/// An order as far as reviews care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFacts {
    /// The order.
    pub order_id: String,
    /// Cognito `sub` of its customer.
    pub customer_id: String,
    /// Its status (`COMPLETED`, ...).
    pub status: String,
    /// Its lines: product id and name at order time.
    pub lines: Vec<(String, String)>,
    /// When it was placed.
    pub placed_at: Option<DateTime<Utc>>,
}

impl OrderFacts {
    /// The name at order time of `product_id`, if the order contains it.
    pub fn line(&self, product_id: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(id, _)| id == product_id)
            .map(|(_, name)| name.as_str())
    }

    /// Whether it was handed over.
    pub fn is_completed(&self) -> bool {
        self.status == COMPLETED
    }
}

/// Why orders could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// The read-model database failed.
    #[error("orders read model: {0}")]
    ReadModel(#[from] sqlx::Error),
    /// The event store failed.
    #[error("order events: {0}")]
    Store(#[from] StoreError),
}

/// Reads orders; cheap to clone.
#[derive(Clone)]
pub struct Orders {
    pool: AnyPool,
    store: Arc<dyn EventStore>,
}

impl Orders {
    /// Orders from the read models in `pool`, and from `store` when they lag.
    pub fn new(pool: AnyPool, store: Arc<dyn EventStore>) -> Self {
        Self { pool, store }
    }

    /// The order, from the read model when it shows it completed, else from its own events.
    pub async fn get(&self, order_id: &str) -> Result<Option<OrderFacts>, OrdersError> {
        match from_view(&self.pool, &[order_id.to_owned()]).await {
            Ok(mut found) => {
                if let Some(facts) = found.remove(order_id).filter(OrderFacts::is_completed) {
                    return Ok(Some(facts));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "orders read model unreadable; reading the order's events");
            }
        }
        // Missing or not completed in the read model: it may lag the order's own events.
        let Ok(stream) = StreamId::of("order", order_id) else {
            return Ok(None);
        };
        let events = self
            .store
            .read_stream(&stream, Direction::Forward, None, ORDER_EVENTS)
            .await?;
        Ok(fold_events(&events))
    }
}

/// The orders among `ids` that the read model in `pool` knows, by id.
pub async fn from_view(
    pool: &AnyPool,
    ids: &[String],
) -> Result<HashMap<String, OrderFacts>, sqlx::Error> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, customer_id, status, lines, created_at FROM {ORDERS_VIEW} WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(pool).await? {
            let lines: String = row.try_get(3)?;
            let lines: Vec<PricedLine> =
                serde_json::from_str(&lines).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let created_at: String = row.try_get(4)?;
            let facts = OrderFacts {
                order_id: row.try_get(0)?,
                customer_id: row.try_get(1)?,
                status: row.try_get(2)?,
                lines: lines
                    .into_iter()
                    .map(|l| (l.line.product_id, l.product_name))
                    .collect(),
                placed_at: DateTime::parse_from_rfc3339(&created_at)
                    .ok()
                    .map(|t| t.with_timezone(&Utc)),
            };
            found.insert(facts.order_id.clone(), facts);
        }
    }
    Ok(found)
}

/// Folds an order's own events: `OrderPlaced`, then each status event's `status`.
pub fn fold_events(events: &[RecordedEvent]) -> Option<OrderFacts> {
    let mut facts: Option<OrderFacts> = None;
    for event in events {
        match event.event_type.as_str() {
            ORDER_PLACED => {
                let placed: OrderPlaced = event.decode().ok()?;
                facts = Some(OrderFacts {
                    order_id: placed.order_id,
                    customer_id: placed.customer_id,
                    status: "PLACED".to_owned(),
                    lines: placed
                        .lines
                        .into_iter()
                        .map(|l| (l.line.product_id, l.product_name))
                        .collect(),
                    placed_at: Some(placed.placed_at),
                });
            }
            PAYMENT_REQUESTED => {
                if let Some(f) = facts.as_mut() {
                    f.status = "PAYMENT_PENDING".to_owned();
                }
            }
            t if t.starts_with("Order") => {
                let status = event.data.get("status").and_then(|s| s.as_str());
                if let (Some(f), Some(status)) = (facts.as_mut(), status) {
                    f.status = status.to_owned();
                }
            }
            _ => {}
        }
    }
    facts
}
