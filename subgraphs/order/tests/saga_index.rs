//! The saga index on both read-model databases: steps updating at once share writes, every
//! step's row is stored when its update returns, the newest row of a saga wins (a late row of
//! an older version never replaces it), and the clock's queries find due deadlines and
//! unanswered commands.

use std::sync::Arc;

use chrono::{Duration, Utc};
use order::saga::{OrderSaga, Outgoing, Phase};
use order::saga_index::SagaIndex;
use projections::ReadModels;

fn saga(id: usize, phase: Phase, pending: usize) -> OrderSaga {
    let mut saga = OrderSaga {
        order_id: format!("order-{id}"),
        phase,
        // A deadline past, as the saga has one: awaiting payment.
        deadline: (phase == Phase::AwaitingPayment).then(|| Utc::now() - Duration::seconds(1)),
        ..OrderSaga::default()
    };
    for n in 0..pending {
        saga.pending.insert(
            format!("answer-{n}"),
            Outgoing::Inventory(contracts::Envelope::new(
                saga.order_id.clone(),
                contracts::InventoryCommand::ReleaseStock {
                    reservation_id: format!("{}-{n}", saga.order_id),
                },
            )),
        );
    }
    saga
}

async fn concurrent_updates_are_all_stored_and_the_newest_wins(models: ReadModels) {
    let index = Arc::new(SagaIndex::open(models.pool().clone()).await.unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let index = index.clone();
            tokio::spawn(async move {
                index
                    .update(&saga(i, Phase::Reserving, 1), 2)
                    .await
                    .unwrap();
                // The same saga again, straight after: this row must win.
                let phase = if i.is_multiple_of(2) {
                    Phase::AwaitingPayment
                } else {
                    Phase::Confirmed
                };
                index.update(&saga(i, phase, 0), 4).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT order_id, phase, pending FROM saga_index ORDER BY order_id")
            .fetch_all(models.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 200);
    for (order_id, phase, pending) in &rows {
        let i: usize = order_id.trim_start_matches("order-").parse().unwrap();
        let want = if i.is_multiple_of(2) {
            "awaiting_payment"
        } else {
            "confirmed"
        };
        assert_eq!((phase.as_str(), *pending), (want, 0), "{order_id}");
    }
    let due = index.due(Utc::now()).await.unwrap();
    assert_eq!(
        due.len(),
        100,
        "the even sagas await payment past their deadline"
    );
    // A refund's retry is a deadline too.
    let mut retrying = saga(1, Phase::Compensating, 0);
    retrying.deadline = Some(Utc::now() - Duration::seconds(1));
    index.update(&retrying, 5).await.unwrap();
    let due = index.due(Utc::now()).await.unwrap();
    assert_eq!(due.len(), 101);
    assert!(due.contains(&"order-1".to_owned()));
    assert!(index.unanswered(Utc::now()).await.unwrap().is_empty());
    index
        .update(&saga(7, Phase::Committing, 2), 5)
        .await
        .unwrap();
    assert_eq!(
        index
            .unanswered(Utc::now() + Duration::seconds(1))
            .await
            .unwrap(),
        ["order-7"]
    );
}

/// The stored (phase, version) of `order_id`.
async fn row_of(models: &ReadModels, order_id: &str) -> (String, i64) {
    sqlx::query_as("SELECT phase, version FROM saga_index WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(models.pool())
        .await
        .unwrap()
}

async fn a_late_row_of_an_older_version_leaves_the_newer_one(models: ReadModels) {
    let index = SagaIndex::open(models.pool().clone()).await.unwrap();
    // Another replica stored the saga's next step first.
    index
        .update(&saga(1, Phase::AwaitingPayment, 0), 3)
        .await
        .unwrap();
    index
        .update(&saga(1, Phase::Reserving, 1), 2)
        .await
        .unwrap();
    assert_eq!(
        row_of(&models, "order-1").await,
        ("awaiting_payment".into(), 3)
    );
    assert!(
        index
            .unanswered(Utc::now() + Duration::seconds(1))
            .await
            .unwrap()
            .is_empty(),
        "the late row's pending command is not resurrected"
    );
    // Both in one write: the higher version wins whatever the order handed over.
    let newer = index.submit(&saga(2, Phase::Confirmed, 0), 6);
    let older = index.submit(&saga(2, Phase::Committing, 1), 5);
    let (newer, older) = tokio::join!(newer, older);
    newer.unwrap();
    older.unwrap();
    assert_eq!(row_of(&models, "order-2").await, ("confirmed".into(), 6));
    // The same version again (commands re-sent) still refreshes the row.
    index
        .update(&saga(2, Phase::Committing, 1), 6)
        .await
        .unwrap();
    assert_eq!(row_of(&models, "order-2").await, ("committing".into(), 6));
}

async fn a_table_from_before_versions_gets_the_column(models: ReadModels) {
    sqlx::query(
        "CREATE TABLE saga_index (order_id TEXT PRIMARY KEY, phase TEXT NOT NULL, \
         deadline TEXT, pending BIGINT NOT NULL, updated_at TEXT NOT NULL)",
    )
    .execute(models.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO saga_index (order_id, phase, deadline, pending, updated_at) \
         VALUES ('order-1', 'reserving', NULL, 1, '2000-01-01T00:00:00.000000Z')",
    )
    .execute(models.pool())
    .await
    .unwrap();
    let index = SagaIndex::open(models.pool().clone()).await.unwrap();
    assert_eq!(row_of(&models, "order-1").await, ("reserving".into(), 0));
    index
        .update(&saga(1, Phase::Confirmed, 0), 1)
        .await
        .unwrap();
    assert_eq!(row_of(&models, "order-1").await, ("confirmed".into(), 1));
    // Opening again finds the column there.
    drop(index);
    SagaIndex::open(models.pool().clone()).await.unwrap();
}

/// More sagas are due than the clock takes at once: it gets the earliest deadlines and the
/// longest-unanswered commands, not the rows that happen to come first in the table.
async fn the_clock_gets_the_oldest_first(models: ReadModels) {
    let index = SagaIndex::open(models.pool().clone()).await.unwrap();
    // 600 of each; row i is written i-th but is due (or unanswered) the 600 - i-th: the
    // earliest come last in the table.
    let mut tx = models.pool().begin().await.unwrap();
    for i in 1..=600 {
        let at = format!("2000-01-01T00:10:00.{:06}Z", 600 - i);
        for (prefix, deadline, pending) in [("due", Some(at.clone()), 0_i64), ("late", None, 1)] {
            sqlx::query(
                "INSERT INTO saga_index (order_id, phase, deadline, pending, updated_at, version) \
                 VALUES ($1, 'awaiting_payment', $2, $3, $4, 1)",
            )
            .bind(format!("{prefix}-{i}"))
            .bind(deadline)
            .bind(pending)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    let now = chrono::DateTime::parse_from_rfc3339("2000-01-02T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let due = index.due(now).await.unwrap();
    let unanswered = index.unanswered(now).await.unwrap();
    for (prefix, got) in [("due", due), ("late", unanswered)] {
        assert_eq!(got.len(), 500, "{prefix}");
        assert_eq!(
            got.first().map(String::as_str),
            Some(format!("{prefix}-600").as_str())
        );
        assert!(
            !got.contains(&format!("{prefix}-1")),
            "{prefix}: the latest is left"
        );
    }
}

#[tokio::test]
async fn postgres_saga_index_clock_gets_the_oldest_first() {
    let (_store, models, _guard) = testkit::stores::postgres().await;
    the_clock_gets_the_oldest_first(models).await;
}

#[tokio::test]
async fn sqlite_saga_index_clock_gets_the_oldest_first() {
    let (_store, models, _guard) = testkit::stores::sqlite().await;
    the_clock_gets_the_oldest_first(models).await;
}

#[tokio::test]
async fn postgres_saga_index() {
    let (_store, models, _guard) = testkit::stores::postgres().await;
    concurrent_updates_are_all_stored_and_the_newest_wins(models).await;
}

#[tokio::test]
async fn sqlite_saga_index() {
    let (_store, models, _guard) = testkit::stores::sqlite().await;
    concurrent_updates_are_all_stored_and_the_newest_wins(models).await;
}

#[tokio::test]
async fn postgres_saga_index_keeps_the_newest_version() {
    let (_store, models, _guard) = testkit::stores::postgres().await;
    a_late_row_of_an_older_version_leaves_the_newer_one(models).await;
}

#[tokio::test]
async fn sqlite_saga_index_keeps_the_newest_version() {
    let (_store, models, _guard) = testkit::stores::sqlite().await;
    a_late_row_of_an_older_version_leaves_the_newer_one(models).await;
}

#[tokio::test]
async fn postgres_saga_index_migrates_an_old_table() {
    let (_store, models, guard) = testkit::stores::postgres().await;
    a_table_from_before_versions_gets_the_column(models).await;
    // The old table's keys took the database's collation; they now compare bytewise.
    let db = guard.downcast_ref::<testkit::TestDb>().unwrap();
    for column in ["order_id", "deadline", "updated_at"] {
        assert_eq!(
            testkit::column_collation(db.url(), "saga_index", column)
                .await
                .as_deref(),
            Some("C"),
            "saga_index.{column}"
        );
    }
}

#[tokio::test]
async fn sqlite_saga_index_migrates_an_old_table() {
    let (_store, models, _guard) = testkit::stores::sqlite().await;
    a_table_from_before_versions_gets_the_column(models).await;
}
