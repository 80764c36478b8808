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
