//! The read-model database: bookkeeping tables, registration, and one transaction per batch.

use std::collections::HashMap;
use std::time::Duration;

use eventstore::{Position, RecordedEvent};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor, Row};

use crate::collation::bytewise_text;
use crate::error::ProjectionError;
use crate::projection::{Projection, Tables, valid_name};

/// Source name of the event store's `$all` when it feeds a projection directly.
pub const SOURCE_ALL: &str = "$all";

/// Bookkeeping shared by every projection, in portable SQL.
const BOOKKEEPING: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS rm_projections (
        name TEXT PRIMARY KEY,
        live_generation BIGINT NOT NULL,
        rebuild_generation BIGINT,
        rebuild_position BIGINT,
        rebuild_target BIGINT,
        rebuild_started_at TEXT
    )",
    "CREATE TABLE IF NOT EXISTS rm_checkpoints (
        projection TEXT NOT NULL,
        generation BIGINT NOT NULL,
        source TEXT NOT NULL,
        position BIGINT NOT NULL,
        PRIMARY KEY (projection, generation, source)
    )",
    // The stream comes first in the key: a batch looks up its streams with `stream_id IN
    // (...)`, and with (projection, generation) first Postgres, before the table's first
    // ANALYZE, scanned every row of the projection per batch and filtered the streams
    // (531 index rows per order in `bench ordering`). Clearing a generation (rare) scans.
    "CREATE TABLE IF NOT EXISTS rm_stream_versions (
        projection TEXT NOT NULL,
        generation BIGINT NOT NULL,
        stream_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (stream_id, projection, generation)
    )",
];

/// Which database holds the read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Production.
    Postgres,
    /// Embedded default.
    Sqlite,
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Events applied to the model.
    pub applied: usize,
    /// Events skipped because they were applied before (redeliveries).
    pub duplicates: usize,
    /// Events of categories the projection does not read.
    pub ignored: usize,
}

/// Where a projection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// The projection.
    pub name: String,
    /// The generation readers see.
    pub live_generation: i64,
    /// The generation being rebuilt, if a rebuild is running (or was interrupted).
    pub rebuild_generation: Option<i64>,
    /// How far the rebuild has replayed.
    pub rebuild_position: Option<Position>,
    /// The end of `$all` when the rebuild started.
    pub rebuild_target: Option<Position>,
    /// The live generation's `$all` checkpoint, when it is fed from the event store.
    pub checkpoint: Option<Position>,
}

/// The read-model database (Postgres or SQLite); cheap to clone.
#[derive(Clone)]
pub struct ReadModels {
    pool: AnyPool,
    backend: Backend,
}

