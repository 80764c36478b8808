//! Readiness: a cheap, clonable flag that services flip as their dependencies come up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Whether the service can take traffic: started, and every named check passing.
///
/// Clones share state. A service with no dependencies calls [`Readiness::set_ready`]
/// once it has started; one that has them also reports each with
/// [`Readiness::set_check`] (e.g. `"database"`), and is ready only while all pass.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    started: AtomicBool,
    checks: Mutex<BTreeMap<String, bool>>,
}

/// The name reported as pending while [`Readiness::set_ready`] has not been called.
pub const STARTUP_CHECK: &str = "startup";

impl Readiness {
    /// A new flag: not ready, with no named checks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the service as started (`true`) or draining/not started (`false`).
    pub fn set_ready(&self, ready: bool) {
        self.inner.started.store(ready, Ordering::SeqCst);
    }

    /// Records whether the dependency `name` is currently usable.
    pub fn set_check(&self, name: &str, ok: bool) {
        self.checks().insert(name.to_owned(), ok);
    }

    /// True when started and every named check passes.
    pub fn is_ready(&self) -> bool {
        self.inner.started.load(Ordering::SeqCst) && self.checks().values().all(|ok| *ok)
    }

    /// The names holding readiness back (`"startup"` first if not started), sorted.
    pub fn pending(&self) -> Vec<String> {
        let mut pending = Vec::new();
        if !self.inner.started.load(Ordering::SeqCst) {
            pending.push(STARTUP_CHECK.to_owned());
        }
        pending.extend(
            self.checks()
                .iter()
                .filter(|(_, ok)| !**ok)
                .map(|(name, _)| name.clone()),
        );
        pending
    }

    fn checks(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.inner
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn ready_only_when_started_and_all_checks_pass() {
        let readiness = Readiness::new();
        assert!(!readiness.is_ready());
        assert_eq!(readiness.pending(), vec!["startup"]);

        let clone = readiness.clone();
        clone.set_check("kafka", false);
        clone.set_check("database", true);
        readiness.set_ready(true);
        assert!(!readiness.is_ready());
        assert_eq!(readiness.pending(), vec!["kafka"]);

        clone.set_check("kafka", true);
        assert!(readiness.is_ready());
        assert!(readiness.pending().is_empty());

        readiness.set_ready(false);
        assert!(!clone.is_ready());
    }
}
