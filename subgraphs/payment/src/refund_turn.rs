//! One refund of an order at a time. A refund is asked of Toss and then recorded under its own
//! id; a webhook reporting the same cancel meanwhile would record it first as made at Toss
//! (`toss-{transactionKey}`), and then staff's retry under the same idempotency key finds no
//! refund of that id, and the saga hears of a cancel at Toss instead of its own refund. Staff
//! refunds, the saga's refunds and a webhook's recording of cancels therefore take turns per
//! order: the webhook records only after the refund under way is recorded (and then finds it
//! known by its transaction key).
//!
//! A turn on Postgres is an advisory lock held by a transaction for the length of a Toss call,
//! so turns use a small pool of their own: a burst of refunds waits for one of its
//! connections instead of taking every connection the read models' readers need.

use std::sync::Arc;
use std::time::Duration;

use projections::ReadModels;
use projections::read_models::Backend;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Refund turns held at once per process on Postgres (one connection each).
const TURNS_AT_ONCE: u32 = 4;

/// Where turns are taken: Postgres advisory locks (across replicas) or, on SQLite, which has
/// none and serves one process, a mutex.
pub(crate) struct RefundTurns {
    /// On Postgres, the pool the locks' transactions run on.
    pool: Option<AnyPool>,
    local: Arc<Mutex<()>>,
}

/// A turn, held until [`RefundTurn::end`] (or dropped, which also ends it).
pub(crate) enum RefundTurn {
    /// An advisory lock held by an open transaction.
    Postgres(sqlx::Transaction<'static, sqlx::Any>),
    /// This process's only refund under way (SQLite).
    Local {
        /// Held until the turn ends.
        _guard: OwnedMutexGuard<()>,
    },
}

impl RefundTurns {
    /// Turns over the read-model database (its connections opened when first needed).
    pub(crate) fn new(models: &ReadModels) -> Self {
        let pool = (models.backend() == Backend::Postgres).then(|| {
            eventstore::idle_check::checked_when_idle(AnyPoolOptions::new())
                .max_connections(TURNS_AT_ONCE)
                .acquire_timeout(Duration::from_secs(30))
                .idle_timeout(Duration::from_secs(60))
                .connect_lazy_with((*models.pool().connect_options()).clone())
        });
        Self {
            pool,
            local: Arc::new(Mutex::new(())),
        }
    }

    /// Waits for `order_id`'s turn.
    pub(crate) async fn take(&self, order_id: &str) -> Result<RefundTurn, sqlx::Error> {
        match &self.pool {
            Some(pool) => {
                let held = projections::locked(pool, &format!("refund:{order_id}")).await?;
                Ok(RefundTurn::Postgres(held))
            }
            None => Ok(RefundTurn::Local {
                _guard: self.local.clone().lock_owned().await,
            }),
        }
    }
}

impl RefundTurn {
    /// Gives the turn back now (the lock's transaction wrote nothing).
    pub(crate) async fn end(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Postgres(held) => held.rollback().await,
            Self::Local { .. } => Ok(()),
        }
    }
}
