//! Group commit for the Postgres adapter: appends from concurrent callers queue for one writer
//! task, which writes whatever has queued in one transaction (one round trip, one WAL flush)
//! while the next ones queue, as EventStoreDB's single writer does. Each caller's append stays
//! atomic and is refused on its own (the `es_append_batch` function writes a batch nothing
//! refuses set-wise, and otherwise every append in its own subtransaction). A large append
//! (bulk writes) does not queue: it is written at once on its own connection, so bulk
//! writers still use every core Postgres has. Neither does an append whose stream another
//! transaction holds locked: the writer gives up on it after
//! [`LOCK_WAIT_MS`] and its caller writes it alone, so one locked stream (an open
//! `append_in` transaction, another process's append) never holds every append behind it.
//! Should the writer task ever stop (a panic), appends go on, each in its own transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{PgConnection, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::error::StoreError;
use crate::idle_check::{KeptConnection, refused_by_database};

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
/// An append written alone waits for locks as long as it takes.
const NO_LOCK_TIMEOUT: i32 = 0;
/// The refusal of an append whose stream stayed locked.
const LOCKED: &str = "55P03";
/// Deadlocked or serialisation-failed writes of one append tried again on its own.
const DIRECT_ATTEMPTS: u32 = 3;

/// Called after each transaction that wrote something.
type Committed = Arc<dyn Fn() + Send + Sync>;

/// One caller's append: its streams in lock order, with their events concatenated.
#[derive(Debug)]
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
    /// Refused, nothing written: an event id is stored already.
    DuplicateId,
    /// Refused, nothing written: a stream's version did not match; its 1-based place in the
    /// group when the database said.
    WrongVersion(Option<usize>),
}

/// What `es_append_batch` did with a group.
enum Outcome {
    /// Written or refused.
    Written(Written),
    /// Its stream stayed locked by another transaction: nothing written.
    Locked,
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
    /// Set once a send found the writer gone (logged once).
    writer_lost: Arc<AtomicBool>,
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
            writer_lost: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Writes `group` with whatever else is queued (a large one, or one whose stream is
    /// locked, alone), and says what became of it.
    pub async fn write(&self, group: Group) -> Result<Written, StoreError> {
        if group.ids.len() >= ALONE_EVENTS {
            return self.write_alone(&group).await;
        }
        let (reply, answer) = oneshot::channel();
        if let Err(refused) = self.queue.send(Pending { group, reply }).await {
            // The writer task is gone (it panicked): appends go on, one transaction each.
            if !self.writer_lost.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "the event store's group-commit writer stopped; appends are written one by one"
                );
            }
            return self.write_alone(&refused.0.group).await;
        }
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

    /// Writes `group` in its own transaction on its own connection, waiting for locks as long
    /// as it takes; a deadlock is tried again.
    async fn write_alone(&self, group: &Group) -> Result<Written, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::Unavailable)?;
        let mut attempts = 1;
        loop {
            match write_groups(&mut conn, &[group], NO_LOCK_TIMEOUT).await {
                Ok(mut outcomes) => match outcomes.pop() {
                    Some(Outcome::Written(written)) => {
                        if matches!(written, Written::Done(_)) {
                            (self.committed)();
                        }
                        return Ok(written);
                    }
                    // Cannot happen without a lock timeout: the answer is unreadable.
                    Some(Outcome::Locked) | None => {
                        return Err(StoreError::Indeterminate(sqlx::Error::Protocol(
                            "es_append_batch answered a lone append with no outcome".to_owned(),
                        )));
                    }
                },
                Err(err) if is_retryable(&err) && attempts < DIRECT_ATTEMPTS => attempts += 1,
                Err(err) => return Err(StoreError::from_db(err, true)),
            }
        }
    }
}

