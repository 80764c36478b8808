//! Group commit on Postgres: concurrent appends share transactions, yet each stays atomic and
//! is refused on its own.

use std::collections::HashMap;

use eventstore::{
    EventData, EventStore, ExpectedVersion, PgEventStore, StoreError, StreamAppend, StreamId,
};
use serde_json::json;

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

fn ev(n: u64) -> EventData {
    EventData::new("Counted", json!({ "n": n }))
}

/// The transaction a position was written in (positions are the writer's xid << 16 plus an
/// offset).
fn transaction(position: u64) -> u64 {
    position >> 16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_are_refused_one_by_one() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 8).await.unwrap();
    let taken = ev(0);
    store
        .append(
            &stream("taken"),
            ExpectedVersion::NoStream,
            vec![taken.clone()],
        )
        .await
        .unwrap();

    // One burst: 60 appends to their own streams (some of two streams at once), 40 racing to
    // create one stream, 10 expecting a wrong version, and 10 reusing a stored event's id.
    let mut tasks = Vec::new();
    for i in 0..60u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let own = stream(&format!("own-{i}"));
            if i % 3 == 0 {
                let pair = stream(&format!("pair-{i}"));
                let done = store
                    .append_multi(vec![
                        StreamAppend::new(own, ExpectedVersion::NoStream, vec![ev(i), ev(i + 1)]),
                        StreamAppend::new(pair, ExpectedVersion::Any, vec![ev(i)]),
                    ])
                    .await;
                ("own", done)
            } else {
                let done = store
                    .append(&own, ExpectedVersion::NoStream, vec![ev(i), ev(i + 1)])
                    .await
                    .map(|r| vec![r]);
                ("own", done)
            }
        }));
    }
    for i in 0..3u64 {
        // Bulk appends, written at once beside the queue.
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let events = (0..100).map(ev).collect();
            let done = store
                .append(
                    &stream(&format!("bulk-{i}")),
                    ExpectedVersion::NoStream,
                    events,
                )
                .await
                .map(|r| vec![r]);
            ("bulk", done)
        }));
    }
    for i in 0..40u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let done = store
                .append(&stream("race"), ExpectedVersion::NoStream, vec![ev(i)])
                .await
                .map(|r| vec![r]);
            ("race", done)
        }));
    }
    for i in 0..10u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let done = store
                .append(&stream("taken"), ExpectedVersion::Exact(5), vec![ev(i)])
                .await
                .map(|r| vec![r]);
            ("stale", done)
        }));
    }
    for i in 0..5u64 {
        // Two streams, refused on the second (in lock order): the first stays untouched.
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let done = store
                .append_multi(vec![
                    StreamAppend::new(stream("taken"), ExpectedVersion::Exact(7), vec![ev(i)]),
                    StreamAppend::new(
                        stream(&format!("first-{i}")),
                        ExpectedVersion::NoStream,
                        vec![ev(i)],
                    ),
                ])
                .await;
            ("second", done)
        }));
    }
    for i in 0..10u64 {
        let store = store.clone();
        let mut reused = ev(i);
        reused.id = taken.id;
        tasks.push(tokio::spawn(async move {
            let done = store
                .append(
                    &stream(&format!("reuse-{i}")),
                    ExpectedVersion::Any,
                    vec![reused],
                )
                .await
                .map(|r| vec![r]);
            ("reuse", done)
        }));
    }

    let mut transactions: HashMap<u64, usize> = HashMap::new();
    let mut race_won = 0;
    for task in tasks {
        let (kind, done) = task.await.unwrap();
        match (kind, done) {
            ("own", Ok(results)) => {
                // Two events in the own stream, then one in the pair stream (if any), all in
                // the append's one transaction.
                for (result, events) in results.iter().zip([2, 1]) {
                    assert_eq!(result.last_position.0 - result.first_position.0 + 1, events);
                    assert_eq!(
                        transaction(result.first_position.0),
                        transaction(results[0].first_position.0)
                    );
                }
                *transactions
                    .entry(transaction(results[0].first_position.0))
                    .or_default() += 1;
            }
            ("bulk", Ok(results)) => {
                assert_eq!(results[0].next_expected_version, 100);
                assert_eq!(
                    results[0].last_position.0 - results[0].first_position.0 + 1,
                    100
                );
            }
            ("race", Ok(results)) => {
                race_won += 1;
                assert_eq!(results[0].next_expected_version, 1);
            }
            ("race", Err(StoreError::WrongExpectedVersion { actual, .. })) => {
                assert_eq!(actual, 1)
            }
            ("stale", Err(StoreError::WrongExpectedVersion { actual, .. })) => {
                assert_eq!(actual, 1)
            }
            ("second", Err(StoreError::WrongExpectedVersion { stream, actual, .. })) => {
                assert_eq!((stream.as_str(), actual), ("taken", 1))
            }
            ("reuse", Err(StoreError::DuplicateEventId { id })) => assert_eq!(id, taken.id),
            (kind, outcome) => panic!("{kind}: unexpected {outcome:?}"),
        }
    }
    assert_eq!(race_won, 1, "exactly one append creates the raced stream");

    // Every own stream holds exactly its two events, and every pair stream its one.
    for i in 0..60u64 {
        let events = store
            .read_stream(
                &stream(&format!("own-{i}")),
                eventstore::Direction::Forward,
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(events.len(), 2, "own-{i}");
        assert_eq!(events[0].data, json!({ "n": i }));
        assert_eq!(events[1].version, 2);
        assert_eq!(events[0].position.0 + 1, events[1].position.0);
        if i % 3 == 0 {
            let pair = store
                .stream_version(&stream(&format!("pair-{i}")))
                .await
                .unwrap();
            assert_eq!(pair, 1, "pair-{i}");
        }
    }
    for i in 0..10u64 {
        let version = store
            .stream_version(&stream(&format!("reuse-{i}")))
            .await
            .unwrap();
        assert_eq!(version, 0, "a refused append wrote nothing to reuse-{i}");
    }
    assert_eq!(store.stream_version(&stream("taken")).await.unwrap(), 1);
    for i in 0..5u64 {
        let version = store
            .stream_version(&stream(&format!("first-{i}")))
            .await
            .unwrap();
        assert_eq!(version, 0, "first-{i} was written with its refused partner");
    }

    // The burst was written in fewer transactions than appends: commits were shared.
    let appends: usize = transactions.values().sum();
    assert_eq!(appends, 60);
    assert!(
        transactions.len() < appends,
        "{appends} appends in {} transactions: nothing was group-committed",
        transactions.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_stream_holds_back_only_its_own_appends() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 8).await.unwrap();
    let locked = stream("locked");
    store
        .append(&locked, ExpectedVersion::NoStream, vec![ev(0)])
        .await
        .unwrap();
    // An open transaction holds the stream's row.
    let mut tx = store.pool().begin().await.unwrap();
    store
        .append_in(&mut tx, &locked, ExpectedVersion::Exact(1), &[ev(1)])
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let store = store.clone();
        let locked = locked.clone();
        async move {
            store
                .append(&locked, ExpectedVersion::Any, vec![ev(2)])
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Appends to other streams are not queued behind it.
    for i in 0..5u64 {
        let done = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.append(
                &stream(&format!("free-{i}")),
                ExpectedVersion::NoStream,
                vec![ev(i)],
            ),
        )
        .await
        .expect("an append to another stream waited for the locked one")
        .unwrap();
        assert_eq!(done.next_expected_version, 1);
    }
    assert!(!waiting.is_finished(), "the locked stream's append waits");

    tx.commit().await.unwrap();
    store.notify_committed();
    let done = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the locked stream's append goes on once the lock is released")
        .unwrap()
        .unwrap();
    assert_eq!(done.next_expected_version, 3);
}

