//! The production event store adapter on Postgres.
//!
//! Appends are group-committed ([`crate::group_commit`]): one writer task writes whatever
//! appends have queued in one transaction, each append one `es_append_multi` step (its
//! migration) that moves its streams' versions under their row locks (the
//! optimistic-concurrency check) and inserts the events with positions derived from the
//! writing transaction's id; no transaction stays open while the client talks. An append
//! inside the caller's transaction ([`PgEventStore::append_in`]) is one statement, a
//! data-modifying CTE doing the same for one stream. Subscribers in this process are woken
//! right after the commit; other processes hear a `NOTIFY` that a background task sends at most
//! once every few milliseconds after appends (a `NOTIFY` inside the append would serialise every
//! commit on Postgres's notify lock). Reads of `$all` stop below the oldest running transaction (`pg_snapshot_xmin`), which
//! is what makes positions gap-safe: a long write transaction anywhere in the cluster delays
//! `$all` readers until it ends, but never makes them skip.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{EventData, Metadata, RecordedEvent, Snapshot};
use crate::group_commit::{Group, GroupCommit, Written};
use crate::shared_read::SharedReads;
use crate::store::{
    AppendResult, Direction, EventStore, Limits, StoredIdentity, StreamAppend, check_multi,
    classify_multi_replay, stream_read,
};
use crate::stream::StreamId;
use crate::subscription::{SubscriptionOptions, catch_up_then_live};
use crate::version::{ExpectedVersion, Position};

/// The LISTEN/NOTIFY channel appends signal on.
pub const NOTIFY_CHANNEL: &str = "bs_events";

/// Event store on Postgres; cheap to clone.
#[derive(Clone)]
pub struct PgEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    limits: Limits,
    subscription: SubscriptionOptions,
    /// The newest `$all` read of this store's subscriptions, which others may share.
    shared_reads: Arc<SharedReads>,
    wake_tx: watch::Sender<u64>,
    wake: watch::Receiver<u64>,
    /// Tells the notifier task that appends committed.
    appended: Arc<tokio::sync::Notify>,
    /// The queue to the writer that group-commits appends.
    writer: GroupCommit,
    listener: tokio::task::JoinHandle<()>,
    notifier: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
        self.notifier.abort();
    }
}

/// The store's pool settings: up to `max_connections` (at least 3), and connections pinged
/// before use only after they sat idle ([`crate::idle_check`]).
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    crate::idle_check::checked_when_idle(
        PgPoolOptions::new()
            .max_connections(max_connections.max(3))
            .acquire_timeout(Duration::from_secs(10)),
    )
}

/// Longest delay between a commit and the `NOTIFY` that tells other processes.
const NOTIFY_EVERY: Duration = Duration::from_millis(2);

impl PgEventStore {
    /// Connects with a pool of up to `max_connections` (at least 3: the commit listener keeps
    /// one, and the group-commit writer one while appends keep coming), migrates the schema and
    /// starts listening.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = pool_options(max_connections)
            .connect(url)
            .await
            .map_err(StoreError::Unavailable)?;
        Self::new(pool).await
    }

    /// Uses an existing pool: migrates the schema and starts listening for commits. The
    /// listener keeps one of its connections, and the group-commit writer one while appends
    /// keep coming if the pool has three or more; [`pool_options`] are the settings `connect`
    /// uses.
    pub async fn new(pool: PgPool) -> Result<Self, StoreError> {
        migrate(&pool).await?;
        let (tx, rx) = watch::channel(0u64);
        // Marks this store's own notifications: its subscribers were woken at commit already.
        let token = uuid::Uuid::new_v4().simple().to_string();
        let listener = tokio::spawn(listen(pool.clone(), tx.clone(), token.clone()));
        let appended = Arc::new(tokio::sync::Notify::new());
        let notifier = tokio::spawn(notify_other_processes(
            pool.clone(),
            appended.clone(),
            token,
        ));
        // Ends by itself once the last handle (and with it the queue) is dropped.
        let writer = GroupCommit::start(pool.clone(), {
            let (wake, appended) = (tx.clone(), appended.clone());
            move || signal_committed(&wake, &appended)
        });
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                limits: Limits::default(),
                subscription: SubscriptionOptions::default(),
                shared_reads: Arc::default(),
                wake_tx: tx,
                wake: rx,
                appended,
                writer,
                listener,
                notifier,
            }),
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Tells subscribers (here and in other processes) that events were committed; call it
    /// after committing a transaction that used [`PgEventStore::append_in`].
    pub fn notify_committed(&self) {
        signal_committed(&self.inner.wake_tx, &self.inner.appended);
    }

    /// Appends inside the caller's transaction, so events commit atomically with other writes.
    ///
    /// Unlike [`EventStore::append`], a refusal aborts the caller's transaction and replays are
    /// not recognised: a reused event id is reported as `DuplicateEventId`.
    pub async fn append_in(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendResult, StoreError> {
        let encoded = self.inner.limits.check(events)?;
        match run_append(conn, stream, expected, events, encoded).await? {
            Ok(done) => Ok(done),
            Err(Refused::Version) => Err(StoreError::WrongExpectedVersion {
                stream: stream.to_string(),
                expected,
                actual: 0,
            }),
            Err(Refused::DuplicateId) => Err(StoreError::DuplicateEventId { id: events[0].id }),
        }
    }
}