/// The writer: takes what has queued (up to [`MAX_GROUPS`]) and writes it as one transaction.
///
/// While appends keep coming it keeps its connection (each pool checkout costs sqlx's release
/// ping, a round trip), and closes it when a write failed other than by the database's
/// refusal.
async fn write_batches(pool: PgPool, mut rx: mpsc::Receiver<Pending>, committed: Committed) {
    let mut batch = Vec::with_capacity(MAX_GROUPS);
    let mut kept = KeptConnection::new(pool);
    loop {
        // `recv_many` is cancel safe: a timeout takes nothing from the queue.
        if kept.idle(rx.recv_many(&mut batch, MAX_GROUPS)).await == 0 {
            return;
        }
        // A caller that went away is not written for.
        batch.retain(|pending: &Pending| !pending.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let conn = match kept.get().await {
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
        if !write(conn, written, committed.as_ref()).await {
            kept.discard();
        }
    }
}

/// Writes one batch and answers its callers; says whether the connection is still fit for use
/// (every error, if any, was the database refusing a write).
async fn write(
    conn: &mut PgConnection,
    batch: Vec<Pending>,
    committed: &(dyn Fn() + Send + Sync),
) -> bool {
    if batch.len() > 1 {
        let groups: Vec<&Group> = batch.iter().map(|pending| &pending.group).collect();
        match write_groups(conn, &groups, LOCK_WAIT_MS).await {
            Ok(outcomes) => {
                answer(batch.into_iter().zip(outcomes), committed);
                return true;
            }
            // Refused as a whole (a deadlock, a value the database rejects): nothing was
            // committed; each append alone, so only the one at fault fails.
            Err(sqlx::Error::Database(err)) => {
                tracing::debug!(error = %err, "batched append failed; writing its appends one by one");
            }
            Err(err) => {
                let in_flight = StoreError::in_flight(&err);
                let message = err.to_string();
                for pending in batch {
                    let err = sqlx::Error::Protocol(message.clone());
                    let _ = pending.reply.send(Err(if in_flight {
                        StoreError::Indeterminate(err)
                    } else {
                        StoreError::Unavailable(err)
                    }));
                }
                return false;
            }
        }
    }
    let mut fit = true;
    for pending in batch {
        match write_groups(conn, &[&pending.group], LOCK_WAIT_MS).await {
            Ok(outcomes) => answer(std::iter::once(pending).zip(outcomes), committed),
            Err(err) => {
                fit &= refused_by_database(&err);
                let _ = pending.reply.send(Err(StoreError::from_db(err, true)));
            }
        }
    }
    fit
}

/// Tells each caller what became of its append, after waking subscribers if any was written.
fn answer(
    outcomes: impl Iterator<Item = (Pending, Outcome)>,
    committed: &(dyn Fn() + Send + Sync),
) {
    let outcomes: Vec<(Pending, Outcome)> = outcomes.collect();
    if outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Written(Written::Done(_))))
    {
        committed();
    }
    for (pending, outcome) in outcomes {
        let reply = match outcome {
            Outcome::Written(written) => Reply::Written(written),
            Outcome::Locked => Reply::Locked(pending.group),
        };
        let _ = pending.reply.send(Ok(reply));
    }
}

