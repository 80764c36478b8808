//! The relay publishes every committed event at least once, in per-stream order, and resumes
//! with nothing lost after its own crash or a broker restart. Real Postgres, real broker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bus::{KafkaBus, KafkaConfig, MemoryBus, MessageBus};
use eventstore::{EventData, EventStore, ExpectedVersion, PgEventStore, RecordedEvent, StreamId};
use relay::{Relay, RelayConfig};
use serde_json::json;

const CATEGORIES: [&str; 3] = ["order", "inventory", "payment"];

fn kafka(brokers: &str) -> Arc<dyn MessageBus> {
    let config = KafkaConfig::new(brokers).with_session_timeout(Duration::from_secs(6));
    Arc::new(KafkaBus::new(config).expect("kafka bus"))
}

/// A broker of the test's own (it may stop it), a database, its store, a Kafka bus to the
/// broker and a fresh topic prefix.
async fn own_broker() -> (
    testkit::Broker,
    testkit::TestDb,
    Arc<dyn EventStore>,
    Arc<dyn MessageBus>,
    String,
) {
    testkit::init_logs();
    let broker = testkit::Broker::start().await;
    let db = testkit::TestDb::new().await;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::connect(db.url(), 8).await.unwrap());
    let bus = kafka(&broker.brokers());
    let prefix = testkit::unique_name("t") + ".";
    (broker, db, store, bus, prefix)
}

fn config(prefix: &str) -> RelayConfig {
    RelayConfig {
        name: "relay-test".into(),
        topic_prefix: prefix.to_owned(),
        batch_size: 250,
        partitions: 3,
        retry_after: Duration::from_millis(200),
        checkpoint_every: Duration::from_millis(50),
    }
}

/// Appends `per_stream` events to each of `streams` streams per category, in rounds.
async fn append_events(
    store: Arc<dyn EventStore>,
    streams: usize,
    per_stream: u64,
    tag: &str,
) -> usize {
    let mut total = 0;
    for round in 0..per_stream {
        for s in 0..streams {
            let category = CATEGORIES[s % CATEGORIES.len()];
            let stream = StreamId::parse(format!("{category}-{tag}{s}")).unwrap();
            let event = EventData::new("Happened", json!({ "round": round, "s": s }));
            store
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap();
            total += 1;
        }
    }
    total
}

/// Waits until the relay's checkpoint reaches the store's head (it follows the
/// acknowledgements within `checkpoint_every`); returns it.
async fn checkpointed_to_head(store: &Arc<dyn EventStore>) -> Option<eventstore::Position> {
    let saved = testkit::eventually(Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            store.load_checkpoint("relay-test").await.unwrap() == Some(store.head().await.unwrap())
        }
    })
    .await;
    assert!(saved, "the relay saved its checkpoint");
    store.load_checkpoint("relay-test").await.unwrap()
}

/// Consumes the relay's topics until `want` distinct events arrived; returns them in arrival order (with duplicates).
async fn consume(
    bus: &Arc<dyn MessageBus>,
    prefix: &str,
    want: usize,
    within: Duration,
) -> Vec<RecordedEvent> {
    let topics: Vec<String> = CATEGORIES
        .iter()
        .map(|c| relay::topic_for(prefix, c))
        .collect();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    bus.ensure_topics(&topic_refs, 3).await.unwrap();
    let mut consumer = bus
        .subscribe(&testkit::unique_name("relay_check"), &topic_refs)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut ids = HashSet::new();
    let deadline = tokio::time::Instant::now() + within;
    while ids.len() < want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = match tokio::time::timeout(left, consumer.recv()).await {
            Ok(msg) => msg.unwrap(),
            Err(_) => panic!("only {} of {want} distinct events arrived", ids.len()),
        };
        let event: RecordedEvent = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(
            msg.key.as_deref(),
            Some(event.stream_id.as_str().as_bytes())
        );
        assert_eq!(
            msg.header(relay::HEADER_EVENT_ID),
            Some(event.id.to_string().as_bytes())
        );
        assert_eq!(msg.header(relay::HEADER_EVENT_TYPE), Some(&b"Happened"[..]));
        assert_eq!(
            msg.topic,
            relay::topic_for(prefix, event.stream_id.category())
        );
        ids.insert(event.id);
        seen.push(event);
    }
    seen
}

/// Per stream, the first delivery of each version comes in version order and none is missing.
fn assert_per_stream_order(seen: &[RecordedEvent], per_stream: u64) {
    let mut next: HashMap<&str, u64> = HashMap::new();
    let mut firsts: HashMap<&str, HashSet<u64>> = HashMap::new();
    for e in seen {
        let stream = e.stream_id.as_str();
        let delivered = firsts.entry(stream).or_default();
        if delivered.insert(e.version) {
            let expect = next.entry(stream).or_insert(1);
            assert_eq!(e.version, *expect, "stream {stream} out of order");
            *expect += 1;
        }
    }
    assert!(
        next.values().all(|v| *v == per_stream + 1),
        "every version of every stream"
    );
}