/// Wakes this process's subscribers and tells the notifier task that events were committed.
fn signal_committed(wake: &watch::Sender<u64>, appended: &tokio::sync::Notify) {
    wake.send_modify(|n| *n = n.wrapping_add(1));
    appended.notify_one();
}

/// Applies the event store's migrations (idempotent; other components' migrations may share the database).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// Sends one `NOTIFY` per burst of appends, so subscribers in other processes wake up; its
/// payload is `token`, so this store's listener can tell its own.
async fn notify_other_processes(pool: PgPool, appended: Arc<tokio::sync::Notify>, token: String) {
    loop {
        appended.notified().await;
        tokio::time::sleep(NOTIFY_EVERY).await;
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(token.as_str())
            .execute(&pool)
            .await;
        if let Err(err) = sent {
            // Subscribers elsewhere still catch up through their idle poll.
            tracing::debug!(error = %err, "event store notify failed");
        }
    }
}

/// Forwards other stores' commit notifications to subscribers (this store's own, with
/// payload `token`, woke them at commit); reconnects on failure.
async fn listen(pool: PgPool, wake: watch::Sender<u64>, token: String) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(err) => {
                tracing::warn!(error = %err, "event store listener cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::warn!(error = %err, "event store listen failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(first) => {
                    // Coalesce the notifications already received into one wake-up
                    // (`try_recv` would wait for the next one).
                    let mut others = first.payload() != token;
                    while let Some(next) = listener.next_buffered() {
                        others |= next.payload() != token;
                    }
                    if others {
                        wake.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "event store listener lost its connection");
                    wake.send_modify(|n| *n = n.wrapping_add(1));
                    break;
                }
            }
            if wake.is_closed() {
                return;
            }
        }
    }
}

/// Why a single-statement append wrote nothing.
enum Refused {
    /// The stream's version did not match.
    Version,
    /// An event id is already stored.
    DuplicateId,
}

/// The stream-version step of an append, by expected version. `$1` stream, `$2` event count,
/// `$7` expected version.
fn version_step(expected: ExpectedVersion) -> &'static str {
    match expected {
        ExpectedVersion::Any => {
            "INSERT INTO es_streams (stream_id, version) VALUES ($1, $2) \
             ON CONFLICT (stream_id) DO UPDATE SET version = es_streams.version + $2 \
             WHERE $7::bigint IS NULL RETURNING version"
        }
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => {
            "INSERT INTO es_streams (stream_id, version) SELECT $1, $2 WHERE $7::bigint IS NULL \
             ON CONFLICT (stream_id) DO NOTHING RETURNING version"
        }
        ExpectedVersion::StreamExists => {
            "UPDATE es_streams SET version = version + $2 \
             WHERE stream_id = $1 AND $7::bigint IS NULL RETURNING version"
        }
        ExpectedVersion::Exact(_) => {
            "UPDATE es_streams SET version = version + $2 \
             WHERE stream_id = $1 AND version = $7 RETURNING version"
        }
    }
}

