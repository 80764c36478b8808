//! A consumer of its own group on the event topics that notes when chosen events arrive from
//! Kafka, so the relay's share of a hop (commit → on the topic → delivered to a consumer) can
//! be told apart from the queue of the consumer that reacts to it. Every tenth message it also
//! commits its offset synchronously, as the workers do after every message, and times that.

use std::sync::Arc;

use bus::MessageBus;
use chrono::{DateTime, Utc};
use eventstore::RecordedEvent;
use tokio::task::JoinHandle;

/// The event types whose arrival is noted.
pub const WATCHED: [&str; 2] = ["OrderPlaced", "PaymentConfirmed"];

/// One noted event: its type, when the store committed it, when it arrived from Kafka.
pub type Arrival = (String, DateTime<Utc>, DateTime<Utc>);

/// Every this many messages the spectator commits its offset synchronously, as every worker
/// does after every message, and times the commit.
const COMMIT_EVERY: u64 = 10;

/// What the spectator saw.
#[derive(Default)]
pub struct Seen {
    /// The watched events that arrived.
    pub arrivals: Vec<Arrival>,
    /// (when, how long) of each timed offset commit.
    pub commits: Vec<(DateTime<Utc>, std::time::Duration)>,
}

/// A running spectator.
pub struct Spectator {
    task: JoinHandle<Seen>,
    stop: tokio_util::sync::CancellationToken,
    first: tokio::sync::watch::Receiver<bool>,
}

impl Spectator {
    /// Subscribes group `{prefix}bench-spectator` to the order, payment and inventory event
    /// topics (the last only to tell when it has joined: see [`Spectator::joined`]).
    pub async fn start(bus: Arc<dyn MessageBus>, prefix: &str) -> anyhow::Result<Self> {
        let topics = [
            relay::topic_for(prefix, "order"),
            relay::topic_for(prefix, "payment"),
            relay::topic_for(prefix, "inventory"),
        ];
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        let mut consumer = bus
            .subscribe(&format!("{prefix}bench-spectator"), &refs)
            .await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let (received, first) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut count = 0u64;
            loop {
                let message = tokio::select! {
                    _ = stopped.cancelled() => return seen,
                    message = consumer.recv() => message,
                };
                let arrived = Utc::now();
                received.send_if_modified(|got| !std::mem::replace(got, true));
                let Ok(message) = message else { continue };
                count += 1;
                if count.is_multiple_of(COMMIT_EVERY) {
                    let started = std::time::Instant::now();
                    if consumer.commit(&message).await.is_ok() {
                        seen.commits.push((arrived, started.elapsed()));
                    }
                }
                let Ok(event) = serde_json::from_slice::<RecordedEvent>(&message.payload) else {
                    continue;
                };
                if WATCHED.contains(&event.event_type.as_str()) {
                    seen.arrivals
                        .push((event.event_type, event.recorded_at, arrived));
                }
            }
        });
        Ok(Self { task, stop, first })
    }

    /// Waits until the first message arrived (the group join, which takes seconds, is over),
    /// at most `timeout`; returns whether it did.
    pub async fn joined(&mut self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, self.first.wait_for(|got| *got))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops and returns what it saw.
    pub async fn finish(self) -> Seen {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}
