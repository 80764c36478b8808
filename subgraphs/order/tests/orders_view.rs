//! The orders read model applied in batches on both read-model databases: several events of
//! one order in one batch, and a later batch continuing rows written by an earlier one.

use std::sync::Arc;

use chrono::{Duration, Utc};
use contracts::events::{OrderPlaced, PaymentRequested};
use eventstore::{
    EventStore, ExpectedVersion, Metadata, Position, RecordedEvent, Repository, StreamId,
};
use order::order::{OrderEvent, StatusChanged};
use order::orders_view::OrdersView;
use order::{Order, OrderStatus};
use projections::ReadModels;
use testkit::stores::{postgres, sqlite};

fn placed(id: &str, customer: &str, total: i64) -> OrderEvent {
    OrderEvent::Placed(OrderPlaced {
        order_id: id.to_owned(),
        customer_id: customer.to_owned(),
        lines: vec![],
        total,
        placed_at: Utc::now(),
    })
}

fn requested(id: &str, customer: &str, amount: i64) -> OrderEvent {
    OrderEvent::PaymentRequested(PaymentRequested {
        order_id: id.to_owned(),
        customer_id: customer.to_owned(),
        amount,
        expires_at: Utc::now() + Duration::minutes(10),
    })
}

fn changed(id: &str, status: OrderStatus, reason: Option<&str>) -> OrderEvent {
    OrderEvent::Changed(StatusChanged {
        order_id: id.to_owned(),
        status,
        reason: reason.map(str::to_owned),
        payment_key: None,
        refunded: None,
        at: Utc::now(),
    })
}

async fn append(store: &Arc<dyn EventStore>, id: &str, events: &[OrderEvent]) {
    let stream = StreamId::parse(format!("order-{id}")).unwrap();
    let data = Repository::<Order>::encode(events, &Metadata::default()).unwrap();
    store
        .append(&stream, ExpectedVersion::Any, data)
        .await
        .unwrap();
}

