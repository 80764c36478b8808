//! The orchestrator creates the topics it consumes and sends to with the partitions it is
//! configured for (the platform passes `KAFKA_PARTITIONS`).

use std::sync::Arc;
use std::time::Duration;

use bus::{MemoryBus, MessageBus};
use order::{Orchestrator, SagaConfig};

/// An orchestrator over embedded stores and `bus`, its topics prefixed `t.` with `partitions`
/// partitions; the guard keeps the stores' files.
async fn on_sqlite(
    bus: Arc<MemoryBus>,
    partitions: i32,
) -> (Arc<Orchestrator>, testkit::stores::Guard) {
    let (store, models, guard) = testkit::stores::sqlite().await;
    let config = SagaConfig {
        topic_prefix: "t.".into(),
        partitions,
        ..SagaConfig::default()
    };
    let orchestrator = Orchestrator::new(store, bus, models.pool().clone(), config)
        .await
        .unwrap();
    (orchestrator, guard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_its_topics_with_the_configured_partitions() {
    let bus = Arc::new(MemoryBus::new());
    let (orchestrator, _guard) = on_sqlite(bus.clone(), 2).await;
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

/// Placing an order through the orchestrator writes the order and its saga's first step
/// together and sends the reserve command at once. When the placed order then comes over the
/// bus, this orchestrator has nothing left to do; one that did not place it (another process,
/// or this one after a restart) re-sends the unanswered command, and so does this one for a
/// second delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_an_order_starts_its_saga_without_the_bus() {
    use eventstore::{Direction, Metadata, Repository};
    use order::{Order, OrderSaga, OrderStatus, Phase};

    let (store, models, _guard) = testkit::stores::sqlite().await;
    let bus = Arc::new(MemoryBus::new());
    let commands = format!("t.{}", contracts::INVENTORY_COMMANDS);
    bus.ensure_topics(&[commands.as_str()], 1).await.unwrap();
    let mut probe = bus.subscribe("probe", &[commands.as_str()]).await.unwrap();
    let config = SagaConfig {
        topic_prefix: "t.".into(),
        ..SagaConfig::default()
    };
    let orchestrator = Orchestrator::new(
        store.clone(),
        bus.clone(),
        models.pool().clone(),
        config.clone(),
    )
    .await
    .unwrap();
    let order_id = uuid::Uuid::new_v4().to_string();
    let place = two_cakes(&order_id, 10_000);
    let placed = orchestrator
        .place(&order_id, place.clone(), Metadata::new().with_user("kim"))
        .await
        .unwrap()
        .expect("a new order is placed with its saga");
    assert_eq!(placed.status, OrderStatus::Placed);
    assert_eq!(placed.total, 20_000);
    assert_eq!(
        orchestrator.phase(&order_id).await.unwrap(),
        Phase::Reserving
    );
    let sent = tokio::time::timeout(Duration::from_secs(5), probe.recv())
        .await
        .expect("the reserve command was sent")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&sent.payload).contains("ReserveStock"),
        "{}",
        String::from_utf8_lossy(&sent.payload)
    );
    // Placing again finds the order: the caller decides it the ordinary way.
    assert!(
        orchestrator
            .place(&order_id, place, Metadata::new())
            .await
            .unwrap()
            .is_none()
    );

    // The placed order as the relay would carry it.
    let order_stream = Repository::<Order>::stream_of(&order_id).unwrap();
    let events = store
        .read_stream(&order_stream, Direction::Forward, None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the order holds only its OrderPlaced");
    let saga_stream = Repository::<OrderSaga>::stream_of(&format!("order:{order_id}")).unwrap();
    let saga_events = store
        .read_stream(&saga_stream, Direction::Forward, None, 10)
        .await
        .unwrap();
    assert_eq!(saga_events.len(), 1, "the saga's first step");
    assert_eq!(
        saga_events[0].metadata.causation_id, events[0].id,
        "the saga step is caused by the OrderPlaced the bus carries"
    );
    let delivered = as_relayed(&events[0]);
    // The command went out, and the index write beside it is done.
    orchestrator.placements_carried_out().await;
    assert!(
        orchestrator
            .on_message(&delivered)
            .await
            .unwrap()
            .is_empty(),
        "the orchestrator that started the saga has nothing left to do"
    );
    let elsewhere = Orchestrator::new(store, bus.clone(), models.pool().clone(), config)
        .await
        .unwrap();
    assert_eq!(
        elsewhere.on_message(&delivered).await.unwrap().len(),
        1,
        "another orchestrator re-sends the unanswered reserve command"
    );
    assert_eq!(
        orchestrator.on_message(&delivered).await.unwrap().len(),
        1,
        "a second delivery is handled as a redelivery"
    );
}

/// A saga input that cannot be decoded goes to its topic's dead letters, unchanged and with
/// the reason, instead of being retried for ever (which would hold its lane and the consumer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_inputs_are_dead_lettered() {
    let (orchestrator, _guard) = on_sqlite(Arc::new(MemoryBus::new()), 1).await;
    for topic in orchestrator.input_topics() {
        let msg = bus::Message {
            topic: topic.clone(),
            partition: 0,
            offset: 7,
            key: Some(b"order-1".to_vec()),
            payload: b"{not json".to_vec(),
            headers: vec![],
        };
        let records = orchestrator.on_message(&msg).await.unwrap();
        assert_eq!(records.len(), 1, "{topic}");
        assert_eq!(records[0].topic, format!("{topic}.dlq"));
        assert_eq!(records[0].key, "order-1");
        assert_eq!(records[0].payload, msg.payload);
        let reason = records[0]
            .headers
            .iter()
            .find(|(name, _)| name == "error")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
        assert!(reason.is_some_and(|r| !r.is_empty()), "{topic}: a reason");
    }
}

