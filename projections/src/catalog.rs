//! A built-in read model of every stream: its category, version and last event, and event
//! counts per type. Operators use it to browse the event store.

use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::{AnyConnection, Executor};

use crate::error::ProjectionError;
use crate::projection::{Projection, Tables};

/// The stream catalog projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamCatalog;

/// Categories whose events the platform relays.
pub const CATEGORIES: &[&str] = &["order", "inventory", "payment", "review"];

#[async_trait]
impl Projection for StreamCatalog {
    fn name(&self) -> &'static str {
        "catalog"
    }

    fn categories(&self) -> &'static [&'static str] {
        CATEGORIES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["streams", "event_types"]
    }

    async fn create_tables(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
    ) -> Result<(), ProjectionError> {
        conn.execute(
            format!(
                "CREATE TABLE {} (
                    stream_id TEXT PRIMARY KEY,
                    category TEXT NOT NULL,
                    version BIGINT NOT NULL,
                    last_event_type TEXT NOT NULL,
                    last_position BIGINT NOT NULL,
                    updated_at TEXT NOT NULL
                )",
                tables.table("streams")
            )
            .as_str(),
        )
        .await?;
        conn.execute(
            format!(
                "CREATE INDEX {} ON {} (category, updated_at)",
                tables.object("streams_by_category"),
                tables.table("streams")
            )
            .as_str(),
        )
        .await?;
        conn.execute(
            format!(
                "CREATE TABLE {} (
                    category TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    events BIGINT NOT NULL,
                    PRIMARY KEY (category, event_type)
                )",
                tables.table("event_types")
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
        let category = event.stream_id.category();
        sqlx::query(&format!(
            "INSERT INTO {} (stream_id, category, version, last_event_type, last_position, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
             last_event_type = excluded.last_event_type, last_position = excluded.last_position, \
             updated_at = excluded.updated_at",
            tables.table("streams")
        ))
        .bind(event.stream_id.as_str())
        .bind(category)
        .bind(event.version as i64)
        .bind(event.event_type.as_str())
        .bind(event.position.0 as i64)
        .bind(event.recorded_at.to_rfc3339())
        .execute(&mut *conn)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {} (category, event_type, events) VALUES ($1, $2, 1) \
             ON CONFLICT (category, event_type) DO UPDATE SET events = {}.events + 1",
            tables.table("event_types"),
            tables.table("event_types")
        ))
        .bind(category)
        .bind(event.event_type.as_str())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