/// The `n` events after `after` in `$all` (which holds back while other tests' transactions
/// run in the cluster).
async fn all_after(store: &Arc<dyn EventStore>, after: Position, n: usize) -> Vec<RecordedEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let events = store.read_all(after, 100).await.unwrap();
        if events.len() >= n || std::time::Instant::now() > deadline {
            assert_eq!(events.len(), n);
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// (status, timeline statuses, timeline reasons, total) of order `id`.
async fn row(models: &ReadModels, id: &str) -> (String, Vec<String>, Vec<Option<String>>, i64) {
    let (status, timeline, total): (String, String, i64) =
        sqlx::query_as("SELECT status, timeline, total FROM rm_orders_orders WHERE id = $1")
            .bind(id)
            .fetch_one(models.pool())
            .await
            .unwrap();
    let timeline: Vec<serde_json::Value> = serde_json::from_str(&timeline).unwrap();
    (
        status,
        timeline
            .iter()
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .collect(),
        timeline
            .iter()
            .map(|c| c["reason"].as_str().map(str::to_owned))
            .collect(),
        total,
    )
}

async fn batches_fold_into_rows_and_later_batches_continue_them(
    store: Arc<dyn EventStore>,
    models: ReadModels,
) {
    models.register(&OrdersView).await.unwrap();
    append(
        &store,
        "o-1",
        &[
            placed("o-1", "kim", 12_000),
            requested("o-1", "kim", 12_000),
        ],
    )
    .await;
    append(&store, "o-2", &[placed("o-2", "lee", 5_000)]).await;
    append(&store, "o-1", &[changed("o-1", OrderStatus::Paid, None)]).await;
    // A change to an order never placed is skipped, not an error.
    append(
        &store,
        "o-9",
        &[changed("o-9", OrderStatus::Cancelled, Some("gone"))],
    )
    .await;
    let first = all_after(&store, Position::START, 5).await;
    let applied = models.apply_batch(&OrdersView, &first, None).await.unwrap();
    assert_eq!(applied.applied, 5);
    assert_eq!(
        row(&models, "o-1").await,
        (
            "PAID".to_owned(),
            vec!["PLACED".into(), "PAYMENT_PENDING".into(), "PAID".into()],
            vec![None, None, None],
            12_000
        )
    );
    assert_eq!(row(&models, "o-2").await.0, "PLACED");
    let missing: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_orders_orders WHERE id = 'o-9'")
        .fetch_one(models.pool())
        .await
        .unwrap();
    assert_eq!(missing, 0);

    // The next batch reads the stored rows and extends them.
    append(
        &store,
        "o-2",
        &[changed(
            "o-2",
            OrderStatus::Cancelled,
            Some("changed my mind"),
        )],
    )
    .await;
    append(
        &store,
        "o-1",
        &[changed("o-1", OrderStatus::Accepted, None)],
    )
    .await;
    let after = first.last().unwrap().position;
    let second = all_after(&store, after, 2).await;
    models
        .apply_batch(&OrdersView, &second, None)
        .await
        .unwrap();
    assert_eq!(
        row(&models, "o-2").await,
        (
            "CANCELLED".to_owned(),
            vec!["PLACED".into(), "CANCELLED".into()],
            vec![None, Some("changed my mind".into())],
            5_000
        )
    );
    assert_eq!(row(&models, "o-1").await.1.len(), 4);
    assert_eq!(row(&models, "o-1").await.0, "ACCEPTED");

    // Listed orders know whether money is held as the aggregate does: a late payment's
    // refused refund holds it (never PAID on the order), a refund returns it.
    let paid = |page: &order::orders_view::OrderPage, id: &str| {
        page.rows
            .iter()
            .find(|(o, _)| o.id == id)
            .map(|(o, _)| o.paid)
    };
    append(
        &store,
        "o-2",
        &[changed(
            "o-2",
            OrderStatus::RefundFailed,
            Some("refund failed: NOT_CANCELABLE_PAYMENT"),
        )],
    )
    .await;
    let third = all_after(&store, second.last().unwrap().position, 1).await;
    models.apply_batch(&OrdersView, &third, None).await.unwrap();
    let page = order::orders_view::list_orders(models.pool(), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(paid(&page, "o-1"), Some(true));
    assert_eq!(paid(&page, "o-2"), Some(true));
    append(
        &store,
        "o-2",
        &[changed("o-2", OrderStatus::Refunded, None)],
    )
    .await;
    let fourth = all_after(&store, third.last().unwrap().position, 1).await;
    models
        .apply_batch(&OrdersView, &fourth, None)
        .await
        .unwrap();
    let page = order::orders_view::list_orders(models.pool(), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(paid(&page, "o-2"), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_view_applies_batches_on_postgres() {
    let (store, models, _guard) = postgres().await;
    batches_fold_into_rows_and_later_batches_continue_them(store, models).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_view_applies_batches_on_sqlite() {
    let (store, models, _guard) = sqlite().await;
    batches_fold_into_rows_and_later_batches_continue_them(store, models).await;
}

/// Whether the live orders table has its open-orders index.
async fn has_open_index(models: &ReadModels) -> bool {
    let sql = match models.backend() {
        projections::read_models::Backend::Postgres => {
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'rm_orders_g1_orders_open'"
        }
        projections::read_models::Backend::Sqlite => {
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'rm_orders_g1_orders_open'"
        }
    };
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(models.pool())
        .await
        .unwrap();
    n == 1
}

/// Whether the open-order count's plan reads the open-orders index (on Postgres with
/// sequential scans off: a table of a few rows is otherwise read whole).
async fn counts_in_open_index(models: &ReadModels) -> bool {
    let mut conn = models.pool().acquire().await.unwrap();
    let query = order::orders_view::open_orders_query(10);
    let plan: Vec<String> = match models.backend() {
        projections::read_models::Backend::Postgres => {
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *conn)
                .await
                .unwrap();
            let plan = sqlx::query_scalar(&format!("EXPLAIN {query}"))
                .bind("kim")
                .bind("2000-01-01")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            sqlx::query("RESET enable_seqscan")
                .execute(&mut *conn)
                .await
                .unwrap();
            plan
        }
        projections::read_models::Backend::Sqlite => {
            sqlx::query(&format!("EXPLAIN QUERY PLAN {query}"))
                .bind("kim")
                .bind("2000-01-01")
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, 3))
                .collect()
        }
    };
    plan.iter()
        .any(|line| line.contains("rm_orders_g1_orders_open"))
}

/// A customer's open orders (awaiting stock or payment) are counted, others' and settled ones
/// not, up to the limit asked; the index they are counted in comes with the table, and is
/// added to a generation made before it.
async fn open_orders_are_counted_per_customer(store: Arc<dyn EventStore>, models: ReadModels) {
    let generation = models.register(&OrdersView).await.unwrap();
    assert!(has_open_index(&models).await, "made with the table");
    append(&store, "o-a", &[placed("o-a", "kim", 1_000)]).await;
    append(
        &store,
        "o-b",
        &[placed("o-b", "kim", 2_000), requested("o-b", "kim", 2_000)],
    )
    .await;
    append(
        &store,
        "o-c",
        &[
            placed("o-c", "kim", 3_000),
            changed("o-c", OrderStatus::Paid, None),
        ],
    )
    .await;
    append(&store, "o-d", &[placed("o-d", "lee", 4_000)]).await;
    let events = all_after(&store, Position::START, 6).await;
    models
        .apply_batch(&OrdersView, &events, None)
        .await
        .unwrap();
    let count = |customer: &'static str, since: chrono::DateTime<Utc>, limit: u32| {
        let pool = models.pool().clone();
        async move {
            order::orders_view::open_orders(&pool, customer, since, limit)
                .await
                .unwrap()
        }
    };
    let hour_ago = Utc::now() - Duration::hours(1);
    assert_eq!(count("kim", hour_ago, 10).await, 2);
    assert!(
        counts_in_open_index(&models).await,
        "the count reads the open-orders index"
    );
    assert_eq!(
        count("kim", hour_ago, 1).await,
        1,
        "no further than the limit"
    );
    assert_eq!(count("lee", hour_ago, 10).await, 1);
    assert_eq!(count("kim", Utc::now() + Duration::hours(1), 10).await, 0);

    sqlx::query("DROP INDEX rm_orders_g1_orders_open")
        .execute(models.pool())
        .await
        .unwrap();
    order::orders_view::ensure_open_orders_index(models.pool(), generation)
        .await
        .unwrap();
    assert!(
        has_open_index(&models).await,
        "added to an older generation"
    );
    assert_eq!(count("kim", hour_ago, 10).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_orders_are_counted_on_postgres() {
    let (store, models, _guard) = postgres().await;
    open_orders_are_counted_per_customer(store, models).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_orders_are_counted_on_sqlite() {
    let (store, models, _guard) = sqlite().await;
    open_orders_are_counted_per_customer(store, models).await;
}