/// An orchestrator (prefix `t.`) with one order of 2 x 6,000 KRW placed and its stock reserved,
/// awaiting payment; the guard keeps the stores' files.
async fn awaiting_payment() -> (
    Arc<Orchestrator>,
    String,
    Arc<dyn eventstore::EventStore>,
    projections::ReadModels,
    testkit::stores::Guard,
) {
    use eventstore::Metadata;
    use order::Phase;

    let (store, models, guard) = testkit::stores::sqlite().await;
    let config = SagaConfig {
        topic_prefix: "t.".into(),
        ..SagaConfig::default()
    };
    let bus = Arc::new(MemoryBus::new());
    let orchestrator = Orchestrator::new(store.clone(), bus, models.pool().clone(), config)
        .await
        .unwrap();
    let order_id = uuid::Uuid::new_v4().to_string();
    let place = two_cakes(&order_id, 6_000);
    orchestrator
        .place(&order_id, place, Metadata::new().with_user("kim"))
        .await
        .unwrap()
        .expect("placed");
    let reserved = contracts::SagaReply::StockReserved {
        reservation_id: order_id.clone(),
    };
    orchestrator
        .on_message(&reply(&order_id, reserved))
        .await
        .unwrap();
    assert_eq!(
        orchestrator.phase(&order_id).await.unwrap(),
        Phase::AwaitingPayment
    );
    (orchestrator, order_id, store, models, guard)
}

/// `body` for `order_id` as it arrives on the saga's replies topic.
fn reply(order_id: &str, body: contracts::SagaReply) -> bus::Message {
    bus::Message {
        topic: format!("t.{}", contracts::SAGA_REPLIES),
        partition: 0,
        offset: 0,
        key: Some(order_id.as_bytes().to_vec()),
        payload: serde_json::to_vec(&contracts::Envelope::new(order_id, body)).unwrap(),
        headers: vec![],
    }
}

/// Records a confirmed payment of 12,000 KRW with `payment_key` in the order's payment stream
/// and returns it as the relay delivers it.
async fn relayed_confirmation(
    store: &Arc<dyn eventstore::EventStore>,
    order_id: &str,
    payment_key: &str,
) -> bus::Message {
    use eventstore::{Direction, EventData, ExpectedVersion, StreamId};

    let stream = StreamId::of("payment", order_id).unwrap();
    let confirmed = EventData::json(
        contracts::events::PAYMENT_CONFIRMED,
        &contracts::events::PaymentConfirmed {
            order_id: order_id.to_owned(),
            payment_key: payment_key.to_owned(),
            amount: 12_000,
        },
    )
    .unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![confirmed])
        .await
        .unwrap();
    let event = store
        .read_stream(&stream, Direction::Forward, None, 1)
        .await
        .unwrap()
        .remove(0);
    as_relayed(&event)
}

