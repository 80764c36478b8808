//! Live consumers that keep a projection's live generation up to date.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bus::{Message, MessageBus};
use eventstore::{EventStore, Position, RecordedEvent};
use futures::StreamExt;

use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::read_models::{ReadModels, SOURCE_ALL};

/// Most events applied in one transaction.
const BATCH: usize = 500;
/// How long a Kafka batch waits to fill up.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// How long applied Kafka messages wait before their offsets are committed (one commit per
/// partition covers every batch applied meanwhile; a crash redelivers them, and redelivered
/// events are skipped by stream version).
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// Wait before retrying a batch the read-model database refused.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Feeds `projection` straight from the event store's `$all` (embedded mode), checkpointing in
/// the batch's transaction; runs until `shutdown` resolves.
pub async fn run_from_store(
    models: ReadModels,
    projection: Arc<dyn Projection>,
    store: Arc<dyn EventStore>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ProjectionError> {
    models.register(projection.as_ref()).await?;
    let from = models
        .checkpoint(projection.as_ref(), SOURCE_ALL)
        .await?
        .unwrap_or(Position::START);
    tracing::info!(projection = projection.name(), position = %from, "projection following the event store");
    let mut events = store.subscribe_all(from).ready_chunks(BATCH);
    tokio::pin!(shutdown);
    loop {
        let chunk = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            chunk = events.next() => chunk,
        };
        let Some(chunk) = chunk else { return Ok(()) };
        let mut batch = Vec::with_capacity(chunk.len());
        for item in chunk {
            match item {
                Ok(event) => batch.push(event),
                Err(err) => {
                    metrics::counter!("projection_read_errors_total", "projection" => projection.name())
                        .increment(1);
                    tracing::warn!(projection = projection.name(), error = %err, "projection read failed; the subscription retries");
                }
            }
        }
        if !batch.is_empty() {
            apply_with_retry(&models, projection.as_ref(), &batch, Some(SOURCE_ALL)).await?;
        }
    }
}

/// Which of the relay's topics a bus-fed runner follows, and as which consumer group.
#[derive(Debug, Clone, Copy)]
pub struct BusFeed<'a> {
    /// The consumer group.
    pub group: &'a str,
    /// Prefix of the relay's topics.
    pub topic_prefix: &'a str,
    /// Partitions of the topics created when missing (as the relay would create them).
    pub partitions: i32,
}

/// Feeds `projection` from the relay's Kafka topics as consumer group `feed.group`; commits offsets
/// only after the batch's transaction committed. When a stream's events arrive with a gap
/// (a record lost to retention, or reordered), the missing events are read from `store`
/// first. Runs until `shutdown` resolves.
pub async fn run_from_bus(
    models: ReadModels,
    projection: Arc<dyn Projection>,
    bus: Arc<dyn MessageBus>,
    store: Arc<dyn EventStore>,
    feed: BusFeed<'_>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ProjectionError> {
    run_all_from_bus(models, vec![projection], bus, store, feed, shutdown).await
}

/// Feeds every projection in `projections` from one consumer group `feed.group` over the union of
/// their topics: each record is fetched and decoded once, each projection applies the batch's
/// events of its categories in its own transaction, and offsets are committed (at most every
/// [`COMMIT_INTERVAL`], and on shutdown) only after every projection committed. Gaps are
/// filled from `store` as in [`run_from_bus`]. Runs until `shutdown` resolves.
pub async fn run_all_from_bus(
    models: ReadModels,
    projections: Vec<Arc<dyn Projection>>,
    bus: Arc<dyn MessageBus>,
    store: Arc<dyn EventStore>,
    feed: BusFeed<'_>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ProjectionError> {
    let BusFeed {
        group,
        topic_prefix,
        partitions,
    } = feed;
    for projection in &projections {
        models.register(projection.as_ref()).await?;
    }
    let mut topics: Vec<String> = projections
        .iter()
        .flat_map(|p| p.categories().iter())
        .map(|c| relay::topic_for(topic_prefix, c))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    bus.ensure_topics(&topic_refs, partitions).await?;
    // Read models take what is new in batches; nobody waits on one record.
    let mut consumer = bus
        .subscribe_at(group, &topic_refs, bus::Pace::Batched)
        .await?;
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    tracing::info!(
        projections = ?names,
        group,
        ?topics,
        "projections following the bus"
    );
    // The last applied message of each partition not committed yet, and when to commit.
    let mut pending: HashMap<(String, i32), Message> = HashMap::new();
    let mut commit_at: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => return commit_pending(consumer.as_mut(), &mut pending).await,
            _ = bus::deadline::reached(commit_at), if commit_at.is_some() => {
                commit_at = None;
                commit_pending(consumer.as_mut(), &mut pending).await?;
                continue;
            }
            msg = consumer.recv() => msg?,
        };
        let mut messages = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while messages.len() < BATCH {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(msg) => messages.push(msg?),
                Err(_elapsed) => break,
            }
        }
        let events = messages
            .iter()
            .map(decode)
            .collect::<Result<Vec<RecordedEvent>, _>>()?;
        for projection in &projections {
            // A projection with nothing in the batch costs no transaction.
            if events.iter().any(|e| projection.reads(e)) {
                apply_filling_gaps(&models, projection.as_ref(), store.as_ref(), &events).await?;
            }
        }
        for msg in messages {
            pending.insert((msg.topic.clone(), msg.partition), msg);
        }
        commit_at.get_or_insert_with(|| tokio::time::Instant::now() + COMMIT_INTERVAL);
    }
}

