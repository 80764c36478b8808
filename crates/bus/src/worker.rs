//! A command worker: consumes a topic in a consumer group, hands each message to a handler,
//! publishes what the handler returns, and commits only after that.
//!
//! Delivery is at least once, so handlers must be idempotent. A handler failure is logged and
//! the same message is retried after a back-off (never skipped); the consumer does not advance
//! past it.

use std::future::Future;
use std::time::Duration;

use crate::{BusError, Message, MessageBus, OutgoingRecord};

/// Longest back-off between retries of a failing message.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `handler` over every message of `topics` for group `group` until `shutdown` resolves.
pub async fn run_worker<B, F, Fut, E>(
    bus: &B,
    group: &str,
    topics: &[&str],
    mut handler: F,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BusError>
where
    B: MessageBus + ?Sized,
    F: FnMut(Message) -> Fut + Send,
    Fut: Future<Output = Result<Vec<OutgoingRecord>, E>> + Send,
    E: std::fmt::Display,
{
    let mut consumer = bus.subscribe(group, topics).await?;
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
