//! Automatic re-checks of pending subscriptions: a subscription whose endpoint has not
//! consented (`consent: required`, pending) is asked again on a schedule, first
//! `consent.recheck_first` after it was last asked, then after waits that double up to
//! `consent.recheck_max` (`Subscription::next_consent_recheck`), not only by `VerifyEndpoint`.
//!
//! Control runs it, a task the service owns and stops. Every control replica looks, but a
//! re-check starts with a compare-and-set write of the subscription on the revision it read,
//! so of several replicas seeing the same subscription due only the one whose write lands asks
//! (the others lose the race and skip it), and the write moves its next re-check on. A round
//! asks at most [`MAX_PER_ROUND`] endpoints, [`AT_ONCE`] at once; those left over are due in
//! the next round.

use std::time::Duration;

use futures::StreamExt as _;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use herald_nats::SubscriptionStore;

use super::Consent;

/// Endpoints one round asks at most.
pub(crate) const MAX_PER_ROUND: usize = 32;

/// Endpoints asked at once.
const AT_ONCE: usize = 4;

/// The longest time between two looks at the subscriptions.
const MAX_TICK: Duration = Duration::from_secs(30);

/// The running re-check task.
pub(crate) struct RecheckTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RecheckTask {
    /// Starts re-checking until `shutdown` is cancelled or [`RecheckTask::stop`] is called;
    /// `None` when re-checks are off (`consent.recheck_first = "0s"`).
    pub(crate) fn spawn(
        consent: Consent,
        store: SubscriptionStore,
        shutdown: &CancellationToken,
    ) -> Option<RecheckTask> {
        if consent.config.recheck_first.is_zero() {
            return None;
        }
        let stop = shutdown.child_token();
        let task = tokio::spawn(
            run(consent, store, stop.clone())
                .instrument(tracing::info_span!("task", name = "consent_rechecks")),
        );
        Some(RecheckTask { stop, task })
    }

    /// Stops the task (handshakes in flight are abandoned; their subscriptions keep what the
    /// re-check wrote, and are due again) and waits for it to end.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the consent re-check task panicked");
        }
    }
}

async fn run(consent: Consent, store: SubscriptionStore, stop: CancellationToken) {
    let tick = (consent.config.recheck_first / 2).clamp(Duration::from_millis(100), MAX_TICK);
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = round(&consent, &store) => {}
        }
    }
}

/// Asks the endpoints of the subscriptions due now.
async fn round(consent: &Consent, store: &SubscriptionStore) {
    let stored = match store.list().await {
        Ok(stored) => stored,
        Err(err) => {
            tracing::warn!(error = %err, "failed to list subscriptions to re-check consent");
            return;
        }
    };
    let now = OffsetDateTime::now_utc();
    let (first, max) = (consent.config.recheck_first, consent.config.recheck_max);
    let mut due: Vec<_> = stored
        .into_iter()
        .filter_map(|stored| {
            let next = stored.value.next_consent_recheck(first, max)?;
            (next <= now).then_some((next, stored))
        })
        .collect();
    // The longest overdue first, so a round cut short leaves the most recent for the next.
    due.sort_by_key(|(next, _)| *next);
    due.truncate(MAX_PER_ROUND);
    futures::stream::iter(due)
        .for_each_concurrent(AT_ONCE, |(_, stored)| async move {
            let id = stored.value.id.clone();
            let span = tracing::info_span!("consent_recheck", subscription_id = %id);
            match consent.recheck(store, stored).instrument(span).await {
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(subscription_id = %id, error = %err, "failed to re-check consent");
                }
            }
        })
        .await;
}
