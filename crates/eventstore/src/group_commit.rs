//! Group commit for the Postgres adapter: appends from concurrent callers queue for one writer
//! task, which writes whatever has queued in one transaction (one round trip, one WAL flush)
//! while the next ones queue, as EventStoreDB's single writer does. Each caller's append stays
//! atomic and is refused on its own (the `es_append_batch` function runs every append in its
//! own subtransaction). A large append (bulk writes) does not queue: it is written at once on
//! its own connection, so bulk writers still use every core Postgres has. Neither does an
//! append whose stream another transaction holds locked: the writer gives up on it after
//! [`LOCK_WAIT_MS`] and its caller writes it alone, so one locked stream (an open
//! `append_in` transaction, another process's append) never holds every append behind it.

use std::sync::Arc;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::error::StoreError;

/// Most appends written in one transaction: each is a subtransaction, and more than 64 would
/// overflow the snapshot cache of every backend. With fewer than [`ALONE_EVENTS`] events each,
/// a batch stays far below the 65,536 positions a transaction has.
const MAX_GROUPS: usize = 32;
/// Appends that may wait for the writer before callers wait to queue.
const QUEUE: usize = 1_024;
/// Appends of this many events or more are written at once on their own connection: they
/// gain little from sharing a commit and would hold the writer while small appends wait.
const ALONE_EVENTS: usize = 64;

/// How long the writer waits for a stream locked by another transaction before handing that
/// append back to its caller.
const LOCK_WAIT_MS: i32 = 50;
/// The refusal of an append whose stream stayed locked.
const LOCKED: &str = "55P03";
/// Deadlocked or serialisation-failed writes of one append tried again on its own.
const DIRECT_ATTEMPTS: u32 = 3;

/// Called after each transaction that wrote something.
type Committed = Arc<dyn Fn() + Send + Sync>;

/// One caller's append: its streams in lock order, with their events concatenated.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Stream ids.
    pub streams: Vec<String>,
    /// Expected-version kinds (see `es_append_multi`).
    pub kinds: Vec<i16>,
    /// Expected versions (for kind 3).
    pub versions: Vec<i64>,
    /// Events per stream.
    pub counts: Vec<i32>,
    /// Event ids, all streams' events in order.
    pub ids: Vec<Uuid>,
    /// Event types.
    pub types: Vec<String>,
    /// Serialised data.
    pub datas: Vec<String>,
    /// Serialised metadata.
    pub metas: Vec<String>,
}

/// What became of a group.
#[derive(Debug)]
pub(crate) enum Written {
    /// Committed: `(stream version, first position, last position)` per stream, in order.
    Done(Vec<(i64, i64, i64)>),
    /// Refused, nothing written: `23505` (a reused event id) or `ES409` (a version mismatch,
    /// with the stream's 1-based place in the group).
    Refused {
        /// The SQLSTATE.
        code: String,
        /// The refused stream's place, for `ES409`.
        place: Option<usize>,
    },
}

/// The writer's answer to one caller.
enum Reply {
    /// Written or refused.
    Written(Written),
    /// Its stream stayed locked: the caller writes it alone.
    Locked(Group),
}

struct Pending {
    group: Group,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
}

/// The queue to the writer task; cheap to clone.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    pool: PgPool,
    committed: Committed,
}

impl GroupCommit {
    /// Starts the writer on `pool`, calling `committed` after each transaction that wrote
    /// something (before its callers hear); it stops when every handle is dropped.
    pub fn start(pool: PgPool, committed: impl Fn() + Send + Sync + 'static) -> Self {
        let committed: Committed = Arc::new(committed);
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool.clone(), rx, committed.clone()));
        Self {
            queue,
            pool,
            committed,
        }
    }

    /// Writes `group` with whatever else is queued (a large one, or one whose stream is
    /// locked, alone), and says what became of it.
    pub async fn write(&self, group: Group) -> Result<Written, StoreError> {
        if group.ids.len() >= ALONE_EVENTS {
            return self.write_alone(&group).await;
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { group, reply })
            .await
            .map_err(|_| {
                StoreError::Unavailable(sqlx::Error::Protocol(
                    "the event store's writer has stopped".to_owned(),
                ))
            })?;
        // Dropped unanswered only if the writer panicked mid-batch: the outcome is unknown.
        let reply = answer.await.unwrap_or_else(|_| {
            Err(StoreError::Indeterminate(sqlx::Error::Protocol(
                "the event store's writer stopped during the write".to_owned(),
            )))
        })?;
        match reply {
            Reply::Written(written) => Ok(written),
            Reply::Locked(group) => self.write_alone(&group).await,
        }
    }

    /// Writes `group` as one `es_append_multi` call on its own connection, waiting for locks
    /// as long as it takes; a deadlock is tried again.
    async fn write_alone(&self, group: &Group) -> Result<Written, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Unavailable)?;
        let mut attempts = 1;
        loop {
            let written = write_one(&mut conn, group).await;
            match &written {
                Ok(Written::Done(_)) => (self.committed)(),
                Err(StoreError::Unavailable(err))
                    if is_retryable(err) && attempts < DIRECT_ATTEMPTS =>
                {
                    attempts += 1;
                    continue;
                }
                _ => {}
            }
            return written;
        }
    }
}

