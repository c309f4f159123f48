//! A subscription's endpoint health as its worker sees it: consecutive failures, failing since,
//! last success; written to the health bucket when it turns (at most once a second) and
//! otherwise at most once a minute.

use std::sync::PoisonError;

use time::OffsetDateTime;

use herald_core::SubscriptionId;
use herald_core::record::EndpointHealth;
use herald_nats::Records;

use crate::context::WorkerContext;

/// A subscription's endpoint health, kept in memory by its worker and written to the health
/// bucket when it turns (the first failure after successes, the first success after failures;
/// at most once a second, one write at a time) and otherwise at most once a minute, so neither
/// a busy healthy endpoint, nor a dead one, nor one failing at random costs a write per
/// delivery. The disable threshold is checked on the in-memory state.
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
    /// The health turned since it was last written.
    turned: bool,
    /// A write is in flight: no second one races it for the same revision.
    writing: bool,
}

/// Turns are written at most this often: an endpoint failing 5 % of requests at random turns
/// twice per failure, and writing each turn cost a KV round trip (and, with attempts in
/// parallel, compare-and-set conflicts) per failure (benchmark W8).
const TURN_WRITE_INTERVAL: time::Duration = time::Duration::SECOND;

/// Otherwise the health is written at most once a minute.
const STALE_AFTER: time::Duration = time::Duration::MINUTE;

impl State {
    /// Takes what to write now, if anything: after a turn once the interval passed, or when the
    /// last write is a minute old; never while another write is in flight.
    fn take_write(&mut self, turned: bool, now: OffsetDateTime) -> Option<(EndpointHealth, u64)> {
        self.turned |= turned;
        if self.writing {
            return None;
        }
        let since = self.written_at.map(|written| now - written);
        let due = since.is_none_or(|since| {
            since >= STALE_AFTER || (self.turned && since >= TURN_WRITE_INTERVAL)
        });
        if !due {
            return None;
        }
        self.writing = true;
        self.turned = false;
        self.written_at = Some(now);
        Some((self.health.clone(), self.revision))
    }
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
                turned: false,
                writing: false,
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
            state.take_write(was_failing, now)
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
            let failing_too_long = state
                .health
                .failing_for_at_least(context.config.disable_after, now);
            (failing_too_long, state.take_write(was_healthy, now))
        };
        if let Some((health, revision)) = to_write {
            self.write(context, id, health, revision).await;
        }
        failing_too_long
    }

    /// Writes `health` over the entry at `revision` (the one write in flight); when another
    /// writer came first, merges its view into ours and tries again.
    async fn write(
        &self,
        context: &WorkerContext,
        id: &SubscriptionId,
        health: EndpointHealth,
        revision: u64,
    ) {
        self.write_merging(context, id, health, revision).await;
        self.lock().writing = false;
    }

    async fn write_merging(
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn state() -> State {
        State {
            health: EndpointHealth::default(),
            written_at: None,
            revision: 0,
            turned: false,
            writing: false,
        }
    }

    #[test]
    fn turns_are_written_at_most_once_a_second_and_never_two_at_once() {
        let t0 = datetime!(2026-12-02 10:00:00 UTC);
        let mut state = state();
        assert!(
            state.take_write(true, t0).is_some(),
            "the first turn is written"
        );
        let soon = t0 + time::Duration::milliseconds(10);
        assert!(
            state.take_write(true, soon).is_none(),
            "not while that write is in flight"
        );
        state.writing = false;
        assert!(
            state.take_write(true, soon).is_none(),
            "nor within a second"
        );
        let later = t0 + time::Duration::milliseconds(1500);
        assert!(
            state.take_write(false, later).is_some(),
            "a turn left unwritten goes with the next attempt after the interval"
        );
        state.writing = false;
        let quiet = later + time::Duration::seconds(30);
        assert!(
            state.take_write(false, quiet).is_none(),
            "no turn, not stale"
        );
        let stale = later + time::Duration::seconds(61);
        assert!(
            state.take_write(false, stale).is_some(),
            "stale after a minute"
        );
    }
}
