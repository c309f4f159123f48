//! Herald's own CloudEvents about delivery (`dev.herald.subscription.disabled`,
//! `dev.herald.attempt.exhausted`), published into the events stream where operators subscribe
//! to them like to any event; and disabling a subscription, which announces itself.

use std::time::Duration;

use time::OffsetDateTime;

use herald_core::{Event, State, Subscription, SubscriptionId};

use crate::context::WorkerContext;

/// Marks a subscription disabled (its worker stops when the change is seen) and announces it.
pub(crate) async fn disable(context: &WorkerContext, subscription: &Subscription, reason: &str) {
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
pub(crate) const OPERATIONAL_PREFIX: &str = "dev.herald.";

/// Publishes an operational CloudEvent into the events stream, where operators subscribe to it
/// like to any other event.
pub(crate) async fn announce(
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