/// The writer: takes what has queued (up to [`MAX_GROUPS`]) and writes it as one transaction.
async fn write_batches(pool: PgPool, mut rx: mpsc::Receiver<Pending>, committed: Committed) {
    let mut batch = Vec::with_capacity(MAX_GROUPS);
    loop {
        if rx.recv_many(&mut batch, MAX_GROUPS).await == 0 {
            return;
        }
        // A caller that went away is not written for.
        batch.retain(|pending: &Pending| !pending.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(err) => {
                // No connection in time: everyone queued now would wait as long again.
                let message = format!("no database connection for the append: {err}");
                while let Ok(pending) = rx.try_recv() {
                    batch.push(pending);
                }
                for pending in batch.drain(..) {
                    let err = sqlx::Error::Protocol(message.clone());
                    let _ = pending.reply.send(Err(StoreError::Unavailable(err)));
                }
                continue;
            }
        };
        metrics::histogram!("eventstore_appends_per_commit").record(batch.len() as f64);
        let written = std::mem::replace(&mut batch, Vec::with_capacity(MAX_GROUPS));
        write(&mut conn, written, committed.as_ref()).await;
    }
}

/// Writes one batch and answers its callers.
async fn write(conn: &mut PgConnection, batch: Vec<Pending>, committed: &(dyn Fn() + Send + Sync)) {
    if batch.len() > 1 {
        match write_many(conn, &batch).await {
            Ok(outcomes) => {
                answer(batch.into_iter().zip(outcomes), committed);
                return;
            }
            // Refused as a whole (a deadlock, a value the database rejects): nothing was
            // committed; each append alone, so only the one at fault fails.
            Err(sqlx::Error::Database(err)) => {
                tracing::debug!(error = %err, "batched append failed; writing its appends one by one");
            }
            Err(err) => {
                let in_flight = matches!(
                    err,
                    sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed
                );
                let message = err.to_string();
                for pending in batch {
                    let err = sqlx::Error::Protocol(message.clone());
                    let _ = pending.reply.send(Err(if in_flight {
                        StoreError::Indeterminate(err)
                    } else {
                        StoreError::Unavailable(err)
                    }));
                }
                return;
            }
        }
    }
    for pending in batch {
        match write_many(conn, std::slice::from_ref(&pending)).await {
            Ok(outcomes) => answer(std::iter::once(pending).zip(outcomes), committed),
            Err(err) => {
                let _ = pending.reply.send(Err(StoreError::from_db(err, true)));
            }
        }
    }
}

/// Tells each caller what became of its append, after waking subscribers if any was written.
fn answer(
    outcomes: impl Iterator<Item = (Pending, Written)>,
    committed: &(dyn Fn() + Send + Sync),
) {
    let outcomes: Vec<(Pending, Written)> = outcomes.collect();
    if outcomes.iter().any(|(_, o)| matches!(o, Written::Done(_))) {
        committed();
    }
    for (pending, outcome) in outcomes {
        let reply = match outcome {
            Written::Refused { code, .. } if code == LOCKED => Reply::Locked(pending.group),
            other => Reply::Written(other),
        };
        let _ = pending.reply.send(Ok(reply));
    }
}

