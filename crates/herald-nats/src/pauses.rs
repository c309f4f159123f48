//! Pauses an endpoint asked for, shared by the parts of a split subscription.
//!
//! A `429` or `503` with `Retry-After` pauses the whole subscription. A subscription split by
//! `delivery.parts` is delivered by several workers, often on several replicas, so the worker
//! that got the answer announces the pause on `herald.pause.<subscription id>` (core NATS, no
//! stream) and every other part's worker, following that subject, pauses too.
//!
//! An announcement is at most once: a part that misses one (its connection was down, it started
//! after the announcement) is told again by the endpoint's next `429`. The payload is JSON
//! `{"from": "<work id>", "delay_ms": <n>}`, a wire format between Herald's own dispatchers;
//! the delay is relative, so no clocks are compared between replicas.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};

use herald_core::subscription::WorkId;
use herald_core::{SubscriptionId, subject};

use crate::{Error, Result};

/// Returns the subject a subscription's pauses are announced on.
pub fn pause_subject(id: &SubscriptionId) -> String {
    format!("{}.pause.{id}", subject::ROOT)
}

/// A pause announced by one part of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The part whose attempt got the `Retry-After` (its [`WorkId::name`]).
    pub from: String,
    /// How long the subscription is paused, from when the announcement is read.
    pub delay: Duration,
}

/// The pauses announced for one subscription, as they arrive.
pub type PauseStream = std::pin::Pin<Box<dyn Stream<Item = Pause> + Send>>;

#[derive(Serialize, Deserialize)]
struct Wire {
    from: String,
    delay_ms: u64,
}

/// Announces and follows pauses; cheap to clone.
#[derive(Clone)]
pub struct Pauses {
    client: async_nats::Client,
}

impl Pauses {
    pub(crate) fn new(client: async_nats::Client) -> Pauses {
        Pauses { client }
    }

    /// Tells the other parts of `work`'s subscription to pause for `delay`.
    pub async fn announce(&self, work: &WorkId, delay: Duration) -> Result<()> {
        let wire = Wire {
            from: work.name(),
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        };
        let payload = serde_json::to_vec(&wire).map_err(|err| {
            Error::new(
                herald_core::ErrorCode::Internal,
                format!("failed to encode a pause: {err}"),
            )
        })?;
        self.client
            .publish(pause_subject(work.subscription()), Bytes::from(payload))
            .await
            .map_err(Error::unavailable("failed to announce a pause"))
    }

    /// Follows the pauses announced for subscription `id` (by any part, this one's own
    /// included: compare [`Pause::from`]). Announcements that do not decode are skipped.
    pub async fn follow(&self, id: &SubscriptionId) -> Result<PauseStream> {
        let subscriber = self
            .client
            .subscribe(pause_subject(id))
            .await
            .map_err(Error::unavailable("failed to follow pauses"))?;
        let pauses = subscriber.filter_map(|message| async move {
            let wire: Wire = serde_json::from_slice(&message.payload).ok()?;
            Some(Pause {
                from: wire.from,
                delay: Duration::from_millis(wire.delay_ms),
            })
        });
        Ok(Box::pin(pauses))
    }
}