async fn relays_everything_in_stream_order(bus: Arc<dyn MessageBus>) {
    let db = testkit::TestDb::new().await;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::connect(db.url(), 8).await.unwrap());
    let prefix = testkit::unique_name("t") + ".";
    let total = append_events(store.clone(), 9, 20, "a").await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(
        Relay::new(store.clone(), bus.clone(), config(&prefix)).run(async {
            let _ = stop_rx.await;
        }),
    );
    let seen = consume(&bus, &prefix, total, Duration::from_secs(60)).await;
    assert_per_stream_order(&seen, 20);
    stop_tx.send(()).unwrap();
    relay.await.unwrap().unwrap();
    let last = store
        .read_all(eventstore::Position::START, 10_000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .position;
    assert_eq!(
        store.load_checkpoint("relay-test").await.unwrap(),
        Some(last)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_everything_in_stream_order_to_kafka() {
    relays_everything_in_stream_order(kafka(&testkit::kafka_brokers())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_everything_in_stream_order_to_memory_bus() {
    relays_everything_in_stream_order(Arc::new(MemoryBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_crash_with_nothing_lost() {
    let db = testkit::TestDb::new().await;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::connect(db.url(), 8).await.unwrap());
    let bus = kafka(&testkit::kafka_brokers());
    let prefix = testkit::unique_name("t") + ".";
    let writer = tokio::spawn(append_events(store.clone(), 12, 150, "c"));
    // Kill the relay mid-stream, twice, then let a third one finish.
    for _ in 0..2 {
        let relay = tokio::spawn(
            Relay::new(store.clone(), bus.clone(), config(&prefix)).run(std::future::pending()),
        );
        let advanced = testkit::eventually(Duration::from_secs(30), || {
            let store = store.clone();
            async move { store.load_checkpoint("relay-test").await.unwrap().is_some() }
        })
        .await;
        assert!(advanced, "relay made progress before the crash");
        tokio::time::sleep(Duration::from_millis(150)).await;
        relay.abort();
        let _ = relay.await;
    }
    let total = writer.await.unwrap();
    let checkpoint = store.load_checkpoint("relay-test").await.unwrap().unwrap();
    // `$all` may wait behind another test's open transaction: wait until all is visible.
    let mut all = Vec::new();
    for _ in 0..1_000 {
        all = store
            .read_all(eventstore::Position::START, 100_000)
            .await
            .unwrap();
        if all.len() >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        checkpoint < all.last().unwrap().position,
        "the crash happened mid-stream"
    );
    let relay = tokio::spawn(
        Relay::new(store.clone(), bus.clone(), config(&prefix)).run(std::future::pending()),
    );
    let seen = consume(&bus, &prefix, total, Duration::from_secs(90)).await;
    relay.abort();
    assert_eq!(
        seen.iter().map(|e| e.id).collect::<HashSet<_>>().len(),
        total
    );
    assert_per_stream_order(&seen, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_a_broker_restart_with_nothing_lost() {
    let (mut broker, _db, store, bus, prefix) = own_broker().await;
    let relay = tokio::spawn(
        Relay::new(store.clone(), bus.clone(), config(&prefix)).run(std::future::pending()),
    );

    let before = append_events(store.clone(), 6, 20, "before").await;
    let seen = consume(&bus, &prefix, before, Duration::from_secs(60)).await;
    assert_eq!(seen.len(), before);
    let published = checkpointed_to_head(&store).await;

    // The broker goes away (and, with in-memory storage, comes back empty).
    broker.stop();
    let during = append_events(store.clone(), 6, 20, "during").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        store.load_checkpoint("relay-test").await.unwrap(),
        published,
        "nothing is checkpointed while the broker is down"
    );
    broker.restart().await;
    let after = append_events(store.clone(), 6, 20, "after").await;

    // Everything written while it was down or after it came back reaches the new broker.
    let fresh = kafka(&broker.brokers());
    let seen = consume(&fresh, &prefix, during + after, Duration::from_secs(120)).await;
    let ids: HashSet<_> = seen.iter().map(|e| e.id).collect();
    let expected: HashSet<_> = store
        .read_all(published.unwrap(), 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(expected.len(), during + after);
    assert!(
        expected.is_subset(&ids),
        "every event after the outage was published"
    );
    relay.abort();
}

/// A relay retrying a batch while the broker is down still stops when asked, without saving
/// a checkpoint past what the broker acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_when_asked_while_the_broker_is_down() {
    let (mut broker, _db, store, bus, prefix) = own_broker().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(
        Relay::new(store.clone(), bus.clone(), config(&prefix)).run(async {
            let _ = stopped.await;
        }),
    );
    let before = append_events(store.clone(), 3, 2, "before").await;
    let seen = consume(&bus, &prefix, before, Duration::from_secs(60)).await;
    assert_eq!(seen.len(), before);
    let published = checkpointed_to_head(&store).await;

    broker.stop();
    append_events(store.clone(), 3, 2, "during").await;
    // The relay is now retrying (a delivery waits up to 30 s, then again).
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .expect("the relay stops within 10 s while the broker is down");
    ended.unwrap().unwrap();
    assert_eq!(
        store.load_checkpoint("relay-test").await.unwrap(),
        published,
        "nothing unacknowledged is checkpointed"
    );
}