/// The append statement for each kind of expected version.
static APPEND_SQL: LazyLock<[String; 4]> = LazyLock::new(|| {
    [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::StreamExists,
        ExpectedVersion::Exact(1),
    ]
    .map(|e| {
        format!(
            "WITH s AS ({step}),
             x AS (SELECT pg_current_xact_id()::text::bigint AS xid),
             b AS (SELECT coalesce(
                     (SELECT max(e.position) FROM es_events e, x
                       WHERE e.position > (x.xid << 16) AND e.position < ((x.xid + 1) << 16)),
                     (SELECT xid << 16 FROM x)) AS base),
             ins AS (
               INSERT INTO es_events (position, event_id, stream_id, version, event_type, data, metadata)
               SELECT b.base + e.ord, e.id, $1, s.version - $2 + e.ord, e.ty, e.data, e.meta
               FROM s, b, UNNEST($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])
                          WITH ORDINALITY AS e(id, ty, data, meta, ord)
               RETURNING position)
             SELECT (SELECT version FROM s) AS version,
                    (SELECT min(position) FROM ins) AS first_position,
                    (SELECT max(position) FROM ins) AS last_position",
            step = version_step(e)
        )
    })
});

fn append_sql(expected: ExpectedVersion) -> &'static str {
    let (kind, _) = expected_kind(expected);
    &APPEND_SQL[usize::from(kind.unsigned_abs())]
}

/// The kind of an expected version (0 any, 1 no stream, 2 stream exists, 3 exact: the order
/// of `APPEND_SQL` and of `es_append_multi`'s kinds) and, for exact, the version.
fn expected_kind(expected: ExpectedVersion) -> (i16, i64) {
    match expected {
        ExpectedVersion::Any => (0, 0),
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => (1, 0),
        ExpectedVersion::StreamExists => (2, 0),
        ExpectedVersion::Exact(v) => (3, i64::try_from(v).unwrap_or(i64::MAX)),
    }
}

/// Runs the one-statement append. `Ok(Err(_))` is a refusal that wrote nothing.
async fn run_append(
    conn: &mut PgConnection,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[EventData],
    encoded: Vec<(String, String)>,
) -> Result<Result<AppendResult, Refused>, StoreError> {
    let n = events.len() as i64;
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let (data, meta): (Vec<String>, Vec<String>) = encoded.into_iter().unzip();
    let exact = match expected {
        ExpectedVersion::Exact(v) if v > 0 => Some(v as i64),
        _ => None,
    };
    let row = sqlx::query(append_sql(expected))
        .bind(stream.as_str())
        .bind(n)
        .bind(&ids)
        .bind(&types)
        .bind(&data)
        .bind(&meta)
        .bind(exact)
        .fetch_one(conn)
        .await;
    let row = match row {
        Ok(row) => row,
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            return Ok(Err(Refused::DuplicateId));
        }
        Err(err) => return Err(StoreError::from_db(err, true)),
    };
    let version: Option<i64> = row.try_get(0).map_err(StoreError::Unavailable)?;
    let Some(version) = version else {
        return Ok(Err(Refused::Version));
    };
    let first: Option<i64> = row.try_get(1).map_err(StoreError::Unavailable)?;
    let last: Option<i64> = row.try_get(2).map_err(StoreError::Unavailable)?;
    Ok(Ok(AppendResult {
        next_expected_version: version as u64,
        first_position: Position(first.unwrap_or(0) as u64),
        last_position: Position(last.unwrap_or(0) as u64),
    }))
}

/// The version of `stream` (0 when it does not exist), read on `conn`.
async fn version_on(conn: &mut PgConnection, stream: &StreamId) -> Result<u64, StoreError> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM es_streams WHERE stream_id = $1")
            .bind(stream.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::Unavailable)?;
    Ok(version.unwrap_or(0) as u64)
}

