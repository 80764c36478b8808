//! `$all` reads shared by the subscriptions of one store.
//!
//! Live subscriptions wake on the same commit signal and would each read the same new events
//! (the relay, the order-updates follower and, embedded, every projection). A subscription may
//! use another's read that started from a position at or before its own: the read's events
//! past its position are exactly what a read of its own would return first, and as gap-safe
//! (a page ends below the oldest transaction still running, so no event can later appear
//! inside it). It then counts as having seen the commit signals that read had seen when it
//! started, no more: whatever committed later signalled later, so the subscription reads again
//! instead of waiting. Only the newest read is kept; a subscription that cannot use it reads
//! for itself, and its read becomes the newest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::event::RecordedEvent;
use crate::version::Position;

/// A page read from `$all`, as the subscriptions see it.
pub(crate) struct Page {
    /// The events after the subscription's position.
    pub events: Vec<RecordedEvent>,
    /// Everything visible when the read ran is in it (the read returned less than a page).
    pub complete: bool,
}

/// The newest `$all` read of a store's subscriptions.
#[derive(Default)]
pub(crate) struct SharedReads {
    newest: Mutex<Option<Arc<Read>>>,
    /// Shared reads run so far.
    started: Arc<AtomicU64>,
}

/// One `read_all(after, limit)`, started after the commit signal `seen`.
pub(crate) struct Read {
    after: Position,
    limit: usize,
    seen: u64,
    started: Arc<AtomicU64>,
    /// The events, or `None` when the read failed (each subscription then reads for itself,
    /// to get its error).
    result: OnceCell<Option<Arc<[RecordedEvent]>>>,
}

impl SharedReads {
    /// The read a subscription at `after` may share (one that started after signal `since`
    /// had come), or a new one, started after signal `now`, that it is to run and others may
    /// then share.
    pub(crate) fn join(&self, after: Position, limit: usize, since: u64, now: u64) -> Arc<Read> {
        let mut newest = match self.newest.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(read) = newest.as_ref()
            && read.limit == limit
            && read.after <= after
            && signalled_no_later(since, read.seen)
        {
            return Arc::clone(read);
        }
        let read = Arc::new(Read {
            after,
            limit,
            seen: now,
            started: Arc::clone(&self.started),
            result: OnceCell::new(),
        });
        *newest = Some(Arc::clone(&read));
        read
    }

    /// Shared reads run so far (each serves every subscription that joined it).
    #[cfg(test)]
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// Whether signal `a` came no later than signal `b` (the counter wraps).
fn signalled_no_later(a: u64, b: u64) -> bool {
    b.wrapping_sub(a) < u64::MAX / 2
}

impl Read {
    /// The last commit signal seen before this read started.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// The events after `after`, reading them with `read` unless another subscription has
    /// or is; `None` when the shared read failed or cannot tell what follows `after`.
    pub(crate) async fn page<F, Fut>(&self, after: Position, read: F) -> Option<Page>
    where
        F: FnOnce(Position, usize) -> Fut,
        Fut: Future<Output = Option<Vec<RecordedEvent>>>,
    {
        let events = self
            .result
            .get_or_init(|| async {
                self.started.fetch_add(1, Ordering::Relaxed);
                read(self.after, self.limit)
                    .await
                    .map(Arc::<[RecordedEvent]>::from)
            })
            .await
            .as_ref()?;
        let complete = events.len() < self.limit;
        let start = events.partition_point(|e| e.position <= after);
        if start == events.len() && !complete && after > self.after {
            // The read stopped at its limit at or before `after`: what follows is unknown.
            return None;
        }
        Some(Page {
            events: events[start..].to_vec(),
            complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_compare_across_the_wrap() {
        assert!(signalled_no_later(3, 3));
        assert!(signalled_no_later(3, 4));
        assert!(!signalled_no_later(4, 3));
        assert!(signalled_no_later(u64::MAX, 0));
        assert!(!signalled_no_later(0, u64::MAX));
    }

    #[test]
    fn a_read_is_shared_from_an_earlier_position_when_it_started_after_the_signal_seen() {
        let reads = SharedReads::default();
        let first = reads.join(Position(10), 100, 5, 5);
        assert_eq!(first.seen(), 5);
        assert!(Arc::ptr_eq(&first, &reads.join(Position(10), 100, 5, 7)));
        assert!(Arc::ptr_eq(&first, &reads.join(Position(12), 100, 4, 4)));
        // Behind the read: it would miss events.
        let behind = reads.join(Position(9), 100, 5, 6);
        assert!(!Arc::ptr_eq(&first, &behind));
        assert_eq!(behind.seen(), 6);
        // Seen a newer signal than the read had: it may have started before that commit.
        let newer = reads.join(Position(9), 100, 7, 7);
        assert!(!Arc::ptr_eq(&behind, &newer));
        // Another page size.
        assert!(!Arc::ptr_eq(&newer, &reads.join(Position(9), 50, 7, 7)));
    }
}
