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
pub(crate) struct HealthTracker {
    state: std::sync::Mutex<(EndpointHealth, Option<OffsetDateTime>)>,
}

impl HealthTracker {
    pub(crate) async fn load(records: &Records, id: &SubscriptionId) -> HealthTracker {
        let health = records.health(id).await.unwrap_or_default();
        HealthTracker {
            state: std::sync::Mutex::new((health, None)),
        }
    }

    pub(crate) async fn succeeded(
        &self,
        context: &WorkerContext,
        id: &SubscriptionId,
        now: OffsetDateTime,
    ) {
        let to_write = {
            // Updated in one step: a poisoned lock still holds a valid state.
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let was_failing = state.0.failing_since.is_some();
            state.0.succeeded(now);
            let stale = state
                .1
                .is_none_or(|written| now - written >= time::Duration::minutes(1));
            (was_failing || stale).then(|| {
                state.1 = Some(now);
                state.0.clone()
            })
        };
        if let Some(health) = to_write
            && let Err(err) = context.records.set_health(id, &health).await
        {
            tracing::debug!(error = %err, "failed to write endpoint health");
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
            // Updated in one step: a poisoned lock still holds a valid state.
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let was_healthy = state.0.failing_since.is_none();
            state.0.failed(now);
            let stale = state
                .1
                .is_none_or(|written| now - written >= time::Duration::minutes(1));
            let failing_too_long = state
                .0
                .failing_for_at_least(context.config.disable_after, now);
            let to_write = (was_healthy || stale).then(|| {
                state.1 = Some(now);
                state.0.clone()
            });
            (failing_too_long, to_write)
        };
        if let Some(health) = to_write
            && let Err(err) = context.records.set_health(id, &health).await
        {
            tracing::debug!(error = %err, "failed to write endpoint health");
        }
        failing_too_long
    }
}
