//! An append whose caller goes away mid-write (a dropped request) leaves the embedded store
//! usable: SQLite has one writer connection, and a transaction cut in half would poison it.

use std::time::Duration;

use eventstore::{EventData, EventStore, ExpectedVersion, SqliteEventStore, StreamId};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_cancelled_mid_write_do_not_poison_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteEventStore::open(dir.path().join("events.db"))
        .await
        .unwrap();
    // Cancel appends at many points of their life: before, during and after the transaction.
    for i in 0..200u64 {
        let stream = StreamId::parse(format!("cancelled-{i}")).unwrap();
        let events: Vec<EventData> = (0..50)
            .map(|n| EventData::new("Counted", json!({ "n": n, "pad": "x".repeat(200) })))
            .collect();
        let writer = store.clone();
        let task =
            tokio::spawn(async move { writer.append(&stream, ExpectedVersion::Any, events).await });
        tokio::time::sleep(Duration::from_micros(i * 25)).await;
        task.abort();
        let _ = task.await;
    }
    let stream = StreamId::parse("after").unwrap();
    let done = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![EventData::new("Counted", json!({ "n": 1 }))],
        )
        .await
        .expect("the writer still works after cancelled appends");
    assert_eq!(done.next_expected_version, 1);
}
