//! Supervision of the per-subscription delivery tasks: each task is owned, tied to its
//! subscription, and restarted with a backoff when it ends on its own (a panic, or a return
//! while its subscription still wants delivering).
//!
//! The service decides whether an ended task was stopped on purpose (its subscription was
//! removed or paused) or must be restarted; the supervisor owns the tasks, the backoff and the
//! set of subscriptions waiting for a restart, which readiness reports. No I/O beyond spawning
//! and sleeping.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::IntGauge;
use tokio::task::{self, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use herald_core::WorkId;

#[cfg(test)]
mod tests;

/// How ended tasks are restarted: after `initial`, doubling per restart up to `max`; a task
/// that ran for `healthy_after` without ending starts again from `initial`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartPolicy {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) healthy_after: Duration,
}

impl RestartPolicy {
    pub(crate) const DEFAULT: RestartPolicy = RestartPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        healthy_after: Duration::from_secs(60),
    };

    /// The delay before restart number `restarts` (1 for the first restart).
    fn delay(&self, restarts: u32) -> Duration {
        let doublings = restarts.saturating_sub(1).min(16);
        self.initial
            .saturating_mul(1_u32 << doublings)
            .min(self.max)
    }
}

/// Subscriptions whose delivery task ended and waits for its restart. Cheap to clone; read by
/// the readiness check, and mirrored in a gauge.
#[derive(Debug, Clone)]
pub struct Unserved {
    ids: Arc<Mutex<BTreeSet<WorkId>>>,
    gauge: IntGauge,
}

impl Unserved {
    /// True when every subscription that should be delivering has a running task.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The subscriptions waiting for a restart.
    pub fn ids(&self) -> Vec<WorkId> {
        self.lock().iter().cloned().collect()
    }

    fn insert(&self, id: WorkId) {
        let mut ids = self.lock();
        ids.insert(id);
        self.gauge.set(i64::try_from(ids.len()).unwrap_or(i64::MAX));
    }

    fn remove(&self, id: &WorkId) {
        let mut ids = self.lock();
        ids.remove(id);
        self.gauge.set(i64::try_from(ids.len()).unwrap_or(i64::MAX));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<WorkId>> {
        // The set is never left half-updated: a poisoned lock still holds a valid set.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A task that ended, with the subscription it served.
pub(crate) struct Ended {
    pub(crate) id: WorkId,
    pub(crate) task: task::Id,
    pub(crate) result: Result<(), JoinError>,
}

struct Restarts {
    count: u32,
    started: Instant,
}

/// Owns the delivery tasks.
pub(crate) struct Supervisor {
    tasks: JoinSet<()>,
    by_task: HashMap<task::Id, WorkId>,
    restarts: HashMap<WorkId, Restarts>,
    unserved: Unserved,
    policy: RestartPolicy,
}

impl Supervisor {
    /// `unserved` is the gauge that mirrors how many subscriptions wait for a restart.
    pub(crate) fn new(policy: RestartPolicy, unserved: IntGauge) -> Supervisor {
        Supervisor {
            tasks: JoinSet::new(),
            by_task: HashMap::new(),
            restarts: HashMap::new(),
            unserved: Unserved {
                ids: Arc::default(),
                gauge: unserved,
            },
            policy,
        }
    }

    pub(crate) fn unserved(&self) -> Unserved {
        self.unserved.clone()
    }

    /// Starts a subscription's task now.
    pub(crate) fn start(
        &mut self,
        id: WorkId,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> task::Id {
        self.restarts.insert(
            id.clone(),
            Restarts {
                count: 0,
                started: Instant::now(),
            },
        );
        let handle = self.tasks.spawn(task);
        self.by_task.insert(handle.id(), id);
        handle.id()
    }

    /// Starts a subscription's task again after the backoff its restart count calls for; until
    /// then the subscription is unserved. `cancel` ends the wait early (the subscription was
    /// removed meanwhile), and then the task never starts. Returns the new task and the delay.
    pub(crate) fn restart(
        &mut self,
        id: WorkId,
        cancel: CancellationToken,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> (task::Id, Duration) {
        let now = Instant::now();
        let restarts = self.restarts.entry(id.clone()).or_insert(Restarts {
            count: 0,
            started: now,
        });
        if now.duration_since(restarts.started) >= self.policy.healthy_after {
            restarts.count = 0;
        }
        restarts.count = restarts.count.saturating_add(1);
        let delay = self.policy.delay(restarts.count);
        restarts.started = now + delay;
        self.unserved.insert(id.clone());
        let unserved = self.unserved.clone();
        let waiting = id.clone();
        let handle = self.tasks.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {
                    unserved.remove(&waiting);
                    return;
                }
                () = tokio::time::sleep(delay) => {}
            }
            unserved.remove(&waiting);
            task.await;
        });
        self.by_task.insert(handle.id(), id);
        (handle.id(), delay)
    }

    /// Forgets a subscription that no longer wants delivering: its restart count, and its
    /// place among the unserved. Its task, cancelled by the caller, ends on its own.
    pub(crate) fn forget(&mut self, id: &WorkId) {
        self.restarts.remove(id);
        self.unserved.remove(id);
    }

    /// Waits for the next task to end; `None` when there are none.
    pub(crate) async fn join_next(&mut self) -> Option<Ended> {
        loop {
            let (task, result) = match self.tasks.join_next_with_id().await? {
                Ok((task, ())) => (task, Ok(())),
                Err(err) => (err.id(), Err(err)),
            };
            // Every spawned task is registered; a miss would only mean it was forgotten.
            if let Some(id) = self.by_task.remove(&task) {
                return Some(Ended { id, task, result });
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Aborts every task and waits until they are gone.
    pub(crate) async fn abort_all(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.by_task.clear();
    }
}
