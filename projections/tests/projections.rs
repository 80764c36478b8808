//! The projection runtime on both read-model databases: exactly-once effect from the event
//! store and from Kafka, gaps refused, and rebuild-and-swap while readers keep reading.

use std::sync::Arc;
use std::time::Duration;

use eventstore::{EventData, EventStore, ExpectedVersion, StreamId};
use projections::catalog::StreamCatalog;
use projections::{Projection, ReadModels, Tables};
use serde_json::json;

use testkit::stores::{postgres, sqlite};

async fn append(store: &Arc<dyn EventStore>, stream: &str, n: u64) {
    let s = StreamId::parse(stream).unwrap();
    let events = (0..n)
        .map(|i| EventData::new(format!("Step{}", i % 3), json!({ "i": i })))
        .collect();
    store
        .append(&s, ExpectedVersion::Any, events)
        .await
        .unwrap();
}

async fn try_counts(models: &ReadModels) -> Result<(i64, i64), sqlx::Error> {
    let streams: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_catalog_streams")
        .fetch_one(models.pool())
        .await?;
    let events: Option<i64> =
        sqlx::query_scalar("SELECT CAST(sum(events) AS BIGINT) FROM rm_catalog_event_types")
            .fetch_one(models.pool())
            .await?;
    Ok((streams, events.unwrap_or(0)))
}

/// The test broker's bus.
fn kafka() -> Arc<dyn bus::MessageBus> {
    Arc::new(
        bus::KafkaBus::new(
            bus::KafkaConfig::new(testkit::kafka_brokers())
                .with_session_timeout(Duration::from_secs(6)),
        )
        .unwrap(),
    )
}

/// The feed of a test group on the topics under `prefix`, created as the relay's default would.
fn feed<'a>(group: &'a str, prefix: &'a str) -> projections::BusFeed<'a> {
    projections::BusFeed {
        group,
        topic_prefix: prefix,
        partitions: relay::RelayConfig::default().partitions,
    }
}

/// A relay from `store` to `bus` with topics under `prefix`, running until aborted.
fn spawn_relay(
    store: &Arc<dyn EventStore>,
    bus: &Arc<dyn bus::MessageBus>,
    prefix: &str,
) -> tokio::task::JoinHandle<Result<(), relay::RelayError>> {
    let config = relay::RelayConfig {
        topic_prefix: prefix.to_owned(),
        ..Default::default()
    };
    tokio::spawn(relay::Relay::new(store.clone(), bus.clone(), config).run(std::future::pending()))
}

async fn counts(models: &ReadModels) -> (i64, i64) {
    try_counts(models).await.unwrap()
}

async fn wait_for_counts(models: &ReadModels, want: (i64, i64)) {
    // The consumer registers the read model (creating its views) once it starts.
    let ok = testkit::eventually(Duration::from_secs(20), || async {
        try_counts(models).await.ok() == Some(want)
    })
    .await;
    assert!(
        ok,
        "read model reached {want:?}, has {:?}",
        counts(models).await
    );
}

fn spawn_live(
    models: &ReadModels,
    store: &Arc<dyn EventStore>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let models = models.clone();
    let store = store.clone();
    let task = tokio::spawn(async move {
        projections::run_from_store(models, Arc::new(StreamCatalog), store, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (task, tx)
}

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod pg { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { let (s, m, _g) = super::postgres().await; super::$case(s, m).await; } )* }
        mod lite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { let (s, m, _g) = super::sqlite().await; super::$case(s, m).await; } )* }
    };
}

both!(
    follows_the_event_store_exactly_once,
    refuses_gaps_and_writes_nothing,
    rebuilds_and_swaps_while_serving
);

