//! Recently used aggregate states with the stream version each reflects, so a command can run
//! without reading its stream first.
//!
//! A cached state is the fold of events `1..=version` of its stream: events never change, so
//! it stays true forever and at worst falls behind. A command run on it appends with
//! `ExpectedVersion::Exact(version)`, which the store refuses if anyone appended since; the
//! repository then reads only the newer events and tries again. Only states the repository
//! itself loaded or appended are put here.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// A bounded map from stream id to `(state, version)`; cheap to share behind an `Arc`.
pub(crate) struct StateCache<A> {
    entries: Mutex<LruCache<String, (A, u64)>>,
}

impl<A: Clone> StateCache<A> {
    /// A cache holding at most `capacity` streams (least recently used go first).
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// A copy of the cached state of `stream` and its version.
    pub(crate) fn get(&self, stream: &str) -> Option<(A, u64)> {
        self.lock().get(stream).cloned()
    }

    /// Remembers `state` at `version` unless a newer version is already cached.
    pub(crate) fn put(&self, stream: &str, state: &A, version: u64) {
        let mut entries = self.lock();
        if let Some((_, cached)) = entries.peek(stream)
            && *cached > version
        {
            return;
        }
        entries.put(stream.to_owned(), (state.clone(), version));
    }
}

impl<A> StateCache<A> {
    /// Forgets `stream` (its cached state could not be trusted).
    pub(crate) fn forget(&self, stream: &str) {
        self.lock().pop(stream);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, (A, u64)>> {
        // The map is never left half-updated by a panic elsewhere: take it as it is.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_version_and_evicts_the_least_recently_used() {
        let cache = StateCache::new(NonZeroUsize::new(2).expect("2 > 0"));
        cache.put("a", &"a1".to_owned(), 1);
        cache.put("a", &"a0".to_owned(), 0); // older: ignored
        assert_eq!(cache.get("a"), Some(("a1".to_owned(), 1)));
        cache.put("b", &"b1".to_owned(), 1);
        cache.get("a"); // a is now the most recently used
        cache.put("c", &"c1".to_owned(), 1);
        assert_eq!(cache.get("b"), None);
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        cache.forget("a");
        assert_eq!(cache.get("a"), None);
    }
}
