//! The event store contract, run against every adapter (Postgres and SQLite).

use std::sync::Arc;
use std::time::Duration;

use eventstore::{
    Direction, EventData, EventStore, ExpectedVersion, Metadata, PgEventStore, Position,
    SqliteEventStore, StoreError, StreamAppend, StreamId,
};
use futures::StreamExt;
use serde_json::json;

mod account;
mod counting;

/// Keeps whatever backs a store (a database, a temp dir) alive for one test.
type Guard = Box<dyn std::any::Any + Send>;

async fn postgres() -> (Arc<dyn EventStore>, Guard) {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 24).await.expect("connect");
    (Arc::new(store), Box::new(db))
}

async fn sqlite() -> (Arc<dyn EventStore>, Guard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteEventStore::open(dir.path().join("events.db"))
        .await
        .expect("open");
    (Arc::new(store), Box::new(dir))
}

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

/// Reads `$all` once `n` events are visible: on Postgres, a transaction of another test still
/// open in the same cluster holds `$all` readers back (never past an event, only behind it).
async fn read_all_visible(store: &Arc<dyn EventStore>, n: usize) -> Vec<eventstore::RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = store.read_all(Position::START, n + 100).await.unwrap();
        if all.len() >= n || tokio::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ev(n: u64) -> EventData {
    EventData::new("Counted", json!({ "n": n }))
}

macro_rules! contract {
    ($adapter:ident: $($case:ident),* $(,)?) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _guard) = super::$adapter().await;
                    super::cases::$case(store).await;
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        contract!(postgres: $($case),*);
        contract!(sqlite: $($case),*);
    };
}

suite!(
    appends_and_reads_streams,
    checks_expected_versions,
    one_of_many_concurrent_appends_wins,
    appends_are_idempotent_by_event_id,
    keeps_metadata,
    reads_all_in_global_order,
    subscription_catches_up_then_goes_live,
    subscription_sees_every_event_of_concurrent_writers,
    stores_checkpoints_and_snapshots,
    refuses_bad_input_and_writes_nothing,
    repository_handles_commands_with_retries_and_snapshots,
    cached_repositories_in_two_processes_agree,
    execute_new_skips_the_first_read_and_finds_existing_streams,
    load_at_least_reads_only_when_the_cache_is_older,
    appends_to_several_streams_all_or_none,
    concurrent_multi_stream_appends_never_deadlock,
);

mod cases {
    use super::*;