/// Runs `es_append_batch` on `tx`: groups of `(stream, kind, expected, events)`.
async fn append_batch(
    tx: &mut sqlx::PgConnection,
    groups: &[&[(&str, i16, i64, i32)]],
) -> Vec<(i32, Option<i64>, Option<i64>, Option<i64>, Option<String>)> {
    let sizes: Vec<i32> = groups.iter().map(|g| g.len() as i32).collect();
    let all: Vec<&(&str, i16, i64, i32)> = groups.iter().flat_map(|g| g.iter()).collect();
    let streams: Vec<&str> = all.iter().map(|s| s.0).collect();
    let kinds: Vec<i16> = all.iter().map(|s| s.1).collect();
    let expected: Vec<i64> = all.iter().map(|s| s.2).collect();
    let counts: Vec<i32> = all.iter().map(|s| s.3).collect();
    let events: usize = counts.iter().map(|&c| c as usize).sum();
    let ids: Vec<uuid::Uuid> = (0..events).map(|_| uuid::Uuid::new_v4()).collect();
    let types = vec!["Counted"; events];
    let datas: Vec<serde_json::Value> = (0..events).map(|n| json!({ "n": n })).collect();
    let metas = vec![serde_json::to_value(eventstore::Metadata::new()).unwrap(); events];
    sqlx::query_as(
        "SELECT grp, stream_version, first_position, last_position, refusal \
         FROM es_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, 50)",
    )
    .bind(&sizes)
    .bind(&streams)
    .bind(&kinds)
    .bind(&expected)
    .bind(&counts)
    .bind(&ids)
    .bind(&types)
    .bind(&datas)
    .bind(&metas)
    .fetch_all(tx)
    .await
    .unwrap()
}