/// `event` as the relay delivers it (topics prefixed `t.`).
fn as_relayed(event: &eventstore::RecordedEvent) -> bus::Message {
    let record = relay::to_record("t.", event).unwrap();
    bus::Message {
        topic: record.topic,
        partition: 0,
        offset: 0,
        key: Some(record.key.into_bytes()),
        payload: record.payload,
        headers: record.headers,
    }
}

/// Runs `command` on the order (as its customer or staff would) and hands the saga the event
/// it wrote, as the relay delivers it; returns what the saga sends.
async fn withdraw(
    orchestrator: &Orchestrator,
    store: &Arc<dyn eventstore::EventStore>,
    order_id: &str,
    command: order::OrderCommand,
) -> Vec<bus::OutgoingRecord> {
    let orders = eventstore::Repository::<order::Order>::new(store.clone());
    orders
        .execute(order_id, command, eventstore::Metadata::new())
        .await
        .unwrap();
    let event = store
        .read_stream(
            &eventstore::Repository::<order::Order>::stream_of(order_id).unwrap(),
            eventstore::Direction::Backward,
            None,
            1,
        )
        .await
        .unwrap()
        .remove(0);
    orchestrator.on_message(&as_relayed(&event)).await.unwrap()
}

/// Staff accept, prepare and ready the paid order, straight through its stream (as another
/// replica would: the orchestrator's cache does not see it).
async fn make_ready(store: &Arc<dyn eventstore::EventStore>, order_id: &str) {
    let orders = eventstore::Repository::<order::Order>::new(store.clone());
    for step in [
        order::OrderCommand::Accept,
        order::OrderCommand::StartPreparing,
        order::OrderCommand::MarkReady,
    ] {
        orders
            .execute(order_id, step, eventstore::Metadata::new())
            .await
            .unwrap();
    }
}

/// Placing an order of two cakes at `unit_price` KRW each for customer `kim`.
fn two_cakes(order_id: &str, unit_price: i64) -> order::OrderCommand {
    order::OrderCommand::Place {
        order_id: order_id.to_owned(),
        customer_id: "kim".into(),
        lines: vec![contracts::events::PricedLine {
            line: contracts::StockLine {
                product_id: "cake".into(),
                quantity: 2,
            },
            product_name: "Cake".into(),
            unit_price,
        }],
    }
}

/// The order's status as its stream tells it.
async fn status(store: &Arc<dyn eventstore::EventStore>, order_id: &str) -> order::OrderStatus {
    eventstore::Repository::<order::Order>::new(store.clone())
        .load(order_id)
        .await
        .unwrap()
        .state
        .status
}

/// How many steps the saga of `order_id` has taken.
async fn saga_steps(store: &Arc<dyn eventstore::EventStore>, order_id: &str) -> usize {
    use eventstore::{Direction, Repository};
    let stream = Repository::<order::OrderSaga>::stream_of(&format!("order:{order_id}")).unwrap();
    store
        .read_stream(&stream, Direction::Forward, None, 100)
        .await
        .unwrap()
        .len()
}

/// The payment service's notice of a 12,000 KRW payment with `payment_key`.
fn payment_notice(order_id: &str, payment_key: &str) -> bus::Message {
    let body = contracts::SagaReply::PaymentConfirmed {
        payment_key: payment_key.to_owned(),
        amount: 12_000,
    };
    reply(order_id, body)
}

/// Whether `records` is exactly the commit of the order's stock.
fn is_the_commit(records: &[bus::OutgoingRecord]) -> bool {
    records.len() == 1 && String::from_utf8_lossy(&records[0].payload).contains("CommitStock")
}

