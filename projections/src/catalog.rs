//! A built-in read model of every stream: its category, version and last event, and event
//! counts per type. Operators use it to browse the event store.

use std::collections::HashMap;

use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::{AnyConnection, Executor};

use crate::error::ProjectionError;
use crate::projection::{Projection, Tables};
use crate::read_models::{PARAMS_PER_STATEMENT, placeholders};

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
        self.apply_batch(conn, tables, &[event]).await
    }

    /// One upsert per table for the whole batch: each stream's last event, and the number of
    /// events per type.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut last: HashMap<&str, &RecordedEvent> = HashMap::with_capacity(events.len());
        let mut counts: HashMap<(&str, &str), i64> = HashMap::new();
        for event in events {
            last.insert(event.stream_id.as_str(), event);
            *counts
                .entry((event.stream_id.category(), event.event_type.as_str()))
                .or_default() += 1;
        }
        let streams: Vec<&RecordedEvent> = last.into_values().collect();
        for chunk in streams.chunks(PARAMS_PER_STATEMENT / 6) {
            let sql = format!(
                "INSERT INTO {} (stream_id, category, version, last_event_type, last_position, updated_at) \
                 VALUES {} \
                 ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, \
                 last_event_type = excluded.last_event_type, last_position = excluded.last_position, \
                 updated_at = excluded.updated_at",
                tables.table("streams"),
                placeholders(chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for event in chunk {
                query = query
                    .bind(event.stream_id.as_str())
                    .bind(event.stream_id.category())
                    .bind(event.version as i64)
                    .bind(event.event_type.as_str())
                    .bind(event.position.0 as i64)
                    .bind(event.recorded_at.to_rfc3339());
            }
            query.execute(&mut *conn).await?;
        }
        let counts: Vec<((&str, &str), i64)> = counts.into_iter().collect();
        for chunk in counts.chunks(PARAMS_PER_STATEMENT / 3) {
            let sql = format!(
                "INSERT INTO {table} (category, event_type, events) VALUES {} \
                 ON CONFLICT (category, event_type) DO UPDATE SET events = {table}.events + excluded.events",
                placeholders(chunk.len(), 3),
                table = tables.table("event_types"),
            );
            let mut query = sqlx::query(&sql);
            for ((category, event_type), n) in chunk {
                query = query.bind(*category).bind(*event_type).bind(*n);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}
