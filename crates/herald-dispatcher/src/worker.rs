//! One subscription's delivery worker: pulls from the subscription's durable consumer and runs
//! up to `max_in_flight_per_subscription` attempts at once.
//!
//! Per delivery: decode the stored event, evaluate the filters, sign, POST, classify the
//! result, then ack (delivered) or nak with the retry delay. A message is never acked before its
//! outcome is known, so a crash at any point means redelivery, not loss.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use herald_core::delivery::{self, AttemptResult, DeadReason, Outcome};
use herald_core::filter::CompiledFilters;
use herald_core::record::{AttemptRecord, EndpointHealth};
use herald_core::{Event, EventError, State, Subscription, SubscriptionId, filter, subject};
use herald_nats::{ConsumerSpec, Delivery, Records};

use crate::Config;
use crate::client::SignedRequest;
use crate::context::WorkerContext;
use crate::reject::{self, Rejection};

/// A subscription prepared for delivery: parsed once per revision, used for every event.
pub(crate) struct Route {
    subscription: Subscription,
    filter_subjects: Vec<String>,
    /// `None` when the stored filters do not compile, which control's validation prevents:
    /// then nothing matches, counted as filtered with reason `invalid_filters`.
    filters: Option<CompiledFilters>,
    secret: herald_signing::Secret,
}

impl Route {
    pub(crate) fn new(subscription: Subscription) -> Route {
        let mut filter_subjects = subject::filter_subjects(&subscription.filters);
        // Redriven dead letters and replayed events reach only this subscription.
        filter_subjects.push(herald_nats::redeliver_subject(&subscription.id));
        let filters = match filter::compile(&subscription.filters) {
            Ok(filters) => Some(filters),
            Err(err) => {
                tracing::error!(subscription_id = %subscription.id, error = %err, "stored filters do not compile; nothing will be delivered");
                None
            }
        };
        let secret = subscription.secret.signing_secret();
        Route {
            subscription,
            filter_subjects,
            filters,
            secret,
        }
    }

    fn consumer_spec(&self, config: &Config) -> ConsumerSpec {
        let max_in_flight =
            i64::try_from(config.max_in_flight_per_subscription).unwrap_or(i64::MAX);
        ConsumerSpec {
            name: self.subscription.id.as_str().to_owned(),
            filter_subjects: self.filter_subjects.clone(),
            start_time: self.subscription.created_at,
            ack_wait: config.ack_wait(),
            max_ack_pending: max_in_flight,
        }
    }
}