/// A payment service's direct notice of a confirmed payment marks the order paid and sends
/// the commit; the relayed `PaymentConfirmed` that follows is the same input: the orchestrator
/// that took the notice skips it (both carry one message id), and another one takes no second
/// step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_notice_and_its_relayed_event_are_one_input() {
    use order::OrderStatus;

    let (orchestrator, order_id, store, models, _guard) = awaiting_payment().await;
    let notice = payment_notice(&order_id, "tpk_1");
    let sent = orchestrator.on_message(&notice).await.unwrap();
    assert!(is_the_commit(&sent), "the commit goes out");
    assert_eq!(status(&store, &order_id).await, OrderStatus::Paid);
    let steps_after_notice = saga_steps(&store, &order_id).await;
    // Handled again (its commit failed to publish, say): the commit goes out again, no step.
    let again = orchestrator.on_message(&notice).await.unwrap();
    assert!(is_the_commit(&again));
    assert_eq!(saga_steps(&store, &order_id).await, steps_after_notice);

    let relayed = relayed_confirmation(&store, &order_id, "tpk_1").await;
    assert!(
        orchestrator.on_message(&relayed).await.unwrap().is_empty(),
        "the orchestrator that took the notice has nothing left to do"
    );
    assert_eq!(saga_steps(&store, &order_id).await, steps_after_notice);
    let config = orchestrator.config().clone();
    let bus = Arc::new(MemoryBus::new());
    let elsewhere = Orchestrator::new(store.clone(), bus, models.pool().clone(), config)
        .await
        .unwrap();
    let resent = elsewhere.on_message(&relayed).await.unwrap();
    assert!(
        is_the_commit(&resent),
        "another orchestrator only re-sends the unanswered commit"
    );
    assert_eq!(
        saga_steps(&store, &order_id).await,
        steps_after_notice,
        "and takes no second step: the saga is paid"
    );
}

/// Without the payment service's notice (lost, or a payment service that does not send it),
/// the relayed `PaymentConfirmed` alone marks the order paid and sends the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relayed_confirmation_alone_marks_the_order_paid() {
    use order::{OrderStatus, Phase};

    let (orchestrator, order_id, store, models, _guard) = awaiting_payment().await;
    let relayed = relayed_confirmation(&store, &order_id, "tpk_2").await;
    let sent = orchestrator.on_message(&relayed).await.unwrap();
    assert!(is_the_commit(&sent), "the commit goes out");
    assert_eq!(
        orchestrator.phase(&order_id).await.unwrap(),
        Phase::Committing
    );
    assert_eq!(status(&store, &order_id).await, OrderStatus::Paid);
    // The index row is the step's, at the saga stream's version.
    let (phase, version): (String, i64) =
        sqlx::query_as("SELECT phase, version FROM saga_index WHERE order_id = $1")
            .bind(order_id.as_str())
            .fetch_one(models.pool())
            .await
            .unwrap();
    assert_eq!(phase, "committing");
    assert_eq!(
        usize::try_from(version).unwrap(),
        saga_steps(&store, &order_id).await
    );
    assert!(version >= 3, "placed, reserved, paid: {version}");
}

/// When the relayed `PaymentConfirmed` comes first, the notice after it takes no second step,
/// and a later redelivery of the relayed event is not skipped (only a notice that took the
/// step lets the orchestrator skip the relayed copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_after_its_relayed_event_takes_no_second_step() {
    use order::OrderStatus;

    let (orchestrator, order_id, store, _models, _guard) = awaiting_payment().await;
    let relayed = relayed_confirmation(&store, &order_id, "tpk_3").await;
    assert!(is_the_commit(
        &orchestrator.on_message(&relayed).await.unwrap()
    ));
    assert_eq!(status(&store, &order_id).await, OrderStatus::Paid);
    let paid_steps = saga_steps(&store, &order_id).await;

    let notice = payment_notice(&order_id, "tpk_3");
    let resent = orchestrator.on_message(&notice).await.unwrap();
    assert!(is_the_commit(&resent), "only the unanswered commit, again");
    assert_eq!(
        saga_steps(&store, &order_id).await,
        paid_steps,
        "the notice is the same input"
    );
    assert!(
        is_the_commit(&orchestrator.on_message(&relayed).await.unwrap()),
        "a redelivered relayed event is handled as one, not skipped"
    );
    assert_eq!(saga_steps(&store, &order_id).await, paid_steps);
}

