//! A test's stores on Postgres or SQLite, with products, completed orders and projections
//! caught up on demand.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use contracts::StockLine;
use contracts::events::PricedLine;
use eventstore::{
    EventStore, Metadata, PgEventStore, Position, RecordedEvent, Repository, SqliteEventStore,
};
use inventory::{Inventory, NewProduct, ProductCatalog, ProductId};
use order::orders_view::OrdersView;
use order::{Order, OrderCommand};
use projections::{Projection, ReadModels};
use review::ReviewsView;
use review::batch::ImportStore;

/// Which adapters a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One fresh Postgres database for events and read models.
    Postgres,
    /// SQLite files in a fresh temp dir.
    Sqlite,
}

/// A test's event store and read models.
pub struct Stack {
    pub store: Arc<dyn EventStore>,
    pub pg: Option<PgEventStore>,
    pub models: ReadModels,
    sqlite: Option<SqliteEventStore>,
    /// The Postgres URL, or the SQLite read-model URL.
    url: String,
    _guard: testkit::stores::Guard,
}

impl Stack {
    /// Fresh stores on `backend`.
    pub async fn new(backend: Backend) -> Self {
        testkit::init_logs();
        match backend {
            Backend::Postgres => {
                let db = testkit::TestDb::new().await;
                let url = db.url().to_owned();
                let pg = PgEventStore::connect(&url, 8).await.unwrap();
                let models = ReadModels::connect(&url).await.unwrap();
                Self {
                    store: Arc::new(pg.clone()),
                    pg: Some(pg),
                    models,
                    sqlite: None,
                    url,
                    _guard: Box::new(db),
                }
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteEventStore::open(dir.path().join("events.db"))
                    .await
                    .unwrap();
                let url = format!("sqlite://{}", dir.path().join("read.db").display());
                let models = ReadModels::connect(&url).await.unwrap();
                Self {
                    store: Arc::new(store.clone()),
                    pg: None,
                    models,
                    sqlite: Some(store),
                    url,
                    _guard: Box::new(dir),
                }
            }
        }
    }

    /// What a process restart does: every connection closed, the stores opened again on the
    /// same databases.
    pub async fn restart(&mut self) {
        self.models.pool().close().await;
        if let Some(pg) = self.pg.take() {
            pg.pool().close().await;
            let pg = PgEventStore::connect(&self.url, 8).await.unwrap();
            self.store = Arc::new(pg.clone());
            self.pg = Some(pg);
        }
        if let Some(sqlite) = self.sqlite.take() {
            sqlite.writer().close().await;
            let events = self
                .url
                .replace("sqlite://", "")
                .replace("read.db", "events.db");
            let store = SqliteEventStore::open(events).await.unwrap();
            self.store = Arc::new(store.clone());
            self.sqlite = Some(store);
        }
        self.models = ReadModels::connect(&self.url).await.unwrap();
    }

    /// Where an import writes: one transaction per chunk on Postgres.
    pub fn import_store(&self) -> ImportStore {
        match &self.pg {
            Some(pg) => ImportStore::Postgres(pg.clone()),
            None => ImportStore::Store(self.store.clone()),
        }
    }

    /// Creates a product with this id.
    pub async fn product(&self, id: &str, name: &str, category: &str) {
        let details = NewProduct {
            name: name.into(),
            description: format!("{name}, baked today"),
            price: 10_000,
            category: category.into(),
            image_url: None,
            initial_stock: 10,
        };
        Inventory::new(self.store.clone())
            .create_product(
                Some(ProductId::parse(id).unwrap()),
                details,
                Metadata::new(),
            )
            .await
            .unwrap();
    }

    /// Places an order of `products` for `customer` and moves it to COMPLETED when asked.
    pub async fn order(&self, customer: &str, products: &[&str], complete: bool) -> String {
        let orders = Repository::<Order>::new(self.store.clone());
        let id = uuid::Uuid::new_v4().to_string();
        let lines = products
            .iter()
            .map(|p| PricedLine {
                line: StockLine {
                    product_id: (*p).to_owned(),
                    quantity: 1,
                },
                product_name: format!("name of {p}"),
                unit_price: 10_000,
            })
            .collect();
        let mut commands = vec![OrderCommand::Place {
            order_id: id.clone(),
            customer_id: customer.to_owned(),
            lines,
        }];
        if complete {
            commands.extend([
                OrderCommand::AwaitPayment {
                    expires_at: Utc::now() + chrono::Duration::minutes(10),
                },
                OrderCommand::MarkPaid {
                    payment_key: format!("pk-{id}"),
                },
                OrderCommand::Accept,
                OrderCommand::StartPreparing,
                OrderCommand::MarkReady,
                OrderCommand::Complete,
            ]);
        }
        for command in commands {
            orders.execute(&id, command, Metadata::new()).await.unwrap();
        }
        id
    }

    /// Brings the catalog, orders and reviews read models up to everything written so far.
    pub async fn project(&self) {
        let projections: [Arc<dyn Projection>; 3] = [
            Arc::new(ProductCatalog),
            Arc::new(OrdersView),
            Arc::new(ReviewsView),
        ];
        for projection in projections {
            self.catch_up(projection.as_ref()).await;
        }
    }

    async fn catch_up(&self, projection: &dyn Projection) {
        self.models.register(projection).await.unwrap();
        let target = self.head().await;
        loop {
            let from = self
                .models
                .checkpoint(projection, projections::read_models::SOURCE_ALL)
                .await
                .unwrap()
                .unwrap_or(Position::START);
            if from >= target {
                return;
            }
            let events = self.store.read_all(from, 1_000).await.unwrap();
            if events.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            self.models
                .apply_batch(
                    projection,
                    &events,
                    Some(projections::read_models::SOURCE_ALL),
                )
                .await
                .unwrap();
        }
    }

    /// The position of the last event written so far (committed, visible or not yet).
    async fn head(&self) -> Position {
        match &self.pg {
            Some(pg) => {
                let max: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM es_events")
                    .fetch_one(pg.pool())
                    .await
                    .unwrap();
                Position(max.unwrap_or(0) as u64)
            }
            None => self.store.head().await.unwrap(),
        }
    }

    /// Every event written so far, in `$all` order.
    pub async fn all_events(&self) -> Vec<RecordedEvent> {
        let target = self.head().await;
        let mut out: Vec<RecordedEvent> = Vec::new();
        let mut from = Position::START;
        while from < target {
            let page = self.store.read_all(from, 1_000).await.unwrap();
            match page.last() {
                Some(last) => from = last.position,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            out.extend(page);
        }
        out
    }
}
