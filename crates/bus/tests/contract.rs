//! The message-bus contract, written once and run against every adapter.
//!
//! `contract_suite!` expands one test per contract clause for an adapter; each test gets its
//! own topics and consumer groups (random names), so the suites run in parallel. The Kafka
//! suite needs a broker: `scripts/broker start` and `KAFKA_BROKERS=127.0.0.1:19092`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bus::{
    Consumer, KafkaBus, KafkaConfig, MemoryBus, Message, MessageBus, OutgoingRecord, Pace,
    Subscription,
};

/// How long a test waits for a message that must come (a Kafka group join takes seconds).
const RECV_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test listens to conclude that nothing more comes.
const QUIET: Duration = Duration::from_millis(1500);

/// A Kafka bus on the test broker, with the short session timeout tansu needs for quick joins.
fn kafka_bus() -> KafkaBus {
    init_logs();
    let config =
        KafkaConfig::new(testkit::kafka_brokers()).with_session_timeout(Duration::from_secs(6));
    KafkaBus::new(config).expect("kafka bus")
}

/// Logs to stderr when `TEST_LOG` is set.
fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

macro_rules! contract_suite {
    ($adapter:ident, $make_bus:expr) => {
        mod $adapter {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn round_trip_keeps_keys_payloads_and_headers() {
                suite::round_trip_keeps_keys_payloads_and_headers(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn order_is_preserved_per_key() {
                suite::order_is_preserved_per_key(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn group_resumes_after_committed_offset() {
                suite::group_resumes_after_committed_offset(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn uncommitted_messages_are_redelivered() {
                suite::uncommitted_messages_are_redelivered(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn members_of_a_group_together_see_everything() {
                suite::members_of_a_group_together_see_everything(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn different_groups_each_see_everything() {
                suite::different_groups_each_see_everything(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn batched_subscribers_see_everything_in_key_order() {
                suite::batched_subscribers_see_everything_in_key_order(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn merged_subscriptions_act_as_one_consumer() {
                suite::merged_subscriptions_act_as_one_consumer(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ensure_topics_is_idempotent() {
                suite::ensure_topics_is_idempotent(&$make_bus).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn publishes_ten_thousand_records() {
                suite::publishes_ten_thousand_records(&$make_bus).await;
            }
        }
    };
}

contract_suite!(memory, MemoryBus::new());
contract_suite!(kafka, kafka_bus());

/// Waits for the next message, failing the test after [`RECV_TIMEOUT`].
async fn recv(consumer: &mut dyn Consumer) -> Message {
    match tokio::time::timeout(RECV_TIMEOUT, consumer.recv()).await {
        Ok(Ok(message)) => message,
        Ok(Err(error)) => panic!("recv failed: {error} ({})", error.code()),
        Err(_) => panic!("no message within {RECV_TIMEOUT:?}"),
    }
}

/// Receives exactly `count` messages.
async fn recv_n(consumer: &mut dyn Consumer, count: usize) -> Vec<Message> {
    let mut messages = Vec::with_capacity(count);
    while messages.len() < count {
        messages.push(recv(consumer).await);
    }
    messages
}

/// Fails the test if a message arrives within [`QUIET`].
async fn assert_quiet(consumer: &mut dyn Consumer) {
    if let Ok(result) = tokio::time::timeout(QUIET, consumer.recv()).await {
        panic!("expected no more messages, got {result:?}");
    }
}

/// Records `0..count` on `topic`, keyed round-robin over `keys` keys, payload `"{key}:{seq}"`
/// where `seq` counts per key.
fn keyed_records(topic: &str, keys: usize, count: usize) -> Vec<OutgoingRecord> {
    (0..count)
        .map(|i| {
            let key = format!("key-{}", i % keys);
            let seq = i / keys;
            OutgoingRecord::new(topic, key.clone(), format!("{key}:{seq}").into_bytes())
        })
        .collect()
}

fn payload_text(message: &Message) -> String {
    String::from_utf8(message.payload.clone()).expect("utf-8 payload")
}

/// The contract clauses, generic over the adapter.
mod suite {
    use super::*;

    pub async fn round_trip_keeps_keys_payloads_and_headers(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_round_trip");
        bus.ensure_topics(&[&topic], 2)
            .await
            .expect("ensure topics");
        let binary: Vec<u8> = vec![0, 159, 146, 150, 255];
        let sent = vec![
            OutgoingRecord::new(&topic, "order-1", b"first".to_vec())
                .with_header("traceparent", b"00-abc-def-01".to_vec())
                .with_header("event-type", b"OrderPlaced".to_vec())
                .with_header("event-type", b"repeated".to_vec()),
            OutgoingRecord::new(&topic, "order-2", binary.clone()),
            OutgoingRecord::new(&topic, "order-1", b"second".to_vec())
                .with_header("empty", Vec::new()),
        ];
        bus.publish(sent.clone()).await.expect("publish");

        let group = testkit::unique_name("bus_group");
        let mut consumer = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let received = recv_n(consumer.as_mut(), 3).await;
        assert_quiet(consumer.as_mut()).await;

        let by_payload: HashMap<Vec<u8>, &Message> =
            received.iter().map(|m| (m.payload.clone(), m)).collect();
        assert_eq!(by_payload.len(), 3, "three distinct records: {received:?}");
        for record in &sent {
            let message = by_payload
                .get(&record.payload)
                .unwrap_or_else(|| panic!("record {record:?} not received"));
            assert_eq!(message.topic, topic);
            assert_eq!(message.key.as_deref(), Some(record.key.as_bytes()));
            assert_eq!(message.headers, record.headers);
            assert!((0..2).contains(&message.partition));
            assert!(message.offset >= 0);
        }
        let first = by_payload[&b"first".to_vec()];
        assert_eq!(first.header("traceparent"), Some(&b"00-abc-def-01"[..]));
        assert_eq!(first.header("event-type"), Some(&b"OrderPlaced"[..]));
        assert_eq!(first.header("missing"), None);
        assert_eq!(by_payload[&binary].headers, Vec::new());
        assert_eq!(
            by_payload[&b"second".to_vec()].header("empty"),
            Some(&b""[..])
        );
        // Same key: same partition, later offset.
        let second = by_payload[&b"second".to_vec()];
        assert_eq!(first.partition, second.partition);
        assert!(first.offset < second.offset);
    }

    pub async fn order_is_preserved_per_key(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_order");
        bus.ensure_topics(&[&topic], 4)
            .await
            .expect("ensure topics");
        let keys = 10;
        let total = 2_000;
        // Twenty batches, published one after the other.
        for batch in keyed_records(&topic, keys, total).chunks(100) {
            bus.publish(batch.to_vec()).await.expect("publish");
        }

        let group = testkit::unique_name("bus_group");
        let mut consumer = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let received = recv_n(consumer.as_mut(), total).await;
        assert_quiet(consumer.as_mut()).await;
        assert_in_key_order(&received, keys, total / keys);
    }

    /// Checks that `received` (made by [`keyed_records`]) holds `per_key` records of each of
    /// `keys` keys, each key's in order and on one partition.
    fn assert_in_key_order(received: &[Message], keys: usize, per_key: usize) {
        let mut next_seq: BTreeMap<String, usize> = BTreeMap::new();
        let mut partition_of: HashMap<String, i32> = HashMap::new();
        for message in received {
            let text = payload_text(message);
            let (key, seq) = text.split_once(':').expect("key:seq payload");
            let seq: usize = seq.parse().expect("sequence number");
            assert_eq!(message.key.as_deref(), Some(key.as_bytes()));
            let expected = next_seq.entry(key.to_owned()).or_insert(0);
            assert_eq!(seq, *expected, "key {key} out of order");
            *expected += 1;
            let partition = *partition_of
                .entry(key.to_owned())
                .or_insert(message.partition);
            assert_eq!(partition, message.partition, "key {key} moved partition");
        }
        assert_eq!(next_seq.len(), keys);
        assert!(next_seq.values().all(|n| *n == per_key));
    }

    pub async fn group_resumes_after_committed_offset(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_resume");
        bus.ensure_topics(&[&topic], 3)
            .await
            .expect("ensure topics");
        let total = 60;
        bus.publish(keyed_records(&topic, 6, total))
            .await
            .expect("publish");
        let group = testkit::unique_name("bus_group");

        // The first member reads everything but commits only about half of each partition.
        let mut first = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let received = recv_n(first.as_mut(), total).await;
        let mut per_partition: BTreeMap<i32, Vec<&Message>> = BTreeMap::new();
        for message in &received {
            per_partition
                .entry(message.partition)
                .or_default()
                .push(message);
        }
        let mut expected_again = BTreeSet::new();
        for messages in per_partition.values() {
            let offsets: Vec<i64> = messages.iter().map(|m| m.offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets increase");
            let half = messages.len() / 2;
            if half > 0 {
                first.commit(messages[half - 1]).await.expect("commit");
            }
            for message in &messages[half..] {
                expected_again.insert((message.partition, message.offset));
            }
        }
        assert!(!expected_again.is_empty() && expected_again.len() < total);
        drop(first);

        // The next member of the group gets exactly the uncommitted ones (at-least-once).
        let mut second = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let again = recv_n(second.as_mut(), expected_again.len()).await;
        assert_quiet(second.as_mut()).await;
        let again_set: BTreeSet<(i32, i64)> =
            again.iter().map(|m| (m.partition, m.offset)).collect();
        assert_eq!(again_set, expected_again);

        // It commits everything; the group's next member sees only what is published later.
        let mut last_per_partition: BTreeMap<i32, &Message> = BTreeMap::new();
        for message in &again {
            last_per_partition.insert(message.partition, message);
        }
        for message in last_per_partition.values() {
            second.commit(message).await.expect("commit");
        }
        drop(second);
        bus.publish(vec![OutgoingRecord::new(&topic, "late", b"late".to_vec())])
            .await
            .expect("publish");
        let mut third = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let next = recv(third.as_mut()).await;
        assert_eq!(next.payload, b"late");
        assert_quiet(third.as_mut()).await;
    }

    pub async fn uncommitted_messages_are_redelivered(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_redeliver");
        bus.ensure_topics(&[&topic], 2)
            .await
            .expect("ensure topics");
        let records = keyed_records(&topic, 4, 20);
        bus.publish(records.clone()).await.expect("publish");
        let group = testkit::unique_name("bus_group");

        let mut first = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let seen_first = recv_n(first.as_mut(), records.len()).await;
        drop(first); // nothing committed

        let mut second = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let seen_second = recv_n(second.as_mut(), records.len()).await;
        assert_quiet(second.as_mut()).await;
        let ids = |messages: &[Message]| -> BTreeSet<(i32, i64)> {
            messages.iter().map(|m| (m.partition, m.offset)).collect()
        };
        assert_eq!(ids(&seen_first).len(), records.len());
        assert_eq!(ids(&seen_first), ids(&seen_second));
    }

    pub async fn members_of_a_group_together_see_everything(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_members");
        bus.ensure_topics(&[&topic], 4)
            .await
            .expect("ensure topics");
        let group = testkit::unique_name("bus_group");
        let mut first = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let mut second = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let records = keyed_records(&topic, 40, 40);
        bus.publish(records.clone()).await.expect("publish");

        // Partitions are split between the members (a rebalance may redeliver some records).
        let expected: BTreeSet<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
        let mut seen = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        while seen != expected {
            let next = tokio::select! {
                message = first.recv() => message,
                message = second.recv() => message,
                () = tokio::time::sleep_until(deadline) => panic!("only {} of {} records", seen.len(), expected.len()),
            };
            let message = next.expect("recv");
            assert!(
                expected.contains(&message.payload),
                "unexpected {message:?}"
            );
            seen.insert(message.payload);
        }
    }

    pub async fn different_groups_each_see_everything(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_groups");
        bus.ensure_topics(&[&topic], 3)
            .await
            .expect("ensure topics");
        // One group joins before the records exist, the other after.
        let mut early = bus
            .subscribe(&testkit::unique_name("bus_group_a"), &[&topic])
            .await
            .expect("subscribe");
        let records = keyed_records(&topic, 7, 50);
        bus.publish(records.clone()).await.expect("publish");
        let mut late = bus
            .subscribe(&testkit::unique_name("bus_group_b"), &[&topic])
            .await
            .expect("subscribe");

        let expected: BTreeSet<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
        for consumer in [&mut early, &mut late] {
            let received = recv_n(consumer.as_mut(), expected.len()).await;
            let payloads: BTreeSet<Vec<u8>> = received.into_iter().map(|m| m.payload).collect();
            assert_eq!(payloads, expected);
        }
        // What one group commits does not affect the other.
        let extra = recv_after_publish(bus, &topic, &mut early).await;
        early.commit(&extra).await.expect("commit");
        assert_eq!(recv(late.as_mut()).await.payload, b"extra");
        assert_quiet(early.as_mut()).await;
        assert_quiet(late.as_mut()).await;
    }

    /// A subscriber at [`Pace::Batched`] (read models) gets what a prompt one gets: every
    /// record, in order per key, published before or after it joined, and resumes after what
    /// it committed.
    pub async fn batched_subscribers_see_everything_in_key_order(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_batched");
        bus.ensure_topics(&[&topic], 3)
            .await
            .expect("ensure topics");
        let group = testkit::unique_name("bus_batched_group");
        let before = keyed_records(&topic, 5, 40);
        bus.publish(before.clone()).await.expect("publish");
        let mut consumer = bus
            .subscribe_at(&group, &[&topic], Pace::Batched)
            .await
            .expect("subscribe");
        let received = recv_n(consumer.as_mut(), before.len()).await;
        // Every record, in order per key.
        assert_in_key_order(&received, 5, 8);
        for message in &received {
            consumer.commit(message).await.expect("commit");
        }
        let last = recv_after_publish(bus, &topic, &mut consumer).await;
        consumer.commit(&last).await.expect("commit");
        assert_quiet(consumer.as_mut()).await;
    }

    /// Two subscriptions (a prompt one and a batched one, each its own group) are received as
    /// one consumer, each message is committed through the subscription that received it, and
    /// a merged consumer of the same subscriptions later resumes after those commits.
    pub async fn merged_subscriptions_act_as_one_consumer(bus: &dyn MessageBus) {
        init_logs();
        let prompt = testkit::unique_name("bus_merged_prompt");
        let slow = testkit::unique_name("bus_merged_slow");
        bus.ensure_topics(&[&prompt, &slow], 2)
            .await
            .expect("ensure topics");
        let (prompt_group, slow_group) = (
            testkit::unique_name("bus_merged_group"),
            testkit::unique_name("bus_merged_group"),
        );
        let (prompt_topics, slow_topics) = ([prompt.as_str()], [slow.as_str()]);
        let subscriptions = [
            Subscription::prompt(&prompt_group, &prompt_topics),
            Subscription::new(&slow_group, &slow_topics, Pace::Batched),
        ];
        let overlapping = [
            Subscription::prompt(&prompt_group, &prompt_topics),
            Subscription::new(&slow_group, &prompt_topics, Pace::Batched),
        ];
        let refused = bus::subscribe_merged(bus, &overlapping).await.err();
        assert_eq!(refused.map(|e| e.code()), Some("BUS_INVALID_ARGUMENT"));
        let one_group = [
            Subscription::prompt(&prompt_group, &prompt_topics),
            Subscription::new(&prompt_group, &slow_topics, Pace::Batched),
        ];
        let refused = bus::subscribe_merged(bus, &one_group).await.err();
        assert_eq!(refused.map(|e| e.code()), Some("BUS_INVALID_ARGUMENT"));

        let mut records = keyed_records(&prompt, 3, 12);
        records.extend(keyed_records(&slow, 3, 12));
        bus.publish(records.clone()).await.expect("publish");
        let mut merged = bus::subscribe_merged(bus, &subscriptions)
            .await
            .expect("subscribe");
        let received = recv_n(merged.as_mut(), records.len()).await;
        let topics_and_payloads = |messages: &[Message]| -> BTreeSet<(String, Vec<u8>)> {
            messages
                .iter()
                .map(|m| (m.topic.clone(), m.payload.clone()))
                .collect()
        };
        let expected: BTreeSet<(String, Vec<u8>)> = records
            .iter()
            .map(|r| (r.topic.clone(), r.payload.clone()))
            .collect();
        assert_eq!(topics_and_payloads(&received), expected);
        assert_in_key_order(
            &received
                .iter()
                .filter(|m| m.topic == slow)
                .cloned()
                .collect::<Vec<_>>(),
            3,
            4,
        );
        let stray = Message {
            topic: testkit::unique_name("bus_merged_other"),
            partition: 0,
            offset: 0,
            key: None,
            payload: Vec::new(),
            headers: Vec::new(),
        };
        let stray_commit = merged.commit(&stray).await.err();
        assert_eq!(stray_commit.map(|e| e.code()), Some("BUS_INVALID_ARGUMENT"));
        // Everything of the prompt topic is committed, of the batched one only the first half
        // of each partition.
        let mut commit_at: BTreeMap<(String, i32), &Message> = BTreeMap::new();
        let mut expected_again = BTreeSet::new();
        for message in &received {
            let key = (message.topic.clone(), message.partition);
            if message.topic == prompt {
                commit_at.insert(key, message);
            }
        }
        let mut slow_by_partition: BTreeMap<i32, Vec<&Message>> = BTreeMap::new();
        for message in received.iter().filter(|m| m.topic == slow) {
            slow_by_partition
                .entry(message.partition)
                .or_default()
                .push(message);
        }
        for (partition, messages) in &slow_by_partition {
            let half = messages.len() / 2;
            if half > 0 {
                commit_at.insert((slow.clone(), *partition), messages[half - 1]);
            }
            for message in &messages[half..] {
                expected_again.insert((message.topic.clone(), message.payload.clone()));
            }
        }
        for message in commit_at.values() {
            merged.commit(message).await.expect("commit");
        }
        assert_quiet(merged.as_mut()).await;
        drop(merged);

        // The next merged consumer gets what was not committed, and what came since.
        bus.publish(vec![OutgoingRecord::new(&prompt, "late", b"late".to_vec())])
            .await
            .expect("publish");
        expected_again.insert((prompt.clone(), b"late".to_vec()));
        let mut again = bus::subscribe_merged(bus, &subscriptions)
            .await
            .expect("subscribe");
        let redelivered = recv_n(again.as_mut(), expected_again.len()).await;
        assert_eq!(topics_and_payloads(&redelivered), expected_again);
        assert_quiet(again.as_mut()).await;
    }

    /// Publishes one extra record and receives it on `consumer`.
    async fn recv_after_publish(
        bus: &dyn MessageBus,
        topic: &str,
        consumer: &mut Box<dyn Consumer>,
    ) -> Message {
        bus.publish(vec![OutgoingRecord::new(topic, "extra", b"extra".to_vec())])
            .await
            .expect("publish");
        let message = recv(consumer.as_mut()).await;
        assert_eq!(message.payload, b"extra");
        message
    }

    pub async fn ensure_topics_is_idempotent(bus: &dyn MessageBus) {
        init_logs();
        let one = testkit::unique_name("bus_topic_one");
        let two = testkit::unique_name("bus_topic_two");
        assert_eq!(bus.partitions(&one).await.expect("describe"), None);
        bus.ensure_topics(&[&one], 3).await.expect("create");
        bus.ensure_topics(&[&one], 3).await.expect("again");
        // An existing topic keeps its partitions whatever a later call asks for.
        bus.ensure_topics(&[&one], 5)
            .await
            .expect("again, other count");
        assert_eq!(bus.partitions(&one).await.expect("describe"), Some(3));
        bus.ensure_topics(&[&one, &two], 3)
            .await
            .expect("one exists, one new");
        bus.ensure_topics(&[&two, &one], 3)
            .await
            .expect("both exist");
        let invalid = bus
            .ensure_topics(&[&one], 0)
            .await
            .expect_err("zero partitions");
        assert_eq!(invalid.code(), "BUS_INVALID_ARGUMENT");

        let mut records = keyed_records(&one, 60, 60);
        records.extend(keyed_records(&two, 60, 60));
        bus.publish(records).await.expect("publish");
        let group = testkit::unique_name("bus_group");
        let mut consumer = bus
            .subscribe(&group, &[&one, &two])
            .await
            .expect("subscribe");
        let received = recv_n(consumer.as_mut(), 120).await;
        assert_quiet(consumer.as_mut()).await;

        for topic in [&one, &two] {
            let partitions: BTreeSet<i32> = received
                .iter()
                .filter(|m| &m.topic == topic)
                .map(|m| m.partition)
                .collect();
            // Sixty keys land on every one of the three partitions, and on no other.
            assert_eq!(
                partitions,
                BTreeSet::from([0, 1, 2]),
                "partitions of {topic}"
            );
            assert_eq!(received.iter().filter(|m| &m.topic == topic).count(), 60);
        }
    }

    pub async fn publishes_ten_thousand_records(bus: &dyn MessageBus) {
        init_logs();
        let topic = testkit::unique_name("bus_volume");
        bus.ensure_topics(&[&topic], 4)
            .await
            .expect("ensure topics");
        let total = 10_000;
        let records = keyed_records(&topic, 100, total);
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(60), bus.publish(records))
            .await
            .expect("publish within a minute")
            .expect("publish");
        eprintln!(
            "{}: published {total} records in {:?}",
            bus.adapter(),
            started.elapsed()
        );

        let group = testkit::unique_name("bus_group");
        let mut consumer = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
        let received = recv_n(consumer.as_mut(), total).await;
        let distinct: BTreeSet<&[u8]> = received.iter().map(|m| m.payload.as_slice()).collect();
        assert_eq!(distinct.len(), total);
        assert_quiet(consumer.as_mut()).await;
    }
}