impl ReadModels {
    /// Connects to `url` (`postgres://...` or `sqlite://path`) and creates the bookkeeping tables.
    pub async fn connect(url: &str) -> Result<Self, ProjectionError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options: AnyConnectOptions = url.parse()?;
        // SQLite allows one writer: one connection serialises every batch, rebuild and swap.
        let max = if backend == Backend::Sqlite { 1 } else { 8 };
        let pool = eventstore::idle_check::checked_when_idle(AnyPoolOptions::new())
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        run_ddl(&pool, "read-models:bookkeeping", &BOOKKEEPING).await?;
        // Every applied event looks its stream up in this key.
        bytewise_text(
            &pool,
            "read-models:bookkeeping",
            "rm_stream_versions",
            &["stream_id", "projection"],
        )
        .await?;
        Ok(Self { pool, backend })
    }

    /// The connection pool, for readers.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The database kind.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Makes sure `projection` has a live generation (tables and views); returns its number.
    pub async fn register(&self, projection: &dyn Projection) -> Result<i64, ProjectionError> {
        let name = checked_name(projection)?;
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, name).await?;
        if let Some(generation) = live_generation(&mut tx, name).await? {
            tx.commit().await?;
            return Ok(generation);
        }
        let tables = Tables::new(name, 1);
        projection.create_tables(&mut tx, &tables).await?;
        point_views(&mut tx, projection, &tables).await?;
        sqlx::query("INSERT INTO rm_projections (name, live_generation) VALUES ($1, $2)")
            .bind(name)
            .bind(1i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(projection = name, "read model registered");
        Ok(1)
    }

    /// Applies a batch to the live generation in one transaction, with the `source` checkpoint
    /// (the position of the batch's last event) when the batch comes from the event store.
    pub async fn apply_batch(
        &self,
        projection: &dyn Projection,
        events: &[RecordedEvent],
        source: Option<&str>,
    ) -> Result<Applied, ProjectionError> {
        let name = checked_name(projection)?;
        let mut tx = self.pool.begin().await?;
        self.lock(&mut tx, name).await?;
        let generation = live_generation(&mut tx, name)
            .await?
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
        let applied = apply_in(&mut tx, projection, generation, events).await?;
        if let (Some(source), Some(last)) = (source, events.last()) {
            save_checkpoint(&mut tx, name, generation, source, last.position).await?;
        }
        tx.commit().await?;
        metrics::counter!("projection_events_applied_total", "projection" => name)
            .increment(applied.applied as u64);
        if let Some(last) = events.last() {
            metrics::gauge!("projection_position", "projection" => name)
                .set(last.position.0 as f64);
        }
        Ok(applied)
    }

    /// The live generation's checkpoint for `source`.
    pub async fn checkpoint(
        &self,
        projection: &dyn Projection,
        source: &str,
    ) -> Result<Option<Position>, ProjectionError> {
        let name = checked_name(projection)?;
        let mut conn = self.pool.acquire().await?;
        let Some(generation) = live_generation(&mut conn, name).await? else {
            return Ok(None);
        };
        load_checkpoint(&mut conn, name, generation, source).await
    }

    /// Where `name` stands: live generation, rebuild progress, checkpoint.
    pub async fn status(&self, name: &str) -> Result<ProjectionStatus, ProjectionError> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(
            "SELECT live_generation, rebuild_generation, rebuild_position, rebuild_target \
             FROM rm_projections WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
        let live: i64 = row.try_get(0)?;
        let pos = |v: Option<i64>| v.map(|p| Position(p as u64));
        Ok(ProjectionStatus {
            name: name.to_owned(),
            live_generation: live,
            rebuild_generation: row.try_get(1)?,
            rebuild_position: pos(row.try_get(2)?),
            rebuild_target: pos(row.try_get(3)?),
            checkpoint: load_checkpoint(&mut conn, name, live, SOURCE_ALL).await?,
        })
    }

    /// Serialises batches and swaps of one projection (Postgres advisory lock; SQLite has one writer).
    pub(crate) async fn lock(
        &self,
        conn: &mut AnyConnection,
        name: &str,
    ) -> Result<(), ProjectionError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
                .bind(format!("projection:{name}"))
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Begins a transaction on the pool.
    pub(crate) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, ProjectionError> {
        Ok(self.pool.begin().await?)
    }
}

/// A transaction holding `lock` (a Postgres advisory lock, taken one holder at a time across
/// processes, until the transaction ends); on SQLite, a plain transaction (one process).
pub async fn locked(
    pool: &AnyPool,
    lock: &str,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
            .bind(lock)
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

/// Runs `statements` (`CREATE ... IF NOT EXISTS`) in one transaction, one process at a time
/// per `lock` on Postgres: processes starting together on a fresh database (a rollout of
/// several replicas) would otherwise race, and Postgres refuses the loser of two concurrent
/// `CREATE TABLE IF NOT EXISTS` with a duplicate `pg_type` key.
pub async fn run_ddl(pool: &AnyPool, lock: &str, statements: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = locked(pool, lock).await?;
    for ddl in statements {
        tx.execute(*ddl).await?;
    }
    tx.commit().await
}

/// The projection's name, if it is usable in table names.
pub(crate) fn checked_name(projection: &dyn Projection) -> Result<&'static str, ProjectionError> {
    let name = projection.name();
    if valid_name(name) {
        Ok(name)
    } else {
        Err(ProjectionError::UnknownProjection(name.to_owned()))
    }
}

