//! Moving invalid stored messages aside: a message on the events stream that is not a valid
//! CloudEvent, or whose subject does not carry its type, goes to the rejected-events stream with
//! its reason, then is terminated for this subscription.
//!
//! Only producers publishing to NATS directly can store such messages; retrying would never
//! help, so they are never redelivered once stored aside. If storing fails the message is nak'd
//! with a delay, so it is neither lost nor blocking its consumer.

use std::time::Duration;

use herald_core::EventError;
use herald_nats::{Delivery, Stored};

use crate::context::WorkerContext;

/// Delay before a message whose rejection could not be stored is offered again.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Why a stored message cannot be delivered.
pub(crate) enum Rejection {
    /// Not a valid CloudEvent.
    Invalid(EventError),
    /// A valid event on a subject that names another type.
    SubjectMismatch { event_type: String },
    /// Decoding failed in an unforeseen way (a panic caught in the decoder).
    Undecodable { detail: String },
}

impl Rejection {
    fn reason(&self) -> &'static str {
        match self {
            Rejection::Invalid(err) => err.reason(),
            Rejection::SubjectMismatch { .. } => "subject_mismatch",
            Rejection::Undecodable { .. } => "undecodable",
        }
    }

    fn detail(&self) -> String {
        match self {
            Rejection::Invalid(err) => err.to_string(),
            Rejection::SubjectMismatch { event_type } => {
                format!("the subject does not carry the event type `{event_type}`")
            }
            Rejection::Undecodable { detail } => format!("the decoder failed: {detail}"),
        }
    }
}

/// Stores the message in the rejected-events stream and terminates it, or naks it when storing
/// fails.
pub(crate) async fn reject(context: &WorkerContext, delivery: &Delivery, rejection: Rejection) {
    let reason = rejection.reason();
    let detail = rejection.detail();
    match context.rejected.store(delivery, reason, &detail).await {
        Ok(stored) => {
            if stored == Stored::New {
                context
                    .metrics
                    .events_rejected
                    .with_label_values(&[reason])
                    .inc();
                tracing::warn!(
                    reason,
                    error = %detail,
                    subject = delivery.subject(),
                    "moved an invalid message to the rejected-events stream"
                );
            }
            if let Err(err) = delivery.term().await {
                tracing::warn!(error = %err, "failed to terminate a rejected message");
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, reason, "failed to store a rejected message; retrying");
            if let Err(err) = delivery.nak(STORE_RETRY_DELAY).await {
                tracing::warn!(error = %err, "failed to nak a rejected message");
            }
        }
    }
}