/// Records a refund of the 12,000 KRW payment's last `amount` KRW with `refund_id` in the
/// order's payment stream and returns it as the relay delivers it.
async fn relayed_refund(
    store: &Arc<dyn eventstore::EventStore>,
    order_id: &str,
    refund_id: &str,
    amount: i64,
) -> bus::Message {
    use eventstore::{Direction, EventData, ExpectedVersion, StreamId};

    let stream = StreamId::of("payment", order_id).unwrap();
    let refunded = EventData::json(
        contracts::events::PAYMENT_REFUNDED,
        &contracts::events::PaymentRefunded {
            order_id: order_id.to_owned(),
            refund_id: refund_id.to_owned(),
            amount,
            reason: "customer called".into(),
            balance: 12_000 - amount,
        },
    )
    .unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![refunded])
        .await
        .unwrap();
    let event = store
        .read_stream(&stream, Direction::Backward, None, 1)
        .await
        .unwrap()
        .remove(0);
    as_relayed(&event)
}

/// Whether `records` is exactly the release of the order's stock.
fn is_the_release(records: &[bus::OutgoingRecord]) -> bool {
    records.len() == 1 && String::from_utf8_lossy(&records[0].payload).contains("ReleaseStock")
}

/// A whole payment cancelled at Toss (the console) refunds a paid order and returns its stock;
/// the relayed refund the saga asked for itself is left to the payment service's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_toss_refunds_a_paid_order_and_releases_its_stock() {
    use order::{OrderStatus, Phase};

    let (orchestrator, order_id, store, _models, _guard) = awaiting_payment().await;
    let notice = payment_notice(&order_id, "tpk_4");
    assert!(is_the_commit(
        &orchestrator.on_message(&notice).await.unwrap()
    ));
    let committed = contracts::SagaReply::StockCommitted {
        reservation_id: order_id.clone(),
    };
    orchestrator
        .on_message(&reply(&order_id, committed))
        .await
        .unwrap();
    let paid_steps = saga_steps(&store, &order_id).await;

    let ours = relayed_refund(&store, &order_id, &format!("{order_id}:refund"), 12_000).await;
    assert!(orchestrator.on_message(&ours).await.unwrap().is_empty());
    assert_eq!(
        saga_steps(&store, &order_id).await,
        paid_steps,
        "not an input"
    );
    assert_eq!(status(&store, &order_id).await, OrderStatus::Paid);

    // A partial cancel at Toss is the payment's business.
    let partial = relayed_refund(&store, &order_id, "toss-tx-0", 2_000).await;
    assert!(orchestrator.on_message(&partial).await.unwrap().is_empty());
    assert_eq!(status(&store, &order_id).await, OrderStatus::Paid);
    assert_eq!(saga_steps(&store, &order_id).await, paid_steps);

    let at_toss = relayed_refund(&store, &order_id, "toss-tx-1", 12_000).await;
    let sent = orchestrator.on_message(&at_toss).await.unwrap();
    assert!(is_the_release(&sent), "the stock goes back: {sent:?}");
    assert_eq!(status(&store, &order_id).await, OrderStatus::Refunded);
    assert_eq!(
        orchestrator.phase(&order_id).await.unwrap(),
        Phase::Compensating
    );
    // Delivered again: the same input, only the unanswered release again.
    let again = orchestrator.on_message(&at_toss).await.unwrap();
    assert!(is_the_release(&again));
    assert_eq!(saga_steps(&store, &order_id).await, paid_steps + 1);
}

/// A whole payment cancelled at Toss after the order was made (READY) refunds the order, and
/// its units stay sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_toss_of_a_ready_order_keeps_its_stock_sold() {
    use order::OrderStatus;

    let (orchestrator, order_id, store, _models, _guard) = awaiting_payment().await;
    orchestrator
        .on_message(&payment_notice(&order_id, "tpk_5"))
        .await
        .unwrap();
    make_ready(&store, &order_id).await;
    let at_toss = relayed_refund(&store, &order_id, "toss-tx-2", 12_000).await;
    let sent = orchestrator.on_message(&at_toss).await.unwrap();
    assert!(
        sent.iter()
            .all(|r| !String::from_utf8_lossy(&r.payload).contains("ReleaseStock")),
        "nothing goes back: {sent:?}"
    );
    assert_eq!(status(&store, &order_id).await, OrderStatus::Refunded);
}

