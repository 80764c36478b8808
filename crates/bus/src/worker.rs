//! A command worker: consumes a topic in a consumer group, hands each message to a handler,
//! publishes what the handler returns, and commits only after that.
//!
//! Delivery is at least once, so handlers must be idempotent. A handler failure is logged and
//! the same message is retried after a back-off (never skipped); the consumer does not advance
//! past it.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use crate::{BusError, Message, MessageBus, OutgoingRecord, Subscription};

/// How long completed messages wait before their offsets are committed: one commit covers
/// every message finished meanwhile (a crash redelivers at most this much finished work,
/// which idempotent handlers ignore).
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
/// Longest back-off between retries of a failing message.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `handler` over every message of `subscription` until `shutdown` resolves.
pub async fn run_worker<B, F, Fut, E>(
    bus: &B,
    subscription: Subscription<'_>,
    mut handler: F,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BusError>
where
    B: MessageBus + ?Sized,
    F: FnMut(Message) -> Fut + Send,
    Fut: Future<Output = Result<Vec<OutgoingRecord>, E>> + Send,
    E: std::fmt::Display,
{
    let group = subscription.group;
    let mut consumer = bus
        .subscribe_at(group, subscription.topics, subscription.pace)
        .await?;
    tokio::pin!(shutdown);
    loop {
        let msg = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            msg = consumer.recv() => msg?,
        };
        let mut attempt: u32 = 0;
        loop {
            let outcome = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                outcome = handler(msg.clone()) => outcome,
            };
            let published = match outcome {
                Ok(records) if records.is_empty() => Ok(()),
                Ok(records) => bus.publish(records).await.map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            match published {
                Ok(()) => break,
                Err(reason) => {
                    attempt = attempt.saturating_add(1);
                    metrics::counter!("worker_failures_total", "group" => group.to_owned())
                        .increment(1);
                    tracing::error!(group, topic = %msg.topic, partition = msg.partition, offset = msg.offset, attempt, error = %reason, "message handling failed; retrying");
                    let backoff = (Duration::from_millis(100) * attempt.min(50)).min(MAX_BACKOFF);
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
        consumer.commit(&msg).await?;
    }
}

/// Runs `handler` over the topics of `subscriptions` (received as one consumer:
/// [`crate::subscribe_merged`]) like [`run_worker`], but `lanes` messages at a time: messages
/// with the same lane key (`lane_key`, e.g. the record key or the entity it names) always go
/// to the same lane, so they are handled in order, while different keys proceed in parallel.
/// Lanes publish concurrently. A full lane pauses receiving (back-pressure) while the loop
/// goes on publishing and committing for every lane. Offsets are committed per partition up
/// to the last message below which every message is done, at most every [`COMMIT_INTERVAL`]
/// and on shutdown, so a crash redelivers only unfinished work and what finished in its last
/// interval. A lane whose handler panics stops the worker with an error.
pub async fn run_keyed_worker<B, F, Fut, E>(
    bus: &B,
    subscriptions: &[Subscription<'_>],
    lanes: usize,
    lane_key: for<'m> fn(&'m Message) -> &'m [u8],
    handler: F,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BusError>
where
    B: MessageBus + ?Sized,
    F: Fn(Message) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<OutgoingRecord>, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    use std::sync::Arc;

    let lanes = lanes.max(1);
    let mut consumer = crate::subscribe_merged(bus, subscriptions).await?;
    // The worker as a whole (a stopped lane) is named by its groups.
    let group = subscriptions
        .iter()
        .map(|s| s.group)
        .collect::<Vec<_>>()
        .join("+");
    let group = group.as_str();
    let (done_tx, mut done_rx) =
        tokio::sync::mpsc::unbounded_channel::<Result<Message, BusError>>();
    // A failing message is reported under the group it came from.
    let groups: Arc<HashMap<String, Arc<str>>> = Arc::new(
        subscriptions
            .iter()
            .flat_map(|s| {
                let group: Arc<str> = Arc::from(s.group);
                s.topics
                    .iter()
                    .map(move |t| ((*t).to_owned(), group.clone()))
            })
            .collect(),
    );
    let group_name: Arc<str> = Arc::from(group);
    let mut senders = Vec::with_capacity(lanes);
    // Lanes end only when this loop does; one ending before means its handler panicked. A
    // worker that is dropped (its task aborted, its process stopping) aborts them with it, as a
    // killed process would: no step goes on being handled by nobody.
    let mut workers = tokio::task::JoinSet::new();
    // The bus is only borrowed here: lanes hand what to publish back to this loop.
    let (publish_tx, mut publish_rx) = tokio::sync::mpsc::channel::<(
        Vec<OutgoingRecord>,
        tokio::sync::oneshot::Sender<Result<(), String>>,
    )>(lanes * 4);
    for _ in 0..lanes {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
        senders.push(tx);
        let (handler, done, publish, groups, worker) = (
            handler.clone(),
            done_tx.clone(),
            publish_tx.clone(),
            groups.clone(),
            group_name.clone(),
        );
        workers.spawn(async move {
            while let Some(msg) = rx.recv().await {
                let mut attempt: u32 = 0;
                loop {
                    let published = match handler(msg.clone()).await {
                        Ok(records) if records.is_empty() => Ok(()),
                        Ok(records) => {
                            let (ack_tx, ack_rx) = tokio::sync::oneshot::channel();
                            if publish.send((records, ack_tx)).await.is_err() {
                                return;
                            }
                            ack_rx.await.unwrap_or_else(|_| Err("worker stopping".into()))
                        }
                        Err(err) => Err(err.to_string()),
                    };
                    match published {
                        Ok(()) => break,
                        Err(reason) => {
                            attempt = attempt.saturating_add(1);
                            let group = groups.get(&msg.topic).unwrap_or(&worker);
                            metrics::counter!("worker_failures_total", "group" => group.to_string()).increment(1);
                            tracing::error!(group = %group, topic = %msg.topic, partition = msg.partition, offset = msg.offset, attempt, error = %reason, "message handling failed; retrying");
                            tokio::time::sleep((Duration::from_millis(100) * attempt.min(50)).min(MAX_BACKOFF)).await;
                        }
                    }
                }
                if done.send(Ok(msg)).is_err() {
                    return;
                }
            }
        });
    }
    drop(done_tx);
    drop(publish_tx);
    // Per partition: offsets handed to lanes and not done yet, the highest done, and the
    // last committed.
    let mut in_flight: HashMap<(String, i32), BTreeSet<i64>> = HashMap::new();
    let mut highest_done: HashMap<(String, i32), i64> = HashMap::new();
    let mut committed: HashMap<(String, i32), i64> = HashMap::new();
    // Partitions with completions not committed yet, and when to commit them.
    let mut dirty: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut commit_at: Option<tokio::time::Instant> = None;
    // Publishes in flight: lanes publish concurrently (each waits for its own delivery
    // reports) while this loop keeps receiving and committing.
    let mut publishing = futures::stream::FuturesUnordered::new();
    // A received message whose lane is full waits here, and nothing more is received, until
    // the lane has room; the loop never awaits a lane inside a branch, because a full lane
    // may itself be waiting for this loop to publish its records.
    let mut waiting: Option<(usize, Message)> = None;
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => {
                // What is done is committed before leaving, so a clean stop redelivers nothing.
                let marks = std::mem::take(&mut dirty);
                break commit_done(consumer.as_mut(), marks, &in_flight, &highest_done, &mut committed).await;
            }
            Some((records, ack)) = publish_rx.recv() => {
                publishing.push(async move {
                    let result = bus.publish(records).await.map_err(|e| e.to_string());
                    let _ = ack.send(result);
                });
            }
            Some(()) = futures::StreamExt::next(&mut publishing), if !publishing.is_empty() => {}
            Some(ended) = workers.join_next(), if !workers.is_empty() => {
                let why = match ended {
                    Err(join) if join.is_panic() => "its handler panicked",
                    _ => "it ended",
                };
                break Err(BusError::Receive {
                    reason: format!("a lane of group {group} stopped: {why}"),
                });
            }
            Some(first) = done_rx.recv() => {
                // Take every completion that is ready; commit a little later, once for all.
                let mut next = Some(first);
                let mut failed = None;
                while let Some(done) = next.take() {
                    match done {
                        Ok(msg) => {
                            let key = (msg.topic, msg.partition);
                            in_flight.entry(key.clone()).or_default().remove(&msg.offset);
                            let high = highest_done.entry(key.clone()).or_insert(msg.offset);
                            *high = (*high).max(msg.offset);
                            dirty.insert(key);
                        }
                        Err(err) => failed = Some(err),
                    }
                    next = done_rx.try_recv().ok();
                }
                if let Some(err) = failed {
                    break Err(err);
                }
                commit_at.get_or_insert_with(|| tokio::time::Instant::now() + COMMIT_INTERVAL);
            }
            _ = crate::deadline::reached(commit_at), if commit_at.is_some() => {
                commit_at = None;
                let marks = std::mem::take(&mut dirty);
                if let Err(err) = commit_done(consumer.as_mut(), marks, &in_flight, &highest_done, &mut committed).await {
                    break Err(err);
                }
            }
            room = lane_room(&senders, waiting.as_ref().map(|(lane, _)| *lane)), if waiting.is_some() => {
                match (room, waiting.take()) {
                    (Ok(permit), Some((_, msg))) => permit.send(msg),
                    (_, lost) => break Err(lane_stopped(group, lost.map_or(0, |(lane, _)| lane))),
                }
            }
            msg = consumer.recv(), if waiting.is_none() => {
                let msg = match msg {
                    Ok(msg) => msg,
                    Err(err) => break Err(err),
                };
                in_flight.entry((msg.topic.clone(), msg.partition)).or_default().insert(msg.offset);
                let lane = lane_of(lane_key(&msg), lanes);
                match senders[lane].try_send(msg) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Full(msg)) => waiting = Some((lane, msg)),
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break Err(lane_stopped(group, lane)),
                }
            }
        }
    };
    workers.abort_all();
    outcome
}

