//! Live order updates: one follower of `$all` per process fans order changes out to every
//! `orderUpdated` subscription.

use std::sync::Arc;

use eventstore::EventStore;
use futures::StreamExt;
use tokio::sync::broadcast;

/// "This order changed": the order and the version of its stream the change reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderChanged {
    /// The order's id.
    pub order_id: Arc<str>,
    /// The version of the order's stream after the change: a state at least this new shows it.
    pub version: u64,
}

/// Fan-out of [`OrderChanged`] signals.
#[derive(Clone)]
pub struct OrderUpdates {
    tx: broadcast::Sender<OrderChanged>,
}

impl OrderUpdates {
    /// Starts following `store` from its current head; stops when every clone is dropped and
    /// the task is aborted by its owner.
    pub async fn follow(
        store: Arc<dyn EventStore>,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), eventstore::StoreError> {
        let (tx, _) = broadcast::channel(4096);
        // From the head, never from the start: a failure to read it is the caller's to
        // retry, not a reason to replay every event ever stored.
        let head = store.head().await?;
        let sender = tx.clone();
        let task = tokio::spawn(async move {
            let mut events = store.subscribe_all(head);
            while let Some(item) = events.next().await {
                match item {
                    Ok(event) if event.stream_id.category() == "order" => {
                        // No receivers is fine: nobody is watching.
                        let _ = sender.send(OrderChanged {
                            order_id: event.stream_id.entity_id().into(),
                            version: event.version,
                        });
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "order updates: read failed; retrying")
                    }
                }
            }
        });
        Ok((Self { tx }, task))
    }

    /// A receiver of order changes.
    pub fn subscribe(&self) -> broadcast::Receiver<OrderChanged> {
        self.tx.subscribe()
    }
}
