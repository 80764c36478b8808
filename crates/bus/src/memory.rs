//! The embedded adapter: an in-process partitioned log with consumer groups.
//!
//! Each topic has a fixed number of partitions; a record goes to the partition chosen by a
//! stable hash of its key (FNV-1a, the same in every run and build), so records with one key
//! keep their order. Each partition is an append-only log held in memory for the life of the
//! bus (nothing is ever deleted). A consumer group keeps a committed offset per partition.
//!
//! Partition assignment: every live consumer of a group is a member; each join or leave (a
//! consumer dropped) starts a new generation, and for every topic the partitions are dealt
//! round-robin over the members subscribed to it, in join order (partition `p` goes to member
//! `p % n`). When a consumer sees a new generation it restarts every assigned partition from
//! the group's committed offset (like Kafka's eager rebalance), so messages it had received
//! but not committed are delivered again: at-least-once. A consumer may only commit
//! partitions assigned to it in the current generation. Waiting consumers are woken by a
//! [`Notify`] on every publish and every membership change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::{BusError, Consumer, Message, MessageBus, OutgoingRecord};

/// The embedded, in-process message bus; clones share the same topics and groups.
#[derive(Clone, Default)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").finish_non_exhaustive()
    }
}

/// What every clone of the bus and every consumer shares.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
    next_member: AtomicU64,
}

impl Shared {
    /// Locks the state; a panic in another holder cannot leave it half-updated, so poison is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    groups: HashMap<String, Group>,
}

/// A topic: one append-only log per partition.
struct Topic {
    partitions: Vec<Vec<Message>>,
}

/// A partition of a topic.
type TopicPartition = (String, i32);

/// A consumer group: its live members and its committed offsets.
#[derive(Default)]
struct Group {
    /// Member id (increasing in join order) to the topics it subscribed to.
    members: BTreeMap<u64, Vec<String>>,
    /// Bumped on every join and leave.
    generation: u64,
    /// The next offset to read, per partition.
    committed: HashMap<TopicPartition, i64>,
}

impl Group {
    /// The partitions assigned to `member` in the current generation.
    fn assignment(&self, member: u64, topics: &HashMap<String, Topic>) -> Vec<TopicPartition> {
        let Some(own_topics) = self.members.get(&member) else {
            return Vec::new();
        };
        let mut assigned = Vec::new();
        for topic in own_topics {
            let Some(log) = topics.get(topic) else {
                continue;
            };
            let subscribers: Vec<u64> = self
                .members
                .iter()
                .filter(|(_, t)| t.contains(topic))
                .map(|(id, _)| *id)
                .collect();
            let Some(slot) = subscribers.iter().position(|id| *id == member) else {
                continue;
            };
            for partition in 0..log.partitions.len() {
                if partition % subscribers.len() == slot {
                    assigned.push((topic.clone(), partition as i32));
                }
            }
        }
        assigned
    }
}

/// The partition a key goes to: FNV-1a (32 bit) of the key's bytes, modulo the partition count.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as usize % partitions.max(1)
}

