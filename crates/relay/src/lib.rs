//! The outbox relay: publishes every committed event of the event store to the message bus.
//!
//! It follows `$all` from its checkpoint, publishes each batch to one topic per stream
//! category (`order.events`, `inventory.events`, ...) keyed by stream id so each entity's
//! events stay in order, waits until the broker acknowledges the whole batch, and only then
//! saves its position in the event store's database (at most every `checkpoint_every`, and
//! when it stops). Delivery is therefore at least once: after
//! a crash of the relay or an outage of the broker it resumes from the last acknowledged batch
//! and may publish a few events again, so consumers must be idempotent (by event id). The relay
//! never decides business outcomes and never writes events.

mod record;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bus::MessageBus;
use eventstore::{EventStore, Position, RecordedEvent};
use futures::StreamExt;

pub use record::{HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_POSITION, to_record, topic_for};

/// How the relay names its checkpoint and topics and how it batches.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Checkpoint name in the event store (one per relay deployment).
    pub name: String,
    /// Prepended to every topic name (empty in production; unique in tests).
    pub topic_prefix: String,
    /// Most events published in one batch. Each batch waits out the producer's linger before
    /// it is acknowledged, so catching up goes in large batches (10,000 by default: as many
    /// as librdkafka puts in one message set).
    pub batch_size: usize,
    /// Partitions for topics the relay creates.
    pub partitions: i32,
    /// Wait before retrying a batch the broker did not acknowledge.
    pub retry_after: Duration,
    /// How long an acknowledged position may wait before it is saved: one save covers every
    /// batch acknowledged meanwhile (after a crash those batches are published again).
    pub checkpoint_every: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: "relay".to_owned(),
            topic_prefix: String::new(),
            batch_size: 10_000,
            partitions: 6,
            retry_after: Duration::from_millis(500),
            checkpoint_every: Duration::from_millis(100),
        }
    }
}

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The checkpoint could not be read or written.
    #[error("relay checkpoint: {0}")]
    Checkpoint(#[source] eventstore::StoreError),
    /// An event could not be encoded as a record (nothing was published past it).
    #[error("relay cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl RelayError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Checkpoint(_) => "RELAY_CHECKPOINT",
            Self::Encode(_) => "RELAY_ENCODE",
        }
    }
}

/// Publishes committed events to the bus, at least once, in per-stream order.
pub struct Relay {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn MessageBus>,
    config: RelayConfig,
    known_topics: HashSet<String>,
}

impl Relay {
    /// A relay from `store` to `bus`.
    pub fn new(store: Arc<dyn EventStore>, bus: Arc<dyn MessageBus>, config: RelayConfig) -> Self {
        Self {
            store,
            bus,
            config,
            known_topics: HashSet::new(),
        }
    }

    /// Runs until `shutdown` resolves; returns only on shutdown or a checkpoint failure.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), RelayError> {
        let start = self
            .store
            .load_checkpoint(&self.config.name)
            .await
            .map_err(RelayError::Checkpoint)?
            .unwrap_or(Position::START);
        tracing::info!(relay = %self.config.name, position = %start, bus = self.bus.adapter(), "relay starting");
        let mut events = self
            .store
            .subscribe_all(start)
            .ready_chunks(self.config.batch_size.max(1));
        // The last acknowledged position not saved yet, and when to save it.
        let mut unsaved: Option<Position> = None;
        let mut save_at: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let chunk = tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!(relay = %self.config.name, "relay stopping");
                    return self.save(unsaved).await;
                }
                _ = bus::deadline::reached(save_at), if save_at.is_some() => {
                    save_at = None;
                    self.save(unsaved.take()).await?;
                    continue;
                }
                chunk = events.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return self.save(unsaved).await;
            };
            let mut batch = Vec::with_capacity(chunk.len());
            for item in chunk {
                match item {
                    Ok(event) => batch.push(event),
                    Err(err) => {
                        // The subscription retries by itself from the same position.
                        metrics::counter!("relay_read_errors_total").increment(1);
                        tracing::warn!(relay = %self.config.name, error = %err, "relay read failed");
                    }
                }
            }
            let Some(last) = batch.last().map(|e| e.position) else {
                continue;
            };
            // A broker outage keeps the batch retrying; a stop must still get through (the
            // batch is not acknowledged, so it is published again after a restart).
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!(relay = %self.config.name, "relay stopping during a publish");
                    return self.save(unsaved).await;
                }
                published = self.publish_until_acknowledged(&batch) => published?,
            }
            unsaved = Some(last);
            save_at
                .get_or_insert_with(|| tokio::time::Instant::now() + self.config.checkpoint_every);
            metrics::counter!("relay_events_published_total").increment(batch.len() as u64);
            metrics::gauge!("relay_position").set(last.0 as f64);
        }
    }

    /// Saves `position` as the relay's checkpoint, if there is one.
    async fn save(&self, position: Option<Position>) -> Result<(), RelayError> {
        match position {
            Some(position) => self
                .store
                .save_checkpoint(&self.config.name, position)
                .await
                .map_err(RelayError::Checkpoint),
            None => Ok(()),
        }
    }

    /// Publishes a batch, retrying until the broker acknowledges all of it.
    async fn publish_until_acknowledged(
        &mut self,
        batch: &[RecordedEvent],
    ) -> Result<(), RelayError> {
        let records = batch
            .iter()
            .map(|e| to_record(&self.config.topic_prefix, e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut attempt: u32 = 0;
        loop {
            if let Err(err) = self.ensure_topics(&records).await {
                tracing::warn!(relay = %self.config.name, error = %err, "relay cannot create topics; retrying");
            } else {
                match self.bus.publish(records.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(err) => {
                        // A restarted broker may have lost its topics: create them again.
                        self.known_topics.clear();
                        metrics::counter!("relay_publish_errors_total").increment(1);
                        tracing::warn!(relay = %self.config.name, error = %err, attempt, "relay publish failed; retrying the batch");
                    }
                }
            }
            attempt = attempt.saturating_add(1);
            let backoff = self.config.retry_after * attempt.min(10);
            tokio::time::sleep(backoff).await;
        }
    }

    async fn ensure_topics(
        &mut self,
        records: &[bus::OutgoingRecord],
    ) -> Result<(), bus::BusError> {
        let new: Vec<&str> = records
            .iter()
            .map(|r| r.topic.as_str())
            .filter(|t| !self.known_topics.contains(*t))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        self.bus.ensure_topics(&new, self.config.partitions).await?;
        self.known_topics.extend(new.into_iter().map(str::to_owned));
        Ok(())
    }
}
