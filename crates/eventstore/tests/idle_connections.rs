//! Connections the server dropped while they sat idle are replaced, not handed out: the pool
//! checks only connections idle for a while (one used a moment ago was checked on release), and
//! the group-commit writer gives back the connection it keeps once that sat idle.

use std::time::Duration;

use eventstore::idle_check::CHECK_AFTER_IDLE;
use eventstore::{Direction, EventData, EventStore, ExpectedVersion, PgEventStore, StreamId};
use serde_json::json;
use sqlx::{Connection, PgPool};

/// Ends every session of the test's database but the caller's, without a word to the clients;
/// returns how many there were.
async fn end_sessions(db: &testkit::TestDb) -> usize {
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let sessions: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for pid in &sessions {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
    }
    sessions.len()
}

/// Runs `SELECT 1` on `n` connections of the pool held at once.
async fn use_connections(pool: &PgPool, n: usize) -> Result<(), sqlx::Error> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        held.push(conn);
    }
    Ok(())
}

#[tokio::test]
async fn the_pool_hands_out_no_connection_that_died_while_idle() {
    let db = testkit::TestDb::new().await;
    let pool = eventstore::postgres::pool_options(4)
        .connect(db.url())
        .await
        .unwrap();
    use_connections(&pool, 4).await.unwrap();
    // All given back (after sqlx's release ping) before the server ends them.
    assert!(testkit::eventually(Duration::from_secs(5), || async { pool.num_idle() == 4 }).await);
    assert_eq!(end_sessions(&db).await, 4);
    tokio::time::sleep(CHECK_AFTER_IDLE + Duration::from_millis(300)).await;
    use_connections(&pool, 4)
        .await
        .expect("idle connections are checked and replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_connections_were_dropped_goes_on_without_an_error() {
    let db = testkit::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 4).await.unwrap();
    let before = StreamId::parse("idle-before").unwrap();
    let after = StreamId::parse("idle-after").unwrap();
    let event = || EventData::new("Counted", json!({ "n": 1 }));
    // The writer keeps a connection; reads take others from the pool.
    store
        .append(&before, ExpectedVersion::NoStream, vec![event()])
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        store.read_stream(&before, Direction::Forward, None, 10),
        store.read_stream(&before, Direction::Forward, None, 10),
    );
    assert_eq!((first.unwrap().len(), second.unwrap().len()), (1, 1));

    let ended = end_sessions(&db).await;
    assert!(ended >= 3, "the store had {ended} sessions");
    tokio::time::sleep(CHECK_AFTER_IDLE + Duration::from_millis(300)).await;

    store
        .append(&after, ExpectedVersion::NoStream, vec![event()])
        .await
        .expect("the writer replaces its dropped connection");
    let (first, second) = tokio::join!(
        store.read_stream(&after, Direction::Forward, None, 10),
        store.read_stream(&before, Direction::Forward, None, 10),
    );
    assert_eq!(
        (
            first.expect("the pool replaces dropped connections").len(),
            second.expect("the pool replaces dropped connections").len()
        ),
        (1, 1)
    );
}