impl MemoryBus {
    /// An empty bus with no topics.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl MessageBus for MemoryBus {
    async fn ensure_topics(&self, topics: &[&str], partitions: i32) -> Result<(), BusError> {
        crate::check_topics_request(topics, partitions)?;
        let mut state = self.shared.lock();
        for topic in topics {
            // Like Kafka: an existing topic keeps its partition count.
            state.topics.entry((*topic).to_owned()).or_insert_with(|| {
                tracing::debug!(topic = %topic, partitions, "topic created");
                Topic {
                    partitions: (0..partitions).map(|_| Vec::new()).collect(),
                }
            });
        }
        drop(state);
        // New topics can change assignments of members already subscribed to them.
        self.shared.changed.notify_waiters();
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<Option<i32>, BusError> {
        let state = self.shared.lock();
        Ok(state
            .topics
            .get(topic)
            .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX)))
    }

    async fn publish(&self, records: Vec<OutgoingRecord>) -> Result<(), BusError> {
        if records.is_empty() {
            return Ok(());
        }
        let total = records.len();
        {
            let mut state = self.shared.lock();
            // Check every topic first so that a failed batch is certainly aborted.
            if let Some(missing) = records
                .iter()
                .find(|r| !state.topics.contains_key(&r.topic))
            {
                return Err(BusError::UnknownTopic(missing.topic.clone()));
            }
            for record in records {
                let Some(topic) = state.topics.get_mut(&record.topic) else {
                    return Err(BusError::UnknownTopic(record.topic));
                };
                let partition = partition_for(record.key.as_bytes(), topic.partitions.len());
                let log = &mut topic.partitions[partition];
                log.push(Message {
                    offset: log.len() as i64,
                    partition: partition as i32,
                    key: Some(record.key.into_bytes()),
                    topic: record.topic,
                    payload: record.payload,
                    headers: record.headers,
                });
            }
        }
        self.shared.changed.notify_waiters();
        tracing::debug!(records = total, "records published");
        Ok(())
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        crate::check_group_name(group)?;
        crate::check_topic_names(topics)?;
        let member = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.shared.lock();
            if let Some(missing) = topics.iter().find(|t| !state.topics.contains_key(**t)) {
                return Err(BusError::UnknownTopic((*missing).to_owned()));
            }
            let entry = state.groups.entry(group.to_owned()).or_default();
            entry
                .members
                .insert(member, topics.iter().map(|t| (*t).to_owned()).collect());
            entry.generation += 1;
        }
        self.shared.changed.notify_waiters();
        tracing::info!(group, ?topics, member, "consumer joined group");
        Ok(Box::new(MemoryConsumer {
            shared: Arc::clone(&self.shared),
            group: group.to_owned(),
            member,
            generation: 0,
            positions: Vec::new(),
            next: 0,
        }))
    }

    fn adapter(&self) -> &'static str {
        "memory"
    }
}

/// A member of a consumer group on the [`MemoryBus`]; leaves the group when dropped.
pub struct MemoryConsumer {
    shared: Arc<Shared>,
    group: String,
    member: u64,
    /// The group generation the positions belong to (0: none yet).
    generation: u64,
    /// Assigned partitions and the next offset to read in each.
    positions: Vec<(TopicPartition, i64)>,
    /// Where the next scan starts, so that no partition starves the others.
    next: usize,
}

