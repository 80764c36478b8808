//! Several subscriptions received as one consumer, each fetched at its own pace: a worker that
//! must act on some topics at once and may take others in batches (a saga's replies against
//! the relayed events it mostly needs as a fallback) reads both through one [`Consumer`], and
//! the broker answers the batched topics' fetches far less often.
//!
//! Each subscription has its own consumer group. Two members of one group in one process
//! would leave it together on every shutdown, and tansu 0.6.0 keeps a departed leader when the
//! other member left first, so the next member of that group never gets an assignment.

use crate::{BusError, Consumer, Message, MessageBus, Pace};

/// What one part of a merged consumer subscribes to: a group, its topics and their pace.
#[derive(Debug, Clone, Copy)]
pub struct Subscription<'a> {
    /// The consumer group.
    pub group: &'a str,
    /// The topics it consumes.
    pub topics: &'a [&'a str],
    /// How soon it wants new records.
    pub pace: Pace,
}

impl<'a> Subscription<'a> {
    /// Group `group` on `topics` at `pace`.
    pub fn new(group: &'a str, topics: &'a [&'a str], pace: Pace) -> Self {
        Self {
            group,
            topics,
            pace,
        }
    }

    /// Group `group` on `topics`, fetched as soon as records arrive.
    pub fn prompt(group: &'a str, topics: &'a [&'a str]) -> Self {
        Self::new(group, topics, Pace::Prompt)
    }
}

/// Joins every subscription and receives from all of them as one consumer (a single
/// subscription is returned as it is). Each topic and each group may appear once, so that
/// each message is committed through the subscription that received it and no group gets two
/// members here.
pub async fn subscribe_merged<B: MessageBus + ?Sized>(
    bus: &B,
    subscriptions: &[Subscription<'_>],
) -> Result<Box<dyn Consumer>, BusError> {
    let mut topics: Vec<&str> = Vec::new();
    for topic in subscriptions.iter().flat_map(|s| s.topics.iter()) {
        if topics.contains(topic) {
            return Err(BusError::InvalidArgument(format!(
                "topic {topic} is named twice"
            )));
        }
        topics.push(topic);
    }
    let mut groups: Vec<&str> = Vec::new();
    for s in subscriptions {
        if groups.contains(&s.group) {
            return Err(BusError::InvalidArgument(format!(
                "group {} is named by two subscriptions",
                s.group
            )));
        }
        groups.push(s.group);
    }
    match subscriptions {
        [] => Err(BusError::InvalidArgument("no subscriptions given".into())),
        [one] => bus.subscribe_at(one.group, one.topics, one.pace).await,
        several => {
            let mut parts = Vec::with_capacity(several.len());
            for s in several {
                parts.push(Part {
                    group: s.group.to_owned(),
                    topics: s.topics.iter().map(|t| (*t).to_owned()).collect(),
                    consumer: bus.subscribe_at(s.group, s.topics, s.pace).await?,
                });
            }
            Ok(Box::new(MergedConsumer { parts, next: 0 }))
        }
    }
}

/// A subscription's group, topics and consumer.
struct Part {
    group: String,
    topics: Vec<String>,
    consumer: Box<dyn Consumer>,
}

/// Several consumers, received from in turn and committed through the one that owns the
/// message's topic.
pub(crate) struct MergedConsumer {
    parts: Vec<Part>,
    /// The part looked at first on the next receive, so a busy part cannot starve the others.
    next: usize,
}

#[async_trait::async_trait]
impl Consumer for MergedConsumer {
    async fn recv(&mut self) -> Result<Message, BusError> {
        let first = self.next % self.parts.len();
        self.next = first + 1;
        // Every adapter's `recv` is cancel-safe: the parts not chosen lose nothing.
        let (front, back) = self.parts.split_at_mut(first);
        let receiving = back
            .iter_mut()
            .chain(front.iter_mut())
            .map(|part| part.consumer.recv());
        let (message, index, _) = futures::future::select_all(receiving).await;
        // A failure names the subscription it came from (the worker's label names them all).
        message.map_err(|error| match error {
            BusError::Receive { reason } => {
                let part = &self.parts[(first + index) % self.parts.len()];
                BusError::Receive {
                    reason: format!("group {}: {reason}", part.group),
                }
            }
            other => other,
        })
    }

    async fn commit(&mut self, message: &Message) -> Result<(), BusError> {
        match self
            .parts
            .iter_mut()
            .find(|part| part.topics.contains(&message.topic))
        {
            Some(part) => part.consumer.commit(message).await,
            None => Err(BusError::InvalidArgument(format!(
                "no subscription of this consumer holds topic {}",
                message.topic
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::{MemoryBus, OutgoingRecord};

    async fn merged(bus: &MemoryBus) -> Box<dyn Consumer> {
        bus.ensure_topics(&["a", "b"], 2).await.unwrap();
        subscribe_merged(
            bus,
            &[
                Subscription::prompt("ga", &["a"]),
                Subscription::new("gb", &["b"], Pace::Batched),
            ],
        )
        .await
        .unwrap()
    }

    fn records(topic: &str, n: usize) -> Vec<OutgoingRecord> {
        (0..n)
            .map(|i| {
                OutgoingRecord::new(topic, format!("k{i}"), format!("{topic}{i}").into_bytes())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_busy_part_does_not_starve_the_other() {
        let bus = MemoryBus::new();
        let mut consumer = merged(&bus).await;
        let mut all = records("a", 100);
        all.extend(records("b", 1));
        bus.publish(all).await.unwrap();
        let first_two = [
            consumer.recv().await.unwrap(),
            consumer.recv().await.unwrap(),
        ];
        assert!(
            first_two.iter().any(|m| m.topic == "b"),
            "the quiet part's message waited behind the busy one"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receives_cut_short_lose_nothing_and_repeat_nothing() {
        let bus = MemoryBus::new();
        let mut consumer = merged(&bus).await;
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for round in 0..50 {
                    let mut batch = records("a", 4);
                    batch.extend(records("b", 4));
                    for r in &mut batch {
                        r.payload.extend_from_slice(format!("-{round}").as_bytes());
                    }
                    bus.publish(batch).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let mut seen = Vec::new();
        let mut cut_short = 0;
        while seen.len() < 400 {
            match tokio::time::timeout(Duration::from_micros(200), consumer.recv()).await {
                Ok(message) => seen.push(message.unwrap().payload),
                Err(_) => cut_short += 1,
            }
        }
        publisher.await.unwrap();
        assert!(
            cut_short > 0,
            "no receive was cut short; the test proves nothing"
        );
        let distinct: BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), 400, "a message came twice");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), consumer.recv())
                .await
                .is_err(),
            "more than was published"
        );
    }

    /// A consumer whose receive always fails, as a broken connection would make it.
    struct Broken;

    #[async_trait::async_trait]
    impl Consumer for Broken {
        async fn recv(&mut self) -> Result<Message, BusError> {
            Err(BusError::Receive {
                reason: "broker gone".into(),
            })
        }

        async fn commit(&mut self, _: &Message) -> Result<(), BusError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failing_part_is_named_in_the_error() {
        let bus = MemoryBus::new();
        bus.ensure_topics(&["a"], 1).await.unwrap();
        let quiet = bus.subscribe("ga", &["a"]).await.unwrap();
        let mut consumer = MergedConsumer {
            parts: vec![
                Part {
                    group: "ga".into(),
                    topics: vec!["a".into()],
                    consumer: quiet,
                },
                Part {
                    group: "gb".into(),
                    topics: vec!["b".into()],
                    consumer: Box::new(Broken),
                },
            ],
            next: 0,
        };
        for _ in 0..2 {
            match consumer.recv().await {
                Err(BusError::Receive { reason }) => assert_eq!(reason, "group gb: broker gone"),
                other => panic!("expected the broken part's error, got {other:?}"),
            }
        }
    }
}
