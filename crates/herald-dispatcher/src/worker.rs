//! One subscription's delivery worker: sets up the subscription's durable consumer, keeps its
//! filter subjects and window in step with the subscription, and hands what it pulls to the
//! subscription's scheduler (`scheduler.rs`), which decides when each event's attempt starts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use herald_core::filter::CompiledFilters;
use herald_core::subscription::Part;
use herald_core::{Subscription, WorkId, filter, subject};
use herald_nats::ConsumerSpec;

use crate::Config;
use crate::context::WorkerContext;
use crate::health::HealthTracker;
use crate::ownership::Fence;
use crate::scheduler;

/// A subscription (or one part of it) prepared for delivery: parsed once per revision, used
/// for every event.
pub(crate) struct Route {
    subscription: Subscription,
    /// What this worker delivers: the whole subscription or one of its parts.
    work: WorkId,
    filter_subjects: Vec<String>,
    /// `None` when the stored filters do not compile, which control's validation prevents:
    /// then nothing matches, counted as filtered with reason `invalid_filters`.
    filters: Option<CompiledFilters>,
    /// The subscription's secret and the retired ones still in their rotation overlap.
    secret: herald_signing::Keys,
}

impl Route {
    /// Prepares `subscription` for the worker of `part` of it.
    pub(crate) fn new(subscription: Subscription, part: Part) -> Route {
        let work = WorkId::new(subscription.id.clone(), part);
        // Only the subscription's tenant's subjects (`herald.t.<tenant>.…`, `herald.events.…`
        // for the default tenant), so NATS never hands it another tenant's event; a part reads
        // only its own partitions of them.
        let mut filter_subjects = part.filter_subjects(&subject::tenant_filter_subjects(
            &subscription.tenant,
            &subscription.filters,
        ));
        // Redriven dead letters and replayed events reach only this subscription (every part
        // reads them and takes its own: `Route::takes`).
        filter_subjects.push(herald_nats::redeliver_subject(&subscription.id));
        let filters = match filter::compile(&subscription.filters) {
            Ok(filters) => Some(filters),
            Err(err) => {
                tracing::error!(subscription_id = %subscription.id, error = %err, "stored filters do not compile; nothing will be delivered");
                None
            }
        };
        let secret = subscription.signing_keys();
        Route {
            subscription,
            work,
            filter_subjects,
            filters,
            secret,
        }
    }

    /// What this route delivers.
    pub(crate) fn work(&self) -> &WorkId {
        &self.work
    }

    /// Whether this route's part delivers `event`: always for a whole subscription; for a part,
    /// when the event's partition (`Event::partition`, as ingest chose it) is one of its own.
    pub(crate) fn takes(&self, event: &herald_core::Event) -> bool {
        let part = self.work.part();
        part.is_whole() || part.holds(event.partition(&event.message_id()))
    }

    /// The rate limit of this route: the subscription's, or its part's share of it, capped by
    /// (its share of) the rate the endpoint allowed when it consented.
    pub(crate) fn rate_limit(&self) -> Option<herald_core::subscription::Pace> {
        let part = self.work.part();
        let configured = self
            .subscription
            .delivery
            .rate_limit_of(part)
            .map(Into::into);
        let allowed = self
            .subscription
            .allowed_pace()
            .map(|pace| pace.divided(part.count()));
        herald_core::subscription::Pace::slowest(configured, allowed)
    }

    pub(crate) fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    pub(crate) fn filters(&self) -> Option<&CompiledFilters> {
        self.filters.as_ref()
    }

    pub(crate) fn secret(&self) -> &herald_signing::Keys {
        &self.secret
    }

    /// Concurrent attempts to the endpoint: the subscription's own, or the dispatcher's default;
    /// for a part, its share of it.
    pub(crate) fn max_in_flight(&self, config: &Config) -> usize {
        self.subscription
            .delivery
            .max_in_flight_of(self.work.part(), config.max_in_flight_per_subscription)
    }

    /// How many events the consumer hands out unacknowledged: twice the concurrency, so events
    /// of other keys (or waiting for a rate token) are at hand when one key waits.
    pub(crate) fn window(&self, config: &Config) -> usize {
        self.max_in_flight(config).saturating_mul(2).max(32)
    }

    /// How many events one pull asks for. An unordered subscription reads only a few events
    /// ahead of its attempts (`scheduler::READ_AHEAD`), so it pulls that many at a time and the
    /// client holds little beyond what waits in the lanes; an ordered one reads its whole
    /// window, to find keys that may start behind one that waits.
    pub(crate) fn pull_batch(&self, config: &Config) -> usize {
        match self.subscription.delivery.ordering {
            herald_core::subscription::Ordering::None => {
                scheduler::READ_AHEAD.min(self.window(config))
            }
            herald_core::subscription::Ordering::Key => self.window(config),
        }
    }

