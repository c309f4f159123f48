//! The scheduler of one owned subscription: decides when each pulled event's attempt starts.
//!
//! Pulled messages are admitted in arrival order (decoded, type-checked, filtered:
//! `admission.rs`), then wait in [`lanes`]: unkeyed events in one queue, keyed events of an
//! ordered subscription in one FIFO lane per key, one event of a key in flight at a time. An
//! attempt starts only with a concurrency permit (at most the subscription's `max_in_flight`
//! running), a rate token ([`limiter`]) and a place among the requests in flight to the
//! endpoint's host (`dispatcher.max_in_flight_per_host`, shared by every subscription, first
//! come first served), taken in that order; a `429`/`503` with `Retry-After` pauses the whole
//! subscription. Waiting is not an attempt: it burns no retry, and events that wait are kept
//! alive with in-progress acknowledgements so JetStream does not redeliver them meanwhile. An
//! event waiting for its host is an event in its lane, not an attempt waiting inside the client.
//!
//! An unordered subscription reads pulled events only while fewer than [`READ_AHEAD`] events
//! (and [`READ_AHEAD_BYTES`] of payload) wait: any waiting event can start as soon as an
//! attempt ends, so more would only be memory (W3's fifty subscriptions to one host could hold
//! 50 × 512 pulled events while 256 ran; its dispatcher peaked at 182–187 MiB before, 60–63
//! MiB after, `docs/PERFORMANCE.md`). An ordered one reads its whole window, because a key
//! that waits keeps its later events from starting, and the events of other keys behind them
//! must be read to start at all (a key's retry, too, arrives through the same pull).
//!
//! On an ordered subscription, the later events of a key whose head failed or is blocked are
//! moved to the key's hold in the retry stream and acknowledged, and released from it in order
//! once the head is done (`lanes`): a failing key holds back only itself and takes no room in
//! the consumer's window.
//!
//! On cancellation the scheduler stops pulling and starting, lets the attempts in flight finish
//! (the service aborts them after its grace period), and leaves waiting events unacknowledged
//! for redelivery.

pub(crate) mod lanes;
pub(crate) mod limiter;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use herald_core::Event;
use herald_core::subscription::{OnDeadLetter, Ordering};
use herald_nats::{ConsumerSpec, Delivery, Messages, Pause, PauseStream};

use crate::admission::{self, Admission};
use crate::attempt::{self, Finished};
use crate::client::HostPermit;
use crate::context::WorkerContext;
use crate::health::HealthTracker;
use crate::ownership::Fence;
use crate::worker::Route;

use lanes::{Admitted, End, Job, Lanes};
use limiter::Limiter;

/// An admitted event waiting for its turn.
struct Waiting {
    delivery: Delivery,
    event: Event,
}

impl lanes::Weigh for Waiting {
    fn weight(&self) -> usize {
        self.delivery.payload().len()
    }
}

/// Events an unordered subscription holds waiting before it reads more of what it pulled.
pub(crate) const READ_AHEAD: usize = 64;

/// Payload bytes an unordered subscription holds waiting before it reads more (one event is
/// always read, whatever its size).
pub(crate) const READ_AHEAD_BYTES: usize = 256 * 1024;

/// Payload bytes an ordered subscription holds waiting before it reads more, unless nothing
/// could start without reading (see [`reads_more`]).
pub(crate) const ORDERED_READ_AHEAD_BYTES: usize = 4 * 1024 * 1024;

/// What a scheduler pulls: the subscription's live events, and its due retries while the retry
/// stream holds any of them (`None` until then: opened when the scheduler stores a retry or
/// releases a held event).
pub(crate) struct Pulls {
    pub(crate) live: Messages,
    pub(crate) due: Option<Messages>,
    /// The acknowledgement floor the live consumer was renewed from, if it was
    /// (`herald_nats::EventConsumer::resumed_after`).
    pub(crate) resumed_after: Option<u64>,
    /// The live consumer had nothing to deliver when it was set up: no event older than what
    /// it delivers later is still to come.
    pub(crate) caught_up_at_start: bool,
    /// The pauses the other parts of a split subscription announce (`None` for a whole one).
    pub(crate) pauses: Option<PauseStream>,
}

