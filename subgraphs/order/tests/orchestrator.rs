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

/// An orchestrator sharing the order service's repository leaves each order change it writes in
/// the service's cache: a status read after a saga step needs no stream read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_steps_update_the_shared_order_cache() {
    use contracts::events::PricedLine;
    use contracts::{SagaReply, StockLine};
    use eventstore::Metadata;
    use order::saga::SagaInput;
    use order::{OrderCommand, OrderStatus};

    let (store, models, _guard) = testkit::stores::sqlite().await;
    let orders = order::service::OrderService::new(
        store.clone(),
        order::pricing::PriceBook::new(models.pool().clone()),
    );
    let orchestrator = Orchestrator::sharing_orders(
        store,
        Arc::new(MemoryBus::new()),
        models.pool().clone(),
        SagaConfig::default(),
        orders.repository(),
    )
    .await
    .unwrap();
    let order_id = uuid::Uuid::new_v4().to_string();
    let line = StockLine {
        product_id: "cake".into(),
        quantity: 2,
    };
    let placed = orders
        .repository()
        .execute_new(
            &order_id,
            OrderCommand::Place {
                order_id: order_id.clone(),
                customer_id: "kim".into(),
                lines: vec![PricedLine {
                    line: line.clone(),
                    product_name: "Cake".into(),
                    unit_price: 10_000,
                }],
            },
            Metadata::new(),
        )
        .await
        .unwrap();
    let sent = orchestrator
        .advance(
            &order_id,
            uuid::Uuid::new_v4(),
            SagaInput::OrderPlaced {
                lines: vec![line],
                total: 20_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.len(), 1, "the reserve command");
    orchestrator
        .advance(
            &order_id,
            uuid::Uuid::new_v4(),
            SagaInput::Replied(SagaReply::StockReserved {
                reservation_id: order_id.clone(),
            }),
        )
        .await
        .unwrap();
    // The saga moved the order on; the service's cache holds that without reading.
    let cached = orders.repository().current_or_empty(&order_id).unwrap();
    assert!(cached.version > placed.version, "{}", cached.version);
    assert_eq!(cached.state.status, OrderStatus::PaymentPending);
}
