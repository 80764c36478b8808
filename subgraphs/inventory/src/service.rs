//! The inventory service: runs product commands against the event store. Catalog management
//! (create, price, restock, discontinue) is here; the saga's stock commands are in
//! [`crate::stock`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use eventstore::repository::Executed;
use eventstore::{EventStore, Metadata, Repository, RepositoryError};
use tokio::sync::OwnedMutexGuard;

use crate::error::InventoryError;
use crate::product::{NewProduct, Product, ProductCommand, ProductError, ProductId};
use crate::reservation::Reservation;

/// How often a command is retried when other writers win the race for a product: many
/// orders may reserve the same cake at once, and each loss costs one reload.
pub const MAX_ATTEMPTS: u32 = 200;
/// A snapshot every this many events keeps popular products quick to load.
const SNAPSHOT_EVERY: u64 = 50;
/// Products whose states stay in memory between commands.
const PRODUCTS_CACHED: usize = 10_000;
/// Reservations whose states stay in memory between commands (reserve, then commit or release).
const RESERVATIONS_CACHED: usize = 20_000;

/// Runs inventory commands; cheap to clone.
///
/// Within one process, commands to the same product take turns (a hot product would
/// otherwise see every racing command reload and retry); across processes the event store's
/// expected-version check is what prevents overselling.
#[derive(Clone)]
pub struct Inventory {
    pub(crate) products: Repository<Product>,
    pub(crate) reservations: Repository<Reservation>,
    turns: Arc<Turns>,
    pub(crate) store: Arc<dyn EventStore>,
}

impl Inventory {
    /// A service over `store`.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            products: Repository::new(store.clone())
                .with_max_attempts(MAX_ATTEMPTS)
                .with_snapshots(SNAPSHOT_EVERY)
                .with_cache(PRODUCTS_CACHED),
            reservations: Repository::new(store.clone())
                .with_max_attempts(MAX_ATTEMPTS)
                .with_cache(RESERVATIONS_CACHED),
            turns: Arc::new(Turns::default()),
            store,
        }
    }

    /// The aggregate id (`product:{id}`) of a product: its stream is `inventory-product:{id}`.
    pub fn product_key(id: &ProductId) -> String {
        format!("product:{id}")
    }

    /// Puts a new product on sale under `id` (a fresh id when `None`). Repeating it with the
    /// same details is a no-op that returns the product.
    pub async fn create_product(
        &self,
        id: Option<ProductId>,
        details: NewProduct,
        metadata: Metadata,
    ) -> Result<Product, InventoryError> {
        let id = id.unwrap_or_else(ProductId::generate);
        let command = ProductCommand::Create {
            id: id.clone(),
            details,
        };
        let done = self.run(&id, command, metadata).await?;
        tracing::info!(product_id = %id, "product created");
        Ok(done)
    }

    /// Sets the price of product `id` (KRW).
    pub async fn change_price(
        &self,
        id: &ProductId,
        price: i64,
        metadata: Metadata,
    ) -> Result<Product, InventoryError> {
        self.run(id, ProductCommand::ChangePrice { price }, metadata)
            .await
    }

    /// Adds `quantity` units on hand to product `id`; with a `restock_id` (the caller's
    /// idempotency key) asking again adds nothing more.
    pub async fn restock(
        &self,
        id: &ProductId,
        quantity: i64,
        restock_id: Option<String>,
        metadata: Metadata,
    ) -> Result<Product, InventoryError> {
        let command = ProductCommand::Restock {
            quantity,
            restock_id,
        };
        self.run(id, command, metadata).await
    }

    /// Stops selling product `id`.
    pub async fn discontinue(
        &self,
        id: &ProductId,
        metadata: Metadata,
    ) -> Result<Product, InventoryError> {
        self.run(id, ProductCommand::Discontinue, metadata).await
    }

    /// The current state of product `id` from its events (`None` when it was never created).
    pub async fn product(&self, id: &ProductId) -> Result<Option<Product>, InventoryError> {
        let loaded = self
            .products
            .load(&Self::product_key(id))
            .await
            .map_err(InventoryError::from)?;
        Ok(loaded.state.exists().then_some(loaded.state))
    }

    /// Runs one product command and returns the state after it.
    pub(crate) async fn run(
        &self,
        id: &ProductId,
        command: ProductCommand,
        metadata: Metadata,
    ) -> Result<Product, InventoryError> {
        self.execute(id, command, metadata)
            .await
            .map(|done| done.state)
            .map_err(|err| not_found_as(id, err))
    }

    /// Waits for this process's turn on every product of `ids` (taken in id order, so two
    /// reservations sharing products cannot wait for each other).
    pub(crate) async fn turns_for<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a ProductId>,
    ) -> Vec<OwnedMutexGuard<()>> {
        let mut ids: Vec<&ProductId> = ids.into_iter().collect();
        ids.sort();
        ids.dedup();
        let mut turns = Vec::with_capacity(ids.len());
        for id in ids {
            turns.push(self.turns.take(id).await);
        }
        turns
    }

    /// Runs one product command in this process's turn for the product.
    pub(crate) async fn execute(
        &self,
        id: &ProductId,
        command: ProductCommand,
        metadata: Metadata,
    ) -> Result<Executed<Product>, RepositoryError<ProductError>> {
        let _turn = self.turns.take(id).await;
        self.products
            .execute(&Self::product_key(id), command, metadata)
            .await
    }
}

/// One async lock per product in use, forgotten once nobody holds or waits for it.
#[derive(Default)]
struct Turns {
    locks: Mutex<HashMap<ProductId, Weak<tokio::sync::Mutex<()>>>>,
}

impl Turns {
    /// Entries kept before dead ones are swept.
    const SWEEP_AT: usize = 1_024;

    async fn take(&self, id: &ProductId) -> OwnedMutexGuard<()> {
        let lock = {
            // A poisoned map only means another thread panicked mid-insert; the map is intact.
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() >= Self::SWEEP_AT {
                locks.retain(|_, weak| weak.strong_count() > 0);
            }
            match locks.get(id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(id.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

/// Names the product in a not-found error.
pub(crate) fn not_found_as(id: &ProductId, err: RepositoryError<ProductError>) -> InventoryError {
    match err {
        RepositoryError::Domain(ProductError::NotFound) => {
            InventoryError::ProductNotFound { id: id.to_string() }
        }
        other => other.into(),
    }
}
