//! Catch-up-then-live subscriptions to `$all`, shared by every adapter.
//!
//! A subscription pages through `read_all` until it is caught up, then waits for a wake-up
//! (the adapter's commit signal: LISTEN/NOTIFY on Postgres, an in-process signal on SQLite) or a
//! short idle poll, and pages again. It never holds a database connection while waiting, and
//! `read_all` itself never returns an event past one that an open transaction could still
//! commit, so the subscription never skips. Subscriptions of one store share their reads where
//! they can ([`SharedReads`]), so live ones woken by the same commit read it once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::watch;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::shared_read::{Page, SharedReads};
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
    shared: Arc<SharedReads>,
    /// The last commit signal accounted for: everything committed before it is delivered or
    /// in the buffer, and whatever committed later signalled later.
    seen: u64,
    /// The next read may be shared: this subscription is live and a commit signal woke it.
    /// Catching up it reads alone (nobody is at its position, and a shared page costs a copy),
    /// and so it does after an idle poll (there for commits whose signal never came, which a
    /// shared read may predate).
    shareable: bool,
    failed: bool,
    /// The last read returned less than a page.
    caught_up: bool,
}

impl<S> State<S> {
    /// Waits for a commit signal not yet accounted for, at most the idle poll.
    async fn wait(&mut self) {
        if *self.wake.borrow_and_update() != self.seen {
            // Signalled while this subscription was busy: read at once.
            self.shareable = true;
            return;
        }
        let waited = tokio::time::timeout(self.options.idle_poll, self.wake.changed()).await;
        match waited {
            Ok(Ok(())) => {
                self.shareable = true;
                if !self.options.coalesce.is_zero() {
                    tokio::time::sleep(self.options.coalesce).await;
                }
            }
            // The signal is gone (store shutting down): fall back to polling.
            Ok(Err(_closed)) => tokio::time::sleep(self.options.idle_poll).await,
            Err(_idle) => {}
        }
    }
}

impl<S: EventStore + Clone> State<S> {
    /// The events after this subscription's position: from a read shared with the store's
    /// other subscriptions where one can serve (accounting for the signals that read had
    /// seen), else from its own.
    async fn read_shared(&mut self) -> Result<Page, StoreError> {
        let now = *self.wake.borrow();
        if std::mem::take(&mut self.shareable) {
            // A read that had seen a signal this subscription has not (so it moves on).
            let since = self.seen.wrapping_add(1);
            let read = self
                .shared
                .join(self.after, self.options.page_size, since, now);
            let store = self.store.clone();
            let page = read
                .page(self.after, |after, limit| async move {
                    store.read_all(after, limit).await.ok()
                })
                .await;
            if let Some(page) = page {
                self.seen = read.seen();
                return Ok(page);
            }
            // The shared read failed (this read gets the error) or ended before our position.
        }
        let events = self
            .store
            .read_all(self.after, self.options.page_size)
            .await?;
        self.seen = now;
        Ok(Page {
            complete: events.len() < self.options.page_size,
            events,
        })
    }
}

