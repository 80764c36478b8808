//! The relay as a real process: killed with SIGKILL mid-stream, restarted, and every event
//! still reaches Kafka (at least once). Real Postgres, real broker.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bus::{KafkaBus, KafkaConfig, MessageBus};
use eventstore::{EventData, EventStore, ExpectedVersion, PgEventStore, RecordedEvent, StreamId};

fn spawn_relay(database_url: &str, prefix: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bloody-sweet"))
        .arg("relay")
        .env("DATABASE_URL", database_url)
        .env("KAFKA_BROKERS", testkit::kafka_brokers())
        .env("KAFKA_TOPIC_PREFIX", prefix)
        .env("KAFKA_PARTITIONS", "3")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bloody-sweet relay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_process_killed_mid_stream_loses_nothing() {
    let db = testkit::TestDb::new().await;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::connect(db.url(), 8).await.unwrap());
    let prefix = testkit::unique_name("k") + ".";
    const STREAMS: usize = 20;
    const PER_STREAM: u64 = 100;

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..PER_STREAM {
                for s in 0..STREAMS {
                    let stream = StreamId::parse(format!("order-{s}")).unwrap();
                    let event = EventData::new("OrderNoted", serde_json::json!({ "round": round }));
                    store
                        .append(&stream, ExpectedVersion::Any, vec![event])
                        .await
                        .unwrap();
                }
            }
        })
    };
    let mut relay = spawn_relay(db.url(), &prefix);
    let progressed = testkit::eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move { store.load_checkpoint("relay").await.unwrap().is_some() }
    })
    .await;
    assert!(progressed, "the relay process published something");
    relay.kill().unwrap(); // SIGKILL: no shutdown path runs
    relay.wait().unwrap();
    writer.await.unwrap();
    let total = STREAMS * PER_STREAM as usize;
    let checkpoint = store.load_checkpoint("relay").await.unwrap().unwrap();
    assert!(
        checkpoint < store.head().await.unwrap(),
        "killed before it was done"
    );

    let mut relay = spawn_relay(db.url(), &prefix);
    let bus = KafkaBus::new(
        KafkaConfig::new(testkit::kafka_brokers()).with_session_timeout(Duration::from_secs(6)),
    )
    .unwrap();
    let topic = relay::topic_for(&prefix, "order");
    bus.ensure_topics(&[topic.as_str()], 3).await.unwrap();
    let mut consumer = bus
        .subscribe(&testkit::unique_name("count"), &[topic.as_str()])
        .await
        .unwrap();
    let mut ids = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while ids.len() < total {
        let msg = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {total} events reached Kafka", ids.len()))
            .unwrap();
        let event: RecordedEvent = serde_json::from_slice(&msg.payload).unwrap();
        ids.insert(event.id);
    }
    relay.kill().unwrap();
    relay.wait().unwrap();
    assert_eq!(ids.len(), total);
}