/// Runs a subscription's worker until `cancel`; attempts in flight at that point finish.
pub(crate) async fn run(
    context: Arc<WorkerContext>,
    mut routes: watch::Receiver<Arc<Route>>,
    cancel: CancellationToken,
) {
    let subscription_id = routes.borrow().subscription.id.clone();
    let span = tracing::info_span!("worker", %subscription_id);
    async move {
        let health = Arc::new(Box::pin(HealthTracker::load(&context.records, &subscription_id)).await);
        let mut retry_delay = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            let route = Arc::clone(&routes.borrow_and_update());
            let mut applied_subjects = route.filter_subjects.clone();
            // Boxed here and below: a worker is parked in its select loop for most of its life,
            // and its task should not reserve room for the set-up futures (W6: 10,000 idle
            // subscriptions).
            let consumer = match Box::pin(context.nats.ensure_consumer(&route.consumer_spec(&context.config))).await {
                Ok(consumer) => consumer,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to set up the consumer; retrying");
                    pause(&cancel, &mut retry_delay).await;
                    continue;
                }
            };
            let batch = context.config.max_in_flight_per_subscription;
            let messages = match Box::pin(consumer.messages(batch)).await {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to pull; retrying");
                    pause(&cancel, &mut retry_delay).await;
                    continue;
                }
            };
            retry_delay = Duration::from_millis(100);
            let current_route = routes.clone();
            let process = messages.take_until(cancel.clone().cancelled_owned()).for_each_concurrent(
                context.config.max_in_flight_per_subscription,
                |item| {
                    let context = Arc::clone(&context);
                    let route = Arc::clone(&current_route.borrow());
                    let health = Arc::clone(&health);
                    // Boxed: FuturesUnordered keeps a stub task sized like its future for the
                    // worker's whole life, and a delivery's future is several KiB.
                    Box::pin(async move {
                        match item {
                            Ok(delivery) => {
                                // A bug must cost one event a redelivery, not the subscription
                                // its worker: the message stays unacknowledged and JetStream
                                // offers it again after the ack wait.
                                let delivered = AssertUnwindSafe(deliver(&context, &route, &health, delivery))
                                    .catch_unwind()
                                    .await;
                                if let Err(panic) = delivered {
                                    context.metrics.delivery_panics.inc();
                                    tracing::error!(panic = panic_message(panic.as_ref()), "a delivery panicked; the event is redelivered after the ack wait");
                                }
                            }
                            Err(err) => tracing::warn!(error = %err, "pull failed"),
                        }
                    })
                },
            );
            tokio::pin!(process);
            let mut routes_open = true;
            loop {
                tokio::select! {
                    () = &mut process => break,
                    changed = routes.changed(), if routes_open => {
                        if changed.is_err() {
                            // The service dropped this worker; the token is cancelled too.
                            routes_open = false;
                            continue;
                        }
                        let route = Arc::clone(&routes.borrow_and_update());
                        if route.filter_subjects != applied_subjects {
                            let spec = route.consumer_spec(&context.config);
                            match Box::pin(context.nats.ensure_consumer(&spec)).await {
                                Ok(_) => applied_subjects = route.filter_subjects.clone(),
                                Err(err) => tracing::warn!(error = %err, "failed to update the consumer's filter subjects"),
                            }
                        }
                    }
                }
            }
            if !cancel.is_cancelled() {
                tracing::debug!("message stream ended; pulling again");
                pause(&cancel, &mut retry_delay).await;
            }
        }
    }
    .instrument(span)
    .await;
}

async fn pause(cancel: &CancellationToken, delay: &mut Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(*delay) => {}
    }
    *delay = (*delay * 2).min(Duration::from_secs(5));
}

async fn deliver(
    context: &WorkerContext,
    route: &Route,
    health: &HealthTracker,
    delivery: Delivery,
) {
    // Decoding is pure: should it ever panic on some input, that input is moved aside like any
    // other undecodable message instead of being redelivered into the same panic forever.
    let event = match std::panic::catch_unwind(AssertUnwindSafe(|| decode(&delivery))) {
        Ok(Ok(event)) => event,
        Ok(Err(err)) => {
            reject::reject(context, &delivery, Rejection::Invalid(err)).await;
            return;
        }
        Err(panic) => {
            context.metrics.delivery_panics.inc();
            let detail = panic_message(panic.as_ref()).to_owned();
            reject::reject(context, &delivery, Rejection::Undecodable { detail }).await;
            return;
        }
    };
    // Events on herald.events.* carry their type in the subject, which pre-filtering trusts;
    // redelivered events (herald.redeliver.<id>) carry none.
    let typed_subject = delivery.subject().starts_with("herald.events.");
    if typed_subject && subject::event_type_of(delivery.subject()).as_deref() != Some(event.ty()) {
        let event_type = event.ty().to_owned();
        reject::reject(
            context,
            &delivery,
            Rejection::SubjectMismatch { event_type },
        )
        .await;
        return;
    }
    let decision = match &route.filters {
        Some(filters) => filters.matches(&event),
        None => filter::Match {
            matched: false,
            errors: Vec::new(),
        },
    };
    for error in &decision.errors {
        context
            .metrics
            .filter_errors
            .with_label_values(&[error.dialect.as_str()])
            .inc();
        tracing::debug!(event_id = event.id(), error = %error, "filter failed to evaluate");
    }
    if !decision.matched {
        let reason = if route.filters.is_none() {
            "invalid_filters"
        } else {
            "filters"
        };
        context
            .metrics
            .events_filtered
            .with_label_values(&[reason])
            .inc();
        if let Err(err) = delivery.ack().await {
            tracing::warn!(error = %err, "failed to acknowledge a filtered event");
        }
        return;
    }
    let span = tracing::info_span!(
        "delivery",
        event_id = event.id(),
        event_type = event.ty(),
        attempt = delivery.attempt,
        status = tracing::field::Empty,
    );
    attempt(context, route, health, &event, &delivery)
        .instrument(span)
        .await;
}