/// Builds the `$all` subscription stream for `store`. A failed read is yielded as an error and
/// the subscription then retries from the same position.
pub(crate) fn catch_up_then_live<S>(
    store: S,
    after: Position,
    wake: watch::Receiver<u64>,
    options: SubscriptionOptions,
    shared: Arc<SharedReads>,
) -> BoxStream<'static, Result<RecordedEvent, StoreError>>
where
    S: EventStore + Clone,
{
    // Nothing is accounted for yet: the first read sees what committed before it.
    let seen = *wake.borrow();
    let state = State {
        store,
        after,
        buffer: VecDeque::new(),
        wake,
        options,
        shared,
        seen,
        shareable: false,
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
            // A read accounts only for the signals seen before it started, so a commit that
            // lands between the read and the wait still wakes us.
            match st.read_shared().await {
                Ok(page) if !page.events.is_empty() => {
                    st.caught_up = page.complete;
                    st.buffer.extend(page.events);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use serde_json::json;

    use crate::event::EventData;
    use crate::sqlite::SqliteEventStore;
    use crate::store::EventStore;
    use crate::stream::StreamId;
    use crate::version::{ExpectedVersion, Position};

    /// An empty store, and the folder that holds it (removed when dropped).
    async fn new_store() -> (tempfile::TempDir, SqliteEventStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(dir.path().join("es.db"))
            .await
            .unwrap();
        (dir, store)
    }

    async fn append(store: &SqliteEventStore, n: u64) {
        let events = (0..n)
            .map(|i| EventData::new("Counted", json!({ "n": i })))
            .collect();
        store
            .append(
                &StreamId::parse("counter-1").unwrap(),
                ExpectedVersion::Any,
                events,
            )
            .await
            .unwrap();
    }

    /// Live subscriptions woken by one commit read it once, and each still gets every event.
    #[tokio::test]
    async fn live_subscriptions_share_their_reads() {
        let (_dir, store) = new_store().await;
        append(&store, 5).await;
        let mut from_start = store.subscribe_all(Position::START);
        let mut early = store.subscribe_all(Position::START);
        let mut first_five = Vec::new();
        for _ in 0..5 {
            first_five.push(early.next().await.unwrap().unwrap().position);
        }
        let mut from_fifth = store.subscribe_all(first_five[4]);
        let mut second = store.subscribe_all(Position::START);
        for sub in [&mut from_start, &mut second] {
            for _ in 0..5 {
                sub.next().await.unwrap().unwrap();
            }
        }
        // Every subscription has now read up to the head and waits for a commit.
        for sub in [&mut from_start, &mut from_fifth, &mut second] {
            assert!(
                tokio::time::timeout(Duration::from_millis(20), sub.next())
                    .await
                    .is_err()
            );
        }
        let before = store.shared_reads().started();

        append(&store, 3).await;
        let mut received = Vec::new();
        for sub in [&mut from_start, &mut from_fifth, &mut second] {
            let mut positions = Vec::new();
            for _ in 0..3 {
                positions.push(sub.next().await.unwrap().unwrap().position);
            }
            received.push(positions);
        }
        assert_eq!(received[0], received[1]);
        assert_eq!(received[0], received[2]);
        assert!(received[0][0] > first_five[4]);
        assert_eq!(
            store.shared_reads().started() - before,
            1,
            "three subscriptions woken by one commit read it once"
        );
    }

    /// A subscription that shared a read and then hears of a commit that read predates reads
    /// again (it once took the same read over and over, never yielding).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signal_after_a_shared_read_leads_to_a_new_read() {
        let (_dir, store) = new_store().await;
        append(&store, 2).await;
        let (signal, wake) = tokio::sync::watch::channel(0u64);
        let shared = std::sync::Arc::new(super::SharedReads::default());
        let options = super::SubscriptionOptions {
            idle_poll: Duration::from_secs(60),
            coalesce: Duration::ZERO,
            ..super::SubscriptionOptions::default()
        };
        let subscribe = || {
            super::catch_up_then_live(
                store.clone(),
                Position::START,
                wake.clone(),
                options,
                std::sync::Arc::clone(&shared),
            )
        };
        let (mut first, mut second) = (subscribe(), subscribe());
        for sub in [&mut first, &mut second] {
            for _ in 0..2 {
                sub.next().await.unwrap().unwrap();
            }
        }
        signal.send_replace(1);
        // `first` reads for signal 1 and finds nothing new.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), first.next())
                .await
                .is_err()
        );
        let reads = shared.started();
        signal.send_replace(2);
        // `second` may share that read, but it predates signal 2: it must read once more, and
        // then wait.
        let waiting = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(200), second.next())
                .await
                .is_err()
        });
        let waited = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the subscription spins instead of waiting")
            .unwrap();
        assert!(waited);
        assert_eq!(shared.started() - reads, 1);
    }
}
