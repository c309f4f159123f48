//! The retry backlog: events waiting for a later attempt, kept out of the live consumer.
//!
//! nats-server keeps a message nak'd with a delay in its consumer's pending set, so events in a
//! long backoff would fill the subscription's window and stop it. Instead, an event due for a
//! later attempt is published to the stream `HERALD_RETRIES` as a one-shot JetStream message
//! schedule (`Nats-Schedule: @at <time>`, nats-server 2.12+) on
//! `herald.retry.sched.<work>.<event sequence>`, targeting `herald.retry.due.<work>`: at its
//! time the server publishes it there, where the retry consumer (named like the live one)
//! picks it up. `<work>` is the subscription id, or for one part of a split subscription
//! `<subscription>.p<index>of<count>` (`herald_core::WorkId::name`), so each part has a
//! backlog of its own. The stream is a work
//! queue: a due retry is gone once acknowledged.
//!
//! A retry carries what a live delivery gets from JetStream's metadata: the attempts made so far
//! (`Herald-Attempt`), the event's sequence in the events stream (`Herald-Event-Sequence`) and
//! when it was first stored (`Herald-Published`, unix nanoseconds), so the retry schedule, the
//! age limit and per-key order survive restarts.
//!
//! The same stream holds back the later events of an ordered key that waits ([`holds`]).

mod holds;

pub use holds::Held;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use time::OffsetDateTime;

use herald_core::trace::TraceContext;
use herald_core::{ErrorCode, SubscriptionId, WorkId, subject};

use crate::consumer::{self, ConsumerSpec, EventConsumer};
use crate::{Error, Result};

/// Name of the retry backlog stream.
pub const RETRIES_STREAM: &str = "HERALD_RETRIES";

pub(crate) const HEADER_ATTEMPT: &str = "Herald-Attempt";
pub(crate) const HEADER_EVENT_SEQUENCE: &str = "Herald-Event-Sequence";
pub(crate) const HEADER_PUBLISHED: &str = "Herald-Published";

/// Subject prefix of due retries; a message on it is a retry, whose headers say which attempt.
pub(crate) const DUE_PREFIX: &str = "herald.retry.due.";

/// The subject a subscription's (or a part's) retries become due on.
pub fn due_subject(id: &WorkId) -> String {
    format!("{DUE_PREFIX}{id}")
}

fn schedule_subject(id: &WorkId, event_sequence: u64) -> String {
    format!("{}.retry.sched.{id}.{event_sequence}", subject::ROOT)
}

/// What a retry needs to carry.
pub struct RetryOf {
    /// The event, structured CloudEvents JSON.
    pub event: Bytes,
    /// Attempts made so far.
    pub attempts: u32,
    pub event_sequence: u64,
    pub published: OffsetDateTime,
    /// The trace context the event was stored with: the retry continues its trace.
    pub trace: Option<TraceContext>,
}

/// The retry backlog.
#[derive(Clone)]
pub struct Retries {
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
}

impl Retries {
    /// Schedules another attempt of an event at `due` (rounded up to the second: schedules have
    /// second resolution). Returns once JetStream stored the schedule.
    pub async fn schedule(&self, id: &WorkId, retry: RetryOf, due: OffsetDateTime) -> Result<()> {
        let due = round_up_to_second(due);
        let at = due
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|err| Error::new(ErrorCode::Internal, format!("bad retry time: {err}")))?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Schedule", format!("@at {at}").as_str());
        headers.insert("Nats-Schedule-Target", due_subject(id).as_str());
        headers.insert("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE);
        headers.insert(HEADER_ATTEMPT, retry.attempts.to_string().as_str());
        headers.insert(
            HEADER_EVENT_SEQUENCE,
            retry.event_sequence.to_string().as_str(),
        );
        headers.insert(
            HEADER_PUBLISHED,
            retry.published.unix_timestamp_nanos().to_string().as_str(),
        );
        crate::publisher::insert_trace(&mut headers, retry.trace.as_ref());
        // One schedule per event and attempt: a crash between storing it and acknowledging the
        // delivery it replaces stores it once when the attempt is made again.
        let message_id = format!("retry_{id}_{}_{}", retry.event_sequence, retry.attempts);
        headers.insert("Nats-Msg-Id", message_id.as_str());
        self.jetstream
            .publish_with_headers(
                schedule_subject(id, retry.event_sequence),
                headers,
                retry.event,
            )
            .await
            .map_err(Error::unavailable("failed to schedule a retry"))?
            .await
            .map_err(Error::unavailable("jetstream did not store a retry"))?;
        Ok(())
    }

    /// Creates or updates a subscription's retry consumer on its due subject (`start_time` is
    /// not used: a work queue is read from its start).
    pub async fn ensure_consumer(&self, spec: &ConsumerSpec) -> Result<EventConsumer> {
        let all = jetstream::consumer::DeliverPolicy::All;
        let max_message = consumer::max_message(&self.jetstream.client());
        let mut retries = consumer::ensure_from(&self.stream, spec, all).await?;
        retries.max_message = max_message;
        Ok(retries)
    }

