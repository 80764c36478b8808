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
                    topics: s.topics.iter().map(|t| (*t).to_owned()).collect(),
                    consumer: bus.subscribe_at(s.group, s.topics, s.pace).await?,
                });
            }
            Ok(Box::new(MergedConsumer { parts, next: 0 }))
        }
    }
}

/// A subscription's topics and its consumer.
struct Part {
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
        let (message, _, _) = futures::future::select_all(receiving).await;
        message
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
