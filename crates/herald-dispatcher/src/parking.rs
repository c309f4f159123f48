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
//!   after it is found too (only when nothing at all was told since the previous probe: a
//!   follower merely behind misses nothing, and waking everything would only slow it). While the follower does not follow (NATS down, a stream without the
//!   republish rule: an older `herald migrate`), nothing parks and everything parked is woken.
//! - A parked worker also looks at its consumer every `dispatcher.parked_recheck`, whatever it
//!   was told: the last resort, one consumer-info request.
//!
//! A spurious wake-up costs one pull set-up; a missed one would cost a delay until the next
//! probe, never an event (events stay in the stream until acknowledged).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use herald_core::interest::SubjectIndex;
use herald_nats::Nats;

/// How often the follower compares the events stream's last sequence with what it was told,
/// while a worker is parked.
pub(crate) const GAP_PROBE: Duration = Duration::from_secs(5);

/// How long the follower keeps following with nothing parked before it stops (and asks for
/// no more wake-ups until a worker wants to park again).
pub(crate) const LINGER: Duration = Duration::from_secs(60);

/// The parked workers of one dispatcher and what wakes them.
pub(crate) struct Parking {
    next_ticket: AtomicU64,
    /// A worker wants to park while the follower does not follow.
    wanted: Notify,
    parked: std::sync::Mutex<Parked>,
    gauge: prometheus::IntGauge,
    woken: prometheus::IntCounterVec,
}

#[derive(Default)]
struct Parked {
    /// Whether workers may park: the follower follows wake-ups. Changed only under the lock, as
    /// workers park under it, so a worker parks only while the follower follows, and the
    /// follower stops only after waking every worker parked.
    enabled: bool,
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
            next_ticket: AtomicU64::new(0),
            wanted: Notify::new(),
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

    /// Whether a worker may park now; when it may not, the follower is asked to follow, so it
    /// may at its next look.
    pub(crate) fn ready(&self) -> bool {
        let enabled = self.lock().enabled;
        if !enabled {
            self.wanted.notify_one();
        }
        enabled
    }

    /// Parks a worker whose consumer filters on `filter_subjects`; `None` (and the follower is
    /// asked to follow) while the follower does not follow.
    pub(crate) fn park(self: &Arc<Parking>, filter_subjects: Vec<String>) -> Option<Place> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (waker, woken) = oneshot::channel();
        {
            let mut parked = self.lock();
            if !parked.enabled {
                drop(parked);
                self.wanted.notify_one();
                return None;
            }
            parked.index.insert(ticket, filter_subjects);
            parked.wakers.insert(ticket, waker);
            self.gauge.set(gauge_value(parked.wakers.len()));
        }
        Some(Place {
            parking: Arc::clone(self),
            ticket,
            woken,
        })
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
        let woken = {
            let mut parked = self.lock();
            wake_all_locked(&mut parked)
        };
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

    /// Lets workers park: the follower follows.
    fn enable(&self) {
        self.lock().enabled = true;
    }

    /// Lets no worker park any more and wakes those parked (counted as `cause`).
    fn disable(&self, cause: &str) {
        let woken = {
            let mut parked = self.lock();
            parked.enabled = false;
            wake_all_locked(&mut parked)
        };
        self.gauge.set(0);
        self.count_woken(cause, woken);
    }

    /// Lets no worker park any more if none is parked; true when it did.
    fn disable_if_unused(&self) -> bool {
        let mut parked = self.lock();
        if parked.wakers.is_empty() {
            parked.enabled = false;
            true
        } else {
            false
        }
    }
}

fn wake_all_locked(parked: &mut Parked) -> usize {
    parked.index.drain();
    let woken = parked.wakers.len();
    for (_, waker) in parked.wakers.drain() {
        let _ = waker.send(());
    }
    woken
}

fn gauge_value(parked: usize) -> i64 {
    i64::try_from(parked).unwrap_or(i64::MAX)
}