/// A READY order rejected at pick-up is refunded and its units stay sold, also by an
/// orchestrator whose cached order is from before the order was made (the staff's steps and
/// the rejection went through another replica): a withdrawal its cache does not show yet is
/// read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_order_rejected_on_a_stale_replica_keeps_its_stock_sold() {
    use order::order::OrderCommand;

    let (orchestrator, order_id, store, _models, _guard) = awaiting_payment().await;
    // The orchestrator marks the order paid: its cache holds it PAID.
    assert!(is_the_commit(
        &orchestrator
            .on_message(&payment_notice(&order_id, "tpk_8"))
            .await
            .unwrap()
    ));
    make_ready(&store, &order_id).await;
    let rejected = OrderCommand::Reject {
        reason: "wrong cake at pick-up".into(),
    };
    let sent = withdraw(&orchestrator, &store, &order_id, rejected).await;
    let payloads: Vec<String> = sent
        .iter()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .collect();
    assert!(
        payloads.iter().any(|p| p.contains("RefundPayment")),
        "the money goes back: {payloads:?}"
    );
    assert!(
        payloads.iter().all(|p| !p.contains("ReleaseStock")),
        "the cake stays sold: {payloads:?}"
    );
}

/// When a placement's index write fails, its saga is left to the placed order coming over the
/// bus: the orchestrator that placed it does not take that for a copy of its own work, but
/// indexes the saga and sends the reserve command again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_whose_index_write_failed_is_carried_out_from_the_bus() {
    use eventstore::{Direction, Metadata, Repository};

    let (store, models, _guard) = testkit::stores::sqlite().await;
    let config = SagaConfig {
        topic_prefix: "t.".into(),
        ..SagaConfig::default()
    };
    let orchestrator = Orchestrator::new(
        store.clone(),
        Arc::new(MemoryBus::new()),
        models.pool().clone(),
        config.clone(),
    )
    .await
    .unwrap();
    sqlx::query("DROP TABLE saga_index")
        .execute(models.pool())
        .await
        .unwrap();
    let order_id = uuid::Uuid::new_v4().to_string();
    orchestrator
        .place(&order_id, two_cakes(&order_id, 6_000), Metadata::new())
        .await
        .unwrap()
        .expect("placed, though its index write fails");
    orchestrator.placements_carried_out().await;
    // The index is back (another process starting creates it again).
    order::saga_index::SagaIndex::open(models.pool().clone())
        .await
        .unwrap();
    let placed = store
        .read_stream(
            &Repository::<order::Order>::stream_of(&order_id).unwrap(),
            Direction::Forward,
            None,
            1,
        )
        .await
        .unwrap()
        .remove(0);
    let sent = orchestrator.on_message(&as_relayed(&placed)).await.unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(String::from_utf8_lossy(&sent[0].payload).contains("ReserveStock"));
    let indexed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM saga_index WHERE order_id = $1")
        .bind(order_id.as_str())
        .fetch_one(models.pool())
        .await
        .unwrap();
    assert_eq!(indexed, 1, "indexed from the bus");
}

/// An orchestrator whose cached order and saga are behind their streams (another replica took
/// the payment) still refunds the order when the payment is cancelled at Toss: an order that
/// would not change on a stale state is read again, not skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_toss_on_a_stale_replica_still_refunds_the_order() {
    use eventstore::Metadata;
    use order::OrderStatus;

    let (store, models, _guard) = testkit::stores::sqlite().await;
    let config = SagaConfig {
        topic_prefix: "t.".into(),
        ..SagaConfig::default()
    };
    let replica = || {
        Orchestrator::new(
            store.clone(),
            Arc::new(MemoryBus::new()),
            models.pool().clone(),
            config.clone(),
        )
    };
    let (first, second) = (replica().await.unwrap(), replica().await.unwrap());
    let order_id = uuid::Uuid::new_v4().to_string();
    first
        .place(&order_id, two_cakes(&order_id, 6_000), Metadata::new())
        .await
        .unwrap()
        .expect("placed");
    // The second replica takes the reservation: it caches the order awaiting payment.
    let reserved = contracts::SagaReply::StockReserved {
        reservation_id: order_id.clone(),
    };
    second
        .on_message(&reply(&order_id, reserved))
        .await
        .unwrap();
    assert_eq!(status(&store, &order_id).await, OrderStatus::PaymentPending);
    // The first takes the payment.
    assert!(is_the_commit(
        &first
            .on_message(&payment_notice(&order_id, "tpk_6"))
            .await
            .unwrap()
    ));
    assert_eq!(status(&store, &order_id).await, OrderStatus::Paid);

    let at_toss = relayed_refund(&store, &order_id, "toss-tx-3", 12_000).await;
    let sent = second.on_message(&at_toss).await.unwrap();
    assert!(
        sent.iter()
            .any(|r| String::from_utf8_lossy(&r.payload).contains("ReleaseStock")),
        "the stock goes back: {sent:?}"
    );
    assert_eq!(status(&store, &order_id).await, OrderStatus::Refunded);
}