/// Whether the whole transaction failed for a reason that writing again may not meet.
fn is_retryable(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// One group as one `es_append_multi` call.
async fn write_one(conn: &mut PgConnection, group: &Group) -> Result<Written, StoreError> {
    let rows = sqlx::query(
        "SELECT stream_version, first_position, last_position \
         FROM es_append_multi($1, $2, $3, $4, $5, $6, $7::jsonb[], $8::jsonb[])",
    )
    .bind(&group.streams)
    .bind(&group.kinds)
    .bind(&group.versions)
    .bind(&group.counts)
    .bind(&group.ids)
    .bind(&group.types)
    .bind(&group.datas)
    .bind(&group.metas)
    .fetch_all(&mut *conn)
    .await;
    match rows {
        Ok(rows) => Ok(Written::Done(
            rows.iter()
                .map(positions)
                .collect::<Result<_, _>>()
                // Committed, but the answer is unreadable.
                .map_err(StoreError::Indeterminate)?,
        )),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            Ok(Written::Refused {
                code: "23505".to_owned(),
                place: None,
            })
        }
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("ES409") => {
            let place = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail())
                .and_then(|detail| detail.parse::<usize>().ok());
            Ok(Written::Refused {
                code: "ES409".to_owned(),
                place,
            })
        }
        Err(err) => Err(StoreError::from_db(err, true)),
    }
}

fn positions(row: &PgRow) -> Result<(i64, i64, i64), sqlx::Error> {
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// Groups as one `es_append_batch` call: one outcome per group, in order. An error reading
/// the answer (after the commit) is a `Protocol` error: the outcome is unknown.
async fn write_many(
    conn: &mut PgConnection,
    batch: &[Pending],
) -> Result<Vec<Written>, sqlx::Error> {
    let mut sizes = Vec::with_capacity(batch.len());
    let mut all = Group::default();
    for pending in batch {
        let group = &pending.group;
        sizes.push(i32::try_from(group.streams.len()).unwrap_or(i32::MAX));
        all.streams.extend(group.streams.iter().cloned());
        all.kinds.extend_from_slice(&group.kinds);
        all.versions.extend_from_slice(&group.versions);
        all.counts.extend_from_slice(&group.counts);
        all.ids.extend_from_slice(&group.ids);
        all.types.extend(group.types.iter().cloned());
        all.datas.extend(group.datas.iter().cloned());
        all.metas.extend(group.metas.iter().cloned());
    }
    let rows = sqlx::query(
        "SELECT grp, stream_version, first_position, last_position, refusal, detail \
         FROM es_append_batch($1, $2, $3, $4, $5, $6, $7, $8::jsonb[], $9::jsonb[], $10)",
    )
    .bind(&sizes)
    .bind(&all.streams)
    .bind(&all.kinds)
    .bind(&all.versions)
    .bind(&all.counts)
    .bind(&all.ids)
    .bind(&all.types)
    .bind(&all.datas)
    .bind(&all.metas)
    .bind(LOCK_WAIT_MS)
    .fetch_all(&mut *conn)
    .await?;
    outcomes(&rows, batch)
        .map_err(|err| sqlx::Error::Protocol(format!("unreadable es_append_batch answer: {err}")))
}

/// Reads `es_append_batch`'s rows into one outcome per group of `batch`.
fn outcomes(rows: &[PgRow], batch: &[Pending]) -> Result<Vec<Written>, sqlx::Error> {
    let mut outcomes: Vec<Option<Written>> = (0..batch.len()).map(|_| None).collect();
    for row in rows {
        let group: i32 = row.try_get(0)?;
        let Some(slot) = usize::try_from(group)
            .ok()
            .and_then(|g| g.checked_sub(1))
            .and_then(|g| outcomes.get_mut(g))
        else {
            return Err(sqlx::Error::Protocol(format!(
                "es_append_batch named group {group} of {}",
                batch.len()
            )));
        };
        let refusal: Option<String> = row.try_get(4)?;
        match refusal {
            Some(code) => {
                let detail: Option<String> = row.try_get(5)?;
                *slot = Some(Written::Refused {
                    code,
                    place: detail.and_then(|d| d.parse().ok()),
                });
            }
            None => {
                let written = (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                match slot {
                    Some(Written::Done(streams)) => streams.push(written),
                    _ => *slot = Some(Written::Done(vec![written])),
                }
            }
        }
    }
    outcomes
        .into_iter()
        .zip(batch)
        .map(|(outcome, pending)| match outcome {
            Some(Written::Done(streams)) if streams.len() == pending.group.streams.len() => {
                Ok(Written::Done(streams))
            }
            Some(refused @ Written::Refused { .. }) => Ok(refused),
            _ => Err(sqlx::Error::Protocol(
                "es_append_batch answered a group with the wrong number of streams".to_owned(),
            )),
        })
        .collect()
}