/// The stored identities of `ids`, for replay checks.
async fn stored_identities(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<StoredIdentity>, StoreError> {
    let rows = sqlx::query(
        "SELECT event_id, stream_id, version, position, event_type, data \
         FROM es_events WHERE event_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Unavailable)?;
    rows.iter()
        .map(|r| {
            Ok(StoredIdentity {
                id: r.try_get(0)?,
                stream_id: r.try_get(1)?,
                version: r.try_get::<i64, _>(2)? as u64,
                position: Position(r.try_get::<i64, _>(3)? as u64),
                event_type: r.try_get(4)?,
                data: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::Unavailable)
}

const EVENT_COLUMNS: &str =
    "position, event_id, stream_id, version, event_type, data, metadata, recorded_at";

fn decode_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let get_err = StoreError::Unavailable;
    let position: i64 = row.try_get(0).map_err(get_err)?;
    let id: Uuid = row.try_get(1).map_err(get_err)?;
    let stream_id: String = row.try_get(2).map_err(get_err)?;
    let version: i64 = row.try_get(3).map_err(get_err)?;
    let event_type: String = row.try_get(4).map_err(get_err)?;
    let data: serde_json::Value = row.try_get(5).map_err(get_err)?;
    let metadata: sqlx::types::Json<Metadata> = row.try_get(6).map_err(|e| StoreError::Codec {
        event_id: id,
        reason: format!("metadata: {e}"),
    })?;
    let recorded_at: DateTime<Utc> = row.try_get(7).map_err(get_err)?;
    Ok(RecordedEvent {
        id,
        stream_id: StreamId::trusted(stream_id),
        version: version as u64,
        position: Position(position as u64),
        event_type,
        data,
        metadata: metadata.0,
        recorded_at,
    })
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        let mut results = self
            .append_multi(vec![StreamAppend::new(stream.clone(), expected, events)])
            .await?;
        results.pop().ok_or_else(|| {
            StoreError::Indeterminate(sqlx::Error::Protocol(
                "the store answered an append with no result".to_owned(),
            ))
        })
    }

    async fn append_multi(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let mut encoded: Vec<Option<Vec<(String, String)>>> =
            check_multi(&self.inner.limits, &appends)?
                .into_iter()
                .map(Some)
                .collect();
        // Streams are locked in one order (by id) so that two multi-appends never deadlock.
        let mut order: Vec<usize> = (0..appends.len()).collect();
        order.sort_by(|&a, &b| appends[a].stream.as_str().cmp(appends[b].stream.as_str()));
        let total: usize = appends.iter().map(|a| a.events.len()).sum();
        let mut group = Group {
            streams: Vec::with_capacity(appends.len()),
            kinds: Vec::with_capacity(appends.len()),
            versions: Vec::with_capacity(appends.len()),
            counts: Vec::with_capacity(appends.len()),
            ids: Vec::with_capacity(total),
            types: Vec::with_capacity(total),
            datas: Vec::with_capacity(total),
            metas: Vec::with_capacity(total),
        };
        for &i in &order {
            let append = &appends[i];
            let (kind, version) = expected_kind(append.expected);
            group.streams.push(append.stream.as_str().to_owned());
            group.kinds.push(kind);
            group.versions.push(version);
            group
                .counts
                .push(i32::try_from(append.events.len()).unwrap_or(i32::MAX));
            for event in &append.events {
                group.ids.push(event.id);
                group.types.push(event.event_type.clone());
            }
            for (data, meta) in encoded[i].take().unwrap_or_default() {
                group.datas.push(data);
                group.metas.push(meta);
            }
        }
        let (index, refusal) = match self.inner.writer.write(group).await? {
            // One row per stream (the writer checks), in lock order.
            Written::Done(rows) => {
                let mut results = vec![None; appends.len()];
                for (&(version, first, last), &i) in rows.iter().zip(&order) {
                    results[i] = Some(AppendResult {
                        next_expected_version: version as u64,
                        first_position: Position(first as u64),
                        last_position: Position(last as u64),
                    });
                }
                // The writer has woken subscribers already.
                return Ok(results.into_iter().flatten().collect());
            }
            Written::WrongVersion(place) => {
                // The refused stream, by its 1-based place in lock order.
                let index = place
                    .and_then(|place| place.checked_sub(1))
                    .and_then(|place| order.get(place).copied())
                    .unwrap_or(order[0]);
                (index, Refused::Version)
            }
            Written::DuplicateId => (order[0], Refused::DuplicateId),
        };
        // Refused: either a replay of an append that already happened, or a real conflict.
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(StoreError::Unavailable)?;
        let ids: Vec<Uuid> = appends
            .iter()
            .flat_map(|a| a.events.iter().map(|e| e.id))
            .collect();
        let stored = stored_identities(&mut conn, &ids).await?;
        let failed = &appends[index];
        let refusal = match refusal {
            Refused::DuplicateId => StoreError::DuplicateEventId {
                id: stored
                    .first()
                    .map(|s| s.id)
                    .or_else(|| failed.events.first().map(|e| e.id))
                    .unwrap_or_default(),
            },
            Refused::Version => StoreError::WrongExpectedVersion {
                stream: failed.stream.to_string(),
                expected: failed.expected,
                actual: 0,
            },
        };
        match classify_multi_replay(&appends, stored, refusal) {
            Err(StoreError::WrongExpectedVersion { .. }) => Err(StoreError::WrongExpectedVersion {
                stream: failed.stream.to_string(),
                expected: failed.expected,
                actual: version_on(&mut conn, &failed.stream).await?,
            }),
            other => other,
        }
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
            .bind(limit_i64(limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        rows.iter().map(decode_event).collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let mut conn = self
            .inner
            .pool
            .acquire()
            .await
            .map_err(StoreError::Unavailable)?;
        version_on(&mut conn, stream).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                // The page is taken first and bounded after: the plan then never depends on
                // statistics about the bound (a fresh table otherwise gets a full sort per page).
                "SELECT {EVENT_COLUMNS} FROM ( \
                   SELECT {EVENT_COLUMNS} FROM es_events WHERE position > $1 \
                   ORDER BY position LIMIT $2) page \
                 WHERE position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16) \
                 ORDER BY position"
            )
        });
        let rows = sqlx::query(&SQL)
            .bind(i64::try_from(after.0).unwrap_or(i64::MAX))
            .bind(limit_i64(limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        rows.iter().map(decode_event).collect()
    }

    async fn head(&self) -> Result<Position, StoreError> {
        let head: Option<i64> = sqlx::query_scalar(
            "SELECT max(position) FROM es_events \
             WHERE position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)",
        )
        .fetch_one(&self.inner.pool)
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
            self.inner.wake.clone(),
            self.inner.subscription,
            Arc::clone(&self.inner.shared_reads),
        )
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        let pos: Option<i64> =
            sqlx::query_scalar("SELECT position FROM es_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(StoreError::Unavailable)?;
        Ok(pos.map(|p| Position(p as u64)))
    }

    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO es_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        )
        .bind(name)
        .bind(i64::try_from(position.0).unwrap_or(i64::MAX))
        .execute(&self.inner.pool)
        .await
        .map_err(|e| StoreError::from_db(e, true))?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query("SELECT version, state FROM es_snapshots WHERE stream_id = $1")
            .bind(stream.as_str())
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        row.map(|r| {
            Ok(Snapshot {
                version: r.try_get::<i64, _>(0)? as u64,
                state: r.try_get(1)?,
            })
        })
        .transpose()
        .map_err(StoreError::Unavailable)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO es_snapshots (stream_id, version, state) VALUES ($1, $2, $3) \
             ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, \
             state = EXCLUDED.state, taken_at = now() WHERE es_snapshots.version < EXCLUDED.version",
        )
        .bind(stream.as_str())
        .bind(snapshot.version as i64)
        .bind(&snapshot.state)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| StoreError::from_db(e, true))?;
        Ok(())
    }

    fn adapter(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn wakes(store: &PgEventStore) -> u64 {
        *store.inner.wake.borrow()
    }

    async fn append_one(store: &PgEventStore) {
        store
            .append(
                &StreamId::parse("counter-1").unwrap(),
                ExpectedVersion::Any,
                vec![EventData::new("Counted", json!({}))],
            )
            .await
            .unwrap();
    }

    /// Waits until `store` has been woken more than `since` times.
    async fn woken_after(store: &PgEventStore, since: u64) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while wakes(store) == since {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    /// Appends with `writer` until `listener` hears of it (its `LISTEN` starts in the
    /// background, and a `NOTIFY` before it is not heard).
    async fn listening(writer: &PgEventStore, listener: &PgEventStore) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let since = wakes(listener);
                append_one(writer).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                if wakes(listener) != since {
                    return;
                }
            }
        })
        .await
        .unwrap();
    }

    /// A commit wakes its own store's subscribers once (at commit, not again by its `NOTIFY`)
    /// and another store's by the `NOTIFY`.
    #[tokio::test]
    async fn a_commit_wakes_its_store_once_and_other_stores_by_notify() {
        let db = testkit::TestDb::new().await;
        let here = PgEventStore::connect(db.url(), 2).await.unwrap();
        let there = PgEventStore::connect(db.url(), 2).await.unwrap();
        listening(&here, &there).await;
        listening(&there, &here).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (here_before, there_before) = (wakes(&here), wakes(&there));
        append_one(&here).await;
        woken_after(&there, there_before).await;
        // Its own NOTIFY went out with the other store's; give it time to arrive.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(wakes(&here) - here_before, 1, "woken at commit only");
        assert_eq!(wakes(&there) - there_before, 1, "woken by the NOTIFY");
    }
}