/// A cancel at Toss while the saga's own refund of a cancelled order is waiting counts as that
/// refund: the order is refunded as the saga's refund would have it, nothing more is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_toss_while_the_saga_refunds_counts_as_its_refund() {
    use order::OrderStatus;
    use order::order::OrderCommand;

    let (orchestrator, order_id, store, _models, _guard) = awaiting_payment().await;
    orchestrator
        .on_message(&payment_notice(&order_id, "tpk_7"))
        .await
        .unwrap();
    let withdrawn = withdraw(
        &orchestrator,
        &store,
        &order_id,
        OrderCommand::Cancel {
            reason: "changed my mind".into(),
        },
    )
    .await;
    assert_eq!(withdrawn.len(), 2, "release and refund: {withdrawn:?}");

    let at_toss = relayed_refund(&store, &order_id, "toss-tx-4", 12_000).await;
    let sent = orchestrator.on_message(&at_toss).await.unwrap();
    assert!(
        sent.iter()
            .all(|r| !String::from_utf8_lossy(&r.payload).contains("RefundPayment")),
        "the refund is answered, not sent again: {sent:?}"
    );
    let orders = eventstore::Repository::<order::Order>::new(store.clone());
    let order = orders.load(&order_id).await.unwrap().state;
    assert_eq!(order.status, OrderStatus::Refunded);
    assert_eq!(
        order.timeline.last().unwrap().reason.as_deref(),
        Some("payment refunded")
    );
}

/// A payment that arrives after the order was cancelled is refunded, and the order, which
/// never showed the payment, shows the refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_payment_is_refunded_and_the_order_shows_it() {
    use order::OrderStatus;

    let (orchestrator, order_id, store, _models, _guard) = awaiting_payment().await;
    withdraw(
        &orchestrator,
        &store,
        &order_id,
        order::OrderCommand::Cancel {
            reason: "changed my mind".into(),
        },
    )
    .await;
    let sent = orchestrator
        .on_message(&payment_notice(&order_id, "tpk_late"))
        .await
        .unwrap();
    assert!(
        sent.iter()
            .any(|r| String::from_utf8_lossy(&r.payload).contains("RefundPayment")),
        "the late payment goes back: {sent:?}"
    );
    assert_eq!(status(&store, &order_id).await, OrderStatus::Cancelled);
    let refunded = contracts::SagaReply::PaymentRefunded {
        refund_id: order::saga::refund_id(&order_id),
        amount: 12_000,
    };
    orchestrator
        .on_message(&reply(&order_id, refunded))
        .await
        .unwrap();
    let orders = eventstore::Repository::<order::Order>::new(store.clone());
    let order = orders.load(&order_id).await.unwrap().state;
    assert_eq!(order.status, OrderStatus::Refunded);
    assert_eq!(
        order.timeline.last().unwrap().reason.as_deref(),
        Some("late payment refunded")
    );
    assert!(order.settled());
}