/// The live generation of `name`, if registered.
pub(crate) async fn live_generation(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<i64>, ProjectionError> {
    Ok(
        sqlx::query_scalar("SELECT live_generation FROM rm_projections WHERE name = $1")
            .bind(name)
            .fetch_optional(conn)
            .await?,
    )
}

/// Points every reader view of `projection` at `tables`.
pub(crate) async fn point_views(
    conn: &mut AnyConnection,
    projection: &dyn Projection,
    tables: &Tables,
) -> Result<(), ProjectionError> {
    for table in projection.tables() {
        let view = Tables::view(projection.name(), table);
        conn.execute(format!("DROP VIEW IF EXISTS {view}").as_str())
            .await?;
        conn.execute(
            format!(
                "CREATE VIEW {view} AS SELECT * FROM {}",
                tables.table(table)
            )
            .as_str(),
        )
        .await?;
    }
    Ok(())
}

/// Drops a generation's tables and bookkeeping rows.
pub(crate) async fn drop_generation(
    conn: &mut AnyConnection,
    projection: &dyn Projection,
    generation: i64,
) -> Result<(), ProjectionError> {
    let tables = Tables::new(projection.name(), generation);
    for table in projection.tables() {
        conn.execute(format!("DROP TABLE IF EXISTS {}", tables.table(table)).as_str())
            .await?;
    }
    for bookkeeping in ["rm_stream_versions", "rm_checkpoints"] {
        sqlx::query(&format!(
            "DELETE FROM {bookkeeping} WHERE projection = $1 AND generation = $2"
        ))
        .bind(projection.name())
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(crate) async fn load_checkpoint(
    conn: &mut AnyConnection,
    name: &str,
    generation: i64,
    source: &str,
) -> Result<Option<Position>, ProjectionError> {
    let pos: Option<i64> = sqlx::query_scalar(
        "SELECT position FROM rm_checkpoints WHERE projection = $1 AND generation = $2 AND source = $3",
    )
    .bind(name)
    .bind(generation)
    .bind(source)
    .fetch_optional(conn)
    .await?;
    Ok(pos.map(|p| Position(p as u64)))
}

pub(crate) async fn save_checkpoint(
    conn: &mut AnyConnection,
    name: &str,
    generation: i64,
    source: &str,
    position: Position,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO rm_checkpoints (projection, generation, source, position) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (projection, generation, source) DO UPDATE SET position = excluded.position",
    )
    .bind(name)
    .bind(generation)
    .bind(source)
    .bind(i64::try_from(position.0).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

/// Most bind parameters in one generated statement (SQLite's default limit is 999).
pub const PARAMS_PER_STATEMENT: usize = 900;

/// Applies events to one generation, skipping redeliveries by stream version; the caller owns
/// the transaction.
pub(crate) async fn apply_in(
    conn: &mut AnyConnection,
    projection: &dyn Projection,
    generation: i64,
    events: &[RecordedEvent],
) -> Result<Applied, ProjectionError> {
    let name = projection.name();
    let mut result = Applied::default();
    let relevant: Vec<&RecordedEvent> = events.iter().filter(|e| projection.reads(e)).collect();
    result.ignored = events.len() - relevant.len();
    if relevant.is_empty() {
        return Ok(result);
    }
    let mut versions = load_versions(conn, name, generation, &relevant).await?;
    let tables = Tables::new(name, generation);
    let mut changed: HashMap<&str, u64> = HashMap::new();
    let mut new = Vec::with_capacity(relevant.len());
    for event in relevant {
        let stream = event.stream_id.as_str();
        let applied = versions.get(stream).copied().unwrap_or(0);
        if event.version <= applied {
            result.duplicates += 1;
            continue;
        }
        if event.version != applied + 1 {
            return Err(ProjectionError::Gap {
                stream: stream.to_owned(),
                applied,
                received: event.version,
            });
        }
        versions.insert(stream.to_owned(), event.version);
        changed.insert(stream, event.version);
        new.push(event);
    }
    if !new.is_empty() {
        projection.apply_batch(conn, &tables, &new).await?;
    }
    result.applied = new.len();
    save_versions(conn, name, generation, &changed).await?;
    Ok(result)
}

async fn load_versions(
    conn: &mut AnyConnection,
    name: &str,
    generation: i64,
    events: &[&RecordedEvent],
) -> Result<HashMap<String, u64>, ProjectionError> {
    let mut streams: Vec<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let mut versions = HashMap::with_capacity(streams.len());
    for chunk in streams.chunks(PARAMS_PER_STATEMENT) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT stream_id, version FROM rm_stream_versions \
             WHERE projection = $1 AND generation = $2 AND stream_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(name).bind(generation);
        for stream in chunk {
            query = query.bind(*stream);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let stream: String = row.try_get(0)?;
            let version: i64 = row.try_get(1)?;
            versions.insert(stream, version as u64);
        }
    }
    Ok(versions)
}

async fn save_versions(
    conn: &mut AnyConnection,
    name: &str,
    generation: i64,
    changed: &HashMap<&str, u64>,
) -> Result<(), ProjectionError> {
    let rows: Vec<(&&str, &u64)> = changed.iter().collect();
    for chunk in rows.chunks(PARAMS_PER_STATEMENT / 4) {
        let sql = format!(
            "INSERT INTO rm_stream_versions (projection, generation, stream_id, version) VALUES {} \
             ON CONFLICT (projection, generation, stream_id) DO UPDATE SET version = excluded.version",
            placeholders(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (stream, version) in chunk {
            query = query
                .bind(name)
                .bind(generation)
                .bind(**stream)
                .bind(**version as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `rows` groups of `columns` numbered placeholders: `($1, $2), ($3, $4)`.
pub fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(1, 1), "($1)");
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(0, 4), "");
    }
}
