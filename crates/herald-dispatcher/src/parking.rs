//! Parking: a subscription with nothing to do drops its pull and waits to be woken.
//!
//! An idle worker would hold a pull open on its consumer for good: a waiting pull request,
//! its heartbeats, a subscriber channel and a few timers, about 30 KiB and steady wake-ups per
//! subscription (benchmark W6: 318 MiB and 2.3 % of a core at 10,000 subscriptions). Instead,
//! a worker whose scheduler found nothing to do for `dispatcher.park_after` *parks*
//! (`worker.rs`): it registers its consumer's filter subjects here, checks once that its
//! consumer has nothing pending and nothing unacknowledged, and drops its pull. One task per
//! dispatcher ([`follow`]) reads the events stream's wake-ups (`herald_nats::wakes`: the
//! headers of every stored event, republished after it was stored) and wakes the parked
//! workers whose filter subjects the event's subject matches (`herald_core::interest`); a
//! woken worker sets its pull up again and delivers.
//!
//! Nothing may stay parked while an event waits for it:
//! - An event stored before the worker registered is seen by the check that follows the
//!   registration (pending > 0: the worker does not park); one stored after it is told by
//!   its wake-up, which the server sends after storing it, to a follower subscribed before any
//!   worker parks.
//! - Wake-ups are core NATS, at most once. Each carries the sequence of the message stored
//!   before it, so the follower sees any gap (a reconnect, a slow read) at the next wake-up and
//!   then wakes every parked worker. Every [`GAP_PROBE`] while any is parked, it also compares
//!   the stream's last sequence with the last one it was told of, so a missed wake-up with none
//!   after it is found too. While the follower does not follow (NATS down, a stream without the
//!   republish rule: an older `herald migrate`), nothing parks and everything parked is woken.
//! - A parked worker also looks at its consumer every `dispatcher.parked_recheck`, whatever it
//!   was told: the last resort, one consumer-info request.
//!
//! A spurious wake-up costs one pull set-up; a missed one would cost a delay until the next
//! probe, never an event (events stay in the stream until acknowledged).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use herald_core::interest::SubjectIndex;
use herald_nats::Nats;

/// How often the follower compares the events stream's last sequence with what it was told,
/// while a worker is parked.
pub(crate) const GAP_PROBE: Duration = Duration::from_secs(5);

/// The parked workers of one dispatcher and what wakes them.
pub(crate) struct Parking {
    /// Whether workers may park: the follower follows wake-ups.
    enabled: AtomicBool,
    next_ticket: AtomicU64,
    parked: std::sync::Mutex<Parked>,
    gauge: prometheus::IntGauge,
    woken: prometheus::IntCounterVec,
}

#[derive(Default)]
struct Parked {
    index: SubjectIndex<u64>,
    wakers: HashMap<u64, oneshot::Sender<()>>,
}

/// One parked worker's place; leaving it (dropping it) unparks.
pub(crate) struct Place {
    parking: Arc<Parking>,
    ticket: u64,
    woken: oneshot::Receiver<()>,
}

impl Place {
    /// Resolves once an event concerns the worker (or everything is woken).
    pub(crate) async fn woken(&mut self) {
        // A dropped sender is a wake-up too.
        let _ = (&mut self.woken).await;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.parking.unpark(self.ticket);
    }
}

impl Parking {
    pub(crate) fn new(gauge: prometheus::IntGauge, woken: prometheus::IntCounterVec) -> Parking {
        Parking {
            enabled: AtomicBool::new(false),
            next_ticket: AtomicU64::new(0),
            parked: std::sync::Mutex::new(Parked::default()),
            gauge,
            woken,
        }
    }

    /// Counts a parked worker woken by `cause` (see `herald_dispatch_subscriptions_woken_total`).
    pub(crate) fn count_woken(&self, cause: &str, count: usize) {
        if count > 0 {
            self.woken
                .with_label_values(&[cause])
                .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
        }
    }

    /// Whether a worker may park now.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Parks a worker whose consumer filters on `filter_subjects`.
    pub(crate) fn park(self: &Arc<Parking>, filter_subjects: Vec<String>) -> Place {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (waker, woken) = oneshot::channel();
        {
            let mut parked = self.lock();
            parked.index.insert(ticket, filter_subjects);
            parked.wakers.insert(ticket, waker);
            self.gauge.set(gauge_value(parked.wakers.len()));
        }
        Place {
            parking: Arc::clone(self),
            ticket,
            woken,
        }
    }

    /// How many workers are parked.
    pub(crate) fn len(&self) -> usize {
        self.lock().wakers.len()
    }

    fn unpark(&self, ticket: u64) {
        let mut parked = self.lock();
        parked.index.remove(&ticket);
        parked.wakers.remove(&ticket);
        self.gauge.set(gauge_value(parked.wakers.len()));
    }

    /// Wakes the workers an event stored on `subject` concerns; returns how many.
    pub(crate) fn wake(&self, subject: &str) -> usize {
        let mut parked = self.lock();
        if parked.index.is_empty() {
            return 0;
        }
        let tickets = parked.index.matching(subject);
        for ticket in &tickets {
            parked.index.remove(ticket);
            if let Some(waker) = parked.wakers.remove(ticket) {
                let _ = waker.send(());
            }
        }
        self.gauge.set(gauge_value(parked.wakers.len()));
        self.count_woken("event", tickets.len());
        tickets.len()
    }