async fn attempt(
    context: &WorkerContext,
    route: &Route,
    health: &HealthTracker,
    event: &Event,
    delivery: &Delivery,
) {
    let subscription = &route.subscription;
    let message_id = event.message_id();
    let started_at = OffsetDateTime::now_utc();
    let timestamp = started_at.unix_timestamp();
    let body = event.structured().clone();
    let signature = herald_signing::sign(&route.secret, message_id.as_str(), timestamp, &body);
    let request = SignedRequest {
        url: subscription.sink.url(),
        body,
        headers: [
            (herald_signing::HEADER_ID, message_id.to_string()),
            (herald_signing::HEADER_TIMESTAMP, timestamp.to_string()),
            (herald_signing::HEADER_SIGNATURE, signature),
        ],
    };
    let report = context.client.send(request).await;
    let now = OffsetDateTime::now_utc();
    let age = (now - delivery.published)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let jitter = jitter_unit(delivery.stream_sequence, timestamp);
    let policy = &subscription.retry_policy;
    let outcome = delivery::classify(&report.result, delivery.attempt, age, policy, now, jitter);
    let result_class = report.result.class_label();
    if let AttemptResult::Response { status, .. } = &report.result {
        tracing::Span::current().record("status", status);
    }
    let metrics = &context.metrics;
    metrics
        .attempts
        .with_label_values(&[outcome.label(), result_class])
        .inc();
    metrics
        .attempt_duration
        .with_label_values(&[outcome.label()])
        .observe(report.elapsed.as_secs_f64());

    let last_error = describe(&report);
    let record = AttemptRecord {
        subscription_id: subscription.id.to_string(),
        event_id: event.id().to_owned(),
        event_source: event.source().to_owned(),
        event_type: event.ty().to_owned(),
        message_id: message_id.to_string(),
        attempt: delivery.attempt,
        started_at,
        duration_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        status: match &report.result {
            AttemptResult::Response { status, .. } => Some(*status),
            AttemptResult::Failed { .. } => None,
        },
        result_class: result_class.to_owned(),
        error: report.error.clone(),
        response_headers: report.response_headers.clone(),
        response_body: String::from_utf8_lossy(&report.response_body).into_owned(),
        outcome: outcome.label().to_owned(),
        next_attempt_at: match &outcome {
            Outcome::Retry { after } => time::Duration::try_from(*after)
                .ok()
                .and_then(|after| now.checked_add(after)),
            _ => None,
        },
    };
    if let Err(err) = context.records.record_attempt(&record).await {
        context
            .metrics
            .records_failed
            .with_label_values(&["attempt"])
            .inc();
        tracing::warn!(error = %err, "failed to record an attempt");
    }

    let acknowledged = match &outcome {
        Outcome::Delivered => {
            tracing::debug!(elapsed = ?report.elapsed, "delivered");
            health.succeeded(context, &subscription.id, now).await;
            delivery.ack().await
        }
        Outcome::Retry { after } => {
            tracing::info!(
                sink = %subscription.sink.authority(),
                result = result_class,
                error = last_error.as_str(),
                retry_in = ?after,
                "attempt failed"
            );
            let failing_too_long = health.failed(context, &subscription.id, now).await;
            if failing_too_long {
                let reason = format!(
                    "the endpoint failed continuously for {}",
                    humantime_serde::re::humantime::format_duration(context.config.disable_after)
                );
                disable(context, subscription, &reason).await;
            }
            delivery.nak(*after).await
        }
        Outcome::Dead { reason } => {
            health.failed(context, &subscription.id, now).await;
            give_up(context, subscription, event, delivery, *reason, &last_error).await
        }
        Outcome::Gone => {
            health.failed(context, &subscription.id, now).await;
            let acknowledged = give_up(
                context,
                subscription,
                event,
                delivery,
                DeadReason::Gone,
                &last_error,
            )
            .await;
            disable(context, subscription, "the endpoint answered 410 Gone").await;
            acknowledged
        }
    };
    if let Err(err) = acknowledged {
        // The event stays pending and is redelivered after the ack wait: a duplicate, not a loss.
        tracing::warn!(error = %err, "failed to acknowledge the attempt's outcome");
    }
}

