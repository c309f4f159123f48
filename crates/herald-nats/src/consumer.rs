//! Durable consumers on the events stream, one per subscription, and the messages they deliver.
//!
//! A consumer is named after its subscription id, filters on the subscription's pre-filter
//! subjects, and starts at the subscription's creation time, so creating it late (a dispatcher
//! that was down) loses nothing. Acknowledgement is explicit: a message is acked only once it is
//! delivered (or, later, dead-lettered); a failed attempt is nak'd with a delay.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use time::OffsetDateTime;

use herald_core::ErrorCode;

use crate::{Error, Result};

/// Idle-consumer traffic: each waiting pull sends a heartbeat this often and is renewed when it
/// expires. With thousands of mostly idle subscriptions this is what the dispatcher and
/// nats-server spend their idle CPU on (benchmark W6: at 10,000 subscriptions, 15 s / 60 s cost
/// the dispatcher 3.0-3.7% of a core), so both are long. A lost server is still noticed at once
/// by the connection's own pings, and async-nats reports a pull the server forgot after two
/// missed heartbeats (60 s): a delay for that subscription, never a loss, since its events stay
/// in the stream until acknowledged.
const PULL_HEARTBEAT: Duration = Duration::from_secs(30);
const PULL_EXPIRES: Duration = Duration::from_secs(120);

/// What a subscription's consumer should look like.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    /// Durable name: the subscription id.
    pub name: String,
    /// Server-side filter subjects (never empty).
    pub filter_subjects: Vec<String>,
    /// Events published from this time on are delivered.
    pub start_time: OffsetDateTime,
    /// How long an unacknowledged delivery waits before JetStream redelivers it. Must exceed the
    /// longest attempt, so an attempt in flight is never delivered twice at once.
    pub ack_wait: Duration,
    /// How many deliveries may be unacknowledged at once: the subscription's concurrency.
    pub max_ack_pending: i64,
}

/// A subscription's durable consumer.
pub struct EventConsumer {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    /// For a consumer [`renew`]ed from its acknowledgement floor, that floor: everything
    /// unacknowledged after it is delivered again, in stream order.
    resumed_after: Option<u64>,
    /// Events the consumer had yet to deliver when it was set up.
    pending_at_start: u64,
    /// Events it had delivered and not yet seen acknowledged when it was set up.
    ack_pending_at_start: u64,
    /// The largest message a pull may have to carry ([`max_message`]; 0 until the handle that
    /// set the consumer up says).
    pub(crate) max_message: usize,
}

/// Room for a message's subject and JetStream's own headers beyond the server's `max_payload`.
const MESSAGE_OVERHEAD: usize = 64 * 1024;

/// The largest message a pull may have to carry: a pull whose byte limit is below one message's
/// size is refused by the server again and again, so no pull asks for less.
pub(crate) fn max_message(client: &async_nats::Client) -> usize {
    client
        .server_info()
        .max_payload
        .saturating_add(MESSAGE_OVERHEAD)
}

/// One delivery of an event to a consumer.
pub struct Delivery {
    message: jetstream::Message,
    /// 1 for the first delivery, 2 for the first redelivery, and so on.
    pub attempt: u32,
    /// Stream sequence of the event.
    pub stream_sequence: u64,
    /// When the event was stored.
    pub published: OffsetDateTime,
    /// Events the consumer had yet to deliver after this one when it sent this one: 0 means
    /// every event stored before it was delivered earlier on the same pull, in stream order.
    pub pending: u64,
}

/// Extends one delivery's ack wait, detached from the delivery (see [`Delivery::progress`]).
pub struct ProgressHandle {
    client: async_nats::Client,
    reply: Option<async_nats::Subject>,
}

impl ProgressHandle {
    pub async fn send(self) -> Result<()> {
        let Some(reply) = self.reply else {
            return Ok(());
        };
        self.client
            .publish(reply, AckKind::Progress.into())
            .await
            .map_err(|err| {
                Error::new(
                    ErrorCode::Unavailable,
                    format!("failed to extend a delivery's ack wait: {err}"),
                )
            })
    }
}

/// The stream of deliveries of a consumer.
pub type Messages = std::pin::Pin<Box<dyn Stream<Item = Result<Delivery>> + Send>>;

impl EventConsumer {
    /// The acknowledgement floor a renewed consumer starts after (0 when it starts at the
    /// subscription's creation); `None` for a consumer that was kept.
    pub fn resumed_after(&self) -> Option<u64> {
        self.resumed_after
    }

    /// How many events the consumer had yet to deliver when it was set up (0: none, so nothing
    /// older than what arrives later is still to come).
    pub fn pending_at_start(&self) -> u64 {
        self.pending_at_start
    }

    /// How many events the consumer had delivered and not yet seen acknowledged when it was
    /// set up: held by a pull that still runs, or by one that is gone (redelivered only after
    /// the ack wait).
    pub fn ack_pending_at_start(&self) -> u64 {
        self.ack_pending_at_start
    }