/// Why a scheduler returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Cancelled, or the service dropped the worker.
    Stopped,
    /// A pull ended: the worker sets its pulls up again.
    PullEnded,
    /// Nothing ran, waited or arrived for `dispatcher.park_after`, the retry backlog holds
    /// nothing of the subscription and no pause holds it back: the worker may park
    /// (`parking.rs`). The pulls are dropped; nothing is left unacknowledged by this worker.
    Idle,
}

/// Creates (or finds) a subscription's retry consumer and pulls it.
pub(crate) async fn open_due(
    context: &WorkerContext,
    route: &Route,
) -> herald_nats::Result<Messages> {
    let spec = route.retry_consumer_spec(&context.config);
    let consumer = Box::pin(context.retries.ensure_consumer(&spec)).await?;
    Box::pin(consumer.messages(route.pull_batch(&context.config), route.pull_bytes())).await
}

async fn wait_for_host(waiting: &mut Option<BoxFuture<'static, HostPermit>>) -> HostPermit {
    match waiting {
        Some(permit) => permit.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn next_pause(pauses: &mut Option<PauseStream>) -> Option<Pause> {
    match pauses {
        Some(pauses) => pauses.next().await,
        None => std::future::pending().await,
    }
}

async fn next_due(due: &mut Option<Messages>) -> Option<herald_nats::Result<Delivery>> {
    match due {
        Some(due) => due.next().await,
        None => std::future::pending().await,
    }
}

/// A running attempt's result: the event's key, its sequence, and what the attempt found.
type Done = (Option<String>, u64, Finished);

/// A move to a key's hold: the key, and the event back when it could not be moved.
type Moved = (String, Option<Job<Waiting>>);

/// A release from a key's hold: the key, and what was released (`Err` when it failed).
type Released = (String, Result<Option<u64>, ()>);

/// How long a failed move or release waits before it is tried again.
const HOLD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs until the message stream ends, `cancel`, or the subscription has been idle for
/// `dispatcher.park_after` (see [`Ending`]); then waits for the attempts in flight.
pub(crate) async fn run(
    context: &Arc<WorkerContext>,
    routes: &mut watch::Receiver<Arc<Route>>,
    health: &Arc<HealthTracker>,
    fence: &Fence,
    pulls: Pulls,
    mut applied: ConsumerSpec,
    cancel: &CancellationToken,
) -> Ending {
    let config = &context.config;
    let Pulls {
        live: mut messages,
        mut due,
        resumed_after,
        caught_up_at_start,
        mut pauses,
    } = pulls;
    let mut route = Arc::clone(&routes.borrow_and_update());
    let mut limiter = Limiter::new(route.rate_limit());
    let mut lanes: Lanes<Waiting> = Lanes::default();
    let mut running: FuturesUnordered<BoxFuture<'static, Done>> = FuturesUnordered::new();
    let mut settling: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
    let mut moving: FuturesUnordered<BoxFuture<'static, Moved>> = FuturesUnordered::new();
    let mut releasing: FuturesUnordered<BoxFuture<'static, Released>> = FuturesUnordered::new();
    let mut wake: Option<Pin<Box<Sleep>>> = None;
    // The rate token and the host's place taken for the next attempt, and the wait for a place.
    let mut token_held = false;
    let mut host_permit: Option<HostPermit> = None;
    let mut host_wait: Option<BoxFuture<'static, HostPermit>> = None;
    let keepalive_every = (config.ack_wait() / 3).max(std::time::Duration::from_millis(100));
    let mut keepalive = tokio::time::interval_at(
        tokio::time::Instant::now() + keepalive_every,
        keepalive_every,
    );
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // When the waiting events' ack wait was last restarted (at the latest: the pull started no
    // earlier than this worker).
    let mut kept_alive_at = tokio::time::Instant::now();
    let mut routes_open = true;
    // An ordered subscription that blocks keys on dead letters finds them blocked again after
    // a restart or a takeover: the dead letters are the record, and a purge unblocks.
    if blocks_keys(&route)
        && let Some(keys) = dead_letter_keys(context, &route).await
    {
        for key in &keys {
            lanes.block(key);
        }
    }
    // Likewise a key whose event waits in the retry backlog waits for it, not only while the
    // worker that scheduled the retry lives.
    if route.subscription().delivery.ordering == Ordering::Key {
        match Box::pin(context.retries.pending(route.work())).await {
            Ok(pending) => {
                for (sequence, event) in pending {
                    if let Some(key) = Event::from_structured(event)
                        .ok()
                        .and_then(|event| event.partition_key().map(|key| key.into_owned()))
                    {
                        lanes.await_retry(&key, sequence);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to read the retries its keys wait for")
            }
        }
        // And a key with held events delivers them before its live ones.
        match Box::pin(context.retries.held_keys(route.work())).await {
            Ok(held) => {
                for held in held {
                    if let Some(key) = Event::from_structured(held.event)
                        .ok()
                        .and_then(|event| event.partition_key().map(|key| key.into_owned()))
                    {
                        // The live pull re-reads from the acknowledgement floor: events of
                        // the key older than its hold (its failed head) come again, and go
                        // first.
                        // (Not when the consumer had nothing to deliver: nothing older is
                        // still to come, and the hold's oldest event may have left the events
                        // stream, so the live pull might never reach it.)
                        let older_until = resumed_after
                            .filter(|floor| *floor < held.event_sequence && !caught_up_at_start)
                            .map(|_| held.event_sequence);
                        lanes.hold(&key, older_until);
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "failed to read the held keys"),
        }
    }
    let mut dead_letter_check = tokio::time::interval_at(
        tokio::time::Instant::now() + DEAD_LETTER_CHECK,
        DEAD_LETTER_CHECK,
    );
    dead_letter_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Idleness is looked at every half `park_after`, so a subscription parks between one and
    // one and a half `park_after` after its last event.
    let park_after = (!config.park_after.is_zero()).then_some(config.park_after);
    let mut park_check = tokio::time::interval_at(
        tokio::time::Instant::now() + config.park_after,
        (config.park_after / 2).max(std::time::Duration::from_millis(10)),
    );
    park_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_activity = tokio::time::Instant::now();
    let mut ending = Ending::Stopped;
    loop {
        // Start every attempt that has a permit, a token and a place at its host.
        let max_in_flight = route.max_in_flight(config);
        if !lanes.has_ready() {
            // A place nothing can use now goes back to the other subscriptions at once.
            host_permit = None;
        }
        // Only while this replica owns the subscription: a replica that lost it (or was stopped
        // past its lease) starts nothing, and the service stops this worker.
        while wake.is_none()
            && host_wait.is_none()
            && running.len() < max_in_flight
            && lanes.has_ready()
            && fence.is_valid()
        {
            // The token first: a token kept while the host is full costs no one anything, a
            // place kept while waiting for a token would keep it from other subscriptions.
            if !token_held {
                if let Err(wait) = limiter.try_acquire() {
                    wake = Some(Box::pin(tokio::time::sleep(wait)));
                    break;
                }
                token_held = true;
            }
            let url = route.subscription().sink.url();
            let Some(permit) = host_permit
                .take()
                .or_else(|| context.client.try_host_permit(url))
            else {
                host_wait = Some(Box::pin(context.client.host_permit(url)));
                break;
            };
            let Some((key, job)) = lanes.pop() else {
                break;
            };
            token_held = false;
            running.push(start(context, &route, health, fence, key, job, permit));
        }
        // Move the later events of waiting keys out of the window, and release held events of
        // keys that are done waiting.
        while let Some((key, job)) = lanes.take_move() {
            moving.push(move_to_hold(context, &route, key, job));
        }
        while let Some(key) = lanes.take_release() {
            releasing.push(release_held(context, &route, key));
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some((key, sequence, finished)) = running.next(), if !running.is_empty() => {
                last_activity = tokio::time::Instant::now();
                if let Some(pause) = finished.pause {
                    limiter.pause_for(pause);
                    // The endpoint asked for a pause: nothing taken before it starts.
                    token_held = false;
                    host_permit = None;
                    host_wait = None;
                    if pauses.is_some() {
                        settling.push(announce_pause(context, &route, pause));
                    }
                }
                if finished.end == End::RetryLater && due.is_none() {
                    due = open_due_now(context, &route).await;
                }
                if let Some(key) = key {
                    lanes.finish(&key, sequence, finished.end);
                }
            }
            Some(()) = settling.next(), if !settling.is_empty() => {}
            Some((key, unmoved)) = moving.next(), if !moving.is_empty() => match unmoved {
                None => lanes.moved(&key),
                Some(job) => lanes.move_failed(&key, job),
            },
            Some((key, released)) = releasing.next(), if !releasing.is_empty() => match released {
                Ok(released) => {
                    if released.is_some() && due.is_none() {
                        due = open_due_now(context, &route).await;
                    }
                    lanes.released(&key, released);
                }
                Err(()) => lanes.release_failed(&key),
            },
            permit = wait_for_host(&mut host_wait), if host_wait.is_some() => {
                host_wait = None;
                host_permit = Some(permit);
            }
            pause = next_pause(&mut pauses), if pauses.is_some() => match pause {
                Some(pause) if pause.from != route.work().name() => {
                    limiter.pause_for(pause.delay);
                    token_held = false;
                    host_permit = None;
                    host_wait = None;
                }
                Some(_) => {}
                // The connection's subscription ended: the worker follows again when it sets
                // its pulls up again; meanwhile this part still pauses on its own 429s.
                None => pauses = None,
            },
            item = messages.next(), if reads_more(&route, &lanes, running.len()) => match item {
                Some(Ok(delivery)) => {
                    last_activity = tokio::time::Instant::now();
                    let (sequence, pending) = (delivery.stream_sequence, delivery.pending);
                    admit(context, &route, &mut lanes, &mut settling, delivery);
                    lanes.live_reached(sequence, pending);
                }
                Some(Err(err)) => tracing::warn!(error = %err, "pull failed"),
                None => {
                    ending = Ending::PullEnded;
                    break;
                }
            },
            item = next_due(&mut due), if due.is_some() && reads_more(&route, &lanes, running.len()) => match item {
                Some(Ok(delivery)) => {
                    last_activity = tokio::time::Instant::now();
                    admit(context, &route, &mut lanes, &mut settling, delivery);
                }
                Some(Err(err)) => tracing::warn!(error = %err, "pull of retries failed"),
                // The worker sets both pulls up again.
                None => {
                    ending = Ending::PullEnded;
                    break;
                }
            },
            _ = park_check.tick(), if park_after.is_some() => {
                let quiet = running.is_empty()
                    && settling.is_empty()
                    && moving.is_empty()
                    && releasing.is_empty()
                    && lanes.is_quiet()
                    && wake.is_none()
                    && host_wait.is_none()
                    && !limiter.is_paused();
                if !quiet
                    || park_after.is_none_or(|after| last_activity.elapsed() < after)
                    // Asks the follower to follow if it does not: parked at a later look.
                    || !context.parking.ready()
                {
                    continue;
                }
                // A retry pull opened earlier stays open only while the backlog holds
                // something of the subscription (nothing runs, so nothing is added meanwhile).
                if due.is_some()
                    && matches!(Box::pin(context.retries.has_any(route.work())).await, Ok(false))
                {
                    due = None;
                }
                if due.is_none() {
                    ending = Ending::Idle;
                    break;
                }
            },
            () = wait_for(&mut wake), if wake.is_some() => wake = None,
            _ = keepalive.tick() => {
                kept_alive_at = tokio::time::Instant::now();
                settling.push(keep_alive(&lanes));
            }
            _ = dead_letter_check.tick() => {
                let blocked = lanes.blocked_keys();
                if !blocked.is_empty()
                    && let Some(keys) = dead_letter_keys(context, &route).await
                {
                    for key in blocked.iter().filter(|key| !keys.contains(*key)) {
                        tracing::info!(key, "the dead letter blocking a key is gone; the key moves on");
                        lanes.unblock(key);
                    }
                }
            }
            changed = routes.changed(), if routes_open => {
                if changed.is_err() {
                    // The service dropped this worker; the token is cancelled too.
                    routes_open = false;
                    continue;
                }
                route = Arc::clone(&routes.borrow_and_update());
                limiter.set_limit(route.rate_limit());
                // The sink may have moved to another host.
                host_permit = None;
                host_wait = None;
                let spec = route.consumer_spec(config);
                if spec != applied {
                    // New filter subjects or a new window apply to the consumer in place.
                    match Box::pin(context.nats.ensure_consumer(&spec)).await {
                        Ok(_) => applied = spec,
                        Err(err) => tracing::warn!(error = %err, "failed to update the consumer"),
                    }
                }
            }
        }
    }
    // Waiting events were never attempted. An unordered subscription hands them back at once
    // (a nak without delay), so whoever pulls next, this worker again or the subscription's
    // next owner, gets them now: left unacknowledged they would fill the consumer's window
    // (`max_ack_pending`) until the ack wait, and the next owner would deliver nothing
    // meanwhile. An ordered subscription's next worker starts again from the floor anyway.
    // Not once the ack wait may have run out since the last extension (a replica stopped past
    // it, SIGSTOP say): JetStream has handed them to someone else, who may be attempting them.
    if route.subscription().delivery.ordering == Ordering::None
        && kept_alive_at.elapsed() < config.ack_wait()
    {
        for waiting in lanes.waiting_items() {
            if let Err(err) = waiting.delivery.nak(std::time::Duration::ZERO).await {
                tracing::debug!(error = %err, "failed to hand a waiting event back");
            }
        }
    }
    drop(lanes);
    while running.next().await.is_some() {}
    while settling.next().await.is_some() {}
    while moving.next().await.is_some() {}
    while releasing.next().await.is_some() {}
    ending
}

/// Whether the scheduler reads more of what it pulled (see the module's documentation).
///
/// An ordered subscription stops reading only while its waiting events weigh
/// [`ORDERED_READ_AHEAD_BYTES`] and something is running or ready, so it always gets going
/// again without reading: when nothing runs and no key may start, every key waits for
/// something that arrives through a pull (a retry nak'd back to the live consumer, a due
/// retry, a released event), and it reads on.
fn reads_more(route: &Route, lanes: &Lanes<Waiting>, running: usize) -> bool {
    lanes.len() == 0
        || match route.subscription().delivery.ordering {
            Ordering::None => lanes.len() < READ_AHEAD && lanes.weight() < READ_AHEAD_BYTES,
            Ordering::Key => {
                lanes.weight() < ORDERED_READ_AHEAD_BYTES || (running == 0 && !lanes.has_ready())
            }
        }
}

/// How often blocked keys are checked against the dead letters, to notice purges.
const DEAD_LETTER_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

fn blocks_keys(route: &Route) -> bool {
    let delivery = &route.subscription().delivery;
    delivery.ordering == Ordering::Key && delivery.on_dead_letter == OnDeadLetter::Block
}

/// The keys of a subscription's dead letters; `None` when they cannot be read now.
async fn dead_letter_keys(context: &WorkerContext, route: &Route) -> Option<BTreeSet<String>> {
    let id = &route.subscription().id;
    match Box::pin(context.records.select_dead_letters(id, None)).await {
        Ok(dead_letters) => Some(
            dead_letters
                .into_iter()
                .filter_map(|dead| Event::from_structured(dead.event).ok())
                .filter_map(|event| event.partition_key().map(|key| key.into_owned()))
                // A part blocks only its own keys: another part's are its owner's to block.
                .filter(|key| {
                    route
                        .work()
                        .part()
                        .holds(herald_core::subject::partition_of(key))
                })
                .collect(),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "failed to read the dead letters that block keys");
            None
        }
    }
}

async fn wait_for(wake: &mut Option<Pin<Box<Sleep>>>) {
    match wake {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Admits a pulled message into the lanes, or settles it at once when it will not be delivered.
fn admit(
    context: &Arc<WorkerContext>,
    route: &Route,
    lanes: &mut Lanes<Waiting>,
    settling: &mut FuturesUnordered<BoxFuture<'static, ()>>,
    delivery: Delivery,
) {
    let event = match admission::admit(&context.metrics, route, &delivery) {
        Admission::Deliver(event) => event,
        refused => {
            let context = Arc::clone(context);
            settling.push(Box::pin(async move {
                admission::settle(&context, &delivery, refused).await;
            }));
            return;
        }
    };
    let sequence = delivery.stream_sequence;
    let redriven = delivery.subject().starts_with("herald.redeliver.");
    let key = match route.subscription().delivery.ordering {
        Ordering::Key => event.partition_key().map(|key| key.into_owned()),
        Ordering::None => None,
    };
    let job = Job {
        sequence,
        item: Waiting { delivery, event },
    };
    let Some(key) = key else {
        lanes.push_free(job);
        return;
    };
    let admitted = if redriven {
        lanes.push_redriven(&key, job)
    } else {
        lanes.push(&key, job)
    };
    match admitted {
        Admitted::Queued => {}
        // A redelivery of an event that was already waiting or running: the copy is dropped
        // without an answer, and the one kept answers for both.
        Admitted::Replaced(_) | Admitted::Running(_) => {
            tracing::debug!(sequence, "dropped a redelivered copy of a waiting event");
        }
    }
}

/// Starts one attempt; a panic inside it costs that event a redelivery, never the worker.
fn start(
    context: &Arc<WorkerContext>,
    route: &Arc<Route>,
    health: &Arc<HealthTracker>,
    fence: &Fence,
    key: Option<String>,
    job: Job<Waiting>,
    permit: HostPermit,
) -> BoxFuture<'static, Done> {
    let context = Arc::clone(context);
    let route = Arc::clone(route);
    let health = Arc::clone(health);
    let fence = fence.clone();
    Box::pin(async move {
        let Waiting { delivery, event } = job.item;
        let span = tracing::info_span!(
            "delivery",
            otel.kind = "client",
            subscription_id = route.subscription().id.as_str(),
            event_id = event.id(),
            event_type = event.ty(),
            attempt = delivery.attempt,
            status = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        // A child of the span the event was stored under (ingest's, or a direct producer's).
        herald_runtime::trace::continue_trace(&span, delivery.trace().as_ref());
        let attempted = AssertUnwindSafe(attempt::attempt(
            &context, &route, &health, &event, &delivery, permit, &fence,
        ))
        .catch_unwind()
        .instrument(span)
        .await;
        let finished = attempted.unwrap_or_else(|panic| {
            context.metrics.delivery_panics.inc();
            tracing::error!(
                panic = admission::panic_message(panic.as_ref()),
                "a delivery panicked; the event is redelivered after the ack wait"
            );
            Finished {
                end: End::Retry,
                pause: None,
            }
        });
        (key, job.sequence, finished)
    })
}

/// Tells JetStream that every waiting event is still being worked on.
fn keep_alive(lanes: &Lanes<Waiting>) -> BoxFuture<'static, ()> {
    let progress: Vec<_> = lanes
        .waiting_items()
        .map(|waiting| waiting.delivery.progress_handle())
        .collect();
    Box::pin(async move {
        for handle in progress {
            if let Err(err) = handle.send().await {
                tracing::debug!(error = %err, "failed to extend a waiting event's ack wait");
            }
        }
    })
}

/// Moves a waiting event of a held key to the key's hold, then acknowledges its live delivery.
/// A failed move gives the event back after a pause; it keeps its place and is moved again.
fn move_to_hold(
    context: &Arc<WorkerContext>,
    route: &Route,
    key: String,
    job: Job<Waiting>,
) -> BoxFuture<'static, Moved> {
    let context = Arc::clone(context);
    let id = route.work().clone();
    Box::pin(async move {
        let Waiting { delivery, event } = &job.item;
        let held = context
            .retries
            .hold(
                &id,
                &key,
                event.structured().clone(),
                delivery.stream_sequence,
                delivery.published,
                delivery.trace().as_ref(),
            )
            .await;
        match held {
            Ok(()) => {
                context.metrics.events_held.inc();
                if let Err(err) = delivery.ack().await {
                    // It comes back after the ack wait and is held again: stored once.
                    tracing::debug!(error = %err, "failed to acknowledge a held event");
                }
                (key, None)
            }
            Err(err) => {
                tracing::warn!(error = %err, "failed to hold an event back; trying again");
                tokio::time::sleep(HOLD_RETRY).await;
                (key, Some(job))
            }
        }
    })
}

/// Releases the oldest held event of a key that is done waiting. Returns the released event's
/// sequence, or `None` when the hold is empty.
fn release_held(
    context: &Arc<WorkerContext>,
    route: &Route,
    key: String,
) -> BoxFuture<'static, Released> {
    let context = Arc::clone(context);
    let id = route.work().clone();
    Box::pin(async move {
        let released = async {
            let Some(held) = context.retries.first_held(&id, &key).await? else {
                return Ok(None);
            };
            context.retries.release(&id, &held).await?;
            context.metrics.events_released.inc();
            Ok::<_, herald_nats::Error>(Some(held.event_sequence))
        }
        .await;
        match released {
            Ok(released) => (key, Ok(released)),
            Err(err) => {
                tracing::warn!(error = %err, "failed to release a held event; trying again");
                tokio::time::sleep(HOLD_RETRY).await;
                (key, Err(()))
            }
        }
    })
}

/// Tells the other parts of a split subscription that its endpoint asked for a pause; a lost
/// announcement costs them one more `429` each.
fn announce_pause(
    context: &Arc<WorkerContext>,
    route: &Route,
    delay: std::time::Duration,
) -> BoxFuture<'static, ()> {
    let context = Arc::clone(context);
    let work = route.work().clone();
    Box::pin(async move {
        if let Err(err) = context.pauses.announce(&work, delay).await {
            tracing::debug!(error = %err, "failed to announce a pause to the other parts");
        }
    })
}

/// Opens the pull of due retries once the scheduler stored one; if that fails, the worker pulls
/// them when it starts again (the retry is stored, so [`herald_nats::Retries::has_any`] finds
/// it), and meanwhile the stream of live events ends so that it does.
async fn open_due_now(context: &WorkerContext, route: &Route) -> Option<Messages> {
    match Box::pin(open_due(context, route)).await {
        Ok(due) => Some(due),
        Err(err) => {
            tracing::warn!(error = %err, "failed to pull retries; setting the worker up again");
            Some(Box::pin(futures::stream::empty()))
        }
    }
}