/// Dead-letters an event, announces it, then stops its redelivery. If the dead letter cannot be
/// stored, the event is nak'd instead so it is not lost.
async fn give_up(
    context: &WorkerContext,
    subscription: &Subscription,
    event: &Event,
    delivery: &Delivery,
    reason: DeadReason,
    last_error: &str,
) -> herald_nats::Result<()> {
    let stored = context
        .records
        .dead_letter(
            &subscription.id,
            event.structured().clone(),
            delivery.stream_sequence,
            delivery.attempt,
            reason.as_str(),
            last_error,
        )
        .await;
    if let Err(err) = stored {
        context
            .metrics
            .records_failed
            .with_label_values(&["dead_letter"])
            .inc();
        tracing::error!(error = %err, "failed to store a dead letter; retrying the event later");
        return delivery.nak(Duration::from_secs(5)).await;
    }
    context
        .metrics
        .dead_letters
        .with_label_values(&[reason.as_str()])
        .inc();
    tracing::warn!(
        reason = reason.as_str(),
        attempts = delivery.attempt,
        "event dead-lettered"
    );
    // Herald's own operational events are not announced again: a failing operator endpoint
    // would otherwise feed itself.
    if !event.ty().starts_with(OPERATIONAL_PREFIX) {
        let data = serde_json::json!({
            "subscription_id": subscription.id.as_str(),
            "event_id": event.id(),
            "event_source": event.source(),
            "event_type": event.ty(),
            "attempts": delivery.attempt,
            "reason": reason.as_str(),
            "last_error": last_error,
        });
        let id = format!("exhausted-{}-{}", subscription.id, event.message_id());
        announce(
            context,
            &id,
            "dev.herald.attempt.exhausted",
            &subscription.id,
            data,
        )
        .await;
    }
    delivery.term().await
}

/// Marks a subscription disabled (its worker stops when the change is seen) and announces it.
async fn disable(context: &WorkerContext, subscription: &Subscription, reason: &str) {
    let store = match context.nats.subscriptions().await {
        Ok(store) => store,
        Err(err) => {
            tracing::error!(error = %err, "failed to open the subscription store to disable a subscription");
            return;
        }
    };
    for _ in 0..5 {
        let current = match store.get(&subscription.id).await {
            Ok(Some(current)) => current,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "failed to read the subscription to disable it");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if matches!(current.value.state, State::Disabled { .. }) {
            return;
        }
        let mut disabled = current.value.clone();
        let now = OffsetDateTime::now_utc();
        disabled.state = State::Disabled {
            reason: reason.to_owned(),
            since: now,
        };
        disabled.updated_at = now;
        match store.update(&disabled, current.revision).await {
            Ok(_) => {
                context.metrics.subscriptions_disabled.inc();
                tracing::warn!(subscription_id = %subscription.id, reason, "subscription disabled");
                let data = serde_json::json!({
                    "subscription_id": subscription.id.as_str(),
                    "reason": reason,
                    "sink_host": subscription.sink.authority(),
                });
                let id = format!(
                    "disabled-{}-{}",
                    subscription.id,
                    now.unix_timestamp_nanos()
                );
                announce(
                    context,
                    &id,
                    "dev.herald.subscription.disabled",
                    &subscription.id,
                    data,
                )
                .await;
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, "subscription changed while disabling; retrying")
            }
        }
    }
}