    /// Lists a subscription's retries still to come, scheduled or due and not yet acknowledged:
    /// each one's events-stream sequence and its event (structured JSON). A new worker of an
    /// ordered subscription makes their keys wait for them.
    pub async fn pending(&self, id: &WorkId) -> Result<Vec<(u64, Bytes)>> {
        let mut pending = Vec::new();
        for filter in [
            format!("{}.retry.sched.{id}.*", subject::ROOT),
            due_subject(id),
        ] {
            let mut next = 1;
            loop {
                let message = match self
                    .stream
                    .direct_get_next_for_subject(filter.as_str(), Some(next))
                    .await
                {
                    Ok(message) => message,
                    Err(err) if err.kind() == jetstream::stream::DirectGetErrorKind::NotFound => {
                        break;
                    }
                    Err(err) => return Err(Error::unavailable("failed to read the retries")(err)),
                };
                next = message.sequence.saturating_add(1);
                let sequence = message
                    .headers
                    .get(HEADER_EVENT_SEQUENCE)
                    .and_then(|value| value.as_str().parse::<u64>().ok());
                if let Some(sequence) = sequence {
                    pending.push((sequence, message.payload));
                }
            }
        }
        Ok(pending)
    }

    /// True when the retry stream holds anything of a subscription: a schedule, a due retry or
    /// a held event. A worker pulls its retry consumer only then, or once it stores one itself,
    /// so an idle subscription costs one pull, not two (benchmark W6).
    pub async fn has_any(&self, id: &WorkId) -> Result<bool> {
        for filter in [
            format!("{}.retry.*.{id}", subject::ROOT),
            format!("{}.retry.*.{id}.*", subject::ROOT),
        ] {
            let mut subjects = self
                .stream
                .info_with_subjects(filter)
                .await
                .map_err(Error::unavailable("failed to read the retry stream"))?;
            let first = futures::TryStreamExt::try_next(&mut subjects)
                .await
                .map_err(Error::unavailable("failed to read the retry stream"))?;
            if first.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Forgets a subscription's retries: its consumers (one per part, `parts` of them), its
    /// schedules, its due retries and its held events, those of every part included.
    pub async fn forget(&self, id: &SubscriptionId, parts: u32) -> Result<()> {
        for part in herald_core::subscription::Part::all(parts) {
            let work = WorkId::new(id.clone(), part);
            consumer::delete(&self.stream, &work.consumer_name()).await?;
        }
        for filter in [
            format!("{}.retry.sched.{id}.>", subject::ROOT),
            format!("{DUE_PREFIX}{id}"),
            format!("{DUE_PREFIX}{id}.*"),
            format!("{}.retry.hold.{id}.>", subject::ROOT),
        ] {
            self.stream
                .purge()
                .filter(filter)
                .await
                .map_err(Error::unavailable("failed to purge retries"))?;
        }
        Ok(())
    }
}

fn round_up_to_second(time: OffsetDateTime) -> OffsetDateTime {
    if time.nanosecond() == 0 {
        return time;
    }
    let floor = time.replace_nanosecond(0).unwrap_or(time);
    floor.checked_add(time::Duration::SECOND).unwrap_or(floor)
}

/// The retry backlog's stream as `config` (the events stream's settings) shapes it.
pub(crate) fn stream_config(config: &crate::EventsStreamConfig) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: RETRIES_STREAM.to_owned(),
        description: Some(
            "Herald: events waiting for a later delivery attempt, as message schedules".to_owned(),
        ),
        subjects: vec![format!("{}.retry.>", subject::ROOT)],
        retention: jetstream::stream::RetentionPolicy::WorkQueue,
        // A retry never outlives the event it retries.
        max_age: config.retention,
        duplicate_window: Duration::from_secs(120),
        storage: crate::storage_type(config.storage),
        num_replicas: config.replicas,
        allow_message_schedules: true,
        allow_direct: true,
        // One retry consumer per subscription, like the events stream's consumers.
        max_consumers: crate::MAX_SUBSCRIPTION_CONSUMERS,
        ..Default::default()
    }
}

pub(crate) async fn ensure(
    jetstream: &jetstream::Context,
    config: &crate::EventsStreamConfig,
) -> Result<Retries> {
    jetstream
        .create_or_update_stream(stream_config(config))
        .await
        .map_err(Error::unavailable(
            "failed to create or update the retries stream (nats-server 2.12 or later is needed for message schedules)",
        ))?;
    open(jetstream).await
}

/// Opens the retry backlog's stream, which must exist.
pub(crate) async fn open(jetstream: &jetstream::Context) -> Result<Retries> {
    let stream = jetstream
        .get_stream(RETRIES_STREAM)
        .await
        .map_err(Error::unavailable("failed to open the retries stream"))?;
    Ok(Retries {
        jetstream: jetstream.clone(),
        stream,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn retry_times_round_up_to_the_second() {
        assert_eq!(
            round_up_to_second(datetime!(2026-12-01 10:00:00.001 UTC)),
            datetime!(2026-12-01 10:00:01 UTC)
        );
        assert_eq!(
            round_up_to_second(datetime!(2026-12-01 10:00:00 UTC)),
            datetime!(2026-12-01 10:00:00 UTC)
        );
    }
}