/// Whether the whole transaction failed for a reason that writing again may not meet.
fn is_retryable(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

/// Groups as one `es_append_batch` call (waiting at most `lock_wait_ms` for a locked stream;
/// 0: as long as it takes): one outcome per group, in order. An error reading the answer
/// (after the commit) is a `Protocol` error: the outcome is unknown.
async fn write_groups(
    conn: &mut PgConnection,
    groups: &[&Group],
    lock_wait_ms: i32,
) -> Result<Vec<Outcome>, sqlx::Error> {
    // Concatenated by reference: the groups stay whole for a retry one by one.
    let sizes: Vec<i32> = groups
        .iter()
        .map(|g| i32::try_from(g.streams.len()).unwrap_or(i32::MAX))
        .collect();
    let strs = |field: fn(&Group) -> &Vec<String>| -> Vec<&str> {
        groups
            .iter()
            .flat_map(|g| field(g).iter().map(String::as_str))
            .collect()
    };
    let (streams, types) = (strs(|g| &g.streams), strs(|g| &g.types));
    let (datas, metas) = (strs(|g| &g.datas), strs(|g| &g.metas));
    let kinds: Vec<i16> = groups
        .iter()
        .flat_map(|g| g.kinds.iter().copied())
        .collect();
    let versions: Vec<i64> = groups
        .iter()
        .flat_map(|g| g.versions.iter().copied())
        .collect();
    let counts: Vec<i32> = groups
        .iter()
        .flat_map(|g| g.counts.iter().copied())
        .collect();
    let ids: Vec<Uuid> = groups.iter().flat_map(|g| g.ids.iter().copied()).collect();
    let rows = sqlx::query(
        "SELECT grp, stream_version, first_position, last_position, refusal, detail \
         FROM es_append_batch($1, $2, $3, $4, $5, $6, $7, $8::jsonb[], $9::jsonb[], $10)",
    )
    .bind(&sizes)
    .bind(&streams)
    .bind(&kinds)
    .bind(&versions)
    .bind(&counts)
    .bind(&ids)
    .bind(&types)
    .bind(&datas)
    .bind(&metas)
    .bind(lock_wait_ms)
    .fetch_all(&mut *conn)
    .await?;
    outcomes(&rows, groups)
        .map_err(|err| sqlx::Error::Protocol(format!("unreadable es_append_batch answer: {err}")))
}

/// Reads `es_append_batch`'s rows into one outcome per group.
fn outcomes(rows: &[PgRow], groups: &[&Group]) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut outcomes: Vec<Option<Outcome>> = (0..groups.len()).map(|_| None).collect();
    for row in rows {
        let group: i32 = row.try_get(0)?;
        let Some(slot) = usize::try_from(group)
            .ok()
            .and_then(|g| g.checked_sub(1))
            .and_then(|g| outcomes.get_mut(g))
        else {
            return Err(sqlx::Error::Protocol(format!(
                "es_append_batch named group {group} of {}",
                groups.len()
            )));
        };
        let refusal: Option<String> = row.try_get(4)?;
        *slot = Some(match refusal.as_deref() {
            None => {
                let written = (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                match slot.take() {
                    Some(Outcome::Written(Written::Done(mut streams))) => {
                        streams.push(written);
                        Outcome::Written(Written::Done(streams))
                    }
                    _ => Outcome::Written(Written::Done(vec![written])),
                }
            }
            Some("23505") => Outcome::Written(Written::DuplicateId),
            Some("ES409") => {
                let detail: Option<String> = row.try_get(5)?;
                Outcome::Written(Written::WrongVersion(detail.and_then(|d| d.parse().ok())))
            }
            Some(LOCKED) => Outcome::Locked,
            Some(other) => {
                return Err(sqlx::Error::Protocol(format!(
                    "es_append_batch gave an unknown refusal {other:?}"
                )));
            }
        });
    }
    outcomes
        .into_iter()
        .zip(groups)
        .map(|(outcome, group)| match outcome {
            Some(Outcome::Written(Written::Done(streams)))
                if streams.len() != group.streams.len() =>
            {
                Err(sqlx::Error::Protocol(
                    "es_append_batch answered a group with the wrong number of streams".to_owned(),
                ))
            }
            Some(outcome) => Ok(outcome),
            None => Err(sqlx::Error::Protocol(
                "es_append_batch did not answer a group".to_owned(),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handle whose writer task has already gone, as after a panic.
    fn without_writer(pool: PgPool) -> GroupCommit {
        let (queue, rx) = mpsc::channel(QUEUE);
        drop(rx);
        GroupCommit {
            queue,
            pool,
            committed: Arc::new(|| {}),
            writer_lost: Arc::new(AtomicBool::new(false)),
        }
    }

    fn one_event(stream: &str) -> Group {
        Group {
            streams: vec![stream.to_owned()],
            kinds: vec![1],
            versions: vec![0],
            counts: vec![1],
            ids: vec![Uuid::new_v4()],
            types: vec!["Counted".to_owned()],
            datas: vec![r#"{"n":1}"#.to_owned()],
            metas: vec!["{}".to_owned()],
        }
    }

    #[tokio::test]
    async fn appends_go_on_one_by_one_when_the_writer_is_gone() {
        let db = testkit::TestDb::new().await;
        let store = crate::PgEventStore::connect(db.url(), 2).await.unwrap();
        let commit = without_writer(store.pool().clone());

        let first = commit.write(one_event("orphan-1")).await.unwrap();
        assert!(
            matches!(first, Written::Done(ref v) if v.len() == 1 && v[0].0 == 1),
            "{first:?}"
        );
        let again = commit.write(one_event("orphan-1")).await.unwrap();
        assert!(matches!(again, Written::WrongVersion(_)), "{again:?}");
        assert!(commit.writer_lost.load(Ordering::Relaxed));

        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM es_events WHERE stream_id = 'orphan-1'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(stored, 1);
    }
}