/// Type prefix of Herald's operational events.
const OPERATIONAL_PREFIX: &str = "dev.herald.";

/// Publishes an operational CloudEvent into the events stream, where operators subscribe to it
/// like to any other event.
async fn announce(
    context: &WorkerContext,
    id: &str,
    event_type: &str,
    subscription_id: &SubscriptionId,
    data: serde_json::Value,
) {
    let json = serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "/herald/dispatcher",
        "type": event_type,
        "subject": subscription_id.as_str(),
        "time": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "datacontenttype": "application/json",
        "data": data,
    });
    let bytes = bytes::Bytes::from(json.to_string());
    let event = match Event::from_structured(bytes) {
        Ok(event) => event,
        Err(err) => {
            tracing::error!(error = %err, "built an invalid operational event");
            return;
        }
    };
    if let Err(err) = context.publisher.publish(&event).await {
        context
            .metrics
            .records_failed
            .with_label_values(&["operational_event"])
            .inc();
        tracing::warn!(error = %err, event_type, "failed to publish an operational event");
    }
}

/// Returns a one-line description of what went wrong in an attempt.
fn describe(report: &crate::client::AttemptReport) -> String {
    match (&report.result, &report.error) {
        (_, Some(error)) => error.clone(),
        (AttemptResult::Response { status, .. }, None) => format!("endpoint answered {status}"),
        (AttemptResult::Failed { class }, None) => class.as_str().to_owned(),
    }
}

/// A subscription's endpoint health, kept in memory by its worker and written to the health
/// bucket when it turns (the first failure after successes, the first success after failures)
/// and otherwise at most once a minute, so neither a busy healthy endpoint nor a dead one costs
/// a write per delivery. The disable threshold is checked on the in-memory state.
pub(crate) struct HealthTracker {
    state: std::sync::Mutex<(EndpointHealth, Option<OffsetDateTime>)>,
}

impl HealthTracker {
    async fn load(records: &Records, id: &SubscriptionId) -> HealthTracker {
        let health = records.health(id).await.unwrap_or_default();
        HealthTracker {
            state: std::sync::Mutex::new((health, None)),
        }
    }

    async fn succeeded(&self, context: &WorkerContext, id: &SubscriptionId, now: OffsetDateTime) {
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
    async fn failed(
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

/// Decodes a stored message: structured mode (what ingest stores), or binary mode (`ce-`
/// headers) from producers that publish to NATS directly (CloudEvents NATS binding).
fn decode(delivery: &Delivery) -> Result<Event, EventError> {
    let content_type = delivery.header("Content-Type");
    let structured = content_type.is_some_and(|value| {
        value
            .to_ascii_lowercase()
            .starts_with("application/cloudevents")
    });
    if structured {
        return Event::from_structured(delivery.payload().clone());
    }
    let headers = delivery.headers();
    let pairs = headers
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()));
    Event::from_binary(pairs, content_type, delivery.payload())
}

/// The text of a panic's payload, when it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "a panic without a message"
    }
}

/// A uniform number in [0, 1) for retry jitter, from values that differ per attempt.
fn jitter_unit(sequence: u64, timestamp: i64) -> f64 {
    // SplitMix64 finaliser: enough to decorrelate retries of events that failed together.
    let mut z = sequence ^ (timestamp as u64).rotate_left(32) ^ u64::from(std::process::id());
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1_u64 << 53) as f64
}
