//! One refund of an order at a time. A refund is asked of Toss and then recorded under its own
//! id; a webhook reporting the same cancel meanwhile would record it first as made at Toss
//! (`toss-{transactionKey}`), and then staff's retry under the same idempotency key finds no
//! refund of that id, and the saga hears of a cancel at Toss instead of its own refund. Staff
//! refunds, the saga's refunds and a webhook's recording of cancels therefore take turns per
//! order: the webhook records only after the refund under way is recorded (and then finds it
//! known by its transaction key).
//!
//! A turn is first taken in this process (one of [`STRIPES`] mutexes, by the order's hash), so
//! callers waiting for the same order hold no connection (that wait is as long as the Toss
//! call ahead of it, which has its own timeouts). On Postgres it is then an advisory
//! lock across replicas, held by a transaction for the length of a Toss call, so turns use a
//! pool of their own: a burst of refunds waits for one of its connections instead of
//! taking those the read models' readers need, and a wait for another replica's turn ends
//! after [`LOCK_TIMEOUT`] as an error worth retrying.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use projections::ReadModels;
use projections::read_models::Backend;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Refund turns held at once per process on Postgres (one connection each): one per lane of
/// the refund commands, and four for staff and webhooks.
const TURNS_AT_ONCE: u32 = crate::commands::LANES as u32 + 4;
/// In-process mutexes orders are spread over (two orders rarely share one).
const STRIPES: usize = 64;
/// Longest wait for another replica's turn of the same order.
const LOCK_TIMEOUT: &str = "20s";
/// The first key of the advisory locks of refund turns (the second is the order's hash), apart
/// from the single-key locks of the read models.
const LOCK_SPACE: i32 = 0x7266_6e64; // "rfnd"

/// Where turns are taken.
pub(crate) struct RefundTurns {
    /// On Postgres, the pool the locks' transactions run on.
    pool: Option<AnyPool>,
    stripes: Vec<Arc<Mutex<()>>>,
    hasher: RandomState,
}

/// A turn, held until [`RefundTurn::end`] (or dropped, which also ends it).
pub(crate) struct RefundTurn {
    /// The advisory lock's open transaction, on Postgres.
    held: Option<sqlx::Transaction<'static, sqlx::Any>>,
    _stripe: OwnedMutexGuard<()>,
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
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Waits for `order_id`'s turn.
    pub(crate) async fn take(&self, order_id: &str) -> Result<RefundTurn, sqlx::Error> {
        let stripe = self.hasher.hash_one(order_id) as usize % STRIPES;
        let stripe = Arc::clone(&self.stripes[stripe]).lock_owned().await;
        let Some(pool) = &self.pool else {
            return Ok(RefundTurn {
                held: None,
                _stripe: stripe,
            });
        };
        let mut held = pool.begin().await?;
        sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .execute(&mut *held)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))::text")
            .bind(LOCK_SPACE)
            .bind(order_id)
            .execute(&mut *held)
            .await?;
        Ok(RefundTurn {
            held: Some(held),
            _stripe: stripe,
        })
    }
}

impl RefundTurn {
    /// Gives the turn back now. The work done in it stands whatever happens here: a lock
    /// whose transaction cannot be ended is released with its connection.
    pub(crate) async fn end(self) {
        if let Some(held) = self.held
            && let Err(err) = held.rollback().await
        {
            tracing::warn!(error = %err, "refund turn not ended cleanly; its connection releases it");
        }
    }
}
