//! One delivery attempt: sign, POST, classify the answer, record it, then acknowledge, nak
//! with the retry delay, or dead-letter. A message is never acknowledged before its outcome is
//! final, so a crash at any point means redelivery, not loss.

use std::time::Duration;

use time::OffsetDateTime;

use herald_core::delivery::{self, AttemptResult, DeadReason, Outcome};
use herald_core::event::MessageId;
use herald_core::record::AttemptRecord;
use herald_core::retry;
use herald_core::subscription::{OnDeadLetter, Ordering};
use herald_core::{Event, Subscription};
use herald_nats::Delivery;

use crate::announce;
use crate::client::{AttemptReport, HostPermit, SignedRequest};
use crate::context::WorkerContext;
use crate::health::HealthTracker;
use crate::ownership::Fence;
use crate::scheduler::lanes::End;
use crate::worker::Route;

/// What the scheduler learns from an attempt.
pub(crate) struct Finished {
    /// What the attempt means for the event's key.
    pub(crate) end: End,
    /// How long the endpoint asked the whole subscription to hold back (`Retry-After`).
    pub(crate) pause: Option<Duration>,
}

pub(crate) async fn attempt(
    context: &WorkerContext,
    route: &Route,
    health: &HealthTracker,
    event: &Event,
    delivery: &Delivery,
    permit: HostPermit,
    fence: &Fence,
) -> Finished {
    let subscription = route.subscription();
    let message_id = event.message_id();
    let started_at = OffsetDateTime::now_utc();
    let timestamp = started_at.unix_timestamp();
    let request = SignedRequest::new(
        subscription.sink.url(),
        route.secret(),
        event,
        &message_id,
        subscription.delivery.content_mode,
        timestamp,
        // This attempt's span when spans are exported, else the stored context as it came.
        herald_runtime::trace::context_of(&tracing::Span::current(), delivery.trace()),
    )
    .with_origin(subscription.consented_origin())
    .with_headers(&subscription.headers)
    .with_client_certificate(&subscription.id, subscription.client_certificate.as_ref());
    // Checked again at the last moment before the request leaves: the scheduler checked it
    // before starting the attempt, but a replica stopped in between (SIGSTOP, a stall) past its
    // lease must not send once the work has moved. The event stays unacknowledged, for the
    // new owner.
    if !fence.is_valid() {
        tracing::debug!("the fence lapsed before the request left; not sending it");
        return Finished {
            end: End::Retry,
            pause: None,
        };
    }
    let report = context.client.send_permitted(request, permit).await;
    let now = OffsetDateTime::now_utc();
    let age = (now - delivery.published)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let jitter = retry::jitter_unit(delivery.stream_sequence, timestamp, std::process::id());
    let policy = &subscription.retry_policy;
    let outcome = delivery::classify(&report.result, delivery.attempt, age, policy, now, jitter);
    let pause = delivery::subscription_pause(&report.result, policy, now);
    let result_class = report.result.class_label();
    if let AttemptResult::Response { status, .. } = &report.result {
        tracing::Span::current().record("status", status);
    }
    tracing::Span::current().record("outcome", outcome.label());
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
    let next_attempt_at = match &outcome {
        Outcome::Retry { after } => time::Duration::try_from(*after)
            .ok()
            .and_then(|after| now.checked_add(after)),
        _ => None,
    };
    let record = AttemptRecord {
        outcome: outcome.label().to_owned(),
        next_attempt_at,
        ..record_of(
            subscription,
            event,
            &message_id,
            delivery.attempt,
            started_at,
            &report,
        )
    };
    store_record(context, &record).await;

    let ordered_block = subscription.delivery.ordering == Ordering::Key
        && subscription.delivery.on_dead_letter == OnDeadLetter::Block;
    let (end, acknowledged) = match &outcome {
        Outcome::Delivered => {
            tracing::debug!(elapsed = ?report.elapsed, "delivered");
            Box::pin(health.succeeded(context, &subscription.id, now)).await;
            (End::Final, delivery.ack().await)
        }
        Outcome::Retry { after } => {
            tracing::info!(
                sink = %subscription.sink.authority(),
                result = result_class,
                error = last_error.as_str(),
                retry_in = ?after,
                "attempt failed"
            );
            let failing_too_long = Box::pin(health.failed(context, &subscription.id, now)).await;
            if failing_too_long {
                let reason = format!(
                    "the endpoint failed continuously for {}",
                    humantime_serde::re::humantime::format_duration(context.config.disable_after)
                );
                Box::pin(announce::disable(context, subscription, &reason)).await;
            }
            Box::pin(retry_later(context, route.work(), event, delivery, *after)).await
        }
        Outcome::Dead { reason } => {
            Box::pin(health.failed(context, &subscription.id, now)).await;
            let (stored, acknowledged) = Box::pin(give_up(
                context,
                subscription,
                event,
                delivery,
                *reason,
                &last_error,
            ))
            .await;
            let end = match (stored, ordered_block) {
                (false, _) => End::Retry,
                (true, true) => End::Block,
                (true, false) => End::Final,
            };
            (end, acknowledged)
        }
        Outcome::Gone => {
            Box::pin(health.failed(context, &subscription.id, now)).await;
            let (stored, acknowledged) = Box::pin(give_up(
                context,
                subscription,
                event,
                delivery,
                DeadReason::Gone,
                &last_error,
            ))
            .await;
            Box::pin(announce::disable(
                context,
                subscription,
                "the endpoint answered 410 Gone",
            ))
            .await;
            (if stored { End::Final } else { End::Retry }, acknowledged)
        }
    };
    if let Err(err) = acknowledged {
        // The event stays pending and is redelivered after the ack wait: a duplicate, not a loss.
        tracing::warn!(error = %err, "failed to acknowledge the attempt's outcome");
    }
    Finished { end, pause }
}