/// Follows the events stream's wake-ups while workers want to park, and wakes the parked
/// workers they concern, until `cancel`. It follows from the first worker that wants to park
/// until none has been parked for [`LINGER`], so a dispatcher whose subscriptions are all busy
/// is sent no wake-ups; after a failure it follows again, parking off meanwhile.
pub(crate) async fn follow(parking: Arc<Parking>, nats: Nats, cancel: CancellationToken) {
    let mut retry = Duration::from_millis(500);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = parking.wanted.notified() => {}
        }
        match Box::pin(follow_once(&parking, &nats, &cancel)).await {
            Ok(()) => retry = Duration::from_millis(500),
            Err(err) => {
                parking.disable("stopped");
                tracing::warn!(error = %err, "failed to follow wake-ups; idle subscriptions keep their pulls meanwhile");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(Duration::from_secs(10));
                // Still wanted: the workers that wanted to park want to again.
                parking.wanted.notify_one();
            }
        }
    }
    parking.disable("stopped");
}

/// Follows until no worker was parked for [`LINGER`], the wake-ups end, or `cancel`.
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
        // Looked at again later, when a worker wants to park: migrate may run meanwhile.
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        return Ok(());
    }
    let mut wakes = nats.wakes().await?;
    // Told of everything stored from here on: workers may park.
    let mut told = nats.events_last_sequence().await?;
    parking.enable();
    let mut probe = tokio::time::interval(GAP_PROBE);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The stream's last sequence at the previous probe, and what the follower had been told
    // then: if nothing was told since and the stream held more, a wake-up was lost with none
    // after it (one lost before others is found by their `Nats-Last-Sequence`). A follower
    // that is only behind is still being told, and wakes nothing it need not.
    let mut probed: Option<(u64, u64)> = None;
    let mut unused_since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            wake = wakes.next() => {
                let Some(wake) = wake else {
                    tracing::debug!("wake-ups ended; following again");
                    parking.disable("stopped");
                    parking.wanted.notify_one();
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
                    if unused_since.elapsed() >= LINGER && parking.disable_if_unused() {
                        tracing::debug!("nothing parked; following no wake-ups until a subscription parks");
                        return Ok(());
                    }
                    continue;
                }
                unused_since = tokio::time::Instant::now();
                if let Some((last, told_then)) = probed
                    && last > told
                    && told == told_then
                {
                    let woken = parking.wake_all("gap");
                    tracing::debug!(told, stored = last, woken, "wake-ups missing; woke every parked subscription");
                    told = last;
                }
                probed = match nats.events_last_sequence().await {
                    Ok(last) => Some((last, told)),
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
        parking.enable();
        let mut orders = parking
            .park(vec!["herald.events.*.order.>".to_owned()])
            .unwrap();
        let mut refunds = parking
            .park(vec!["herald.events.*.refund".to_owned()])
            .unwrap();
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
        parking.enable();
        let place = parking.park(vec!["herald.events.>".to_owned()]).unwrap();
        drop(place);
        assert_eq!(parking.len(), 0);
        assert_eq!(parking.gauge.get(), 0);
        assert_eq!(parking.wake("herald.events.1.order"), 0);
    }

    #[test]
    fn no_worker_parks_while_nothing_follows_and_stopping_wakes_everything_parked() {
        let parking = parking();
        assert!(!parking.ready());
        assert!(parking.park(vec!["a.>".to_owned()]).is_none());
        parking.enable();
        assert!(parking.ready());
        let _a = parking.park(vec!["a.>".to_owned()]).unwrap();
        let _b = parking.park(vec!["b".to_owned()]).unwrap();
        assert_eq!(parking.gauge.get(), 2);
        assert!(!parking.disable_if_unused());
        parking.disable("stopped");
        assert!(!parking.ready());
        assert_eq!(parking.len(), 0);
        assert_eq!(parking.woken.with_label_values(&["stopped"]).get(), 2);
    }
}