async fn follows_the_event_store_exactly_once(store: Arc<dyn EventStore>, models: ReadModels) {
    append(&store, "order-1", 5).await;
    append(&store, "inventory-1", 3).await;
    append(&store, "account-1", 4).await; // a category the catalog does not read
    let (task, stop) = spawn_live(&models, &store);
    wait_for_counts(&models, (2, 8)).await;
    let version: i64 =
        sqlx::query_scalar("SELECT version FROM rm_catalog_streams WHERE stream_id = 'order-1'")
            .fetch_one(models.pool())
            .await
            .unwrap();
    assert_eq!(version, 5);
    stop.send(()).unwrap();
    task.await.unwrap();
    let status = models.status("catalog").await.unwrap();
    assert_eq!(status.checkpoint, Some(store.head().await.unwrap()));

    // A restarted consumer continues from its checkpoint; nothing is applied twice.
    append(&store, "order-2", 2).await;
    let (task, stop) = spawn_live(&models, &store);
    wait_for_counts(&models, (3, 10)).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    // Redelivering everything changes nothing.
    let all = store
        .read_all(eventstore::Position::START, 1000)
        .await
        .unwrap();
    let applied = models
        .apply_batch(&StreamCatalog, &all, None)
        .await
        .unwrap();
    assert_eq!(
        (applied.applied, applied.duplicates, applied.ignored),
        (0, 10, 4)
    );
    assert_eq!(counts(&models).await, (3, 10));
}