/// Delays below this are nak'd: the event holds its consumer slot that long at most. Longer ones
/// go to the retry backlog, so events in a long backoff never fill the live consumer's window.
pub(crate) const BACKLOG_FROM: Duration = Duration::from_secs(2);

/// Arranges the event's next attempt `after` from now: a nak for a short delay, otherwise a
/// schedule in the retry backlog and then an acknowledgement of this delivery. If the schedule
/// cannot be stored, the delivery is nak'd instead, so nothing is lost. Says which it was.
async fn retry_later(
    context: &WorkerContext,
    work: &herald_core::WorkId,
    event: &Event,
    delivery: &Delivery,
    after: Duration,
) -> (End, herald_nats::Result<()>) {
    if after < BACKLOG_FROM {
        return (End::Retry, delivery.nak(after).await);
    }
    let due = time::Duration::try_from(after)
        .ok()
        .and_then(|after| OffsetDateTime::now_utc().checked_add(after));
    let Some(due) = due else {
        return (End::Retry, delivery.nak(after).await);
    };
    let retry = herald_nats::RetryOf {
        event: event.structured().clone(),
        attempts: delivery.attempt,
        event_sequence: delivery.stream_sequence,
        published: delivery.published,
        trace: delivery.trace(),
    };
    match context.retries.schedule(work, retry, due).await {
        Ok(()) => {
            context.metrics.retries_scheduled.inc();
            (End::RetryLater, delivery.ack().await)
        }
        Err(err) => {
            context
                .metrics
                .records_failed
                .with_label_values(&["retry"])
                .inc();
            tracing::warn!(error = %err, "failed to schedule a retry; nak'd with its delay instead");
            (End::Retry, delivery.nak(after).await)
        }
    }
}

/// Dead-letters an event, announces it, then stops its redelivery. If the dead letter cannot be
/// stored, the event is nak'd instead so it is not lost. Returns whether the dead letter was
/// stored, and how acknowledging went.
async fn give_up(
    context: &WorkerContext,
    subscription: &Subscription,
    event: &Event,
    delivery: &Delivery,
    reason: DeadReason,
    last_error: &str,
) -> (bool, herald_nats::Result<()>) {
    let stored = context
        .records
        .dead_letter(
            &subscription.id,
            event.structured().clone(),
            delivery.stream_sequence,
            delivery.attempt,
            reason.as_str(),
            last_error,
            delivery.trace().as_ref(),
        )
        .await;
    if let Err(err) = stored {
        context
            .metrics
            .records_failed
            .with_label_values(&["dead_letter"])
            .inc();
        tracing::error!(error = %err, "failed to store a dead letter; retrying the event later");
        return (false, delivery.nak(Duration::from_secs(5)).await);
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
    if !event.ty().starts_with(announce::OPERATIONAL_PREFIX) {
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
        announce::announce(
            context,
            &id,
            "dev.herald.attempt.exhausted",
            &subscription.id,
            data,
        )
        .await;
    }
    (true, delivery.term().await)
}

/// Returns a one-line description of what went wrong in an attempt.
/// The attempt log's record of attempt number `attempt` of `event` to `subscription`, with
/// what `report` found; the caller sets the outcome and the next attempt's time.
pub(crate) fn record_of(
    subscription: &Subscription,
    event: &Event,
    message_id: &MessageId,
    attempt: u32,
    started_at: OffsetDateTime,
    report: &AttemptReport,
) -> AttemptRecord {
    AttemptRecord {
        subscription_id: subscription.id.to_string(),
        event_id: event.id().to_owned(),
        event_source: event.source().to_owned(),
        event_type: event.ty().to_owned(),
        message_id: message_id.to_string(),
        attempt,
        started_at,
        duration_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        status: match &report.result {
            AttemptResult::Response { status, .. } => Some(*status),
            AttemptResult::Failed { .. } => None,
        },
        result_class: report.result.class_label().to_owned(),
        error: report.error.clone(),
        response_headers: report.response_headers.clone(),
        response_body: String::from_utf8_lossy(&report.response_body).into_owned(),
        outcome: String::new(),
        next_attempt_at: None,
    }
}

/// Appends `record` to the attempt log, best effort: a record that cannot be stored is
/// counted (`records_failed{kind="attempt"}`) and logged, and the attempt's outcome stands.
/// Returns whether it was stored.
pub(crate) async fn store_record(context: &WorkerContext, record: &AttemptRecord) -> bool {
    match context.records.record_attempt(record).await {
        Ok(()) => true,
        Err(err) => {
            context
                .metrics
                .records_failed
                .with_label_values(&["attempt"])
                .inc();
            tracing::warn!(error = %err, "failed to record an attempt");
            false
        }
    }
}

fn describe(report: &AttemptReport) -> String {
    match (&report.result, &report.error) {
        (_, Some(error)) => error.clone(),
        (AttemptResult::Response { status, .. }, None) => format!("endpoint answered {status}"),
        (AttemptResult::Failed { class }, None) => class.as_str().to_owned(),
    }
}
