//! The `payable` read model: orders awaiting payment, from the order category's
//! `PaymentRequested` events, closed again when the order is cancelled, expired or rejected.
//! Portable SQL over sqlx `Any` (Postgres in production, SQLite embedded).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventstore::RecordedEvent;
use std::collections::HashMap;

use projections::{
    PARAMS_PER_STATEMENT, Projection, ProjectionError, ReadModels, Tables, placeholders,
};
use sqlx::{AnyConnection, Executor, Row as _};

/// Order events that end the wait for payment.
pub const CLOSING_EVENTS: &[&str] = &["OrderCancelled", "OrderExpired", "OrderRejected"];

/// The view readers query.
const VIEW: &str = "rm_payable_orders";

/// The projection of orders awaiting payment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Payable;

#[async_trait]
impl Projection for Payable {
    fn name(&self) -> &'static str {
        "payable"
    }

    fn categories(&self) -> &'static [&'static str] {
        &["order"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["orders"]
    }

    async fn create_tables(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
    ) -> Result<(), ProjectionError> {
        conn.execute(
            format!(
                "CREATE TABLE {} (
                    order_id TEXT PRIMARY KEY,
                    customer_id TEXT NOT NULL,
                    amount BIGINT NOT NULL,
                    expires_at TEXT NOT NULL,
                    closed_by TEXT,
                    updated_at TEXT NOT NULL
                )",
                tables.table("orders")
            )
            .as_str(),
        )
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_batch(conn, tables, &[event]).await
    }

    /// One upsert for every order requested in the batch (its last state), and one update per
    /// order closed in the batch that was requested before it.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let table = tables.table("orders");
        let mut rows: Vec<Row> = Vec::new();
        let mut row_of: HashMap<&str, usize> = HashMap::new();
        // Closings of orders requested before this batch: (order, closing event, at).
        let mut closings: Vec<(&str, &str, String)> = Vec::new();
        for event in events {
            let event_type = event.event_type.as_str();
            let order_id = event.stream_id.entity_id();
            if event_type == contracts::events::PAYMENT_REQUESTED {
                let requested: contracts::events::PaymentRequested =
                    event.decode().map_err(|e| ProjectionError::Decode {
                        event_id: event.id.to_string(),
                        reason: e.to_string(),
                    })?;
                let row = Row {
                    order_id: requested.order_id,
                    customer_id: requested.customer_id,
                    amount: requested.amount,
                    expires_at: requested.expires_at.to_rfc3339(),
                    closed_by: None,
                    updated_at: event.recorded_at.to_rfc3339(),
                };
                match row_of.get(order_id) {
                    Some(&i) => rows[i] = row,
                    None => {
                        row_of.insert(order_id, rows.len());
                        rows.push(row);
                    }
                }
            } else if CLOSING_EVENTS.contains(&event_type) {
                let at = event.recorded_at.to_rfc3339();
                match row_of.get(order_id) {
                    Some(&i) => {
                        rows[i].closed_by = Some(event_type.to_owned());
                        rows[i].updated_at = at;
                    }
                    None => closings.push((order_id, event_type, at)),
                }
            }
        }
        // Closings first: a request later in the batch sets its row anew.
        for (order_id, closed_by, at) in closings {
            sqlx::query(&format!(
                "UPDATE {table} SET closed_by = $1, updated_at = $2 WHERE order_id = $3"
            ))
            .bind(closed_by)
            .bind(at)
            .bind(order_id)
            .execute(&mut *conn)
            .await?;
        }
        for chunk in rows.chunks(PARAMS_PER_STATEMENT / 6) {
            let sql = format!(
                "INSERT INTO {table} (order_id, customer_id, amount, expires_at, closed_by, updated_at) \
                 VALUES {} \
                 ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id, \
                 amount = excluded.amount, expires_at = excluded.expires_at, \
                 closed_by = excluded.closed_by, updated_at = excluded.updated_at",
                placeholders(chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = query
                    .bind(row.order_id.as_str())
                    .bind(row.customer_id.as_str())
                    .bind(row.amount)
                    .bind(row.expires_at.as_str())
                    .bind(row.closed_by.as_deref())
                    .bind(row.updated_at.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// One order's row as a batch leaves it.
struct Row {
    order_id: String,
    customer_id: String,
    amount: i64,
    expires_at: String,
    closed_by: Option<String>,
    updated_at: String,
}

/// An order as the payment subgraph knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayableOrder {
    /// The order.
    pub order_id: String,
    /// The customer who must pay.
    pub customer_id: String,
    /// KRW to confirm, exactly.
    pub amount: i64,
    /// When the order stops waiting.
    pub expires_at: DateTime<Utc>,
    /// The order event that ended the wait (`OrderCancelled`, ...), if any.
    pub closed_by: Option<String>,
}

impl PayableOrder {
    /// Why the order cannot be paid at `now`, if it cannot.
    pub fn unpayable_reason(&self, now: DateTime<Utc>) -> Option<String> {
        if let Some(closed_by) = &self.closed_by {
            return Some(format!("the order is closed ({closed_by})"));
        }
        (now >= self.expires_at).then(|| "the payment window has expired".to_owned())
    }
}

/// Folds an order's own events into what payment needs, for when the read model has not
/// caught up yet (the moment right after the order starts waiting for payment).
pub fn fold_order_events(events: &[eventstore::RecordedEvent]) -> Option<PayableOrder> {
    let mut order: Option<PayableOrder> = None;
    for event in events {
        match event.event_type.as_str() {
            contracts::events::PAYMENT_REQUESTED => {
                let requested: contracts::events::PaymentRequested = event.decode().ok()?;
                order = Some(PayableOrder {
                    order_id: requested.order_id,
                    customer_id: requested.customer_id,
                    amount: requested.amount,
                    expires_at: requested.expires_at,
                    closed_by: None,
                });
            }
            closing @ ("OrderCancelled" | "OrderExpired" | "OrderRejected") => {
                if let Some(order) = order.as_mut() {
                    order.closed_by = Some(closing.to_owned());
                }
            }
            _ => {}
        }
    }
    order
}

/// Reads the `payable` read model.
#[derive(Clone)]
pub struct PayableOrders {
    models: ReadModels,
}

impl PayableOrders {
    /// Registers the projection (so its view exists) and reads from it.
    pub async fn new(models: ReadModels) -> Result<Self, ProjectionError> {
        models.register(&Payable).await?;
        Ok(Self { models })
    }

    /// The order, if it ever awaited payment.
    pub async fn get(&self, order_id: &str) -> Result<Option<PayableOrder>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT order_id, customer_id, amount, expires_at, closed_by FROM {VIEW} WHERE order_id = $1"
        ))
        .bind(order_id)
        .fetch_optional(self.models.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: String = row.try_get(3)?;
        let expires_at = DateTime::parse_from_rfc3339(&expires_at)
            .map_err(|e| ProjectionError::Decode {
                event_id: format!("payable order {order_id}"),
                reason: e.to_string(),
            })?
            .with_timezone(&Utc);
        Ok(Some(PayableOrder {
            order_id: row.try_get(0)?,
            customer_id: row.try_get(1)?,
            amount: row.try_get(2)?,
            expires_at,
            closed_by: row.try_get(4)?,
        }))
    }

    /// The read-model database.
    pub fn models(&self) -> &ReadModels {
        &self.models
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    fn event(event_type: &str, data: serde_json::Value) -> eventstore::RecordedEvent {
        eventstore::RecordedEvent {
            id: uuid::Uuid::now_v7(),
            stream_id: eventstore::StreamId::parse("order-o1").unwrap(),
            version: 1,
            position: eventstore::Position(1),
            event_type: event_type.into(),
            data,
            metadata: eventstore::Metadata::new(),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn folds_the_request_and_its_closing() {
        let requested = serde_json::json!({
            "order_id": "o1", "customer_id": "kim", "amount": 9000,
            "expires_at": "2030-01-01T00:00:00Z"
        });
        let open = [
            event("OrderPlaced", serde_json::json!({})),
            event(contracts::events::PAYMENT_REQUESTED, requested),
        ];
        let order = fold_order_events(&open).unwrap();
        assert_eq!(
            (order.customer_id.as_str(), order.amount, order.closed_by),
            ("kim", 9000, None)
        );
        let mut closed = open.to_vec();
        closed.push(event("OrderCancelled", serde_json::json!({})));
        assert_eq!(
            fold_order_events(&closed).unwrap().closed_by.as_deref(),
            Some("OrderCancelled")
        );
        assert_eq!(
            fold_order_events(&open[..1]),
            None,
            "not awaiting payment yet"
        );
    }
}