/// Calls of `es_append_multi` (the per-group path) in the current transaction so far.
async fn per_group_calls(tx: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_xact_user_functions \
         WHERE funcname = 'es_append_multi'",
    )
    .fetch_one(tx)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_batch_nothing_refuses_is_written_without_a_subtransaction_per_group() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 2).await.unwrap();
    store
        .append(
            &stream("old"),
            ExpectedVersion::NoStream,
            vec![ev(0), ev(1)],
        )
        .await
        .unwrap();
    store
        .append(&stream("kept"), ExpectedVersion::NoStream, vec![ev(0)])
        .await
        .unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("SET LOCAL track_functions = 'pl'")
        .execute(&mut *tx)
        .await
        .unwrap();

    // Kinds: 0 any, 1 no stream, 2 stream exists, 3 exact.
    let rows = append_batch(
        &mut tx,
        &[
            &[("new-a", 1, 0, 2), ("old", 3, 2, 1)],
            &[("kept", 2, 0, 3)],
            &[("new-b", 0, 0, 1), ("new-c", 1, 0, 1)],
        ],
    )
    .await;
    assert_eq!(
        per_group_calls(&mut tx).await,
        0,
        "the batch took the per-group path"
    );
    let expected_versions = [2, 3, 4, 1, 1];
    let expected_groups = [1, 1, 2, 3, 3];
    let expected_counts = [2, 1, 3, 1, 1];
    assert_eq!(rows.len(), 5);
    let first = rows[0].2.unwrap();
    let mut next = first;
    for (i, (grp, version, first_position, last_position, refusal)) in rows.iter().enumerate() {
        assert_eq!(*grp, expected_groups[i], "row {i}");
        assert_eq!(*version, Some(expected_versions[i]), "row {i}");
        assert_eq!(*refusal, None, "row {i}");
        assert_eq!(*first_position, Some(next), "positions go on across groups");
        next += expected_counts[i];
        assert_eq!(*last_position, Some(next - 1), "row {i}");
    }
    // One group refused: the batch falls back to writing group by group, which writes the
    // other group and refuses this one alone.
    let rows = append_batch(&mut tx, &[&[("fresh", 1, 0, 1)], &[("old", 3, 2, 1)]]).await;
    assert!(
        per_group_calls(&mut tx).await > 0,
        "a refusal is sorted out group by group"
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0, rows[0].1, rows[0].4.as_deref()),
        (1, Some(1), None)
    );
    assert_eq!(
        rows[0].2,
        Some(next),
        "positions go on from the transaction's last"
    );
    assert_eq!((rows[1].0, rows[1].4.as_deref()), (2, Some("ES409")));
    tx.commit().await.unwrap();

    for (name, version) in [
        ("new-a", 2),
        ("old", 3),
        ("kept", 4),
        ("new-b", 1),
        ("new-c", 1),
        ("fresh", 1),
    ] {
        let events = store
            .read_stream(&stream(name), eventstore::Direction::Forward, None, 10)
            .await
            .unwrap();
        assert_eq!(events.len() as u64, version, "{name}");
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=version).collect::<Vec<_>>(), "{name}");
    }
}