/// The error of a worker whose lane ended (only a panicking handler ends one): the worker
/// stops with it rather than silently, and its message is redelivered after a restart.
fn lane_stopped(group: &str, lane: usize) -> BusError {
    BusError::Receive {
        reason: format!("lane {lane} of group {group} stopped: its handler panicked"),
    }
}

/// Room for one message in `lane`'s queue; never resolves without a lane.
async fn lane_room(
    senders: &[tokio::sync::mpsc::Sender<Message>],
    lane: Option<usize>,
) -> Result<tokio::sync::mpsc::Permit<'_, Message>, tokio::sync::mpsc::error::SendError<()>> {
    match lane.and_then(|lane| senders.get(lane)) {
        Some(sender) => sender.reserve().await,
        None => std::future::pending().await,
    }
}

/// Commits, for each partition in `marks`, everything below its oldest message still in
/// flight (or up to its highest done message when none is).
async fn commit_done(
    consumer: &mut dyn crate::Consumer,
    marks: BTreeSet<(String, i32)>,
    in_flight: &HashMap<(String, i32), BTreeSet<i64>>,
    highest_done: &HashMap<(String, i32), i64>,
    committed: &mut HashMap<(String, i32), i64>,
) -> Result<(), BusError> {
    for key in marks {
        let point = match in_flight.get(&key).and_then(|p| p.first()) {
            Some(low) => low - 1,
            None => highest_done.get(&key).copied().unwrap_or(-1),
        };
        if point <= committed.get(&key).copied().unwrap_or(-1) {
            continue;
        }
        let marker = Message {
            topic: key.0.clone(),
            partition: key.1,
            offset: point,
            key: None,
            payload: Vec::new(),
            headers: Vec::new(),
        };
        consumer.commit(&marker).await?;
        committed.insert(key, point);
    }
    Ok(())
}

/// The lane `key` lands in among `lanes` (a stable hash, so one key always lands in the same
/// lane; tests use it to pick keys in different lanes).
pub fn lane_of(key: &[u8], lanes: usize) -> usize {
    let lanes = lanes.max(1);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % lanes as u64) as usize
}