    /// Streams deliveries, pulling up to `batch` messages and about `max_bytes` at a time (at
    /// least one message of the largest size the server accepts), so what the client buffers
    /// before the caller reads it is bounded in bytes too.
    pub async fn messages(&self, batch: usize, max_bytes: usize) -> Result<Messages> {
        let messages = self
            .consumer
            .stream()
            .max_messages_per_batch(batch)
            .max_bytes_per_batch(max_bytes.max(self.max_message).max(1))
            .heartbeat(PULL_HEARTBEAT)
            .expires(PULL_EXPIRES)
            .messages()
            .await
            .map_err(Error::unavailable("failed to pull from the consumer"))?;
        let deliveries = messages.map(|message| {
            let message = message.map_err(Error::unavailable("failed to receive a delivery"))?;
            Delivery::new(message)
        });
        Ok(Box::pin(deliveries))
    }

    /// Returns the number of messages the consumer has delivered at least once and that are not
    /// yet acknowledged, and the stream sequence it has delivered up to.
    pub async fn progress(&mut self) -> Result<ConsumerProgress> {
        let info = self
            .consumer
            .info()
            .await
            .map_err(Error::unavailable("failed to read consumer info"))?;
        Ok(ConsumerProgress {
            num_delivered: info.delivered.consumer_sequence,
            delivered_stream_sequence: info.delivered.stream_sequence,
            ack_floor_stream_sequence: info.ack_floor.stream_sequence,
            num_ack_pending: info.num_ack_pending as u64,
            num_pending: info.num_pending,
        })
    }
}

/// A consumer's position in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerProgress {
    /// Deliveries the consumer made, redeliveries included: what passed its filter subjects.
    pub num_delivered: u64,
    pub delivered_stream_sequence: u64,
    pub ack_floor_stream_sequence: u64,
    pub num_ack_pending: u64,
    pub num_pending: u64,
}

impl Delivery {
    fn new(mut message: jetstream::Message) -> Result<Delivery> {
        // The payload, subject and reply are slices of the connection's read buffer, which is
        // a few KiB per read; a delivery that waits for its turn would keep that whole buffer
        // alive (W3: 42 MB of read buffers held by waiting deliveries). Own copies free it.
        let inner = &mut message.message;
        inner.payload = Bytes::copy_from_slice(&inner.payload);
        inner.subject = async_nats::Subject::from(inner.subject.as_str());
        inner.reply = inner
            .reply
            .as_ref()
            .map(|reply| async_nats::Subject::from(reply.as_str()));
        let info = message
            .info()
            .map_err(|err| Error::new(ErrorCode::Internal, format!("malformed delivery: {err}")))?;
        let mut attempt = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
        let mut stream_sequence = info.stream_sequence;
        let mut published = info.published;
        let pending = info.pending;
        // A due retry (`retries.rs`) carries the event's own position, age and attempts so far;
        // its own delivery count adds the attempts made since it became due.
        if message
            .subject
            .as_str()
            .starts_with(crate::retries::DUE_PREFIX)
        {
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(name))
                    .map(|value| value.as_str().to_owned())
            };
            if let Some(made) =
                header(crate::retries::HEADER_ATTEMPT).and_then(|v| v.parse::<u32>().ok())
            {
                attempt = made.saturating_add(attempt);
            }
            if let Some(sequence) =
                header(crate::retries::HEADER_EVENT_SEQUENCE).and_then(|v| v.parse().ok())
            {
                stream_sequence = sequence;
            }
            if let Some(stored) = header(crate::retries::HEADER_PUBLISHED)
                .and_then(|v| v.parse::<i128>().ok())
                .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
            {
                published = stored;
            }
        }
        Ok(Delivery {
            message,
            attempt,
            stream_sequence,
            published,
            pending,
        })
    }

    /// Returns the stored event: structured CloudEvents JSON.
    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// Returns the subject the event was stored on.
    pub fn subject(&self) -> &str {
        self.message.subject.as_str()
    }

    /// Returns a header of the stored message, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.message
            .headers
            .as_ref()?
            .get(name)
            .map(|value| value.as_str())
    }

    /// Returns the trace context the event was stored with (`traceparent`, `tracestate`), when
    /// it carries a valid one: set by ingest, by a producer publishing to NATS directly, or
    /// carried through a retry, a hold, a redrive or a replay.
    pub fn trace(&self) -> Option<herald_core::trace::TraceContext> {
        let parent = self.header(herald_core::trace::TRACEPARENT)?;
        herald_core::trace::TraceContext::parse(parent, self.header(herald_core::trace::TRACESTATE))
    }

    /// Returns every header of the stored message as (name, value) pairs.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        let Some(headers) = self.message.headers.as_ref() else {
            return Vec::new();
        };
        headers
            .iter()
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| (name.as_ref(), value.as_str()))
            })
            .collect()
    }

    /// Acknowledges: the event is done for this subscription.
    pub async fn ack(&self) -> Result<()> {
        self.reply(AckKind::Ack).await
    }

    /// Asks for redelivery after `delay`.
    pub async fn nak(&self, delay: Duration) -> Result<()> {
        self.reply(AckKind::Nak(Some(delay))).await
    }

    /// Says the delivery is still being worked on (waiting for its key, a permit or a rate
    /// token): JetStream restarts its ack wait instead of redelivering it.
    pub async fn progress(&self) -> Result<()> {
        self.reply(AckKind::Progress).await
    }

    /// A handle that sends [`Delivery::progress`] later, without borrowing the delivery.
    pub fn progress_handle(&self) -> ProgressHandle {
        ProgressHandle {
            client: self.message.context.client(),
            reply: self.message.reply.clone(),
        }
    }

    /// Stops redelivery without success.
    pub async fn term(&self) -> Result<()> {
        self.reply(AckKind::Term).await
    }

    async fn reply(&self, kind: AckKind) -> Result<()> {
        self.message.ack_with(kind).await.map_err(|err| {
            Error::new(
                ErrorCode::Unavailable,
                format!("failed to acknowledge a delivery: {err}"),
            )
        })
    }
}

