//! A subscription's endpoint health as its worker sees it: consecutive failures, failing since,
//! last success; written to the health bucket when it turns and at most once a minute.

use std::sync::PoisonError;

use time::OffsetDateTime;

use herald_core::SubscriptionId;
use herald_core::record::EndpointHealth;
use herald_nats::Records;

use crate::context::WorkerContext;

/// A subscription's endpoint health, kept in memory by its worker and written to the health
/// bucket when it turns (the first failure after successes, the first success after failures)
/// and otherwise at most once a minute, so neither a busy healthy endpoint nor a dead one costs
/// a write per delivery. The disable threshold is checked on the in-memory state.
///
/// Writes are compare-and-set on the entry's revision: around a hand-over two replicas may both
/// write a subscription's health, and a writer that finds another's write first merges it
/// (`EndpointHealth::merge`) and writes again, so no view overwrites the other.
pub(crate) struct HealthTracker {
    state: std::sync::Mutex<State>,
}

struct State {
    health: EndpointHealth,
    written_at: Option<OffsetDateTime>,
    /// The revision of the stored entry this tracker last read or wrote (0: none stored).
    revision: u64,
}

/// Attempts at a compare-and-set write before giving up until the next one.
const WRITE_TRIES: usize = 3;

impl HealthTracker {
    pub(crate) async fn load(records: &Records, id: &SubscriptionId) -> HealthTracker {
        let (health, revision) = records.health_versioned(id).await.unwrap_or_default();
        HealthTracker {
            state: std::sync::Mutex::new(State {
                health,
                written_at: None,
                revision,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Updated in one step: a poisoned lock still holds a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) async fn succeeded(
        &self,
        context: &WorkerContext,
        id: &SubscriptionId,
        now: OffsetDateTime,
    ) {
        let to_write = {
            let mut state = self.lock();
            let was_failing = state.health.failing_since.is_some();
            state.health.succeeded(now);
            let stale = state
                .written_at
                .is_none_or(|written| now - written >= time::Duration::minutes(1));
            (was_failing || stale).then(|| {
                state.written_at = Some(now);
                (state.health.clone(), state.revision)
            })
        };
        if let Some((health, revision)) = to_write {
            self.write(context, id, health, revision).await;
        }
    }

    /// Records a failure; returns true when the endpoint has been failing past the threshold.
    pub(crate) async fn failed(
        &self,
        context: &WorkerContext,
        id: &SubscriptionId,
        now: OffsetDateTime,
    ) -> bool {
        let (failing_too_long, to_write) = {
            let mut state = self.lock();
            let was_healthy = state.health.failing_since.is_none();
            state.health.failed(now);
            let stale = state
                .written_at
                .is_none_or(|written| now - written >= time::Duration::minutes(1));
            let failing_too_long = state
                .health
                .failing_for_at_least(context.config.disable_after, now);
            let to_write = (was_healthy || stale).then(|| {
                state.written_at = Some(now);
                (state.health.clone(), state.revision)
            });
            (failing_too_long, to_write)
        };
        if let Some((health, revision)) = to_write {
            self.write(context, id, health, revision).await;
        }
        failing_too_long
    }

    /// Writes `health` over the entry at `revision`; when another writer came first, merges its
    /// view into ours and tries again.
    async fn write(
        &self,
        context: &WorkerContext,
        id: &SubscriptionId,
        mut health: EndpointHealth,
        mut revision: u64,
    ) {
        for _ in 0..WRITE_TRIES {
            match context.records.set_health_if(id, &health, revision).await {
                Ok(Some(written)) => {
                    self.lock().revision = written;
                    return;
                }
                Ok(None) => match context.records.health_versioned(id).await {
                    Ok((stored, stored_revision)) => {
                        health = health.merge(&stored);
                        revision = stored_revision;
                        let mut state = self.lock();
                        state.health = state.health.merge(&stored);
                        state.revision = stored_revision;
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "failed to read endpoint health");
                        return;
                    }
                },
                Err(err) => {
                    tracing::debug!(error = %err, "failed to write endpoint health");
                    return;
                }
            }
        }
        tracing::debug!("endpoint health kept changing under this writer; written next time");
    }
}
