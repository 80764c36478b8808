//! Wakes a client when its order changes, so waiting for a status costs one look per change
//! instead of a polling loop, and tells it which version of the order's stream the change
//! reached (as `orderUpdated` does: a state that new needs no read).
//!
//! One task reads the broadcast of changed order ids ([`OrderUpdates`]) and wakes the waiter
//! registered for that id, if any. A client registers its order id before placing the order (the
//! id is derived from the customer and the idempotency key), so no change can slip by: a wake-up
//! that arrives while nobody waits is kept as a permit. If the broadcast lags, every waiter is
//! woken; clients also re-read after a short fallback interval in any case.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use order::updates::OrderUpdates;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// The registry of waiting clients.
#[derive(Default)]
pub struct OrderWatch {
    waiters: Mutex<HashMap<Arc<str>, Arc<Waiter>>>,
    lagged: AtomicU64,
}

impl OrderWatch {
    /// Starts routing `updates` to registered waiters; the task ends when the broadcast closes
    /// (or is aborted).
    pub fn start(updates: &OrderUpdates) -> (Arc<Self>, JoinHandle<()>) {
        let watch = Arc::new(Self::default());
        let mut changes = updates.subscribe();
        let router = Arc::clone(&watch);
        let task = tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(changed) => {
                        let waiter = router.waiters().get(&changed.order_id).cloned();
                        if let Some(waiter) = waiter {
                            waiter.version.fetch_max(changed.version, Ordering::Relaxed);
                            waiter.notify.notify_one();
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        router.lagged.fetch_add(missed, Ordering::Relaxed);
                        let all: Vec<Arc<Waiter>> = router.waiters().values().cloned().collect();
                        for waiter in all {
                            waiter.notify.notify_one();
                        }
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        (watch, task)
    }

    /// Registers interest in `order_id` until the returned guard is dropped.
    pub fn register(self: &Arc<Self>, order_id: &str) -> Watched {
        let waiter = Arc::new(Waiter::default());
        let order_id: Arc<str> = order_id.into();
        self.waiters()
            .insert(Arc::clone(&order_id), Arc::clone(&waiter));
        Watched {
            watch: Arc::clone(self),
            order_id,
            waiter,
        }
    }

    /// Change signals the broadcast dropped because this router fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Waiter>>> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a router shares with one waiting client.
#[derive(Default)]
struct Waiter {
    notify: Notify,
    /// The newest version of the order's stream a change signal named.
    version: AtomicU64,
}

/// One client's registration for one order.
pub struct Watched {
    watch: Arc<OrderWatch>,
    order_id: Arc<str>,
    waiter: Arc<Waiter>,
}

impl Watched {
    /// Waits until the order changes (or changed since the last wait), or `fallback` passes;
    /// returns whether a change signal woke it.
    pub async fn changed(&self, fallback: Duration) -> bool {
        tokio::select! {
            _ = self.waiter.notify.notified() => true,
            _ = tokio::time::sleep(fallback) => false,
        }
    }

    /// The newest version of the order's stream that a change signal named (0: none yet).
    pub fn version(&self) -> u64 {
        self.waiter.version.load(Ordering::Relaxed)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.watch.waiters().remove(&self.order_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_before_the_wait_is_kept() {
        let watch = Arc::new(OrderWatch::default());
        let watched = watch.register("a");
        let waiter = watch.waiters().get("a").cloned().unwrap();
        assert_eq!(watched.version(), 0);
        waiter.version.fetch_max(3, Ordering::Relaxed);
        waiter.notify.notify_one();
        assert!(watched.changed(Duration::from_secs(5)).await);
        assert_eq!(watched.version(), 3);
        assert!(!watched.changed(Duration::from_millis(10)).await);
        drop(watched);
        assert!(watch.waiters().is_empty());
    }
}
