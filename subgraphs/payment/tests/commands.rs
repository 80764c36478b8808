//! The saga's payment commands over the (in-process) message bus: a refund command is
//! answered on the replies topic, keyed by order id, with a stable reply id; what is no
//! command goes to the dead-letter topic.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bus::{MemoryBus, MessageBus, OutgoingRecord};
use common::Harness;
use contracts::{Envelope, PaymentCommand, SagaReply};

#[tokio::test]
async fn a_refund_command_is_answered_on_the_replies_topic() {
    let h = Harness::new().await;
    let (order, _) = h.paid_order("c-1", 15_000).await;

    let bus: Arc<dyn MessageBus> = Arc::new(MemoryBus::new());
    let prefix = format!("{}.", testkit::unique_name("t"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn({
        let bus = bus.clone();
        let service = h.service.clone();
        let prefix = prefix.clone();
        async move {
            payment::commands::run_commands(bus, service, "payment", &prefix, 2, async move {
                let _ = stopped.await;
            })
            .await
        }
    });

    let command = Envelope::new(
        &order,
        PaymentCommand::RefundPayment {
            refund_id: "refund-1".into(),
            amount: None,
            reason: "rejected".into(),
        },
    );
    let payload = serde_json::to_vec(&command).unwrap();
    let commands = format!("{prefix}{}", contracts::PAYMENT_COMMANDS);
    let replies = format!("{prefix}{}", contracts::SAGA_REPLIES);
    bus.ensure_topics(&[&commands, &replies], 1).await.unwrap();
    // Delivered twice (at least once): answered twice, identically, refunded once.
    bus.publish(vec![
        OutgoingRecord::new(&commands, &order, payload.clone()),
        OutgoingRecord::new(&commands, &order, b"not a command".to_vec()),
        OutgoingRecord::new(&commands, &order, payload),
    ])
    .await
    .unwrap();

    let mut saga = bus.subscribe("saga", &[&replies]).await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(20), saga.recv())
            .await
            .expect("a reply")
            .unwrap();
        assert_eq!(msg.key.as_deref(), Some(order.as_bytes()));
        let reply: Envelope<SagaReply> = serde_json::from_slice(&msg.payload).unwrap();
        answers.push(reply);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].order_id, order);
    assert_ne!(answers[0].message_id, command.message_id);
    assert_eq!(
        answers[0].body,
        SagaReply::PaymentRefunded {
            refund_id: "refund-1".into(),
            amount: 15_000
        }
    );
    assert_eq!(h.toss.server.stats().cancels, 1);
    // The message that is no command is kept on the dead-letter topic, with the reason.
    let mut dlq = bus
        .subscribe("ops", &[&bus::dead_letter_topic(&commands)])
        .await
        .unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(20), dlq.recv())
        .await
        .expect("a dead letter")
        .unwrap();
    assert_eq!(dead.payload, b"not a command");
    assert_eq!(dead.key.as_deref(), Some(order.as_bytes()));
    assert!(dead.header("error").is_some_and(|e| !e.is_empty()));
    let _ = stop.send(());
    consumer.await.unwrap().unwrap();
}

/// A refund Toss keeps failing (it times out every time, so the command is retried) holds up
/// only its own lane: another order's refund is answered meanwhile, and the first is answered
/// once Toss answers again.
#[tokio::test]
async fn a_refund_toss_keeps_failing_holds_up_no_other_order() {
    let h = Harness::new().await;
    let (stuck, stuck_key) = h.paid_order("c-1", 15_000).await;
    let lane = |order: &str| bus::worker::lane_of(order.as_bytes(), payment::commands::LANES);
    let mut other = h.paid_order("c-2", 9_000).await.0;
    while lane(&other) == lane(&stuck) {
        other = h.paid_order("c-2", 9_000).await.0;
    }
    h.toss
        .server
        .set_failure(payment::toss::FailureMode::Timeout, Some(&stuck_key));

    let bus: Arc<dyn MessageBus> = Arc::new(MemoryBus::new());
    let prefix = format!("{}.", testkit::unique_name("t"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = tokio::spawn({
        let (bus, service, prefix) = (bus.clone(), h.service.clone(), prefix.clone());
        async move {
            payment::commands::run_commands(bus, service, "payment", &prefix, 1, async move {
                let _ = stopped.await;
            })
            .await
        }
    });
    let commands = format!("{prefix}{}", contracts::PAYMENT_COMMANDS);
    let replies = format!("{prefix}{}", contracts::SAGA_REPLIES);
    bus.ensure_topics(&[&commands, &replies], 1).await.unwrap();
    let refund = |order: &str| {
        let command = Envelope::new(
            order,
            PaymentCommand::RefundPayment {
                refund_id: format!("{order}:refund"),
                amount: None,
                reason: "rejected".into(),
            },
        );
        OutgoingRecord::new(&commands, order, serde_json::to_vec(&command).unwrap())
    };
    // The stuck order's command first, on the same partition.
    bus.publish(vec![refund(&stuck), refund(&other)])
        .await
        .unwrap();

    let mut saga = bus.subscribe("saga", &[&replies]).await.unwrap();
    let next_reply = async |saga: &mut Box<dyn bus::Consumer>| {
        let msg = tokio::time::timeout(Duration::from_secs(20), saga.recv())
            .await
            .expect("a reply")
            .unwrap();
        serde_json::from_slice::<Envelope<SagaReply>>(&msg.payload).unwrap()
    };
    let first = next_reply(&mut saga).await;
    assert_eq!(
        first.order_id, other,
        "answered while the stuck refund fails"
    );
    assert_eq!(
        first.body,
        SagaReply::PaymentRefunded {
            refund_id: format!("{other}:refund"),
            amount: 9_000
        }
    );
    h.toss
        .server
        .set_failure(payment::toss::FailureMode::None, Some(&stuck_key));
    let second = next_reply(&mut saga).await;
    assert_eq!(second.order_id, stuck);
    assert_eq!(
        second.body,
        SagaReply::PaymentRefunded {
            refund_id: format!("{stuck}:refund"),
            amount: 15_000
        }
    );
    let _ = stop.send(());
    consumer.await.unwrap().unwrap();
}
