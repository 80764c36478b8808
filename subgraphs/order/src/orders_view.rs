//! The orders read model: every order with its lines, status and timeline, for lists.

use async_trait::async_trait;
use eventstore::RecordedEvent;
use projections::{Projection, ProjectionError, Tables};
use sqlx::{AnyConnection, AnyPool, Executor, Row};

use crate::order::{Order, OrderEvent, OrderStatus, StatusChange};

/// The `orders` projection (view `rm_orders_orders`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OrdersView;

#[async_trait]
impl Projection for OrdersView {
    fn name(&self) -> &'static str {
        "orders"
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
                    id TEXT PRIMARY KEY,
                    customer_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    total BIGINT NOT NULL,
                    lines TEXT NOT NULL,
                    timeline TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                )",
                tables.table("orders")
            )
            .as_str(),
        )
        .await?;
        for (suffix, columns) in [
            ("by_customer", "customer_id, created_at"),
            ("by_status", "status, created_at"),
        ] {
            conn.execute(
                format!(
                    "CREATE INDEX {} ON {} ({columns})",
                    tables.object(&format!("orders_{suffix}")),
                    tables.table("orders")
                )
                .as_str(),
            )
            .await?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("orders");
        let decode_err = |e: eventstore::StoreError| ProjectionError::Decode {
            event_id: event.id.to_string(),
            reason: e.to_string(),
        };
        // Decode by type; types this model does not know (newer writers) are skipped.
        let order_event = match event.event_type.as_str() {
            contracts::events::ORDER_PLACED => {
                OrderEvent::Placed(event.decode().map_err(decode_err)?)
            }
            contracts::events::PAYMENT_REQUESTED => {
                OrderEvent::PaymentRequested(event.decode().map_err(decode_err)?)
            }
            t if t.starts_with("Order") => OrderEvent::Changed(event.decode().map_err(decode_err)?),
            other => {
                tracing::debug!(
                    event_type = other,
                    "orders view skips an unknown event type"
                );
                return Ok(());
            }
        };
        let at = event
            .recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        match order_event {
            OrderEvent::Placed(p) => {
                let timeline = vec![StatusChange {
                    status: crate::order::OrderStatus::Placed,
                    at: p.placed_at,
                    reason: None,
                }];
                sqlx::query(&format!(
                    "INSERT INTO {table} (id, customer_id, status, total, lines, timeline, created_at, updated_at) \
                     VALUES ($1, $2, 'PLACED', $3, $4, $5, $6, $6)"
                ))
                .bind(p.order_id.as_str())
                .bind(p.customer_id.as_str())
                .bind(p.total)
                .bind(to_json(&p.lines, event)?)
                .bind(to_json(&timeline, event)?)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            OrderEvent::PaymentRequested(r) => {
                self.push(
                    conn,
                    &table,
                    &r.order_id,
                    StatusChange {
                        status: crate::order::OrderStatus::PaymentPending,
                        at: event.recorded_at,
                        reason: None,
                    },
                )
                .await?;
            }
            OrderEvent::Changed(c) => {
                self.push(
                    conn,
                    &table,
                    &c.order_id,
                    StatusChange {
                        status: c.status,
                        at: c.at,
                        reason: c.reason,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }
}

impl OrdersView {
    async fn push(
        &self,
        conn: &mut AnyConnection,
        table: &str,
        order_id: &str,
        change: StatusChange,
    ) -> Result<(), ProjectionError> {
        let row = sqlx::query(&format!("SELECT timeline FROM {table} WHERE id = $1"))
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(()) };
        let raw: String = row.try_get(0)?;
        let mut timeline: Vec<StatusChange> =
            serde_json::from_str(&raw).map_err(|e| ProjectionError::Decode {
                event_id: format!("orders row {order_id}"),
                reason: e.to_string(),
            })?;
        let status = change.status.as_str();
        let at = change
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        timeline.push(change);
        let timeline = serde_json::to_string(&timeline).map_err(|e| ProjectionError::Decode {
            event_id: format!("orders row {order_id}"),
            reason: e.to_string(),
        })?;
        sqlx::query(&format!(
            "UPDATE {table} SET status = $1, timeline = $2, updated_at = $3 WHERE id = $4"
        ))
        .bind(status)
        .bind(timeline)
        .bind(at)
        .bind(order_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// JSON text of plain data (orders' lines and timelines).
fn to_json<T: serde::Serialize>(
    value: &T,
    event: &RecordedEvent,
) -> Result<String, ProjectionError> {
    serde_json::to_string(value).map_err(|e| ProjectionError::Decode {
        event_id: event.id.to_string(),
        reason: e.to_string(),
    })
}

/// A page of orders, newest first, with each order's cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPage {
    /// The orders and their cursors (`created_at|id`).
    pub rows: Vec<(Order, String)>,
    /// Whether more follow.
    pub has_next: bool,
}

/// Lists orders, newest first, optionally of one customer and/or status, after a cursor
/// (`created_at|id` of the last row seen).
pub async fn list_orders(
    pool: &AnyPool,
    customer: Option<&str>,
    status: Option<&str>,
    after: Option<&str>,
    first: usize,
) -> Result<OrderPage, sqlx::Error> {
    let mut sql = String::from(
        "SELECT id, customer_id, status, total, lines, timeline, created_at FROM rm_orders_orders WHERE 1 = 1",
    );
    let mut binds: Vec<String> = Vec::new();
    if let Some(c) = customer {
        binds.push(c.to_owned());
        sql.push_str(&format!(" AND customer_id = ${}", binds.len()));
    }
    if let Some(s) = status {
        binds.push(s.to_owned());
        sql.push_str(&format!(" AND status = ${}", binds.len()));
    }
    if let Some((created, id)) = after.and_then(|a| a.split_once('|')) {
        binds.push(created.to_owned());
        let c = binds.len();
        binds.push(id.to_owned());
        let i = binds.len();
        sql.push_str(&format!(
            " AND (created_at < ${c} OR (created_at = ${c} AND id < ${i}))"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {}",
        first + 1
    ));
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len().min(first));
    for row in rows.iter().take(first) {
        let id: String = row.try_get(0)?;
        let status: String = row.try_get(2)?;
        let lines: String = row.try_get(4)?;
        let timeline: String = row.try_get(5)?;
        let created_at: String = row.try_get(6)?;
        let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
        let timeline: Vec<StatusChange> = serde_json::from_str(&timeline).map_err(decode)?;
        let status = serde_json::from_value(serde_json::Value::String(status)).map_err(decode)?;
        let order = Order {
            customer_id: row.try_get(1)?,
            total: row.try_get(3)?,
            lines: serde_json::from_str(&lines).map_err(decode)?,
            paid: timeline.iter().any(|c| c.status == OrderStatus::Paid)
                && !timeline.iter().any(|c| c.status == OrderStatus::Refunded),
            payment_key: None,
            status,
            timeline,
            id: id.clone(),
        };
        out.push((order, format!("{created_at}|{id}")));
    }
    Ok(OrderPage {
        has_next: rows.len() > first,
        rows: out,
    })
}
