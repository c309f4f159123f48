//! When a dispatcher is ready: its subscription watch runs, and it has started serving what it
//! took at start.
//!
//! The service marks the watch caught up (it delivered every stored subscription) and the
//! ownership settled (a claim round planned with every subscription offered until then); each
//! worker started before that counts as waiting until the NATS handle reports its consumer set
//! up (`herald_nats::Nats::with_consumer_hook`), or until it is stopped. Once nothing waits the
//! dispatcher has started, for good: subscriptions taken later do not make it unready (the
//! supervisor's unserved set covers workers that end). It is ready while it has started and its
//! watch runs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use herald_core::WorkId;

/// The dispatcher's readiness, read by the admin listener. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// The watch delivered what was stored and has not failed since.
    watching: bool,
    /// The first claim round after the watch caught up is over.
    settled: bool,
    /// Workers started before the dispatcher had started whose consumer is not set up yet.
    waiting: BTreeSet<WorkId>,
    started: bool,
}

impl State {
    fn latch(&mut self) {
        if !self.started && self.settled && self.waiting.is_empty() {
            self.started = true;
        }
    }
}

impl Readiness {
    /// True once the dispatcher started serving what it took at start, while its watch runs.
    pub fn is_ready(&self) -> bool {
        let mut state = self.lock();
        state.latch();
        state.started && state.watching
    }

    pub(crate) fn set_watching(&self, watching: bool) {
        self.lock().watching = watching;
    }

    /// The ownership planned with every subscription the watch delivered at start.
    pub(crate) fn settled(&self) {
        let mut state = self.lock();
        state.settled = true;
        state.latch();
    }

    /// A worker started; until the dispatcher has started, it waits for its consumer.
    pub(crate) fn worker_started(&self, id: &WorkId) {
        let mut state = self.lock();
        if !state.started {
            state.waiting.insert(id.clone());
        }
    }

    /// A worker stopped (its subscription went away or elsewhere): nothing waits for it.
    pub(crate) fn worker_stopped(&self, id: &WorkId) {
        let mut state = self.lock();
        state.waiting.remove(id);
        state.latch();
    }

    /// A consumer named `name` (a subscription's, or a part's: `WorkId::consumer_name`) was set
    /// up.
    pub(crate) fn consumer_set_up(&self, name: &str) {
        let mut state = self.lock();
        if state.started {
            return;
        }
        if let Ok(id) = WorkId::parse_consumer_name(name) {
            state.waiting.remove(&id);
        }
        state.latch();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is one step: a poisoned lock still holds a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> WorkId {
        WorkId::parse(&format!("sub_01JA00000000000000000000{n:02}")).unwrap()
    }

    #[test]
    fn ready_only_once_settled_watching_and_every_early_consumer_set_up() {
        let readiness = Readiness::default();
        readiness.worker_started(&id(1));
        readiness.worker_started(&id(2));
        readiness.set_watching(true);
        assert!(!readiness.is_ready(), "not settled");
        readiness.settled();
        assert!(!readiness.is_ready(), "two consumers to set up");
        readiness.consumer_set_up(&id(1).consumer_name());
        assert!(!readiness.is_ready(), "one consumer to set up");
        readiness.worker_stopped(&id(2));
        assert!(readiness.is_ready());
        // Later workers do not count; a failed watch does.
        readiness.worker_started(&id(3));
        assert!(readiness.is_ready());
        readiness.set_watching(false);
        assert!(!readiness.is_ready());
    }
}
