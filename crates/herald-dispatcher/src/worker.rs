//! One subscription's delivery worker: pulls from the subscription's durable consumer and runs
//! up to `max_in_flight_per_subscription` attempts at once.
//!
//! Per delivery: decode the stored event, evaluate the filters, sign, POST, classify the
//! result, then ack (delivered) or nak with the retry delay. A message is never acked before its
//! outcome is known, so a crash at any point means redelivery, not loss.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use herald_core::delivery::{self, Outcome};
use herald_core::filter::CompiledFilters;
use herald_core::retry::RetrySchedule;
use herald_core::{Event, EventError, Subscription, filter, subject};
use herald_nats::{ConsumerSpec, Delivery, Nats};

use crate::client::{DeliveryClient, SignedRequest};
use crate::reject::{self, Rejection};
use crate::{Config, Metrics};

/// Everything workers share.
pub(crate) struct WorkerContext {
    pub(crate) config: Arc<Config>,
    pub(crate) nats: Nats,
    pub(crate) metrics: Metrics,
    pub(crate) rejected: herald_nats::RejectedStore,
    client: DeliveryClient,
    schedule: RetrySchedule,
}

impl WorkerContext {
    pub(crate) fn new(
        config: Arc<Config>,
        nats: Nats,
        client: DeliveryClient,
        metrics: Metrics,
    ) -> WorkerContext {
        let schedule = config.schedule();
        let rejected = nats.rejected();
        WorkerContext {
            config,
            nats,
            metrics,
            rejected,
            client,
            schedule,
        }
    }
}

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
        let filter_subjects = subject::filter_subjects(&subscription.filters);
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
        let mut retry_delay = Duration::from_millis(100);
        while !cancel.is_cancelled() {
            let route = Arc::clone(&routes.borrow_and_update());
            let mut applied_subjects = route.filter_subjects.clone();
            let consumer = match context.nats.ensure_consumer(&route.consumer_spec(&context.config)).await {
                Ok(consumer) => consumer,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to set up the consumer; retrying");
                    pause(&cancel, &mut retry_delay).await;
                    continue;
                }
            };
            let batch = context.config.max_in_flight_per_subscription;
            let messages = match consumer.messages(batch).await {
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
                    async move {
                        match item {
                            Ok(delivery) => deliver(&context, &route, delivery).await,
                            Err(err) => tracing::warn!(error = %err, "pull failed"),
                        }
                    }
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
                            match context.nats.ensure_consumer(&spec).await {
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

async fn deliver(context: &WorkerContext, route: &Route, delivery: Delivery) {
    let event = match decode(&delivery) {
        Ok(event) => event,
        Err(err) => {
            reject::reject(context, &delivery, Rejection::Invalid(err)).await;
            return;
        }
    };
    if subject::event_type_of(delivery.subject()).as_deref() != Some(event.ty()) {
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
    attempt(context, route, &event, &delivery)
        .instrument(span)
        .await;
}

async fn attempt(context: &WorkerContext, route: &Route, event: &Event, delivery: &Delivery) {
    let message_id = event.message_id();
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let body = event.structured().clone();
    let signature = herald_signing::sign(&route.secret, message_id.as_str(), timestamp, &body);
    let request = SignedRequest {
        url: route.subscription.sink.url(),
        body,
        headers: [
            (herald_signing::HEADER_ID, message_id.to_string()),
            (herald_signing::HEADER_TIMESTAMP, timestamp.to_string()),
            (herald_signing::HEADER_SIGNATURE, signature),
        ],
    };
    let report = context.client.send(request).await;
    let jitter = jitter_unit(delivery.stream_sequence, timestamp);
    let outcome = delivery::classify(&report.result, delivery.attempt, &context.schedule, jitter);
    let status_class = match &report.result {
        delivery::AttemptResult::Response { status, .. } => {
            tracing::Span::current().record("status", status);
            format!("{}xx", status / 100)
        }
        delivery::AttemptResult::Failed { class } => class.as_str().to_owned(),
    };
    let outcome_label = match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
    };
    let metrics = &context.metrics;
    metrics
        .attempts
        .with_label_values(&[outcome_label, status_class.as_str()])
        .inc();
    metrics
        .attempt_duration
        .with_label_values(&[outcome_label])
        .observe(report.elapsed.as_secs_f64());
    let acknowledged = match outcome {
        Outcome::Delivered => {
            tracing::debug!(elapsed = ?report.elapsed, "delivered");
            delivery.ack().await
        }
        Outcome::Retry { after } => {
            tracing::info!(
                sink = %route.subscription.sink.authority(),
                result = %status_class,
                error = report.error.as_deref().unwrap_or(""),
                retry_in = ?after,
                "attempt failed"
            );
            delivery.nak(after).await
        }
    };
    if let Err(err) = acknowledged {
        // The event stays pending and is redelivered after the ack wait: a duplicate, not a loss.
        tracing::warn!(error = %err, "failed to acknowledge the attempt's outcome");
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
