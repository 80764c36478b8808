//! The Kafka producer's linger: small publishes wait for company, a big one goes at once.
//! Needs the test broker (`scripts/test` starts one).

use std::time::{Duration, Instant};

use bus::{KafkaBus, KafkaConfig, MessageBus, OutgoingRecord, SEND_AT_ONCE_FROM};

/// Far longer than a publish to the local broker takes, so waiting it out cannot be missed.
const LINGER: Duration = Duration::from_secs(3);

fn lingering_bus() -> KafkaBus {
    let config = KafkaConfig::new(testkit::kafka_brokers())
        .with("linger.ms", LINGER.as_millis().to_string());
    KafkaBus::new(config).expect("kafka bus")
}

fn records(topic: &str, count: usize) -> Vec<OutgoingRecord> {
    (0..count)
        .map(|i| OutgoingRecord::new(topic, format!("key-{}", i % 7), vec![b'x'; 200]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_publish_does_not_wait_out_the_linger_and_a_small_one_does() {
    let bus = lingering_bus();
    let topic = testkit::unique_name("bus_linger");
    bus.ensure_topics(&[&topic], 1)
        .await
        .expect("ensure topics");
    // The first publish also connects and learns the topic's leader; keep that out of the
    // timings below.
    bus.publish(records(&topic, SEND_AT_ONCE_FROM))
        .await
        .expect("warm-up publish");

    let started = Instant::now();
    bus.publish(records(&topic, SEND_AT_ONCE_FROM))
        .await
        .expect("big publish");
    let big = started.elapsed();
    assert!(
        big < LINGER / 2,
        "{SEND_AT_ONCE_FROM} records took {big:?}: they waited for the {LINGER:?} linger"
    );

    let started = Instant::now();
    bus.publish(records(&topic, 3))
        .await
        .expect("small publish");
    let small = started.elapsed();
    assert!(
        small >= LINGER - Duration::from_millis(500),
        "3 records took {small:?}: a small publish should linger for company"
    );
}