async fn refuses_gaps_and_writes_nothing(store: Arc<dyn EventStore>, models: ReadModels) {
    models.register(&StreamCatalog).await.unwrap();
    append(&store, "order-9", 4).await;
    // Read the stream (not `$all`, which may wait behind another test's open transaction).
    let all = store
        .read_stream(
            &StreamId::parse("order-9").unwrap(),
            eventstore::Direction::Forward,
            None,
            10,
        )
        .await
        .unwrap();
    models
        .apply_batch(&StreamCatalog, &all[..1], None)
        .await
        .unwrap();
    let err = models
        .apply_batch(&StreamCatalog, &all[2..], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PROJECTION_GAP");
    assert_eq!(counts(&models).await, (1, 1));
    let applied = models
        .apply_batch(&StreamCatalog, &all[1..], None)
        .await
        .unwrap();
    assert_eq!(applied.applied, 3);
    assert_eq!(counts(&models).await, (1, 4));
}

async fn rebuilds_and_swaps_while_serving(store: Arc<dyn EventStore>, models: ReadModels) {
    for s in 0..40 {
        append(&store, &format!("order-{s}"), 25).await;
    }
    let (live, stop_live) = spawn_live(&models, &store);
    wait_for_counts(&models, (40, 1000)).await;

    // Damage the live generation, as a buggy projection would.
    let g1 = Tables::new("catalog", 1).table("streams");
    sqlx::query(&format!("DELETE FROM {g1} WHERE stream_id LIKE 'order-1%'"))
        .execute(models.pool())
        .await
        .unwrap();
    let damaged = counts(&models).await.0;
    assert!(damaged < 40);

    // Readers keep reading and writers keep writing during the rebuild.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let models = models.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (streams, _) = counts(&models).await; // panics on any read error
                assert!(streams >= damaged);
                reads += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            reads
        })
    };
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for s in 40..60 {
                append(&store, &format!("inventory-{s}"), 10).await;
            }
        })
    };
    let mut progress = Vec::new();
    let report = models
        .rebuild(&StreamCatalog, store.as_ref(), 300, |p| progress.push(p))
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(report.generation, 2);
    assert!(report.events >= 1000);
    assert!(!progress.is_empty());
    assert!(progress.windows(2).all(|w| w[0].position < w[1].position));
    assert!(progress.last().unwrap().position >= progress[0].target);

    // The rebuilt model is whole again and the live consumer keeps it current.
    wait_for_counts(&models, (60, 1200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    let status = models.status("catalog").await.unwrap();
    assert_eq!(
        (status.live_generation, status.rebuild_generation),
        (2, None)
    );
    let old = sqlx::query(&format!("SELECT count(*) FROM {g1}"))
        .fetch_one(models.pool())
        .await;
    assert!(old.is_err(), "the old generation was dropped");
    stop_live.send(()).unwrap();
    live.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_kafka_exactly_once() {
    testkit::init_logs();
    let (store, models, _guard) = postgres().await;
    let bus = kafka();
    let prefix = testkit::unique_name("p") + ".";
    for s in 0..6 {
        append(&store, &format!("order-{s}"), 10).await;
        append(&store, &format!("payment-{s}"), 5).await;
    }
    let relay = spawn_relay(&store, &bus, &prefix);
    let run = |group: String| {
        let (models, bus, prefix, store) =
            (models.clone(), bus.clone(), prefix.clone(), store.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let catalog: Arc<dyn Projection> = Arc::new(StreamCatalog);
            projections::run_from_bus(models, catalog, bus, store, feed(&group, &prefix), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        (task, tx)
    };
    let (first, stop_first) = run(testkit::unique_name("g"));
    wait_for_counts(&models, (12, 90)).await;
    stop_first.send(()).unwrap();
    first.await.unwrap();
    // A new group receives every record again: all of it is recognised as already applied.
    let (second, stop_second) = run(testkit::unique_name("g"));
    append(&store, "order-0", 1).await;
    wait_for_counts(&models, (12, 91)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counts(&models).await, (12, 91));
    stop_second.send(()).unwrap();
    second.await.unwrap();
    relay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_a_gap_on_the_bus_from_the_event_store() {
    testkit::init_logs();
    let (store, models, _guard) = postgres().await;
    let bus = kafka();
    let prefix = testkit::unique_name("g") + ".";
    append(&store, "order-7", 3).await;
    // Only the third event ever reaches the bus (the first two were lost to retention, say).
    // Read the stream (not `$all`, which may wait behind another test's open transaction).
    let all = store
        .read_stream(
            &StreamId::parse("order-7").unwrap(),
            eventstore::Direction::Forward,
            None,
            10,
        )
        .await
        .unwrap();
    let topic = relay::topic_for(&prefix, "order");
    bus.ensure_topics(&[topic.as_str()], 3).await.unwrap();
    bus.publish(vec![relay::to_record(&prefix, &all[2]).unwrap()])
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let (models, bus, store, prefix) =
            (models.clone(), bus.clone(), store.clone(), prefix.clone());
        tokio::spawn(async move {
            let catalog: Arc<dyn Projection> = Arc::new(StreamCatalog);
            projections::run_from_bus(
                models,
                catalog,
                bus,
                store,
                feed(&testkit::unique_name("g"), &prefix),
                async {
                    let _ = rx.await;
                },
            )
            .await
        })
    };
    wait_for_counts(&models, (1, 3)).await;
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Counts the events of each payment stream (a second projection beside the catalog).
struct PaymentTally;

#[async_trait::async_trait]
impl Projection for PaymentTally {
    fn name(&self) -> &'static str {
        "payment_tally"
    }

    fn categories(&self) -> &'static [&'static str] {
        &["payment"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["tally"]
    }

    async fn create_tables(
        &self,
        conn: &mut sqlx::AnyConnection,
        tables: &Tables,
    ) -> Result<(), projections::ProjectionError> {
        use sqlx::Executor;
        conn.execute(
            format!(
                "CREATE TABLE {} (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL)",
                tables.table("tally")
            )
            .as_str(),
        )
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut sqlx::AnyConnection,
        tables: &Tables,
        event: &eventstore::RecordedEvent,
    ) -> Result<(), projections::ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {} (stream_id, events) VALUES ($1, 1) \
             ON CONFLICT (stream_id) DO UPDATE SET events = {}.events + 1",
            tables.table("tally"),
            tables.table("tally")
        ))
        .bind(event.stream_id.as_str())
        .execute(conn)
        .await?;
        Ok(())
    }
}

async fn tally(models: &ReadModels) -> Option<(i64, i64)> {
    sqlx::query_as("SELECT count(*), COALESCE(sum(events), 0)::BIGINT FROM rm_payment_tally_tally")
        .fetch_one(models.pool())
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_feeds_every_projection_exactly_once() {
    testkit::init_logs();
    let (store, models, _guard) = postgres().await;
    let bus = kafka();
    let prefix = testkit::unique_name("all") + ".";
    for s in 0..4 {
        append(&store, &format!("order-{s}"), 6).await;
        append(&store, &format!("payment-{s}"), 3).await;
    }
    let relay = spawn_relay(&store, &bus, &prefix);
    let run = |group: String| {
        let (models, bus, prefix, store) =
            (models.clone(), bus.clone(), prefix.clone(), store.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let all: Vec<Arc<dyn Projection>> =
                vec![Arc::new(StreamCatalog), Arc::new(PaymentTally)];
            projections::run_all_from_bus(models, all, bus, store, feed(&group, &prefix), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        (task, tx)
    };
    let group = testkit::unique_name("g");
    let (first, stop_first) = run(group.clone());
    // The catalog reads both categories, the tally only payments.
    wait_for_counts(&models, (8, 36)).await;
    assert!(
        testkit::eventually(Duration::from_secs(20), || async {
            tally(&models).await == Some((4, 12))
        })
        .await,
        "the tally saw {:?}",
        tally(&models).await
    );
    stop_first.send(()).unwrap();
    first.await.unwrap();
    // The same group resumes after what it committed on stop; a new group gets everything
    // again and recognises all of it as applied.
    let (again, stop_again) = run(group);
    append(&store, "payment-0", 1).await;
    wait_for_counts(&models, (8, 37)).await;
    stop_again.send(()).unwrap();
    again.await.unwrap();
    let (fresh, stop_fresh) = run(testkit::unique_name("g"));
    append(&store, "order-0", 1).await;
    wait_for_counts(&models, (8, 38)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counts(&models).await, (8, 38));
    assert_eq!(tally(&models).await, Some((4, 13)));
    stop_fresh.send(()).unwrap();
    fresh.await.unwrap();
    relay.abort();
}

/// Processes starting together on a fresh database (a rollout, a test starting several
/// deployables) all create the bookkeeping tables; none fails for the others doing it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_connect_concurrently_on_a_fresh_database() {
    let db = testkit::TestDb::new().await;
    let connects: Vec<_> = (0..12)
        .map(|_| {
            let url = db.url().to_owned();
            tokio::spawn(async move { ReadModels::connect(&url).await.map(|_| ()) })
        })
        .collect();
    for connect in connects {
        connect
            .await
            .unwrap()
            .expect("every process gets its read models");
    }
}

/// The key every applied event looks up compares bytewise on Postgres, in a database from
/// before as in a fresh one, and the rows already there stay.
#[tokio::test]
async fn postgres_keys_compare_bytewise() {
    let db = testkit::TestDb::new().await;
    let models = ReadModels::connect(db.url()).await.unwrap();
    // As a database from before: the bookkeeping key in the database's collation, with a row.
    sqlx::query(
        r#"ALTER TABLE rm_stream_versions
             ALTER COLUMN stream_id TYPE TEXT COLLATE "default",
             ALTER COLUMN projection TYPE TEXT COLLATE "default""#,
    )
    .execute(models.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO rm_stream_versions (projection, generation, stream_id, version) \
         VALUES ('catalog', 1, 'order-1', 3)",
    )
    .execute(models.pool())
    .await
    .unwrap();
    let collation = |table: String, column: &'static str| {
        let url = db.url().to_owned();
        async move { testkit::column_collation(&url, &table, column).await }
    };
    assert_eq!(
        collation("rm_stream_versions".into(), "stream_id").await,
        None
    );

    let models = ReadModels::connect(db.url()).await.unwrap();
    for column in ["stream_id", "projection"] {
        assert_eq!(
            collation("rm_stream_versions".into(), column)
                .await
                .as_deref(),
            Some("C"),
            "rm_stream_versions.{column}"
        );
    }
    let version: i64 =
        sqlx::query_scalar("SELECT version FROM rm_stream_versions WHERE stream_id = 'order-1'")
            .fetch_one(models.pool())
            .await
            .unwrap();
    assert_eq!(version, 3);
}