impl MemoryConsumer {
    /// Takes the next available message from the assigned partitions, if any.
    fn try_next(&mut self) -> Option<Message> {
        let state = self.shared.lock();
        let group = state.groups.get(&self.group)?;
        if group.generation != self.generation {
            self.positions = group
                .assignment(self.member, &state.topics)
                .into_iter()
                .map(|tp| {
                    let offset = group.committed.get(&tp).copied().unwrap_or(0);
                    (tp, offset)
                })
                .collect();
            self.generation = group.generation;
            self.next = 0;
            tracing::debug!(
                group = %self.group,
                member = self.member,
                generation = self.generation,
                partitions = self.positions.len(),
                "assignment changed"
            );
        }
        let count = self.positions.len();
        for step in 0..count {
            let index = (self.next + step) % count;
            let ((topic, partition), offset) = &mut self.positions[index];
            let Some(log) = state
                .topics
                .get(topic.as_str())
                .and_then(|t| t.partitions.get(*partition as usize))
            else {
                continue;
            };
            if let Some(message) = usize::try_from(*offset).ok().and_then(|o| log.get(o)) {
                *offset += 1;
                self.next = (index + 1) % count;
                return Some(message.clone());
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl Consumer for MemoryConsumer {
    async fn recv(&mut self) -> Result<Message, BusError> {
        loop {
            // Register interest before looking, so a publish in between is not missed.
            let shared = Arc::clone(&self.shared);
            let changed = shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(message) = self.try_next() {
                return Ok(message);
            }
            changed.await;
        }
    }

    async fn commit(&mut self, message: &Message) -> Result<(), BusError> {
        let offset = message.offset + 1;
        let failure = |reason: &str| BusError::Commit {
            topic: message.topic.clone(),
            partition: message.partition,
            offset,
            reason: reason.to_owned(),
        };
        let mut state = self.shared.lock();
        let state = &mut *state;
        let Some(group) = state.groups.get_mut(&self.group) else {
            return Err(failure("the consumer is not a member of its group"));
        };
        let tp = (message.topic.clone(), message.partition);
        if !group.assignment(self.member, &state.topics).contains(&tp) {
            return Err(failure(
                "the partition is not assigned to this consumer (the group rebalanced)",
            ));
        }
        group.committed.insert(tp, offset);
        Ok(())
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            if let Some(group) = state.groups.get_mut(&self.group) {
                group.members.remove(&self.member);
                group.generation += 1;
            }
        }
        self.shared.changed.notify_waiters();
        tracing::info!(group = %self.group, member = self.member, "consumer left group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_stable_and_in_range() {
        // Fixed values: the mapping must never change between builds.
        assert_eq!(partition_for(b"", 4), 0x811c_9dc5 % 4);
        assert_eq!(partition_for(b"a", 1_000_000), 0xe40c_292c % 1_000_000);
        for key in ["order-1", "order-2", "x"] {
            let p = partition_for(key.as_bytes(), 7);
            assert!(p < 7);
            assert_eq!(p, partition_for(key.as_bytes(), 7));
        }
        assert_eq!(partition_for(b"anything", 0), 0);
    }

    #[tokio::test]
    async fn publish_to_unknown_topic_writes_nothing() {
        let bus = MemoryBus::new();
        bus.ensure_topics(&["known"], 1).await.unwrap();
        let err = bus
            .publish(vec![
                OutgoingRecord::new("known", "k", b"1".to_vec()),
                OutgoingRecord::new("missing", "k", b"2".to_vec()),
            ])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "BUS_UNKNOWN_TOPIC");
        assert!(!err.may_have_written());
        let state = bus.shared.lock();
        assert!(state.topics["known"].partitions[0].is_empty());
    }

    #[tokio::test]
    async fn rejects_bad_arguments() {
        let bus = MemoryBus::new();
        assert_eq!(
            bus.ensure_topics(&["t"], 0).await.unwrap_err().code(),
            "BUS_INVALID_ARGUMENT"
        );
        assert_eq!(
            bus.ensure_topics(&[], 1).await.unwrap_err().code(),
            "BUS_INVALID_ARGUMENT"
        );
        assert_eq!(
            bus.subscribe("g", &["nope"]).await.err().map(|e| e.code()),
            Some("BUS_UNKNOWN_TOPIC")
        );
        bus.ensure_topics(&["t"], 1).await.unwrap();
        assert_eq!(
            bus.subscribe("", &["t"]).await.err().map(|e| e.code()),
            Some("BUS_INVALID_ARGUMENT")
        );
    }

    #[tokio::test]
    async fn members_of_a_group_split_partitions_and_take_over_on_leave() {
        let bus = MemoryBus::new();
        bus.ensure_topics(&["t"], 4).await.unwrap();
        let mut first = bus.subscribe("g", &["t"]).await.unwrap();
        let mut second = bus.subscribe("g", &["t"]).await.unwrap();
        // 40 keys spread over all 4 partitions.
        let records = (0..40)
            .map(|i| OutgoingRecord::new("t", format!("key-{i}"), vec![i as u8]))
            .collect();
        bus.publish(records).await.unwrap();

        let mut seen_first = Vec::new();
        let mut seen_second = Vec::new();
        loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_millis(50), first.recv()).await;
            let Ok(message) = next else { break };
            seen_first.push(message.unwrap());
        }
        loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_millis(50), second.recv()).await;
            let Ok(message) = next else { break };
            seen_second.push(message.unwrap());
        }
        assert_eq!(seen_first.len() + seen_second.len(), 40);
        assert!(seen_first.iter().all(|m| m.partition % 2 == 0));
        assert!(seen_second.iter().all(|m| m.partition % 2 == 1));

        // The second commits what it read, then leaves: the first takes over its partitions
        // from the committed offsets and sees nothing twice from them.
        for message in &seen_second {
            second.commit(message).await.unwrap();
        }
        // Committing a partition owned by another member is refused.
        let err = second.commit(&seen_first[0]).await.unwrap_err();
        assert_eq!(err.code(), "BUS_COMMIT_FAILED");
        drop(second);
        bus.publish(vec![OutgoingRecord::new("t", "late", b"late".to_vec())])
            .await
            .unwrap();
        let mut after = Vec::new();
        while let Ok(message) =
            tokio::time::timeout(std::time::Duration::from_millis(50), first.recv()).await
        {
            after.push(message.unwrap());
        }
        // Nothing of the first's own partitions was committed, so they are redelivered
        // (at-least-once), the second's committed ones are not, and the late record arrives.
        let late = after.iter().filter(|m| m.payload == b"late").count();
        assert_eq!(late, 1);
        assert_eq!(after.len(), seen_first.len() + 1);
    }
}
