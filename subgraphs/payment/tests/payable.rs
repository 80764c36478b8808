//! The `payable` read model fed live from the event store, on Postgres and on SQLite (the same
//! portable SQL): payment requests recorded, closing order events applied, others ignored.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{order_status, payment_requested};
use eventstore::{EventData, EventStore, ExpectedVersion, StreamId};
use payment::payable::{Payable, PayableOrder, PayableOrders};
use projections::ReadModels;

use testkit::stores::{postgres, sqlite};

async fn append(store: &Arc<dyn EventStore>, order_id: &str, event: EventData) {
    let stream = StreamId::of("order", order_id).unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
}

async fn follows_order_events(store: Arc<dyn EventStore>, models: ReadModels) {
    let payable = PayableOrders::new(models.clone()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(projections::run_from_store(
        models.clone(),
        Arc::new(Payable),
        store.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let expires = Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).unwrap();
    append(
        &store,
        "o-1",
        EventData::new("OrderPlaced", serde_json::json!({ "order_id": "o-1" })),
    )
    .await;
    append(
        &store,
        "o-1",
        payment_requested("o-1", "c-1", 15_000, expires),
    )
    .await;
    append(
        &store,
        "o-2",
        payment_requested("o-2", "c-2", 7_000, expires),
    )
    .await;
    append(
        &store,
        "o-2",
        EventData::new("SomethingNew", serde_json::json!({ "x": 1 })),
    )
    .await;
    append(
        &store,
        "o-2",
        order_status("OrderExpired", "o-2", "EXPIRED"),
    )
    .await;

    let settled = testkit::eventually(Duration::from_secs(20), || async {
        matches!(
            payable.get("o-2").await,
            Ok(Some(PayableOrder {
                closed_by: Some(_),
                ..
            }))
        )
    })
    .await;
    assert!(settled, "the read model caught up");
    assert_eq!(
        payable.get("o-1").await.unwrap(),
        Some(PayableOrder {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            amount: 15_000,
            expires_at: expires,
            closed_by: None,
        })
    );
    let o2 = payable.get("o-2").await.unwrap().unwrap();
    assert_eq!(o2.closed_by.as_deref(), Some("OrderExpired"));
    assert!(
        o2.unpayable_reason(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
            .is_some()
    );
    assert_eq!(payable.get("o-3").await.unwrap(), None);
    let _ = stop.send(());
    runner.await.unwrap().unwrap();
}

#[tokio::test]
async fn follows_order_events_on_postgres() {
    let (store, models, _guard) = postgres().await;
    follows_order_events(store, models).await;
}

#[tokio::test]
async fn follows_order_events_on_sqlite() {
    let (store, models, _guard) = sqlite().await;
    follows_order_events(store, models).await;
}

/// The events of `order_id` as stored.
async fn stored(store: &Arc<dyn EventStore>, order_id: &str) -> Vec<eventstore::RecordedEvent> {
    let stream = StreamId::of("order", order_id).unwrap();
    store
        .read_stream(&stream, eventstore::Direction::Forward, None, 100)
        .await
        .unwrap()
}

/// A batch is written as one upsert (and updates for orders requested earlier): the rows end
/// as its events applied one by one would leave them.
async fn applies_a_batch_as_its_events_in_order(store: Arc<dyn EventStore>, models: ReadModels) {
    let payable = PayableOrders::new(models.clone()).await.unwrap();
    let expires = Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).unwrap();
    for (order, amount) in [("o-a", 1_000), ("o-b", 2_000), ("o-c", 3_000)] {
        append(
            &store,
            order,
            payment_requested(order, "c-1", amount, expires),
        )
        .await;
    }
    append(
        &store,
        "o-a",
        order_status("OrderCancelled", "o-a", "CANCELLED"),
    )
    .await;
    let first: Vec<_> = [
        stored(&store, "o-a").await,
        stored(&store, "o-b").await,
        stored(&store, "o-c").await,
    ]
    .concat();
    models.apply_batch(&Payable, &first, None).await.unwrap();

    append(
        &store,
        "o-c",
        order_status("OrderRejected", "o-c", "REJECTED"),
    )
    .await;
    append(
        &store,
        "o-d",
        order_status("OrderExpired", "o-d", "EXPIRED"),
    )
    .await;
    append(
        &store,
        "o-d",
        payment_requested("o-d", "c-2", 4_000, expires),
    )
    .await;
    let second: Vec<_> = [
        stored(&store, "o-c").await.split_off(1),
        stored(&store, "o-d").await,
    ]
    .concat();
    models.apply_batch(&Payable, &second, None).await.unwrap();

    let closed_by = |o: Option<PayableOrder>| o.map(|o| (o.amount, o.closed_by));
    assert_eq!(
        closed_by(payable.get("o-a").await.unwrap()),
        Some((1_000, Some("OrderCancelled".into())))
    );
    assert_eq!(
        closed_by(payable.get("o-b").await.unwrap()),
        Some((2_000, None))
    );
    assert_eq!(
        closed_by(payable.get("o-c").await.unwrap()),
        Some((3_000, Some("OrderRejected".into())))
    );
    // Closed before it was requested (in the same batch): the later request wins.
    assert_eq!(
        closed_by(payable.get("o-d").await.unwrap()),
        Some((4_000, None))
    );
}

#[tokio::test]
async fn applies_a_batch_as_its_events_in_order_on_postgres() {
    let (store, models, _guard) = postgres().await;
    applies_a_batch_as_its_events_in_order(store, models).await;
}

#[tokio::test]
async fn applies_a_batch_as_its_events_in_order_on_sqlite() {
    let (store, models, _guard) = sqlite().await;
    applies_a_batch_as_its_events_in_order(store, models).await;
}
