//! The orders read model: every order with its lines, status and timeline, for lists.

use std::collections::HashMap;

use async_trait::async_trait;
use eventstore::RecordedEvent;
use projections::{PARAMS_PER_STATEMENT, Projection, ProjectionError, Tables, placeholders};
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
        conn.execute(open_orders_index(tables).as_str()).await?;
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

    /// Reads the rows the batch changes in one statement, folds the events into them and
    /// writes them back in one upsert.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let table = tables.table("orders");
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            if let Some(order_event) = decode(event)? {
                decoded.push((*event, order_event));
            }
        }
        let mut wanted: Vec<&str> = decoded
            .iter()
            .filter_map(|(_, e)| match e {
                OrderEvent::Placed(_) => None,
                OrderEvent::PaymentRequested(r) => Some(r.order_id.as_str()),
                OrderEvent::Changed(c) => Some(c.order_id.as_str()),
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut rows = load_rows(conn, &table, &wanted).await?;
        for (event, order_event) in decoded {
            let (order_id, change) = match order_event {
                OrderEvent::Placed(p) => {
                    let at = micros(event.recorded_at);
                    let timeline = vec![StatusChange {
                        status: OrderStatus::Placed,
                        at: p.placed_at,
                        reason: None,
                    }];
                    let row = OrderRow {
                        customer_id: p.customer_id,
                        status: OrderStatus::Placed.as_str().to_owned(),
                        total: p.total,
                        lines: to_json(&p.lines, event)?,
                        timeline,
                        created_at: at.clone(),
                        updated_at: at,
                    };
                    rows.insert(p.order_id, row);
                    continue;
                }
                OrderEvent::PaymentRequested(r) => (
                    r.order_id,
                    StatusChange {
                        status: OrderStatus::PaymentPending,
                        at: event.recorded_at,
                        reason: None,
                    },
                ),
                OrderEvent::Changed(c) => (
                    c.order_id,
                    StatusChange {
                        status: c.status,
                        at: c.at,
                        reason: c.reason,
                    },
                ),
            };
            // A change to an order this model never saw placed is skipped.
            let Some(row) = rows.get_mut(&order_id) else {
                continue;
            };
            row.status = change.status.as_str().to_owned();
            row.updated_at = micros(change.at);
            row.timeline.push(change);
        }
        // Every row here is written back: each was placed or read for a change in this batch.
        let changed: Vec<(&String, &OrderRow)> = rows.iter().collect();
        for chunk in changed.chunks(PARAMS_PER_STATEMENT / 8) {
            let sql = format!(
                "INSERT INTO {table} (id, customer_id, status, total, lines, timeline, created_at, updated_at) \
                 VALUES {} ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                 timeline = excluded.timeline, updated_at = excluded.updated_at",
                placeholders(chunk.len(), 8)
            );
            let mut query = sqlx::query(&sql);
            for (id, row) in chunk {
                let timeline =
                    serde_json::to_string(&row.timeline).map_err(|e| ProjectionError::Decode {
                        event_id: format!("orders row {id}"),
                        reason: e.to_string(),
                    })?;
                query = query
                    .bind(id.as_str())
                    .bind(row.customer_id.as_str())
                    .bind(row.status.as_str())
                    .bind(row.total)
                    .bind(row.lines.as_str())
                    .bind(timeline)
                    .bind(row.created_at.as_str())
                    .bind(row.updated_at.as_str());
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// One row of the orders table, being changed.
struct OrderRow {
    customer_id: String,
    status: String,
    total: i64,
    /// JSON text, written back as read.
    lines: String,
    timeline: Vec<StatusChange>,
    created_at: String,
    updated_at: String,
}

/// The event as this model reads it; `None` for types it does not know (newer writers).
fn decode(event: &RecordedEvent) -> Result<Option<OrderEvent>, ProjectionError> {
    let decode_err = |e: eventstore::StoreError| ProjectionError::Decode {
        event_id: event.id.to_string(),
        reason: e.to_string(),
    };
    Ok(Some(match event.event_type.as_str() {
        contracts::events::ORDER_PLACED => OrderEvent::Placed(event.decode().map_err(decode_err)?),
        contracts::events::PAYMENT_REQUESTED => {
            OrderEvent::PaymentRequested(event.decode().map_err(decode_err)?)
        }
        t if t.starts_with("Order") => OrderEvent::Changed(event.decode().map_err(decode_err)?),
        other => {
            tracing::debug!(
                event_type = other,
                "orders view skips an unknown event type"
            );
            return Ok(None);
        }
    }))
}

/// The rows of `ids` (missing ones are absent), read in as few statements as the limits allow.
async fn load_rows(
    conn: &mut AnyConnection,
    table: &str,
    ids: &[&str],
) -> Result<HashMap<String, OrderRow>, ProjectionError> {
    let mut rows = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(PARAMS_PER_STATEMENT) {
        let sql = format!(
            "SELECT id, customer_id, status, total, lines, timeline, created_at, updated_at \
             FROM {table} WHERE id IN ({})",
            placeholders(chunk.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get(0)?;
            let raw: String = row.try_get(5)?;
            let timeline = serde_json::from_str(&raw).map_err(|e| ProjectionError::Decode {
                event_id: format!("orders row {id}"),
                reason: e.to_string(),
            })?;
            rows.insert(
                id,
                OrderRow {
                    customer_id: row.try_get(1)?,
                    status: row.try_get(2)?,
                    total: row.try_get(3)?,
                    lines: row.try_get(4)?,
                    timeline,
                    created_at: row.try_get(6)?,
                    updated_at: row.try_get(7)?,
                },
            );
        }
    }
    Ok(rows)
}

/// A timestamp as the table stores it.
fn micros(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
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

/// A position in the newest-first `(created_at, id)` order of orders: a page's cursor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderCursor {
    /// Format version.
    v: u8,
    /// `created_at` of the order at the position (as stored).
    at: String,
    /// Id of the order at the position.
    id: String,
}

impl OrderCursor {
    fn after(at: String, id: String) -> Self {
        Self { v: 1, at, id }
    }

    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        subgraph::cursor::encode(self)
    }

    /// Reads a cursor a client sent back; `None` when it is not one this API returned.
    pub fn decode(raw: &str) -> Option<Self> {
        subgraph::cursor::decode::<Self>(raw).filter(|cursor| cursor.v == 1)
    }
}

/// A page of orders, newest first, with each order's cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPage {
    /// The orders and their cursors.
    pub rows: Vec<(Order, OrderCursor)>,
    /// Whether more follow.
    pub has_next: bool,
}

/// Lists orders, newest first, optionally of one customer and/or status, after a cursor (that
/// of the last row seen).
pub async fn list_orders(
    pool: &AnyPool,
    customer: Option<&str>,
    status: Option<&str>,
    after: Option<&OrderCursor>,
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
    if let Some(after) = after {
        binds.push(after.at.clone());
        let c = binds.len();
        binds.push(after.id.clone());
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
            paid: timeline
                .iter()
                .fold(false, |paid, c| c.status.holds_money(paid)),
            payment_key: None,
            status,
            timeline,
            id: id.clone(),
        };
        out.push((order, OrderCursor::after(created_at, id)));
    }
    Ok(OrderPage {
        has_next: rows.len() > first,
        rows: out,
    })
}

/// The statuses of an order awaiting stock or payment, as the table stores them.
const OPEN_STATUSES: &str = "('PLACED', 'STOCK_RESERVED', 'PAYMENT_PENDING')";

/// The index of open orders by customer: the open-order limit counts in it without reading a
/// customer's settled orders (a busy account has hundreds within a payment timeout).
fn open_orders_index(tables: &Tables) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} (customer_id, created_at) WHERE status IN {OPEN_STATUSES}",
        tables.object("orders_open"),
        tables.table("orders")
    )
}

