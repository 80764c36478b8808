//! The saga index: one row per saga (phase, the clock's next deadline: a payment's or a
//! refund's retry, unanswered commands) so the clock finds due deadlines and commands to
//! re-send without reading every saga stream.
//!
//! Saga steps running at the same moment share one write: each step hands its row to a writer
//! task and waits for it; the task upserts everything waiting in one statement (the newest row
//! of each saga wins) and answers every step (group commit). A step still returns only after
//! its row is stored, so its message is acknowledged only then. A placement hands its row over
//! at once and waits for it in the background (its `OrderPlaced`, coming over the bus, is the
//! fallback); rows are stored in the order they are handed over. Each row carries its saga
//! stream's version and a row never replaces a newer one, so replicas writing the same saga
//! out of order (a late placement row on one, the next step on another) keep the newest.

use std::collections::HashMap;

use chrono::{SecondsFormat, Utc};
use eventstore::idle_check::{KeptConnection, refused_by_database};
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use crate::saga::OrderSaga;

/// Most rows written by one statement.
const MAX_BATCH: usize = 256;

const DDL: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS saga_index (
        order_id TEXT PRIMARY KEY,
        phase TEXT NOT NULL,
        deadline TEXT,
        pending BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        version BIGINT NOT NULL DEFAULT 0
    )",
    // The clock's two queries touch only live sagas: deadlines (a payment's, or a refund's
    // retry) and unanswered commands.
    "DROP INDEX IF EXISTS saga_index_due",
    "CREATE INDEX IF NOT EXISTS saga_index_deadline ON saga_index (deadline) \
     WHERE deadline IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS saga_index_pending ON saga_index (updated_at) \
     WHERE pending > 0",
];

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database refused or failed.
    #[error("saga index: {0}")]
    Database(#[from] sqlx::Error),
    /// A shared write failed; every step in it fails with this message.
    #[error("saga index write: {0}")]
    Write(String),
    /// The writer task is gone (shutting down).
    #[error("saga index writer stopped")]
    Stopped,
}

/// One saga's row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    order_id: String,
    phase: String,
    deadline: Option<String>,
    pending: i64,
    updated_at: String,
    version: i64,
}

impl Row {
    fn of(saga: &OrderSaga, version: u64) -> Self {
        let phase = serde_json::to_value(saga.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            order_id: saga.order_id.clone(),
            phase,
            deadline: saga.deadline.map(stamp),
            pending: i64::try_from(saga.pending.len()).unwrap_or(i64::MAX),
            updated_at: stamp(Utc::now()),
            version: i64::try_from(version).unwrap_or(i64::MAX),
        }
    }
}

type Waiting = (Row, oneshot::Sender<Result<(), String>>);

/// The saga index over the read-model database.
pub struct SagaIndex {
    pool: AnyPool,
    writes: mpsc::UnboundedSender<Waiting>,
    writer: tokio::task::JoinHandle<()>,
}

