//! An event store and a read-model database for one test, on either adapter.

use std::sync::Arc;

use eventstore::{EventStore, PgEventStore, SqliteEventStore};
use projections::ReadModels;

/// Keeps whatever backs a test's stores (a database, a temp dir) alive until dropped.
pub type Guard = Box<dyn std::any::Any + Send>;

/// Both stores in one fresh Postgres database.
pub async fn postgres() -> (Arc<dyn EventStore>, ReadModels, Guard) {
    let db = crate::TestDb::new().await;
    let store = PgEventStore::connect(db.url(), 8)
        .await
        .expect("postgres event store");
    let models = ReadModels::connect(db.url())
        .await
        .expect("postgres read models");
    (Arc::new(store), models, Box::new(db))
}

/// Both stores as SQLite files in a fresh temp dir.
pub async fn sqlite() -> (Arc<dyn EventStore>, ReadModels, Guard) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteEventStore::open(dir.path().join("events.db"))
        .await
        .expect("sqlite event store");
    let url = format!("sqlite://{}", dir.path().join("read.db").display());
    let models = ReadModels::connect(&url).await.expect("sqlite read models");
    (Arc::new(store), models, Box::new(dir))
}