/// Custom plans of its array-driven statements bought nothing and cost a replan on most calls.
#[tokio::test]
async fn the_batch_function_plans_its_statements_once_per_connection() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 2).await.unwrap();
    let settings: Vec<Option<Vec<String>>> =
        sqlx::query_scalar("SELECT proconfig FROM pg_proc WHERE proname = 'es_append_batch'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        settings,
        vec![Some(vec!["plan_cache_mode=force_generic_plan".to_owned()])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ids_compare_bytewise_and_keep_their_guarantees() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 4).await.unwrap();
    for table in ["es_streams", "es_events", "es_snapshots"] {
        assert_eq!(
            testkit::column_collation(db.url(), table, "stream_id")
                .await
                .as_deref(),
            Some("C"),
            "{table}.stream_id compares bytewise"
        );
    }
    // Ids that differ only in case or punctuation are different streams; versions and
    // expected-version checks hold on each, through the group-commit writer.
    let names = ["order-Ab.c", "order-ab.c", "order-ab-c", "order-ab_c"];
    let appends = names.map(|name| {
        let store = store.clone();
        async move {
            store
                .append(&stream(name), ExpectedVersion::NoStream, vec![ev(1), ev(2)])
                .await
        }
    });
    for (name, written) in names.iter().zip(futures::future::join_all(appends).await) {
        assert_eq!(written.unwrap().next_expected_version, 2, "{name}");
    }
    for name in names {
        assert_eq!(
            store.stream_version(&stream(name)).await.unwrap(),
            2,
            "{name}"
        );
    }
    let refused = store
        .append(
            &stream("order-ab.c"),
            ExpectedVersion::Exact(1),
            vec![ev(3)],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::WrongExpectedVersion { .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_appending_to_the_same_streams_lose_nothing() {
    // Two stores are two processes' writers: their batches contend for the same stream rows.
    let db = testkit::TestDb::new().await;
    let first = PgEventStore::connect(db.url(), 4).await.unwrap();
    let second = PgEventStore::connect(db.url(), 4).await.unwrap();
    let shared = 4u64;
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .append_multi(vec![
                    StreamAppend::new(
                        stream(&format!("hot-{}", i % shared)),
                        ExpectedVersion::Any,
                        vec![ev(i)],
                    ),
                    StreamAppend::new(
                        stream(&format!("mine-{i}")),
                        ExpectedVersion::NoStream,
                        vec![ev(i), ev(i)],
                    ),
                ])
                .await
        }));
    }
    for task in tasks {
        let done = task.await.unwrap().unwrap();
        assert_eq!(done[1].next_expected_version, 2);
    }
    let mut seen = Vec::new();
    for s in 0..shared {
        let events = first
            .read_stream(
                &stream(&format!("hot-{s}")),
                eventstore::Direction::Forward,
                None,
                1_000,
            )
            .await
            .unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=50).collect::<Vec<_>>(), "hot-{s}");
        seen.extend(events.iter().map(|e| e.data["n"].as_u64().unwrap()));
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..200).collect::<Vec<_>>(),
        "every append landed once"
    );
}