impl Drop for SagaIndex {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// An index timestamp: RFC 3339 with microseconds, so text order is time order.
fn stamp(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl SagaIndex {
    /// Creates the table if needed and starts the writer.
    pub async fn open(pool: AnyPool) -> Result<Self, IndexError> {
        projections::run_ddl(&pool, "saga-index", &DDL).await?;
        add_version_column(&pool).await?;
        // Every step writes its row by order id; the clock scans deadlines and stamps.
        projections::bytewise_text(
            &pool,
            "saga-index",
            "saga_index",
            &["order_id", "deadline", "updated_at"],
        )
        .await?;
        let (writes, queue) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_batches(pool.clone(), queue));
        Ok(Self {
            pool,
            writes,
            writer,
        })
    }

    /// Stores the row of `saga` as of its stream's `version`; returns once it is stored (or
    /// found older than the stored row, which stays).
    pub async fn update(&self, saga: &OrderSaga, version: u64) -> Result<(), IndexError> {
        self.submit(saga, version).await
    }

    /// Hands the row of `saga` as of its stream's `version` to the writer at once; the future
    /// resolves once it is stored (or found older than the stored row, which stays).
    pub fn submit(
        &self,
        saga: &OrderSaga,
        version: u64,
    ) -> impl std::future::Future<Output = Result<(), IndexError>> + Send + use<> {
        let (done, stored) = oneshot::channel();
        let handed = self
            .writes
            .send((Row::of(saga, version), done))
            .map_err(|_| IndexError::Stopped);
        async move {
            handed?;
            stored
                .await
                .map_err(|_| IndexError::Stopped)?
                .map_err(IndexError::Write)
        }
    }

    /// Sagas whose deadline (a payment's, or a refund's retry) is at or before `now`, the
    /// earliest first (at most 500).
    pub async fn due(&self, now: chrono::DateTime<Utc>) -> Result<Vec<String>, IndexError> {
        // The order also keeps the plan on the partial index (EXPLAIN, on a table never
        // analysed): without it, with no statistics (no autovacuum), Postgres scanned every
        // saga ever indexed on each tick of the clock (505,963 rows over one `bench ordering`).
        Ok(sqlx::query_scalar(
            "SELECT order_id FROM saga_index WHERE deadline IS NOT NULL AND deadline <= $1 \
             ORDER BY deadline LIMIT 500",
        )
        .bind(stamp(now))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Sagas with commands unanswered since `before`, the longest waiting first (at most
    /// 500).
    pub async fn unanswered(
        &self,
        before: chrono::DateTime<Utc>,
    ) -> Result<Vec<String>, IndexError> {
        Ok(sqlx::query_scalar(
            "SELECT order_id FROM saga_index WHERE pending > 0 AND updated_at <= $1 \
             ORDER BY updated_at LIMIT 500",
        )
        .bind(stamp(before))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Moves `order_id`'s deadline up to `deadline` and its stamp up to `stamp_at` where they
    /// are earlier: a saga the clock could not advance is tried again only then, instead of
    /// first on every tick, ahead of every other saga. The saga's own deadline is unchanged.
    pub async fn postpone(
        &self,
        order_id: &str,
        deadline: chrono::DateTime<Utc>,
        stamp_at: chrono::DateTime<Utc>,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "UPDATE saga_index SET \
             deadline = CASE WHEN deadline IS NOT NULL AND deadline < $2 THEN $2 ELSE deadline END, \
             updated_at = CASE WHEN updated_at < $3 THEN $3 ELSE updated_at END \
             WHERE order_id = $1",
        )
        .bind(order_id)
        .bind(stamp(deadline))
        .bind(stamp(stamp_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Adds the `version` column to a table made before rows carried one (its rows count as
/// version 0: any new row replaces them), once (see [`projections::alter_once`]).
async fn add_version_column(pool: &AnyPool) -> Result<(), sqlx::Error> {
    projections::alter_once(pool, "saga-index", |conn| {
        Box::pin(async move {
            let query = if conn.backend_name() == "PostgreSQL" {
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = \
                 current_schema() AND table_name = 'saga_index' AND column_name = 'version'"
            } else {
                "SELECT COUNT(*) FROM pragma_table_info('saga_index') WHERE name = 'version'"
            };
            let count: i64 = sqlx::query_scalar(query).fetch_one(conn).await?;
            Ok((count == 0).then(|| {
                "ALTER TABLE saga_index ADD COLUMN version BIGINT NOT NULL DEFAULT 0".to_owned()
            }))
        })
    })
    .await
}

/// Writes whatever is waiting as one upsert, until every sender is gone; keeps its connection
/// while steps keep coming (each pool checkout costs sqlx's release ping, a round trip).
async fn write_batches(pool: AnyPool, mut queue: mpsc::UnboundedReceiver<Waiting>) {
    let mut batch: Vec<Waiting> = Vec::with_capacity(MAX_BATCH);
    let mut kept = KeptConnection::new(pool);
    while kept.idle(queue.recv_many(&mut batch, MAX_BATCH)).await > 0 {
        let result = match kept.get().await {
            Ok(conn) => upsert(conn, batch.iter().map(|(row, _)| row)).await,
            Err(err) => Err(err),
        };
        if let Err(error) = &result {
            // Unless the database refused the rows, the next batch starts on a fresh connection.
            if !refused_by_database(error) {
                kept.discard();
            }
            tracing::warn!(error = %error, rows = batch.len(), "saga index write failed");
        }
        let result = result.map_err(|error| error.to_string());
        for (_, done) in batch.drain(..) {
            let _gone = done.send(result.clone());
        }
    }
}

/// One statement for all rows; a saga's newest row wins: the highest version, the last handed
/// over among equals (one statement may not touch a row twice), and never over a stored row
/// of a higher version.
async fn upsert<'a>(
    conn: &mut AnyConnection,
    rows: impl Iterator<Item = &'a Row>,
) -> Result<(), sqlx::Error> {
    let mut unique: Vec<&Row> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for row in rows {
        match at.get(row.order_id.as_str()) {
            Some(&i) => {
                if row.version >= unique[i].version {
                    unique[i] = row;
                }
            }
            None => {
                at.insert(&row.order_id, unique.len());
                unique.push(row);
            }
        }
    }
    if unique.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO saga_index (order_id, phase, deadline, pending, updated_at, version) VALUES ",
    );
    for i in 0..unique.len() {
        let n = i * 6;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6
        ));
    }
    sql.push_str(
        " ON CONFLICT (order_id) DO UPDATE SET phase = excluded.phase, \
         deadline = excluded.deadline, pending = excluded.pending, \
         updated_at = excluded.updated_at, version = excluded.version \
         WHERE saga_index.version <= excluded.version",
    );
    let mut query = sqlx::query(&sql);
    for row in unique {
        query = query
            .bind(row.order_id.as_str())
            .bind(row.phase.as_str())
            .bind(row.deadline.as_deref())
            .bind(row.pending)
            .bind(row.updated_at.as_str())
            .bind(row.version);
    }
    query.execute(conn).await?;
    Ok(())
}
