//! Catch-up-then-live subscriptions to `$all`, shared by every adapter.
//!
//! A subscription pages through `read_all` until it is caught up, then waits for a wake-up
//! (the adapter's commit signal: LISTEN/NOTIFY on Postgres, an in-process signal on SQLite) or a
//! short idle poll, and pages again. It never holds a database connection while waiting, and
//! `read_all` itself never returns an event past one that an open transaction could still
//! commit, so the subscription never skips.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::store::EventStore;
use crate::version::Position;

/// How a subscription pages and waits.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionOptions {
    /// Events fetched per read.
    pub page_size: usize,
    /// Longest wait without a wake-up before reading again.
    pub idle_poll: Duration,
    /// Wait after a failed read before trying again.
    pub retry_after: Duration,
    /// Wait after a wake-up before reading, so commits landing together are read in one page
    /// (under load a read per commit costs more than this delay).
    pub coalesce: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            page_size: 2_000,
            idle_poll: Duration::from_millis(250),
            retry_after: Duration::from_millis(500),
            coalesce: Duration::from_millis(2),
        }
    }
}

struct State<S> {
    store: S,
    after: Position,
    buffer: VecDeque<RecordedEvent>,
    wake: watch::Receiver<u64>,
    options: SubscriptionOptions,
    failed: bool,
    /// The last read returned less than a page.
    caught_up: bool,
}

impl<S> State<S> {
    /// Waits for a commit signal, at most the idle poll.
    async fn wait(&mut self) {
        let waited = tokio::time::timeout(self.options.idle_poll, self.wake.changed()).await;
        match waited {
            Ok(Ok(())) if !self.options.coalesce.is_zero() => {
                tokio::time::sleep(self.options.coalesce).await;
            }
            // The signal is gone (store shutting down): fall back to polling.
            Ok(Err(_closed)) => tokio::time::sleep(self.options.idle_poll).await,
            Ok(Ok(())) | Err(_) => {}
        }
    }
}

/// Builds the `$all` subscription stream for `store`. A failed read is yielded as an error and
/// the subscription then retries from the same position.
pub(crate) fn catch_up_then_live<S>(
    store: S,
    after: Position,
    wake: watch::Receiver<u64>,
    options: SubscriptionOptions,
) -> BoxStream<'static, Result<RecordedEvent, StoreError>>
where
    S: EventStore + Clone,
{
    let state = State {
        store,
        after,
        buffer: VecDeque::new(),
        wake,
        options,
        failed: false,
        caught_up: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.buffer.pop_front() {
                st.after = event.position;
                return Some((Ok(event), st));
            }
            if st.failed {
                tokio::time::sleep(st.options.retry_after).await;
                st.failed = false;
            }
            if st.caught_up {
                // The last read ended short of a page: it saw everything visible then, so
                // read again only once something commits (or after the idle poll).
                st.caught_up = false;
                st.wait().await;
            }
            // Mark the current signal as seen before reading, so a commit that lands between
            // the read and the wait still wakes us.
            st.wake.borrow_and_update();
            match st.store.read_all(st.after, st.options.page_size).await {
                Ok(events) if !events.is_empty() => {
                    st.caught_up = events.len() < st.options.page_size;
                    st.buffer.extend(events);
                }
                Ok(_) => st.wait().await,
                Err(err) => {
                    st.failed = true;
                    return Some((Err(err), st));
                }
            }
        }
    })
    .boxed()
}
