//! The message-bus port: how the platform publishes events and consumes them in consumer groups.
//!
//! Layout: [`record`] holds what goes onto the bus ([`OutgoingRecord`]) and what comes off it
//! ([`Message`]); [`error`] the one error type ([`BusError`], with stable codes); the
//! [`MessageBus`] and [`Consumer`] traits below are the port. Two adapters implement it with the
//! same guarantees: [`kafka`] ([`KafkaBus`], production, rdkafka with an idempotent `acks=all`
//! producer and manually committed consumer groups) and [`memory`] ([`MemoryBus`], embedded,
//! an in-process partitioned log with consumer groups and committed offsets). Both give
//! at-least-once delivery, per-key order, and resumption from the group's committed offset;
//! the contract suite in `tests/contract.rs` runs against both. [`merged`] receives several
//! subscriptions (each a group, topics and a [`Pace`]) as one consumer, and [`worker`] runs
//! handlers over a subscription.
//!
//! This crate must not know about events, aggregates or any domain type (payloads are bytes),
//! must not rely on Kafka transactions or `read_committed`, and must not read the environment:
//! binaries choose the adapter and pass its configuration in.

pub mod deadline;
pub mod error;
pub mod kafka;
pub mod memory;
pub mod merged;
pub mod record;
pub mod worker;

use std::sync::Arc;

pub use error::BusError;
pub use kafka::{DEFAULT_PROMPT_FETCH_WAIT, KafkaBus, KafkaConfig};
pub use memory::MemoryBus;
pub use merged::{Subscription, subscribe_merged};
pub use record::{Message, OutgoingRecord, dead_letter_topic};

/// The port: publish records and consume them in consumer groups.
#[async_trait::async_trait]
pub trait MessageBus: Send + Sync + 'static {
    /// Creates topics if they do not exist (idempotent).
    async fn ensure_topics(&self, topics: &[&str], partitions: i32) -> Result<(), BusError>;
    /// How many partitions `topic` has (`None`: it does not exist).
    async fn partitions(&self, topic: &str) -> Result<Option<i32>, BusError>;
    /// Publishes records; returns only when every record is acknowledged (acks=all). Order is preserved per key.
    async fn publish(&self, records: Vec<OutgoingRecord>) -> Result<(), BusError>;
    /// Joins consumer group `group` on `topics`, starting from the group's committed offsets (earliest when none).
    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError>;
    /// Like [`MessageBus::subscribe`], for a subscriber that receives at `pace`.
    async fn subscribe_at(
        &self,
        group: &str,
        topics: &[&str],
        pace: Pace,
    ) -> Result<Box<dyn Consumer>, BusError> {
        let _ = pace;
        self.subscribe(group, topics).await
    }
    /// Name of the adapter, for the startup log ("kafka", "memory").
    fn adapter(&self) -> &'static str;
}

/// How soon a subscriber wants new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// As soon as they are written: saga steps and commands, which someone waits for.
    #[default]
    Prompt,
    /// In bigger, later batches: read models, which nobody waits for record by record (the
    /// broker then answers fewer, larger fetches).
    Batched,
}

/// A member of a consumer group, receiving messages from the partitions assigned to it.
#[async_trait::async_trait]
pub trait Consumer: Send {
    /// Waits for the next message. Cancel-safe: a `recv` dropped before it completes takes no
    /// message (workers select over it, and [`subscribe_merged`] drops the parts that lose).
    async fn recv(&mut self) -> Result<Message, BusError>;
    /// Commits the group's offset for the message's partition so that it resumes after this message.
    async fn commit(&mut self, message: &Message) -> Result<(), BusError>;
}

#[async_trait::async_trait]
impl<T: MessageBus + ?Sized> MessageBus for Arc<T> {
    async fn ensure_topics(&self, topics: &[&str], partitions: i32) -> Result<(), BusError> {
        (**self).ensure_topics(topics, partitions).await
    }

    async fn partitions(&self, topic: &str) -> Result<Option<i32>, BusError> {
        (**self).partitions(topic).await
    }

    async fn publish(&self, records: Vec<OutgoingRecord>) -> Result<(), BusError> {
        (**self).publish(records).await
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        (**self).subscribe(group, topics).await
    }

    async fn subscribe_at(
        &self,
        group: &str,
        topics: &[&str],
        pace: Pace,
    ) -> Result<Box<dyn Consumer>, BusError> {
        (**self).subscribe_at(group, topics, pace).await
    }

    fn adapter(&self) -> &'static str {
        (**self).adapter()
    }
}

/// Checks the arguments every adapter's `ensure_topics` receives.
fn check_topics_request(topics: &[&str], partitions: i32) -> Result<(), BusError> {
    if partitions < 1 {
        return Err(BusError::InvalidArgument(format!(
            "a topic needs at least one partition, got {partitions}"
        )));
    }
    check_topic_names(topics)
}

/// Checks that a topic list is non-empty and holds no empty names.
fn check_topic_names(topics: &[&str]) -> Result<(), BusError> {
    if topics.is_empty() {
        return Err(BusError::InvalidArgument("no topics given".into()));
    }
    if topics.iter().any(|t| t.is_empty()) {
        return Err(BusError::InvalidArgument("empty topic name".into()));
    }
    Ok(())
}

/// Checks a consumer-group name.
fn check_group_name(group: &str) -> Result<(), BusError> {
    if group.is_empty() {
        return Err(BusError::InvalidArgument(
            "empty consumer group name".into(),
        ));
    }
    Ok(())
}