/// Commits the offset after each message in `pending` and forgets them.
async fn commit_pending(
    consumer: &mut dyn bus::Consumer,
    pending: &mut HashMap<(String, i32), Message>,
) -> Result<(), ProjectionError> {
    for (_, msg) in pending.drain() {
        consumer.commit(&msg).await?;
    }
    Ok(())
}

/// Most gaps filled for one batch before giving up (each fill applies a whole missing range).
const MAX_GAP_FILLS: usize = 100;

/// Applies a batch from the bus; a gap in a stream is filled from the event store first.
async fn apply_filling_gaps(
    models: &ReadModels,
    projection: &dyn Projection,
    store: &dyn EventStore,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    for _ in 0..MAX_GAP_FILLS {
        match apply_with_retry(models, projection, events, None).await {
            Err(ProjectionError::Gap {
                stream,
                applied,
                received,
            }) => {
                let id = eventstore::StreamId::parse(stream.clone())?;
                let missing =
                    usize::try_from(received.saturating_sub(applied + 1)).unwrap_or(usize::MAX);
                let fill = store
                    .read_stream(
                        &id,
                        eventstore::Direction::Forward,
                        Some(applied + 1),
                        missing,
                    )
                    .await?;
                if fill.is_empty() {
                    return Err(ProjectionError::Gap {
                        stream,
                        applied,
                        received,
                    });
                }
                metrics::counter!("projection_gaps_filled_total", "projection" => projection.name())
                    .increment(1);
                tracing::warn!(
                    projection = projection.name(),
                    stream,
                    applied,
                    received,
                    filled = fill.len(),
                    "filled a gap from the event store"
                );
                apply_with_retry(models, projection, &fill, None).await?;
            }
            other => return other,
        }
    }
    Err(ProjectionError::Decode {
        event_id: "batch".into(),
        reason: "too many gaps in one batch".into(),
    })
}

/// Decodes the relay's JSON envelope.
fn decode(msg: &Message) -> Result<RecordedEvent, ProjectionError> {
    serde_json::from_slice(&msg.payload).map_err(|e| ProjectionError::Decode {
        event_id: format!("{}/{}@{}", msg.topic, msg.partition, msg.offset),
        reason: e.to_string(),
    })
}

/// Applies a batch, retrying while the read-model database is unavailable; other failures
/// (a gap, an undecodable event) stop the consumer.
async fn apply_with_retry(
    models: &ReadModels,
    projection: &dyn Projection,
    events: &[RecordedEvent],
    source: Option<&str>,
) -> Result<(), ProjectionError> {
    let mut attempt: u32 = 0;
    loop {
        match models.apply_batch(projection, events, source).await {
            Ok(applied) => {
                tracing::debug!(
                    projection = projection.name(),
                    applied = applied.applied,
                    duplicates = applied.duplicates,
                    "batch applied"
                );
                return Ok(());
            }
            Err(ProjectionError::Database(err)) if attempt < 20 => {
                attempt += 1;
                metrics::counter!("projection_errors_total", "projection" => projection.name())
                    .increment(1);
                tracing::error!(projection = projection.name(), error = %err, attempt, "projection batch failed; retrying");
                tokio::time::sleep(RETRY_AFTER * attempt.min(10)).await;
            }
            Err(err) => {
                metrics::counter!("projection_errors_total", "projection" => projection.name())
                    .increment(1);
                tracing::error!(projection = projection.name(), error = %err, code = err.code(), "projection stopped");
                return Err(err);
            }
        }
    }
}