    /// About how many bytes one pull asks for: what the client buffers before the scheduler
    /// reads it (the consumer raises it to one message of the largest size the server takes).
    pub(crate) fn pull_bytes(&self) -> usize {
        match self.subscription.delivery.ordering {
            herald_core::subscription::Ordering::None => scheduler::READ_AHEAD_BYTES,
            herald_core::subscription::Ordering::Key => scheduler::ORDERED_READ_AHEAD_BYTES,
        }
    }

    /// The subscription's consumer of due retries in the retry backlog.
    pub(crate) fn retry_consumer_spec(&self, config: &Config) -> ConsumerSpec {
        ConsumerSpec {
            filter_subjects: vec![herald_nats::due_subject(&self.work)],
            ..self.consumer_spec(config)
        }
    }

    pub(crate) fn consumer_spec(&self, config: &Config) -> ConsumerSpec {
        ConsumerSpec {
            name: self.work.consumer_name(),
            filter_subjects: self.filter_subjects.clone(),
            start_time: self.subscription.created_at,
            ack_wait: config.ack_wait(),
            max_ack_pending: i64::try_from(self.window(config)).unwrap_or(i64::MAX),
        }
    }
}

/// Runs a subscription's worker until `cancel`; attempts in flight at that point finish.
pub(crate) async fn run(
    context: Arc<WorkerContext>,
    mut routes: watch::Receiver<Arc<Route>>,
    fence: Fence,
    cancel: CancellationToken,
) {
    let (subscription_id, work) = {
        let route = routes.borrow();
        (route.subscription.id.clone(), route.work.clone())
    };
    let span = if work.part().is_whole() {
        tracing::info_span!("worker", %subscription_id)
    } else {
        tracing::info_span!("worker", %subscription_id, part = %work)
    };
    async move {
        // Set-up is a few JetStream API calls; only so many workers make them at once.
        let health = {
            let _permit = tokio::select! {
                () = cancel.cancelled() => return,
                permit = context.set_up.acquire() => permit,
            };
            Arc::new(Box::pin(HealthTracker::load(&context.records, &subscription_id)).await)
        };
        let mut retry_delay = Duration::from_millis(100);
        // Set up the pulls next time even if the consumer looks idle.
        let mut pull_next = false;
        // The worker dropped its pull to park (whether it then parked or not) since its last
        // set-up, and has held no event since.
        let mut after_park = false;
        while !cancel.is_cancelled() {
            let permit = tokio::select! {
                () = cancel.cancelled() => break,
                permit = context.set_up.acquire() => permit,
            };
            let route = Arc::clone(&routes.borrow_and_update());
            let spec = route.consumer_spec(&context.config);
            // Boxed here and below: a worker is parked in its select loop for most of its life,
            // and its task should not reserve room for the set-up futures (W6: 10,000 idle
            // subscriptions).
            // An ordered subscription starts again from its acknowledgement floor, so whatever a
            // previous worker or owner left unacknowledged comes first, in stream order, and no
            // pull left open by another process can take its events.
            let ordered =
                route.subscription.delivery.ordering == herald_core::subscription::Ordering::Key;
            let set_up = if ordered {
                Box::pin(context.nats.renew_consumer(&spec)).await
            } else {
                Box::pin(context.nats.ensure_consumer(&spec)).await
            };
            let consumer = match set_up {
                Ok(consumer) => consumer,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to set up the consumer; retrying");
                    drop(permit);
                    pause(&cancel, &mut retry_delay).await;
                    continue;
                }
            };
            // An event the server handed to the pull this worker dropped to park (it arrived
            // between the scheduler's last look and the pull's end) is nobody's now, yet
            // JetStream would deliver it again only after the ack wait: 40 s late by default.
            // The worker parks only after `park_after` with nothing running or waiting, so
            // what is unacknowledged then is such events (or an event another process left, or
            // a long nak a failed retry schedule left, each delivered early rather than late):
            // the consumer starts again from its acknowledgement floor and delivers them now.
            let consumer = if !ordered && after_park && consumer.ack_pending_at_start() > 0 {
                tracing::debug!(
                    unacknowledged = consumer.ack_pending_at_start(),
                    "events handed out while parking; delivering them again at once"
                );
                drop(consumer);
                match Box::pin(context.nats.renew_consumer(&spec)).await {
                    Ok(consumer) => consumer,
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to renew the consumer; retrying");
                        drop(permit);
                        pause(&cancel, &mut retry_delay).await;
                        continue;
                    }
                }
            } else {
                consumer
            };
            after_park = false;
            let resumed_after = consumer.resumed_after();
            let caught_up_at_start = consumer.pending_at_start() == 0;
            // Due retries are pulled only while the retry stream holds something of this
            // subscription; otherwise the scheduler opens the pull when it stores the first.
            let has_retries = match Box::pin(context.retries.has_any(&work)).await {
                Ok(has_any) => has_any,
                Err(err) => {
                    tracing::debug!(error = %err, "failed to look for retries; pulling them");
                    true
                }
            };
            // Nothing to deliver: park at once rather than hold a pull for `park_after` first,
            // so a dispatcher taking 10,000 idle subscriptions never holds 10,000 pulls (whose
            // memory the allocator would keep after they are gone). `park` looks again once
            // registered; anything pending and the worker sets up again and pulls.
            if caught_up_at_start
                && !has_retries
                && !pull_next
                && !context.config.park_after.is_zero()
                && context.parking.ready()
            {
                drop(consumer);
                drop(permit);
                // What it found pending (unacknowledged events a previous worker left, say) is
                // pulled next time, not looked at again and again.
                pull_next = !Box::pin(park(&context, &mut routes, &cancel)).await;
                continue;
            }
            pull_next = false;
            let batch = route.pull_batch(&context.config);
            let live = match Box::pin(consumer.messages(batch, route.pull_bytes())).await {
                Ok(live) => live,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to pull; retrying");
                    drop(permit);
                    pause(&cancel, &mut retry_delay).await;
                    continue;
                }
            };
            let due = if has_retries {
                match Box::pin(scheduler::open_due(&context, &route)).await {
                    Ok(due) => Some(due),
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to pull retries; retrying");
                        drop(permit);
                        pause(&cancel, &mut retry_delay).await;
                        continue;
                    }
                }
            } else {
                None
            };
            // The parts of a split subscription pause together when its endpoint asks one of
            // them to (`Retry-After`): each follows the others' announcements.
            let pauses = if work.part().is_whole() {
                None
            } else {
                match Box::pin(context.pauses.follow(&subscription_id)).await {
                    Ok(pauses) => Some(pauses),
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to follow pauses; retrying");
                        drop(permit);
                        pause(&cancel, &mut retry_delay).await;
                        continue;
                    }
                }
            };
            retry_delay = Duration::from_millis(100);
            drop(permit);
            let ending = Box::pin(scheduler::run(
                &context,
                &mut routes,
                &health,
                &fence,
                scheduler::Pulls {
                    live,
                    due,
                    resumed_after,
                    caught_up_at_start,
                    pauses,
                },
                spec,
                &cancel,
            ))
            .await;
            match ending {
                scheduler::Ending::Stopped => {}
                scheduler::Ending::PullEnded => {
                    if !cancel.is_cancelled() {
                        tracing::debug!("message stream ended; pulling again");
                        pause(&cancel, &mut retry_delay).await;
                    }
                }
                scheduler::Ending::Idle => {
                    pull_next = !Box::pin(park(&context, &mut routes, &cancel)).await;
                    after_park = true;
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// Parks an idle worker (`parking.rs`) until an event may wait for it, its route changes, or
/// `cancel`; its pulls were dropped. False when it did not park, because its consumer had
/// something pending or unacknowledged, or nothing follows wake-ups.
async fn park(
    context: &WorkerContext,
    routes: &mut watch::Receiver<Arc<Route>>,
    cancel: &CancellationToken,
) -> bool {
    let spec = routes.borrow().consumer_spec(&context.config);
    // Registered first, looked at second: an event stored after the look wakes the place.
    let Some(mut place) = context.parking.park(spec.filter_subjects.clone()) else {
        // The follower stopped following meanwhile: the worker sets its pulls up again.
        return false;
    };
    let recheck = spread(context.config.parked_recheck, &spec.name);
    let mut rechecking = false;
    loop {
        let idle = {
            let _permit = tokio::select! {
                () = cancel.cancelled() => return true,
                permit = context.set_up.acquire() => permit,
            };
            match Box::pin(context.nats.consumer_progress(&spec.name)).await {
                // Nothing left to deliver, and nothing delivered but unacknowledged that
                // JetStream would deliver again.
                Ok(progress) => progress.num_pending == 0 && progress.num_ack_pending == 0,
                Err(err) => {
                    tracing::debug!(error = %err, "failed to look at the consumer; not parking");
                    false
                }
            }
        };
        if !idle {
            if rechecking {
                context.parking.count_woken("recheck", 1);
            }
            return false;
        }
        tracing::debug!("parked");
        tokio::select! {
            () = cancel.cancelled() => return true,
            () = place.woken() => {
                tracing::debug!("woken");
                return true;
            }
            changed = routes.changed() => {
                if changed.is_err() {
                    // The service dropped the worker: it is cancelled too.
                    cancel.cancelled().await;
                }
                return true;
            }
            () = tokio::time::sleep(recheck) => rechecking = true,
        }
    }
}

/// `every`, spread over ±25 % by `name`, so parked subscriptions do not look at their consumers
/// all at once.
fn spread(every: Duration, name: &str) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let unit = herald_core::retry::jitter_unit(hasher.finish(), 0, std::process::id());
    every.mul_f64(0.75 + unit / 2.0)
}

async fn pause(cancel: &CancellationToken, delay: &mut Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(*delay) => {}
    }
    *delay = (*delay * 2).min(Duration::from_secs(5));
}