pub(crate) async fn ensure(
    stream: &jetstream::stream::Stream,
    spec: &ConsumerSpec,
) -> Result<EventConsumer> {
    let from = jetstream::consumer::DeliverPolicy::ByStartTime {
        start_time: spec.start_time,
    };
    ensure_from(stream, spec, from).await
}

/// Like [`ensure`], from where `deliver_policy` says (a work-queue stream takes only `All`).
pub(crate) async fn ensure_from(
    stream: &jetstream::stream::Stream,
    spec: &ConsumerSpec,
    deliver_policy: jetstream::consumer::DeliverPolicy,
) -> Result<EventConsumer> {
    let (filter_subject, filter_subjects) = match spec.filter_subjects.as_slice() {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    let config = pull::Config {
        durable_name: Some(spec.name.clone()),
        description: Some(format!("Herald subscription {}", spec.name)),
        deliver_policy,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        max_deliver: -1,
        max_ack_pending: spec.max_ack_pending,
        filter_subject,
        filter_subjects,
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(Error::unavailable("failed to create or update a consumer"))?;
    let info = consumer.cached_info();
    let (pending_at_start, ack_pending_at_start) = (info.num_pending, info.num_ack_pending as u64);
    Ok(EventConsumer {
        consumer,
        resumed_after: None,
        pending_at_start,
        ack_pending_at_start,
        max_message: 0,
    })
}

/// Replaces a subscription's consumer by one that starts right after the old one's
/// acknowledgement floor: every event it handed out and that is not acknowledged is delivered
/// again at once, in stream order, before anything newer (events acknowledged beyond the floor
/// come again too: duplicates). Unlike a consumer reset, deleting the old consumer also ends the
/// pull requests other processes still hold on it, such as those of a replica stopped past its
/// lease, which would otherwise take events the new owner must deliver in order.
pub(crate) async fn renew(
    stream: &jetstream::stream::Stream,
    spec: &ConsumerSpec,
) -> Result<EventConsumer> {
    let floor = match stream.get_consumer::<pull::Config>(&spec.name).await {
        Ok(mut consumer) => {
            consumer
                .info()
                .await
                .map_err(Error::unavailable("failed to read consumer info"))?
                .ack_floor
                .stream_sequence
        }
        Err(_) => 0,
    };
    delete(stream, &spec.name).await?;
    let renewed = if floor == 0 {
        // Nothing acknowledged yet: the consumer's own start (the subscription's creation) holds.
        ensure(stream, spec).await?
    } else {
        let from = jetstream::consumer::DeliverPolicy::ByStartSequence {
            start_sequence: floor.saturating_add(1),
        };
        ensure_from(stream, spec, from).await?
    };
    Ok(EventConsumer {
        resumed_after: Some(floor),
        ..renewed
    })
}

pub(crate) async fn delete(stream: &jetstream::stream::Stream, name: &str) -> Result<()> {
    match stream.delete_consumer(name).await {
        Ok(_) => Ok(()),
        Err(err) if err.to_string().contains("consumer not found") => Ok(()),
        Err(err) => Err(Error::unavailable("failed to delete a consumer")(err)),
    }
}

pub(crate) async fn names(stream: &jetstream::stream::Stream) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut listing = stream.consumer_names();
    while let Some(name) = listing.next().await {
        names.push(name.map_err(Error::unavailable("failed to list consumers"))?);
    }
    Ok(names)
}

pub(crate) async fn progress(
    stream: &jetstream::stream::Stream,
    name: &str,
) -> Result<ConsumerProgress> {
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_consumer(name)
        .await
        .map_err(|err| Error::new(ErrorCode::NotFound, format!("consumer {name}: {err}")))?;
    EventConsumer {
        consumer,
        resumed_after: None,
        pending_at_start: 0,
        ack_pending_at_start: 0,
        max_message: 0,
    }
    .progress()
    .await
}
