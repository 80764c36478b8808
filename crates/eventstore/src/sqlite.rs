//! The embedded event store adapter on SQLite (one file, WAL mode, no server).
//!
//! Writes go through a single writer connection inside `BEGIN IMMEDIATE` transactions, so
//! commit order is position order and `$all` has no gaps to guard against; readers use their
//! own pool and never block the writer. Subscribers in this process are woken at commit;
//! writes by another process are picked up by the subscription's idle poll.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{EventData, RecordedEvent, Snapshot};
use crate::shared_read::SharedReads;
use crate::store::{
    AppendResult, Direction, EventStore, Limits, StoredIdentity, StreamAppend, check_multi,
    classify_multi_replay, stream_read,
};
use crate::stream::StreamId;
use crate::subscription::{SubscriptionOptions, catch_up_then_live};
use crate::version::{ExpectedVersion, Position};

/// Event store in a SQLite file; cheap to clone.
#[derive(Clone)]
pub struct SqliteEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: SqlitePool,
    reader: SqlitePool,
    limits: Limits,
    subscription: SubscriptionOptions,
    /// The newest `$all` read of this store's subscriptions, which others may share.
    shared_reads: Arc<SharedReads>,
    wake_tx: watch::Sender<u64>,
    wake_rx: watch::Receiver<u64>,
}

impl SqliteEventStore {
    /// The reads its subscriptions share.
    #[cfg(test)]
    pub(crate) fn shared_reads(&self) -> &SharedReads {
        &self.inner.shared_reads
    }

    /// Opens (creating if needed) the store in `path` and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", path.as_ref().display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(StoreError::Unavailable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::Unavailable)?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.set_ignore_missing(true);
        migrator.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::Unavailable)?;
        let (wake_tx, wake_rx) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                reader,
                limits: Limits::default(),
                subscription: SubscriptionOptions::default(),
                shared_reads: Arc::default(),
                wake_tx,
                wake_rx,
            }),
        })
    }

    /// The writer pool (one connection), for components that keep their own tables beside the events.
    pub fn writer(&self) -> &SqlitePool {
        &self.inner.writer
    }

    /// Writes several streams' events in one `BEGIN IMMEDIATE` transaction, all or none;
    /// `Err((i, refusal))` names the first stream that refused.
    async fn write_streams(
        conn: &mut SqliteConnection,
        appends: &[StreamAppend],
        encoded: Vec<Vec<(String, String)>>,
    ) -> Result<Result<Vec<AppendResult>, (usize, Refusal)>, StoreError> {
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::Unavailable)?;
        let mut results = Vec::with_capacity(appends.len());
        for (i, (append, encoded)) in appends.iter().zip(encoded).enumerate() {
            let written = Self::write_stream(
                &mut tx,
                &append.stream,
                append.expected,
                &append.events,
                encoded,
            )
            .await?;
            match written {
                Ok(done) => results.push(done),
                // Dropping the transaction rolls back what the earlier streams wrote.
                Err(refusal) => return Ok(Err((i, refusal))),
            }
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::from_db(e, true))?;
        Ok(Ok(results))
    }

    /// Writes one stream's events inside the caller's transaction.
    async fn write_stream(
        tx: &mut SqliteConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
        encoded: Vec<(String, String)>,
    ) -> Result<Result<AppendResult, Refusal>, StoreError> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM es_streams WHERE stream_id = ?1")
                .bind(stream.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::Unavailable)?;
        let current = current.unwrap_or(0) as u64;
        let fits = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::StreamExists => current > 0,
            ExpectedVersion::Exact(v) => current == v,
        };
        if !fits {
            return Ok(Err(Refusal::Version(current)));
        }
        let now = Utc::now().to_rfc3339();
        let mut first = None;
        let mut last = 0i64;
        let rows: Vec<(usize, &EventData, (String, String))> = events
            .iter()
            .zip(encoded)
            .enumerate()
            .map(|(i, (event, enc))| (i, event, enc))
            .collect();
        // One multi-row INSERT per chunk: SQLite round trips cost a thread hand-off each.
        for chunk in rows.chunks(INSERT_CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 7;
                    format!(
                        "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO es_events (event_id, stream_id, version, event_type, data, metadata, recorded_at) VALUES {}",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (i, event, (data, metadata)) in chunk {
                query = query
                    .bind(event.id)
                    .bind(stream.as_str())
                    .bind((current + 1 + *i as u64) as i64)
                    .bind(event.event_type.as_str())
                    .bind(data.as_str())
                    .bind(metadata.as_str())
                    .bind(now.as_str());
            }
            match query.execute(&mut *tx).await {
                Ok(done) => {
                    // A single writer inserts consecutive rowids.
                    last = done.last_insert_rowid();
                    first.get_or_insert(last - chunk.len() as i64 + 1);
                }
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Ok(Err(Refusal::DuplicateId));
                }
                Err(err) => return Err(StoreError::from_db(err, true)),
            }
        }
        let version = current + events.len() as u64;
        sqlx::query(
            "INSERT INTO es_streams (stream_id, version) VALUES (?1, ?2) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
        )
        .bind(stream.as_str())
        .bind(version as i64)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::from_db(e, true))?;
        Ok(Ok(AppendResult {
            next_expected_version: version,
            first_position: Position(first.unwrap_or(last) as u64),
            last_position: Position(last as u64),
        }))
    }

    /// The stored identities of `ids`, for replay checks.
    async fn stored_identities(
        conn: &mut SqliteConnection,
        ids: impl Iterator<Item = Uuid>,
    ) -> Result<Vec<StoredIdentity>, StoreError> {
        let mut stored = Vec::new();
        for id in ids {
            let row = sqlx::query(
                "SELECT event_id, stream_id, version, position, event_type, data \
                 FROM es_events WHERE event_id = ?1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::Unavailable)?;
            if let Some(r) = row {
                let data: &str = r.try_get(5).map_err(StoreError::Unavailable)?;
                stored.push(StoredIdentity {
                    id: r.try_get(0).map_err(StoreError::Unavailable)?,
                    stream_id: r.try_get(1).map_err(StoreError::Unavailable)?,
                    version: r.try_get::<i64, _>(2).map_err(StoreError::Unavailable)? as u64,
                    position: Position(
                        r.try_get::<i64, _>(3).map_err(StoreError::Unavailable)? as u64
                    ),
                    event_type: r.try_get(4).map_err(StoreError::Unavailable)?,
                    data: serde_json::from_str(data).unwrap_or(serde_json::Value::Null),
                });
            }
        }
        Ok(stored)
    }
}

