//! Admission of a pulled message: decode the stored event, check that its subject carries its
//! type, evaluate the subscription's filters. Synchronous, so messages are admitted in the
//! order they arrive, which keeps each key in stream order; what follows from a refusal
//! (moving the message aside, acknowledging a filtered event) is done afterwards.

use std::panic::AssertUnwindSafe;

use herald_core::credential::TENANT_HEADER;
use herald_core::{Event, EventError, filter, subject};
use herald_nats::Delivery;

use crate::Metrics;
use crate::context::WorkerContext;
use crate::reject::{self, Rejection};
use crate::worker::Route;

/// What to do with a pulled message.
pub(crate) enum Admission {
    /// Deliver this event.
    Deliver(Event),
    /// Not a deliverable event: move it aside.
    Reject(Rejection),
    /// The filters did not match: acknowledge it.
    Filtered,
}

/// Decides what to do with a pulled message.
pub(crate) fn admit(metrics: &Metrics, route: &Route, delivery: &Delivery) -> Admission {
    // Decoding is pure: should it ever panic on some input, that input is moved aside like any
    // other undecodable message instead of being redelivered into the same panic forever.
    let event = match std::panic::catch_unwind(AssertUnwindSafe(|| decode(delivery))) {
        Ok(Ok(event)) => event,
        Ok(Err(err)) => return Admission::Reject(Rejection::Invalid(err)),
        Err(panic) => {
            metrics.delivery_panics.inc();
            let detail = panic_message(panic.as_ref()).to_owned();
            return Admission::Reject(Rejection::Undecodable { detail });
        }
    };
    // Events on herald.events.* and herald.t.<tenant>.* carry their type in the subject, which
    // pre-filtering trusts; redelivered events (herald.redeliver.<id>) carry none.
    let typed_subject = subject::split_root(delivery.subject()).is_some();
    if typed_subject && subject::event_type_of(delivery.subject()).as_deref() != Some(event.ty()) {
        let event_type = event.ty().to_owned();
        return Admission::Reject(Rejection::SubjectMismatch { event_type });
    }
    // A split subscription's parts all read its redeliveries (redrive and replay name the
    // subscription, not a part): each takes only those of its own partitions.
    if !typed_subject && delivery.subject().starts_with("herald.redeliver.") && !route.takes(&event)
    {
        metrics
            .events_filtered
            .with_label_values(&["other_part"])
            .inc();
        return Admission::Filtered;
    }
    let decision = match route.filters() {
        Some(filters) => filters.matches(&event),
        None => filter::Match {
            matched: false,
            errors: Vec::new(),
        },
    };
    for error in &decision.errors {
        metrics
            .filter_errors
            .with_label_values(&[error.dialect.as_str()])
            .inc();
        tracing::debug!(event_id = event.id(), error = %error, "filter failed to evaluate");
    }
    if !decision.matched {
        let reason = if route.filters().is_none() {
            "invalid_filters"
        } else {
            "filters"
        };
        metrics.events_filtered.with_label_values(&[reason]).inc();
        return Admission::Filtered;
    }
    // Tenants (issue 12), a second line behind the consumer's filter subjects, which lie under
    // the subscription's tenant's root only: an event reaches only the subscriptions of its
    // tenant (`subject::tenant_of`: a tenant root's own, a `Herald-Tenant` header naming another
    // making it nobody's; on `herald.events` the header ingest set from the producer key, none
    // meaning the default tenant). Redeliveries name their subscription, and control replays
    // only its tenant's events.
    if typed_subject {
        let tenant = subject::tenant_of(delivery.subject(), delivery.header(TENANT_HEADER));
        if tenant != Some(route.subscription().tenant.as_str()) {
            metrics.events_filtered.with_label_values(&["tenant"]).inc();
            return Admission::Filtered;
        }
    }
    Admission::Deliver(event)
}

/// Carries out a refusal: moves the message aside, or acknowledges a filtered event.
pub(crate) async fn settle(context: &WorkerContext, delivery: &Delivery, admission: Admission) {
    match admission {
        Admission::Deliver(_) => {}
        Admission::Reject(rejection) => reject::reject(context, delivery, rejection).await,
        Admission::Filtered => {
            if let Err(err) = delivery.ack().await {
                tracing::warn!(error = %err, "failed to acknowledge a filtered event");
            }
        }
    }
}

/// Decodes a stored message: structured mode (what ingest stores), or binary mode (`ce-`
/// headers) from producers that publish to NATS directly (CloudEvents NATS binding).
fn decode(delivery: &Delivery) -> Result<Event, EventError> {
    let headers = delivery.headers();
    let pairs = headers
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()));
    Event::from_stored(delivery.header("Content-Type"), pairs, delivery.payload())
}

/// The text of a panic's payload, when it has one.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "a panic without a message"
    }
}