    pub async fn appends_and_reads_streams(store: Arc<dyn EventStore>) {
        let s = stream("order-1");
        let done = store
            .append(&s, ExpectedVersion::NoStream, (1..=5).map(ev).collect())
            .await
            .unwrap();
        assert_eq!(done.next_expected_version, 5);
        assert!(done.first_position < done.last_position);
        assert_eq!(store.stream_version(&s).await.unwrap(), 5);
        assert_eq!(
            store.stream_version(&stream("order-none")).await.unwrap(),
            0
        );

        let fwd = store
            .read_stream(&s, Direction::Forward, None, 100)
            .await
            .unwrap();
        assert_eq!(
            fwd.iter().map(|e| e.version).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(fwd[2].data, json!({ "n": 3 }));
        assert_eq!(fwd[0].stream_id, s);
        assert_eq!(fwd[0].event_type, "Counted");
        assert_eq!(fwd[0].position, done.first_position);
        assert_eq!(fwd[4].position, done.last_position);

        let page = store
            .read_stream(&s, Direction::Forward, Some(3), 2)
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|e| e.version).collect::<Vec<_>>(),
            vec![3, 4]
        );
        let back = store
            .read_stream(&s, Direction::Backward, None, 2)
            .await
            .unwrap();
        assert_eq!(
            back.iter().map(|e| e.version).collect::<Vec<_>>(),
            vec![5, 4]
        );
        let back = store
            .read_stream(&s, Direction::Backward, Some(2), 10)
            .await
            .unwrap();
        assert_eq!(
            back.iter().map(|e| e.version).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert!(
            store
                .read_stream(&stream("order-none"), Direction::Forward, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    fn assert_wrong_version(err: StoreError, expected: ExpectedVersion, actual: u64) {
        match err {
            StoreError::WrongExpectedVersion {
                expected: e,
                actual: a,
                ..
            } => {
                assert_eq!(e, expected);
                assert_eq!(a, actual);
            }
            other => panic!("expected WrongExpectedVersion, got {other:?}"),
        }
    }

    pub async fn checks_expected_versions(store: Arc<dyn EventStore>) {
        let s = stream("inventory-7");
        let err = store
            .append(&s, ExpectedVersion::StreamExists, vec![ev(0)])
            .await
            .unwrap_err();
        assert_wrong_version(err, ExpectedVersion::StreamExists, 0);
        let err = store
            .append(&s, ExpectedVersion::Exact(3), vec![ev(0)])
            .await
            .unwrap_err();
        assert_wrong_version(err, ExpectedVersion::Exact(3), 0);

        store
            .append(&s, ExpectedVersion::NoStream, vec![ev(1)])
            .await
            .unwrap();
        let err = store
            .append(&s, ExpectedVersion::NoStream, vec![ev(2)])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "WRONG_EXPECTED_VERSION");
        assert_wrong_version(err, ExpectedVersion::NoStream, 1);
        let err = store
            .append(&s, ExpectedVersion::Exact(0), vec![ev(2)])
            .await
            .unwrap_err();
        assert_wrong_version(err, ExpectedVersion::Exact(0), 1);

        let done = store
            .append(&s, ExpectedVersion::Exact(1), vec![ev(2), ev(3)])
            .await
            .unwrap();
        assert_eq!(done.next_expected_version, 3);
        let err = store
            .append(&s, ExpectedVersion::Exact(1), vec![ev(4)])
            .await
            .unwrap_err();
        assert_wrong_version(err, ExpectedVersion::Exact(1), 3);
        let done = store
            .append(&s, ExpectedVersion::StreamExists, vec![ev(4)])
            .await
            .unwrap();
        assert_eq!(done.next_expected_version, 4);
        let done = store
            .append(&s, ExpectedVersion::Any, vec![ev(5)])
            .await
            .unwrap();
        assert_eq!(done.next_expected_version, 5);
        let done = store
            .append(&stream("inventory-8"), ExpectedVersion::Any, vec![ev(1)])
            .await
            .unwrap();
        assert_eq!(done.next_expected_version, 1);
        assert_eq!(
            store
                .read_stream(&s, Direction::Forward, None, 100)
                .await
                .unwrap()
                .len(),
            5
        );
    }

    pub async fn one_of_many_concurrent_appends_wins(store: Arc<dyn EventStore>) {
        let s = stream("payment-race");
        store
            .append(&s, ExpectedVersion::NoStream, vec![ev(0)])
            .await
            .unwrap();
        for expected in [ExpectedVersion::Exact(1), ExpectedVersion::NoStream] {
            let s = if expected == ExpectedVersion::NoStream {
                stream("payment-race2")
            } else {
                s.clone()
            };
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let store = store.clone();
                    let s = s.clone();
                    tokio::spawn(
                        async move { store.append(&s, expected, vec![ev(i), ev(i)]).await },
                    )
                })
                .collect();
            let mut wins = 0;
            let mut conflicts = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(_) => wins += 1,
                    Err(StoreError::WrongExpectedVersion { actual, .. }) => {
                        assert!(actual >= 2, "actual {actual}");
                        conflicts += 1;
                    }
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
            assert_eq!((wins, conflicts), (1, 15), "expected {expected}");
        }
        assert_eq!(store.stream_version(&s).await.unwrap(), 3);
    }