    /// Wakes every parked worker, counted as woken by `cause`; returns how many.
    pub(crate) fn wake_all(&self, cause: &str) -> usize {
        let mut parked = self.lock();
        parked.index.drain();
        let woken = parked.wakers.len();
        for (_, waker) in parked.wakers.drain() {
            let _ = waker.send(());
        }
        self.gauge.set(0);
        self.count_woken(cause, woken);
        woken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parked> {
        // The lock guards plain maps whose every update completes: a panic elsewhere while it
        // was held leaves nothing half done.
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Release);
        if !enabled {
            self.wake_all("stopped");
        }
    }
}

fn gauge_value(parked: usize) -> i64 {
    i64::try_from(parked).unwrap_or(i64::MAX)
}

/// Follows the events stream's wake-ups and wakes the parked workers they concern, until
/// `cancel`; keeps following again after failures, with parking off meanwhile.
pub(crate) async fn follow(parking: Arc<Parking>, nats: Nats, cancel: CancellationToken) {
    let mut retry = Duration::from_millis(500);
    while !cancel.is_cancelled() {
        match Box::pin(follow_once(&parking, &nats, &cancel)).await {
            Ok(()) => retry = Duration::from_millis(500),
            Err(err) => {
                tracing::warn!(error = %err, "failed to follow wake-ups; idle subscriptions keep their pulls meanwhile")
            }
        }
        parking.set_enabled(false);
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(Duration::from_secs(10));
    }
    parking.set_enabled(false);
}

/// Follows until the wake-ups end or `cancel`.
async fn follow_once(
    parking: &Parking,
    nats: &Nats,
    cancel: &CancellationToken,
) -> herald_nats::Result<()> {
    if !nats.events_republish_wakes().await? {
        tracing::info!(
            "the events stream does not republish wake-ups (run `herald migrate` of this \
             version): idle subscriptions keep a pull open"
        );
        // Looked at again later: migrate may run meanwhile.
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        return Ok(());
    }
    let mut wakes = nats.wakes().await?;
    // Told of everything stored from here on: workers may park.
    let mut told = nats.events_last_sequence().await?;
    parking.set_enabled(true);
    let mut probe = tokio::time::interval(GAP_PROBE);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The stream's last sequence at the previous probe: its wake-up is due by now.
    let mut probed: Option<u64> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            wake = wakes.next() => {
                let Some(wake) = wake else {
                    tracing::debug!("wake-ups ended; following again");
                    return Ok(());
                };
                if wake.sequence <= told {
                    // Told already (a republish sent again): harmless.
                    parking.wake(&wake.subject);
                    continue;
                }
                if wake.last_sequence > told {
                    let woken = parking.wake_all("gap");
                    tracing::debug!(after = told, up_to = wake.last_sequence, woken, "missed wake-ups; woke every parked subscription");
                }
                told = wake.sequence;
                parking.wake(&wake.subject);
            }
            _ = probe.tick() => {
                if parking.len() == 0 {
                    probed = None;
                    continue;
                }
                if let Some(last) = probed
                    && last > told
                {
                    let woken = parking.wake_all("gap");
                    tracing::debug!(told, stored = last, woken, "wake-ups missing; woke every parked subscription");
                    told = last;
                }
                probed = match nats.events_last_sequence().await {
                    Ok(last) => Some(last),
                    Err(err) => {
                        tracing::debug!(error = %err, "failed to read the events stream's last sequence");
                        None
                    }
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parking() -> Arc<Parking> {
        Arc::new(Parking::new(
            prometheus::IntGauge::new("parked", "parked").unwrap(),
            prometheus::IntCounterVec::new(prometheus::Opts::new("woken", "woken"), &["cause"])
                .unwrap(),
        ))
    }

    #[tokio::test]
    async fn an_event_wakes_the_workers_it_concerns_and_no_other() {
        let parking = parking();
        let mut orders = parking.park(vec!["herald.events.*.order.>".to_owned()]);
        let mut refunds = parking.park(vec!["herald.events.*.refund".to_owned()]);
        assert_eq!(parking.len(), 2);
        assert_eq!(parking.wake("herald.events.3.order.placed"), 1);
        orders.woken().await;
        assert_eq!(parking.len(), 1);
        assert_eq!(parking.wake("herald.events.3.order.placed"), 0);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), refunds.woken())
                .await
                .is_err()
        );
        assert_eq!(parking.wake_all("gap"), 1);
        refunds.woken().await;
        assert_eq!(parking.woken.with_label_values(&["event"]).get(), 1);
        assert_eq!(parking.woken.with_label_values(&["gap"]).get(), 1);
        assert_eq!(parking.len(), 0);
    }

    #[test]
    fn leaving_a_place_unparks_and_nothing_wakes_it_later() {
        let parking = parking();
        let place = parking.park(vec!["herald.events.>".to_owned()]);
        drop(place);
        assert_eq!(parking.len(), 0);
        assert_eq!(parking.gauge.get(), 0);
        assert_eq!(parking.wake("herald.events.1.order"), 0);
    }

    #[test]
    fn turning_parking_off_wakes_everything_parked() {
        let parking = parking();
        parking.set_enabled(true);
        let _a = parking.park(vec!["a.>".to_owned()]);
        let _b = parking.park(vec!["b".to_owned()]);
        assert_eq!(parking.gauge.get(), 2);
        parking.set_enabled(false);
        assert!(!parking.enabled());
        assert_eq!(parking.len(), 0);
    }
}
