//! Publishing events onto the events stream, deduplicated by their message id.

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;
use futures::future::try_join_all;

use herald_core::{ErrorCode, Event, subject};

use crate::{Error, Result};

/// Where an accepted event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishReceipt {
    /// Stream sequence of the event (of the first copy, for a duplicate).
    pub sequence: u64,
    /// True when JetStream dropped this publish as a duplicate within the window.
    pub duplicate: bool,
}

/// Publishes events; cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    jetstream: jetstream::Context,
}

impl EventPublisher {
    pub(crate) fn new(jetstream: jetstream::Context) -> EventPublisher {
        EventPublisher { jetstream }
    }

    /// Publishes one event and waits until JetStream has persisted it.
    pub async fn publish(&self, event: &Event) -> Result<PublishReceipt> {
        let ack = self.send(event).await?;
        await_ack(ack).await
    }

    /// Publishes many events pipelined: every publish is sent before any acknowledgement is
    /// awaited. Succeeds only when every event is persisted; on error some may be persisted,
    /// and publishing them again is harmless thanks to deduplication.
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<PublishReceipt>> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            acks.push(self.send(event).await?);
        }
        try_join_all(acks.into_iter().map(await_ack)).await
    }

    async fn send(&self, event: &Event) -> Result<PublishAckFuture> {
        let partition = match event.partition_key() {
            Some(key) => subject::partition_of(&key),
            None => subject::partition_of(event.message_id().as_str()),
        };
        let Some(subject) = subject::event_subject(partition, event.ty()) else {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "event type is too long",
            ));
        };
        let message = jetstream::message::PublishMessage::build()
            .payload(Bytes::clone(event.structured()))
            .message_id(event.message_id().as_str())
            .header("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE);
        self.jetstream
            .send_publish(subject, message)
            .await
            .map_err(Error::unavailable("failed to publish to the events stream"))
    }
}

async fn await_ack(ack: PublishAckFuture) -> Result<PublishReceipt> {
    let ack = ack.await.map_err(Error::unavailable(
        "jetstream did not acknowledge the event",
    ))?;
    Ok(PublishReceipt {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}