    pub async fn appends_are_idempotent_by_event_id(store: Arc<dyn EventStore>) {
        let s = stream("order-idem");
        let batch = vec![ev(1), ev(2)];
        let first = store
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        // Same ids at the same expected version: success, nothing written twice.
        let again = store
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        assert_eq!(again, first);
        let again = store
            .append(&s, ExpectedVersion::Any, batch.clone())
            .await
            .unwrap();
        assert_eq!(again.next_expected_version, 2);
        assert_eq!(store.stream_version(&s).await.unwrap(), 2);
        assert_eq!(read_all_visible(&store, 2).await.len(), 2);

        // A used id carrying a different event is refused.
        let mut changed = batch[0].clone();
        changed.data = json!({ "n": 99 });
        let err = store
            .append(&s, ExpectedVersion::Any, vec![changed])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DUPLICATE_EVENT_ID");
        // A used id in another stream is refused.
        let err = store
            .append(
                &stream("order-other"),
                ExpectedVersion::Any,
                vec![batch[0].clone()],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DUPLICATE_EVENT_ID");
        // Half replayed, half new: refused, nothing written.
        let err = store
            .append(&s, ExpectedVersion::Any, vec![batch[1].clone(), ev(3)])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DUPLICATE_EVENT_ID");
        assert_eq!(store.stream_version(&s).await.unwrap(), 2);
        assert_eq!(
            store.stream_version(&stream("order-other")).await.unwrap(),
            0
        );
        assert_eq!(store.read_all(Position::START, 100).await.unwrap().len(), 2);
    }

    pub async fn keeps_metadata(store: Arc<dyn EventStore>) {
        let s = stream("order-meta");
        let correlation = uuid::Uuid::now_v7();
        let causation = uuid::Uuid::now_v7();
        let metadata = Metadata::caused_by(correlation, causation)
            .with_user("user-42")
            .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let event = ev(1).with_metadata(metadata.clone());
        assert_eq!(event.id.get_version_num(), 7);
        store
            .append(&s, ExpectedVersion::Any, vec![event.clone()])
            .await
            .unwrap();
        let read = store
            .read_stream(&s, Direction::Forward, None, 1)
            .await
            .unwrap();
        assert_eq!(read[0].id, event.id);
        assert_eq!(read[0].metadata, metadata);
        let age = chrono::Utc::now() - read[0].recorded_at;
        assert!(
            age.num_seconds().abs() < 60,
            "recorded_at {}",
            read[0].recorded_at
        );
    }

    pub async fn reads_all_in_global_order(store: Arc<dyn EventStore>) {
        assert_eq!(store.head().await.unwrap(), Position::START, "empty store");
        for i in 0..10u64 {
            let s = stream(&format!("order-{}", i % 3));
            store
                .append(&s, ExpectedVersion::Any, vec![ev(i)])
                .await
                .unwrap();
        }
        let all = read_all_visible(&store, 10).await;
        let ns: Vec<u64> = all.iter().map(|e| e.data["n"].as_u64().unwrap()).collect();
        assert_eq!(ns, (0..10).collect::<Vec<_>>());
        assert!(all.windows(2).all(|w| w[0].position < w[1].position));
        let page = store.read_all(all[3].position, 4).await.unwrap();
        assert_eq!(page, all[4..8].to_vec());
        assert!(
            store
                .read_all(all[9].position, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.head().await.unwrap(), all[9].position);
    }

    pub async fn subscription_catches_up_then_goes_live(store: Arc<dyn EventStore>) {
        let s = stream("order-sub");
        store
            .append(&s, ExpectedVersion::Any, (0..50).map(ev).collect())
            .await
            .unwrap();
        let mut sub = store.subscribe_all(Position::START);
        let mut seen = Vec::new();
        while seen.len() < 50 {
            let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("catch-up in time")
                .unwrap()
                .unwrap();
            seen.push(e);
        }
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 50..100 {
                    store
                        .append(&stream("order-sub"), ExpectedVersion::Any, vec![ev(i)])
                        .await
                        .unwrap();
                }
            })
        };
        while seen.len() < 100 {
            let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("live event in time")
                .unwrap()
                .unwrap();
            seen.push(e);
        }
        writer.await.unwrap();
        let ns: Vec<u64> = seen.iter().map(|e| e.data["n"].as_u64().unwrap()).collect();
        assert_eq!(ns, (0..100).collect::<Vec<_>>());
        // Subscribing from a position starts right after it.
        let mut from_mid = store.subscribe_all(seen[79].position);
        let next = from_mid.next().await.unwrap().unwrap();
        assert_eq!(next.id, seen[80].id);
    }

    pub async fn subscription_sees_every_event_of_concurrent_writers(store: Arc<dyn EventStore>) {
        const WRITERS: u64 = 8;
        const PER_WRITER: u64 = 40;
        let mut sub = store.subscribe_all(Position::START);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..PER_WRITER {
                        let s = stream(&format!("order-w{w}"));
                        let batch = vec![ev(w * 1000 + i * 2), ev(w * 1000 + i * 2 + 1)];
                        store.append(&s, ExpectedVersion::Any, batch).await.unwrap();
                    }
                })
            })
            .collect();
        let total = (WRITERS * PER_WRITER * 2) as usize;
        let mut seen = Vec::with_capacity(total);
        while seen.len() < total {
            let e = tokio::time::timeout(Duration::from_secs(20), sub.next())
                .await
                .expect("every event arrives")
                .unwrap()
                .unwrap();
            seen.push(e);
        }
        for w in writers {
            w.await.unwrap();
        }
        assert!(
            seen.windows(2).all(|w| w[0].position < w[1].position),
            "strictly increasing"
        );
        let ids: std::collections::HashSet<_> = seen.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), total, "no duplicates");
        let all = read_all_visible(&store, total).await;
        assert_eq!(all.len(), total);
        assert_eq!(
            all.iter().map(|e| e.id).collect::<Vec<_>>(),
            seen.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        // Per stream, versions arrive in order.
        for w in 0..WRITERS {
            let name = format!("order-w{w}");
            let versions: Vec<u64> = seen
                .iter()
                .filter(|e| e.stream_id.as_str() == name)
                .map(|e| e.version)
                .collect();
            assert_eq!(versions, (1..=PER_WRITER * 2).collect::<Vec<_>>());
        }
    }

    pub async fn stores_checkpoints_and_snapshots(store: Arc<dyn EventStore>) {
        assert_eq!(store.load_checkpoint("relay").await.unwrap(), None);
        store.save_checkpoint("relay", Position(42)).await.unwrap();
        store.save_checkpoint("relay", Position(84)).await.unwrap();
        store.save_checkpoint("other", Position(1)).await.unwrap();
        assert_eq!(
            store.load_checkpoint("relay").await.unwrap(),
            Some(Position(84))
        );
        assert_eq!(
            store.load_checkpoint("other").await.unwrap(),
            Some(Position(1))
        );

        let s = stream("account-snap");
        assert_eq!(store.load_snapshot(&s).await.unwrap(), None);
        let snap = eventstore::Snapshot {
            version: 10,
            state: json!({ "balance": 5 }),
        };
        store.save_snapshot(&s, &snap).await.unwrap();
        let older = eventstore::Snapshot {
            version: 5,
            state: json!({ "balance": 1 }),
        };
        store.save_snapshot(&s, &older).await.unwrap();
        assert_eq!(store.load_snapshot(&s).await.unwrap(), Some(snap));
    }

    pub async fn refuses_bad_input_and_writes_nothing(store: Arc<dyn EventStore>) {
        let s = stream("order-bad");
        let huge = EventData::new("Huge", json!({ "blob": "x".repeat(2 * 1024 * 1024) }));
        let err = store
            .append(&s, ExpectedVersion::Any, vec![ev(1), huge])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");
        let err = store
            .append(&s, ExpectedVersion::Any, vec![])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");
        let err = store
            .append(
                &s,
                ExpectedVersion::Any,
                vec![EventData::new("bad type!", json!({}))],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");
        let err = store
            .append(
                &s,
                ExpectedVersion::Any,
                vec![EventData::new("", json!({}))],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");
        let twice = ev(1);
        let err = store
            .append(&s, ExpectedVersion::Any, vec![twice.clone(), twice])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");
        let nul = EventData::new("Nul", json!({ "s": "a\u{0}b" }));
        let err = store
            .append(&s, ExpectedVersion::Any, vec![nul])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");
        let mut nul_meta = ev(1);
        nul_meta.metadata.user_id = Some("kim\u{0}".to_owned());
        let err = store
            .append(&s, ExpectedVersion::Any, vec![nul_meta])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT", "{err}");
        // The limit holds for all streams of a multi-append together.
        let halves: Vec<StreamAppend> = (0..2u64)
            .map(|half| {
                StreamAppend::new(
                    stream(&format!("order-half{half}")),
                    ExpectedVersion::Any,
                    (0..6_000).map(|n| ev(half * 6_000 + n)).collect(),
                )
            })
            .collect();
        let err = store.append_multi(halves).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT", "{err}");
        let err = EventData::from_json_slice("Counted", b"{not json").unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");
        let err = StreamId::parse("order 1; DROP TABLE es_events").unwrap_err();
        assert_eq!(err.code(), "INVALID_STREAM_ID");
        let err = "sometimes".parse::<ExpectedVersion>().unwrap_err();
        assert_eq!(err.code(), "INVALID_EXPECTED_VERSION");
        let too_many: Vec<_> = (0..10_001).map(ev).collect();
        let err = store
            .append(&s, ExpectedVersion::Any, too_many)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_EVENT");

        assert_eq!(store.stream_version(&s).await.unwrap(), 0);
        assert!(
            store
                .read_all(Position::START, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn repository_handles_commands_with_retries_and_snapshots(
        store: Arc<dyn EventStore>,
    ) {
        use account::{Account, Command};
        use eventstore::Repository;
        let repo = Repository::<Account>::new(store.clone())
            .with_snapshots(10)
            .with_max_attempts(50);
        repo.execute(
            "a1",
            Command::Open {
                owner: "kim".into(),
            },
            Metadata::new(),
        )
        .await
        .unwrap();
        let tasks: Vec<_> = (1..=20)
            .map(|i| {
                let repo = repo.clone();
                tokio::spawn(async move {
                    repo.execute("a1", Command::Deposit { amount: i }, Metadata::new())
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let loaded = repo.load("a1").await.unwrap();
        assert_eq!(loaded.state.balance, (1..=20).sum::<u64>());
        assert_eq!(loaded.version, 21);
        let snap = store
            .load_snapshot(&stream("account-a1"))
            .await
            .unwrap()
            .expect("snapshot");
        assert!(snap.version >= 10 && snap.version <= 21);
        // Loading from the snapshot gives the same state as folding every event.
        let plain = Repository::<Account>::new(store.clone())
            .load("a1")
            .await
            .unwrap();
        assert_eq!(plain.state, loaded.state);
        let err = repo
            .execute(
                "a1",
                Command::Withdraw { amount: 1_000_000 },
                Metadata::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            eventstore::RepositoryError::Domain(account::AccountError::Insufficient)
        ));
        assert_eq!(repo.load("a1").await.unwrap().version, 21);
    }

    /// `execute_new` creates an aggregate without reading its stream first, and when the stream
    /// exists after all (another process, no cache) decides on the stream's state.
    pub async fn execute_new_skips_the_first_read_and_finds_existing_streams(
        store: Arc<dyn EventStore>,
    ) {
        use account::{AccountError, Command};
        use eventstore::{Repository, RepositoryError};
        let counting = counting::CountingStore::new(store.clone());
        let counted: Arc<dyn EventStore> = counting.clone();
        let one = Repository::<account::Account>::new(counted.clone()).with_cache(100);
        let open = Command::Open {
            owner: "lee".into(),
        };
        let done = one
            .execute_new("n1", open.clone(), Metadata::new())
            .await
            .unwrap();
        assert_eq!((done.version, done.events.len()), (1, 1));
        assert_eq!(
            counting.stream_reads(),
            0,
            "a new aggregate is not read first"
        );
        let done = one
            .execute_new("n1", Command::Deposit { amount: 5 }, Metadata::new())
            .await
            .unwrap();
        assert_eq!((done.version, done.state.balance), (2, 5));
        assert_eq!(counting.stream_reads(), 0, "the cached state is used");

        // Another process (its own cache, and one without any) finds the stream.
        for two in [
            Repository::<account::Account>::new(counted.clone()).with_cache(100),
            Repository::<account::Account>::new(counted.clone()),
        ] {
            let reads = counting.stream_reads();
            let err = two
                .execute_new("n1", open.clone(), Metadata::new())
                .await
                .unwrap_err();
            assert!(matches!(
                err,
                RepositoryError::Domain(AccountError::AlreadyOpen)
            ));
            assert!(counting.stream_reads() > reads);
        }
        let fresh = Repository::<account::Account>::new(counted.clone());
        let done = fresh
            .execute_new("n1", Command::Withdraw { amount: 5 }, Metadata::new())
            .await
            .unwrap();
        assert_eq!((done.version, done.state.balance), (3, 0));
        let plain = Repository::<account::Account>::new(store)
            .load("n1")
            .await
            .unwrap();
        assert_eq!((plain.version, plain.state.balance), (3, 0));
    }

    /// `load_at_least(id, v)` answers from the cache when it holds version `v` or newer, and
    /// reads the stream otherwise (`v` 0: always, like `load`).
    pub async fn load_at_least_reads_only_when_the_cache_is_older(store: Arc<dyn EventStore>) {
        use account::Command;
        use eventstore::Repository;
        let counting = counting::CountingStore::new(store.clone());
        let counted: Arc<dyn EventStore> = counting.clone();
        let one = Repository::<account::Account>::new(counted.clone()).with_cache(100);
        let two = Repository::<account::Account>::new(counted.clone()).with_cache(100);
        let open = Command::Open {
            owner: "park".into(),
        };
        one.execute_new("m1", open, Metadata::new()).await.unwrap();
        let reads = counting.stream_reads();
        let loaded = one.load_at_least("m1", 1).await.unwrap();
        assert_eq!((loaded.version, counting.stream_reads()), (1, reads));
        // Another process deposits: a change signal names version 2, which `one` has not seen.
        two.execute("m1", Command::Deposit { amount: 7 }, Metadata::new())
            .await
            .unwrap();
        let reads = counting.stream_reads();
        let loaded = one.load_at_least("m1", 2).await.unwrap();
        assert_eq!((loaded.version, loaded.state.balance), (2, 7));
        assert_eq!(counting.stream_reads(), reads + 1);
        // Now cached at 2: an older signal needs no read; 0 always reads.
        let loaded = one.load_at_least("m1", 1).await.unwrap();
        assert_eq!((loaded.version, counting.stream_reads()), (2, reads + 1));
        one.load_at_least("m1", 0).await.unwrap();
        assert_eq!(counting.stream_reads(), reads + 2);
        // Without a cache every call reads.
        let plain = Repository::<account::Account>::new(counted);
        let loaded = plain.load_at_least("m1", 2).await.unwrap();
        assert_eq!((loaded.version, counting.stream_reads()), (2, reads + 3));
    }

    /// Two repositories with their own state caches stand for two processes writing the same
    /// aggregates: stale caches must never lose a write, and a refusal decided on a stale
    /// cache must be re-checked against the stream.
    pub async fn cached_repositories_in_two_processes_agree(store: Arc<dyn EventStore>) {
        use account::{Account, AccountError, Command};
        use eventstore::{Repository, RepositoryError};
        let one = Repository::<Account>::new(store.clone())
            .with_cache(100)
            .with_max_attempts(100);
        let two = Repository::<Account>::new(store.clone())
            .with_cache(100)
            .with_max_attempts(100);
        let open = Command::Open {
            owner: "kim".into(),
        };
        one.execute("c1", open.clone(), Metadata::new())
            .await
            .unwrap();
        // `two` has never seen c1: its first command reads the stream.
        let err = two.execute("c1", open, Metadata::new()).await.unwrap_err();
        assert!(matches!(
            err,
            RepositoryError::Domain(AccountError::AlreadyOpen)
        ));
        // Both caches now hold c1; deposits race from both sides.
        let tasks: Vec<_> = (1..=30u64)
            .map(|i| {
                let repo = if i % 2 == 0 { one.clone() } else { two.clone() };
                tokio::spawn(async move {
                    repo.execute("c1", Command::Deposit { amount: i }, Metadata::new())
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let total: u64 = (1..=30).sum();
        for repo in [&one, &two] {
            let loaded = repo.load("c1").await.unwrap();
            assert_eq!(loaded.state.balance, total);
            assert_eq!(loaded.version, 31);
        }
        // `one` deposits behind `two`'s back; `two`'s cache then says the balance is short,
        // but the refusal is checked against the stream and the withdrawal goes through.
        one.execute("c1", Command::Deposit { amount: 1_000 }, Metadata::new())
            .await
            .unwrap();
        let done = two
            .execute(
                "c1",
                Command::Withdraw {
                    amount: total + 1_000,
                },
                Metadata::new(),
            )
            .await
            .unwrap();
        assert_eq!(done.state.balance, 0);
        assert_eq!(done.version, 33);
        // And `one`, now behind, refuses a withdrawal for the right reason after checking.
        let err = one
            .execute("c1", Command::Withdraw { amount: 1 }, Metadata::new())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            RepositoryError::Domain(AccountError::Insufficient)
        ));
        let plain = Repository::<Account>::new(store.clone())
            .load("c1")
            .await
            .unwrap();
        assert_eq!((plain.state.balance, plain.version), (0, 33));
    }

    pub async fn appends_to_several_streams_all_or_none(store: Arc<dyn EventStore>) {
        let (a, b) = (stream("order-multi_a"), stream("saga-multi_b"));
        store
            .append(&b, ExpectedVersion::NoStream, vec![ev(0)])
            .await
            .unwrap();
        let batch = vec![
            StreamAppend::new(a.clone(), ExpectedVersion::NoStream, vec![ev(1), ev(2)]),
            StreamAppend::new(b.clone(), ExpectedVersion::Exact(1), vec![ev(3)]),
        ];
        let done = store.append_multi(batch.clone()).await.unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].next_expected_version, 2);
        assert_eq!(done[1].next_expected_version, 2);
        // The same multi-append again is a replay: the same results, nothing written.
        assert_eq!(store.append_multi(batch.clone()).await.unwrap(), done);
        assert_eq!(store.stream_version(&a).await.unwrap(), 2);
        // One stream at the wrong version: nothing is written to either.
        let refused = store
            .append_multi(vec![
                StreamAppend::new(a.clone(), ExpectedVersion::Exact(2), vec![ev(4)]),
                StreamAppend::new(b.clone(), ExpectedVersion::Exact(1), vec![ev(5)]),
            ])
            .await
            .unwrap_err();
        match refused {
            StoreError::WrongExpectedVersion { stream, actual, .. } => {
                assert_eq!(stream, b.to_string());
                assert_eq!(actual, 2);
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(store.stream_version(&a).await.unwrap(), 2);
        assert_eq!(store.stream_version(&b).await.unwrap(), 2);
        let read = store
            .read_stream(&a, Direction::Forward, None, 10)
            .await
            .unwrap();
        assert_eq!(read.len(), 2);
        // Bad input is refused before anything is written.
        for bad in [
            vec![],
            vec![
                StreamAppend::new(a.clone(), ExpectedVersion::Any, vec![ev(6)]),
                StreamAppend::new(a.clone(), ExpectedVersion::Any, vec![ev(7)]),
            ],
            vec![StreamAppend::new(b.clone(), ExpectedVersion::Any, vec![])],
        ] {
            let err = store.append_multi(bad).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidEvent { .. }), "{err:?}");
        }
        assert_eq!(store.stream_version(&a).await.unwrap(), 2);
        assert_eq!(store.stream_version(&b).await.unwrap(), 2);
        // Any and StreamExists; positions follow one another across the streams.
        let more = store
            .append_multi(vec![
                StreamAppend::new(
                    b.clone(),
                    ExpectedVersion::StreamExists,
                    vec![ev(9), ev(10)],
                ),
                StreamAppend::new(a.clone(), ExpectedVersion::Any, vec![ev(8)]),
            ])
            .await
            .unwrap();
        assert_eq!(more[0].next_expected_version, 4);
        assert_eq!(more[1].next_expected_version, 3);
        let mut positions = [
            (more[0].first_position, more[0].last_position),
            (more[1].first_position, more[1].last_position),
        ];
        positions.sort();
        assert!(positions[0].0 <= positions[0].1 && positions[0].1 < positions[1].0);
        assert_eq!(
            store
                .read_stream(&b, Direction::Forward, Some(3), 10)
                .await
                .unwrap()
                .len(),
            2
        );
        let missing = store
            .append_multi(vec![StreamAppend::new(
                stream("order-multi_missing"),
                ExpectedVersion::StreamExists,
                vec![ev(11)],
            )])
            .await
            .unwrap_err();
        assert!(
            matches!(missing, StoreError::WrongExpectedVersion { actual: 0, .. }),
            "{missing:?}"
        );
    }

    /// Writers taking the same streams in opposite orders: each round one wins, none hangs.
    pub async fn concurrent_multi_stream_appends_never_deadlock(store: Arc<dyn EventStore>) {
        let (a, b) = (stream("inventory-x_1"), stream("inventory-x_2"));
        for round in 0..5u64 {
            let tasks: Vec<_> = (0..8u64)
                .map(|i| {
                    let store = store.clone();
                    let (first, second) = if i % 2 == 0 {
                        (a.clone(), b.clone())
                    } else {
                        (b.clone(), a.clone())
                    };
                    let expected = if round == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(round)
                    };
                    tokio::spawn(async move {
                        store
                            .append_multi(vec![
                                StreamAppend::new(first, expected, vec![ev(i)]),
                                StreamAppend::new(second, expected, vec![ev(i)]),
                            ])
                            .await
                    })
                })
                .collect();
            let mut wins = 0;
            for task in tasks {
                match tokio::time::timeout(Duration::from_secs(20), task)
                    .await
                    .expect("no multi-append hangs")
                    .unwrap()
                {
                    Ok(_) => wins += 1,
                    Err(StoreError::WrongExpectedVersion { .. }) => {}
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
            assert_eq!(wins, 1, "round {round}");
        }
        assert_eq!(store.stream_version(&a).await.unwrap(), 5);
        assert_eq!(store.stream_version(&b).await.unwrap(), 5);
    }
}
