//! The orchestrator creates the topics it consumes and sends to with the partitions it is
//! configured for (the platform passes `KAFKA_PARTITIONS`).

use std::sync::Arc;
use std::time::Duration;

use bus::{MemoryBus, MessageBus};
use order::{Orchestrator, SagaConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_its_topics_with_the_configured_partitions() {
    let (store, models, _guard) = testkit::stores::sqlite().await;
    let bus = Arc::new(MemoryBus::new());
    let orchestrator = Orchestrator::new(
        store,
        bus.clone(),
        models.pool().clone(),
        SagaConfig {
            topic_prefix: "t.".into(),
            partitions: 2,
            ..SagaConfig::default()
        },
    )
    .await
    .unwrap();
    let topics = orchestrator.input_topics();
    assert!(bus.partitions(&topics[0]).await.unwrap().is_none());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(orchestrator.clone().run(async move {
        let _ = stopped.await;
    }));
    let mut all = topics.clone();
    all.extend([
        format!("t.{}", contracts::INVENTORY_COMMANDS),
        format!("t.{}", contracts::PAYMENT_COMMANDS),
    ]);
    let created = testkit::eventually(Duration::from_secs(10), || {
        let (bus, all) = (bus.clone(), all.clone());
        async move {
            for topic in &all {
                if bus.partitions(topic).await.unwrap().is_none() {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(created, "the orchestrator created its topics");
    for topic in &all {
        assert_eq!(
            bus.partitions(topic).await.unwrap(),
            Some(2),
            "partitions of {topic}"
        );
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}