/// Rows per multi-row INSERT (7 parameters each, well under SQLite's limit).
const INSERT_CHUNK: usize = 500;

/// Why an append wrote nothing.
enum Refusal {
    /// The stream was at this version instead.
    Version(u64),
    /// An event id is already stored.
    DuplicateId,
}

const EVENT_COLUMNS: &str =
    "position, event_id, stream_id, version, event_type, data, metadata, recorded_at";

fn decode_event(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let get_err = StoreError::Unavailable;
    let position: i64 = row.try_get(0).map_err(get_err)?;
    let id: Uuid = row.try_get(1).map_err(get_err)?;
    let stream_id: String = row.try_get(2).map_err(get_err)?;
    let version: i64 = row.try_get(3).map_err(get_err)?;
    let event_type: String = row.try_get(4).map_err(get_err)?;
    let data: &str = row.try_get(5).map_err(get_err)?;
    let metadata: &str = row.try_get(6).map_err(get_err)?;
    let recorded_at: &str = row.try_get(7).map_err(get_err)?;
    let codec = |what: &str, e: &dyn std::fmt::Display| StoreError::Codec {
        event_id: id,
        reason: format!("{what}: {e}"),
    };
    Ok(RecordedEvent {
        id,
        stream_id: StreamId::trusted(stream_id),
        version: version as u64,
        position: Position(position as u64),
        event_type,
        data: serde_json::from_str(data).map_err(|e| codec("data", &e))?,
        metadata: serde_json::from_str(metadata).map_err(|e| codec("metadata", &e))?,
        recorded_at: DateTime::parse_from_rfc3339(recorded_at)
            .map_err(|e| codec("recorded_at", &e))?
            .with_timezone(&Utc),
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        // One stream is a multi-stream append of one: the same transaction, checks and replays.
        let mut done = self
            .append_multi(vec![StreamAppend::new(stream.clone(), expected, events)])
            .await?;
        // `append_multi` answers with one result per stream given.
        done.pop()
            .ok_or_else(|| StoreError::Unavailable(sqlx::Error::RowNotFound))
    }

    async fn append_multi(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let encoded = check_multi(&self.inner.limits, &appends)?;
        // Its own task, as in `append`: a dropped caller must not cut the transaction in half.
        let inner = self.inner.clone();
        let (appends, written) = tokio::spawn(async move {
            let written = async {
                let mut conn = inner
                    .writer
                    .acquire()
                    .await
                    .map_err(StoreError::Unavailable)?;
                let written = Self::write_streams(&mut conn, &appends, encoded).await?;
                Ok::<_, StoreError>((written, conn))
            }
            .await;
            (appends, written)
        })
        .await
        .map_err(|_| StoreError::Unavailable(sqlx::Error::WorkerCrashed))?;
        let (written, mut conn) = written?;
        let (index, refusal) = match written {
            Ok(done) => {
                self.inner.wake_tx.send_modify(|n| *n = n.wrapping_add(1));
                return Ok(done);
            }
            Err(refused) => refused,
        };
        let ids: Vec<Uuid> = appends
            .iter()
            .flat_map(|a| a.events.iter().map(|e| e.id))
            .collect();
        let stored = Self::stored_identities(&mut conn, ids.into_iter()).await?;
        let refused = &appends[index];
        let refusal = match refusal {
            Refusal::DuplicateId => StoreError::DuplicateEventId {
                id: refused.events.first().map(|e| e.id).unwrap_or_default(),
            },
            Refusal::Version(actual) => StoreError::WrongExpectedVersion {
                stream: refused.stream.to_string(),
                expected: refused.expected,
                actual,
            },
        };
        classify_multi_replay(&appends, stored, refusal)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        direction: Direction,
        from: Option<u64>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (sql, from) = stream_read(direction, from);
        let rows = sqlx::query(sql)
            .bind(stream.as_str())
            .bind(from)
            .bind(to_i64(limit as u64))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(StoreError::Unavailable)?;
        rows.iter().map(decode_event).collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM es_streams WHERE stream_id = ?1")
                .bind(stream.as_str())
                .fetch_optional(&self.inner.reader)
                .await
                .map_err(StoreError::Unavailable)?;
        Ok(version.unwrap_or(0) as u64)
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM es_events WHERE position > ?1 ORDER BY position LIMIT ?2"
        );
        let rows = sqlx::query(&sql)
            .bind(to_i64(after.0))
            .bind(to_i64(limit as u64))
            .fetch_all(&self.inner.reader)
            .await
            .map_err(StoreError::Unavailable)?;
        rows.iter().map(decode_event).collect()
    }

    async fn head(&self) -> Result<Position, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM es_events")
            .fetch_one(&self.inner.reader)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(Position(head.unwrap_or(0) as u64))
    }

    fn subscribe_all(
        &self,
        after: Position,
    ) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        catch_up_then_live(
            self.clone(),
            after,
            self.inner.wake_rx.clone(),
            self.inner.subscription,
            Arc::clone(&self.inner.shared_reads),
        )
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        let pos: Option<i64> =
            sqlx::query_scalar("SELECT position FROM es_checkpoints WHERE name = ?1")
                .bind(name)
                .fetch_optional(&self.inner.reader)
                .await
                .map_err(StoreError::Unavailable)?;
        Ok(pos.map(|p| Position(p as u64)))
    }

    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO es_checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(to_i64(position.0))
        .bind(Utc::now().to_rfc3339())
        .execute(&self.inner.writer)
        .await
        .map_err(|e| StoreError::from_db(e, true))?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query("SELECT version, state FROM es_snapshots WHERE stream_id = ?1")
            .bind(stream.as_str())
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(StoreError::Unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let version: i64 = row.try_get(0).map_err(StoreError::Unavailable)?;
        let state: &str = row.try_get(1).map_err(StoreError::Unavailable)?;
        let state = serde_json::from_str(state).map_err(|e| StoreError::InvalidEvent {
            reason: format!("stored snapshot of {stream} is not JSON: {e}"),
        })?;
        Ok(Some(Snapshot {
            version: version as u64,
            state,
        }))
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO es_snapshots (stream_id, version, state, taken_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state, \
             taken_at = excluded.taken_at WHERE es_snapshots.version < excluded.version",
        )
        .bind(stream.as_str())
        .bind(to_i64(snapshot.version))
        .bind(snapshot.state.to_string())
        .bind(Utc::now().to_rfc3339())
        .execute(&self.inner.writer)
        .await
        .map_err(|e| StoreError::from_db(e, true))?;
        Ok(())
    }

    fn adapter(&self) -> &'static str {
        "sqlite"
    }
}