/// Adds the open-orders index to generation `generation` of the orders read model when it
/// predates it (generations made since have it from the start), once (see
/// [`projections::alter_once`]): a start that finds it, or finds the generation replaced by a
/// rebuild meanwhile, takes no lock on the table.
pub async fn ensure_open_orders_index(pool: &AnyPool, generation: i64) -> Result<(), sqlx::Error> {
    let tables = Tables::new("orders", generation);
    let (table, index) = (tables.table("orders"), tables.object("orders_open"));
    projections::alter_once(pool, "orders-open-index", |conn| {
        let (tables, table, index) = (tables.clone(), table.clone(), index.clone());
        Box::pin(async move {
            let query = if conn.backend_name() == "PostgreSQL" {
                "SELECT (CASE WHEN to_regclass($1) IS NULL THEN 0 ELSE 1 END) + \
                 (CASE WHEN to_regclass($2) IS NULL THEN 0 ELSE 2 END)"
            } else {
                "SELECT (SELECT count(*) FROM sqlite_master WHERE name = $1) + \
                 2 * (SELECT count(*) FROM sqlite_master WHERE name = $2)"
            };
            let found: i64 = sqlx::query_scalar(query)
                .bind(&table)
                .bind(&index)
                .fetch_one(conn)
                .await?;
            // Only a table without its index needs it.
            Ok((found == 1).then(|| open_orders_index(&tables)))
        })
    })
    .await
}

/// The query [`open_orders`] runs (`$1` the customer, `$2` the earliest `created_at`): a range
/// of the open-orders index, whose predicate is the query's own status condition.
pub fn open_orders_query(limit: u32) -> String {
    format!(
        "SELECT count(*) FROM (SELECT 1 FROM rm_orders_orders \
         WHERE customer_id = $1 AND created_at >= $2 \
         AND status IN {OPEN_STATUSES} LIMIT {limit}) AS open"
    )
}

/// How many of `customer`'s orders placed since `since` await stock or payment (PLACED,
/// STOCK_RESERVED, PAYMENT_PENDING), counting no further than `limit`.
pub async fn open_orders(
    pool: &AnyPool,
    customer: &str,
    since: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<u32, sqlx::Error> {
    let sql = open_orders_query(limit);
    let count: i64 = sqlx::query_scalar(&sql)
        .bind(customer)
        .bind(micros(since))
        .fetch_one(pool)
        .await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}