/// A refund Toss refused for good leaves the customer's money taken: the order shows it
/// (REFUND_FAILED) and it is counted (once, a redelivery taking no step) for alerts.
#[tokio::test(flavor = "current_thread")]
async fn a_refund_refused_for_good_is_counted() {
    use metrics_exporter_prometheus::PrometheusBuilder;

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // A current-thread runtime: the saga steps on this thread, under this recorder.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (orchestrator, order_id, store, _models, _store_guard) = awaiting_payment().await;
    orchestrator
        .on_message(&payment_notice(&order_id, "tpk_9"))
        .await
        .unwrap();
    withdraw(
        &orchestrator,
        &store,
        &order_id,
        order::OrderCommand::Reject {
            reason: "oven broke".into(),
        },
    )
    .await;
    let counted = || {
        handle
            .render()
            .lines()
            .find(|l| l.starts_with("saga_refunds_failed_total"))
            .map(str::to_owned)
    };
    // Refused for now: the saga tries again itself; nothing to alert on.
    let for_now = reply(
        &order_id,
        contracts::SagaReply::RefundFailed {
            refund_id: order::saga::refund_id(&order_id),
            code: "PROVIDER_ERROR".into(),
            reason: "try again in a few minutes".into(),
            temporary: true,
        },
    );
    orchestrator.on_message(&for_now).await.unwrap();
    assert_eq!(counted(), None, "a refusal for now is not counted");
    let later = order::saga::SagaInput::Tick {
        now: chrono::Utc::now() + chrono::Duration::hours(1),
    };
    let sent = orchestrator
        .advance(&order_id, uuid::Uuid::new_v4(), later)
        .await
        .unwrap();
    assert!(
        sent.iter()
            .any(|r| String::from_utf8_lossy(&r.payload).contains(":refund:2")),
        "asked again: {sent:?}"
    );
    let failed = reply(
        &order_id,
        contracts::SagaReply::RefundFailed {
            refund_id: order::saga::refund_attempt_id(&order_id, 2),
            code: "NOT_CANCELABLE_PAYMENT".into(),
            reason: "the payment cannot be cancelled".into(),
            temporary: false,
        },
    );
    orchestrator.on_message(&failed).await.unwrap();
    orchestrator.on_message(&failed).await.unwrap();
    assert_eq!(counted().as_deref(), Some("saga_refunds_failed_total 1"));
    // Staff see it on the order.
    assert_eq!(
        status(&store, &order_id).await,
        order::OrderStatus::RefundFailed
    );
}

/// A saga the clock cannot advance (here an index row whose order id names no valid stream)
/// is tried again after `resend_after`, not first on every tick: the clock takes the earliest
/// first, so 500 such sagas would otherwise hold back every other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_the_clock_cannot_advance_waits_before_it_is_tried_again() {
    let (store, models, _guard) = testkit::stores::sqlite().await;
    let config = SagaConfig {
        topic_prefix: "t.".into(),
        ..SagaConfig::default()
    };
    let resend_after = config.resend_after;
    let orchestrator = Orchestrator::new(
        store,
        Arc::new(MemoryBus::new()),
        models.pool().clone(),
        config,
    )
    .await
    .unwrap();
    // One saga past its deadline, one with a command unanswered for long.
    let long_ago = "2000-01-01T00:00:00.000000Z";
    for (order_id, deadline, pending) in [("due id!", Some(long_ago), 0_i64), ("late id!", None, 1)]
    {
        sqlx::query(
            "INSERT INTO saga_index (order_id, phase, deadline, pending, updated_at, version) \
             VALUES ($1, 'awaiting_payment', $2, $3, $4, 1)",
        )
        .bind(order_id)
        .bind(deadline)
        .bind(pending)
        .bind(long_ago)
        .execute(models.pool())
        .await
        .unwrap();
    }
    let before = chrono::Utc::now();
    orchestrator.tick().await.unwrap();
    let row = |order_id: &'static str| {
        let pool = models.pool().clone();
        async move {
            let (deadline, updated_at): (Option<String>, String) =
                sqlx::query_as("SELECT deadline, updated_at FROM saga_index WHERE order_id = $1")
                    .bind(order_id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            let at = |stamp: &str| {
                chrono::DateTime::parse_from_rfc3339(stamp)
                    .unwrap()
                    .with_timezone(&chrono::Utc)
            };
            (deadline.map(|d| at(&d)), at(&updated_at))
        }
    };
    let (deadline, _) = row("due id!").await;
    assert!(
        deadline.unwrap() >= before + resend_after,
        "the due saga's deadline moved past the next ticks"
    );
    let (deadline, updated_at) = row("late id!").await;
    assert_eq!(deadline, None, "a saga without a deadline gets none");
    assert!(
        updated_at >= before,
        "the unanswered saga's stamp moved to the tick"
    );
    let index = order::saga_index::SagaIndex::open(models.pool().clone())
        .await
        .unwrap();
    assert!(
        index.due(chrono::Utc::now()).await.unwrap().is_empty(),
        "not due on the next tick"
    );
}
