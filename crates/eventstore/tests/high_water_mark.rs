//! `$all` readers on Postgres never skip an event that an older transaction commits after a
//! younger one (the "high water mark" problem), tested with deliberately overlapping transactions.

use std::time::Duration;

use eventstore::{EventData, EventStore, ExpectedVersion, PgEventStore, Position, StreamId};
use futures::StreamExt;
use serde_json::json;

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

fn ev(n: u64) -> EventData {
    EventData::new("Counted", json!({ "n": n }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_transaction_that_commits_late_is_not_skipped() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 8).await.unwrap();
    let mut sub = store.subscribe_all(Position::START);

    // A: takes its position first and stays open.
    let e1 = ev(1);
    let mut tx_a = store.pool().begin().await.unwrap();
    let a = store
        .append_in(
            &mut tx_a,
            &stream("order-a"),
            ExpectedVersion::Any,
            std::slice::from_ref(&e1),
        )
        .await
        .unwrap();
    // B: younger, commits first.
    let e2 = ev(2);
    let b = store
        .append(&stream("order-b"), ExpectedVersion::Any, vec![e2.clone()])
        .await
        .unwrap();
    assert!(
        a.first_position < b.first_position,
        "A holds the earlier position"
    );

    // While A is open nothing may be delivered: delivering e2 now would skip e1 for good.
    let early = tokio::time::timeout(Duration::from_millis(800), sub.next()).await;
    assert!(
        early.is_err(),
        "an event was delivered past an open older transaction"
    );
    assert!(
        store
            .read_all(Position::START, 10)
            .await
            .unwrap()
            .is_empty()
    );

    tx_a.commit().await.unwrap();
    store.notify_committed();
    let mut got = Vec::new();
    for _ in 0..2 {
        let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("events arrive once A commits")
            .unwrap()
            .unwrap();
        got.push(e.id);
    }
    assert_eq!(got, vec![e1.id, e2.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_older_transaction_does_not_stall_readers() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 8).await.unwrap();
    let mut sub = store.subscribe_all(Position::START);
    let mut tx_a = store.pool().begin().await.unwrap();
    store
        .append_in(
            &mut tx_a,
            &stream("order-a"),
            ExpectedVersion::Any,
            &[ev(1)],
        )
        .await
        .unwrap();
    let e2 = ev(2);
    store
        .append(&stream("order-b"), ExpectedVersion::Any, vec![e2.clone()])
        .await
        .unwrap();
    tx_a.rollback().await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("delivered after the rollback")
        .unwrap()
        .unwrap();
    assert_eq!(e.id, e2.id);
    assert_eq!(store.read_all(Position::START, 10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_overlapping_transactions_are_all_delivered_in_order() {
    const TXS: u64 = 40;
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 48).await.unwrap();
    let mut sub = store.subscribe_all(Position::START);
    let writers: Vec<_> = (0..TXS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.pool().begin().await.unwrap();
                store
                    .append_in(
                        &mut tx,
                        &stream(&format!("order-{i}")),
                        ExpectedVersion::Any,
                        &[ev(i), ev(i + 1000)],
                    )
                    .await
                    .unwrap();
                // Hold the transaction open for a varying time so commits land out of order.
                tokio::time::sleep(Duration::from_millis((TXS - i) * 7 % 97)).await;
                tx.commit().await.unwrap();
                store.notify_committed();
            })
        })
        .collect();
    let mut seen = Vec::new();
    while seen.len() < (TXS * 2) as usize {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("every committed event arrives")
            .unwrap()
            .unwrap();
        seen.push(e);
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    let all = store.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        seen.iter().map(|e| e.id).collect::<Vec<_>>(),
        "the live subscription saw exactly what a later full read sees"
    );
}
