//! The saga's payment commands over the (in-process) message bus: a refund command is
//! answered on the replies topic, keyed by order id, with a stable reply id.

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
    let _ = stop.send(());
    consumer.await.unwrap().unwrap();
}
