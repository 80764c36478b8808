//! Rebuild: replay `$all` from position 0 into a new generation of tables while the live one
//! keeps serving, then swap atomically.
//!
//! The replay runs outside any lock. The swap takes the projection's lock (which pauses the
//! live consumer between batches), replays whatever was committed since, points the reader
//! views at the new generation and makes it live, all in one transaction; the old generation
//! is dropped afterwards. A live consumer that then delivers an event the rebuild already
//! applied skips it by stream version.

use std::time::Instant;

use eventstore::{EventStore, Position};
use sqlx::Row;

use crate::error::ProjectionError;
use crate::projection::{Projection, Tables};
use crate::read_models::{
    ReadModels, SOURCE_ALL, apply_in, checked_name, drop_generation, live_generation, point_views,
    save_checkpoint,
};

/// Source name of the rebuild's own checkpoint.
const SOURCE_REBUILD: &str = "$all:rebuild";

/// Progress reported while rebuilding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// The generation being built.
    pub generation: i64,
    /// How far the replay is.
    pub position: Position,
    /// The end of `$all` when the rebuild started.
    pub target: Position,
    /// Events read so far.
    pub events: u64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// The generation now live.
    pub generation: i64,
    /// Events replayed (including the final catch-up).
    pub events: u64,
    /// The position the new generation is at.
    pub position: Position,
    /// Wall time, in milliseconds.
    pub millis: u128,
}

impl ReadModels {
    /// Rebuilds `projection` from the event store; `progress` is called after every page.
    pub async fn rebuild(
        &self,
        projection: &dyn Projection,
        store: &dyn EventStore,
        page_size: usize,
        mut progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<RebuildReport, ProjectionError> {
        let started = Instant::now();
        let name = checked_name(projection)?;
        self.register(projection).await?;
        let target = store.head().await?;
        let generation = self.start_generation(projection, target).await?;
        let tables = Tables::new(name, generation);
        let mut position = Position::START;
        let mut events = 0u64;
        let page_size = page_size.max(1);
        loop {
            let page = store.read_all(position, page_size).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            let mut tx = self.begin().await?;
            apply_in(&mut tx, projection, generation, &page).await?;
            save_checkpoint(&mut tx, name, generation, SOURCE_REBUILD, last).await?;
            sqlx::query("UPDATE rm_projections SET rebuild_position = $1 WHERE name = $2")
                .bind(last.0 as i64)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            events += page.len() as u64;
            position = last;
            metrics::gauge!("projection_rebuild_position", "projection" => name)
                .set(position.0 as f64);
            progress(RebuildProgress {
                generation,
                position,
                target,
                events,
            });
            if page.len() < page_size && position >= target {
                break;
            }
        }

        // Swap: pause the live consumer, catch up on what landed meanwhile, switch views.
        let mut tx = self.begin().await?;
        self.lock(&mut tx, name).await?;
        loop {
            let page = store.read_all(position, page_size).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            apply_in(&mut tx, projection, generation, &page).await?;
            events += page.len() as u64;
            position = last;
        }
        let old = live_generation(&mut tx, name)
            .await?
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
        point_views(&mut tx, projection, &tables).await?;
        save_checkpoint(&mut tx, name, generation, SOURCE_ALL, position).await?;
        sqlx::query(
            "UPDATE rm_projections SET live_generation = $1, rebuild_generation = NULL, \
             rebuild_position = NULL, rebuild_target = NULL, rebuild_started_at = NULL WHERE name = $2",
        )
        .bind(generation)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(projection = name, generation, events, position = %position, "read model rebuilt and swapped in");

        let mut tx = self.begin().await?;
        drop_generation(&mut tx, projection, old).await?;
        tx.commit().await?;
        Ok(RebuildReport {
            generation,
            events,
            position,
            millis: started.elapsed().as_millis(),
        })
    }

    /// Claims the next generation number, dropping what an interrupted rebuild left behind,
    /// and creates its tables.
    async fn start_generation(
        &self,
        projection: &dyn Projection,
        target: Position,
    ) -> Result<i64, ProjectionError> {
        let name = projection.name();
        let mut tx = self.begin().await?;
        self.lock(&mut tx, name).await?;
        let row = sqlx::query(
            "SELECT live_generation, rebuild_generation FROM rm_projections WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let live: i64 = row.try_get(0)?;
        let interrupted: Option<i64> = row.try_get(1)?;
        if let Some(stale) = interrupted {
            tracing::warn!(
                projection = name,
                generation = stale,
                "dropping an interrupted rebuild"
            );
            drop_generation(&mut tx, projection, stale).await?;
        }
        let generation = live.max(interrupted.unwrap_or(0)) + 1;
        let tables = Tables::new(name, generation);
        projection.create_tables(&mut tx, &tables).await?;
        sqlx::query(
            "UPDATE rm_projections SET rebuild_generation = $1, rebuild_position = 0, \
             rebuild_target = $2, rebuild_started_at = $3 WHERE name = $4",
        )
        .bind(generation)
        .bind(target.0 as i64)
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(generation)
    }
}
