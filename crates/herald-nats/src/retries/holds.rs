//! Held events: the later events of an ordered key whose earlier event waits for a retry or a
//! redrive, moved out of the live consumer so that a failing key occupies none of its window.
//!
//! A key's held events are stored in `HERALD_RETRIES` on
//! `herald.retry.hold.<work>.<key token>` ([`herald_core::subject::key_token`]; `<work>` is the
//! subscription id, or for a part of a split subscription `<subscription>.p<index>of<count>`,
//! `herald_core::WorkId::name`) in the order they arrived, which is their stream order. They are never consumed by a consumer:
//! the owner reads a key's oldest one by subject (direct get), *releases* it by publishing it to
//! the subscription's (or part's) due subject (`herald.retry.due.<work>`, attempt 0), where the
//! retry consumer delivers it like any due retry, and then deletes it from the hold.
//!
//! So the held set is state in the stream, not in a process: a new owner finds the held keys
//! from the subjects present, and a crash between a release and its delete releases that event
//! twice (a duplicate, never a loss).

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use futures::TryStreamExt as _;
use time::OffsetDateTime;

use herald_core::trace::{self, TraceContext};
use herald_core::{WorkId, subject};

use super::{HEADER_ATTEMPT, HEADER_EVENT_SEQUENCE, HEADER_PUBLISHED, Retries, due_subject};
use crate::{Error, Result};

fn hold_subject(id: &WorkId, key: &str) -> String {
    format!(
        "{}.retry.hold.{id}.{}",
        subject::ROOT,
        subject::key_token(key)
    )
}

pub(super) fn hold_wildcard(id: &WorkId) -> String {
    format!("{}.retry.hold.{id}.*", subject::ROOT)
}

/// An event that waits in the hold behind its key's earlier ones.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its position in the retry stream (what [`Retries::release`] deletes).
    pub hold_sequence: u64,
    /// Its position in the events stream.
    pub event_sequence: u64,
    /// When the event was first stored.
    pub published: OffsetDateTime,
    /// The event, structured CloudEvents JSON.
    pub event: Bytes,
    /// The trace context the event was stored with.
    pub trace: Option<TraceContext>,
}

impl Retries {
    /// Holds an event of `key` back behind the key's earlier ones; returns once JetStream stored
    /// it. Holding the same event again within the deduplication window stores it once.
    pub async fn hold(
        &self,
        id: &WorkId,
        key: &str,
        event: Bytes,
        event_sequence: u64,
        published: OffsetDateTime,
        trace: Option<&TraceContext>,
    ) -> Result<()> {
        let mut headers = carried_headers(event_sequence, published, None);
        crate::publisher::insert_trace(&mut headers, trace);
        let message_id = format!("hold_{id}_{event_sequence}");
        headers.insert("Nats-Msg-Id", message_id.as_str());
        self.jetstream
            .publish_with_headers(hold_subject(id, key), headers, event)
            .await
            .map_err(Error::unavailable("failed to hold an event"))?
            .await
            .map_err(Error::unavailable("jetstream did not store a held event"))?;
        Ok(())
    }

    /// Returns the oldest held event of `key`, if any.
    pub async fn first_held(&self, id: &WorkId, key: &str) -> Result<Option<Held>> {
        match self
            .stream
            .direct_get_first_for_subject(hold_subject(id, key))
            .await
        {
            Ok(message) => Ok(Some(held_of(message))),
            Err(err) if err.kind() == jetstream::stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::unavailable("failed to read a held event")(err)),
        }
    }

    /// Releases a held event: publishes it to the subscription's due subject as its first
    /// attempt, then deletes it from the hold.
    pub async fn release(&self, id: &WorkId, held: &Held) -> Result<()> {
        // No deduplication id: a release deduplicated against an earlier one would leave its
        // key waiting for a message that never comes. A crash before the delete releases the
        // event twice instead.
        let mut headers = carried_headers(held.event_sequence, held.published, Some(0));
        crate::publisher::insert_trace(&mut headers, held.trace.as_ref());
        self.jetstream
            .publish_with_headers(due_subject(id), headers, held.event.clone())
            .await
            .map_err(Error::unavailable("failed to release a held event"))?
            .await
            .map_err(Error::unavailable(
                "jetstream did not store a released event",
            ))?;
        self.discard(held).await
    }

    async fn discard(&self, held: &Held) -> Result<()> {
        match self.stream.delete_message(held.hold_sequence).await {
            Ok(_) => Ok(()),
            // Already gone: deleted by an earlier attempt whose answer was lost.
            Err(err) if err.to_string().contains("no message found") => Ok(()),
            Err(err) => Err(Error::unavailable("failed to delete a held event")(err)),
        }
    }

    /// Returns the oldest held event of every key that has one: a new owner holds these keys
    /// back before it delivers their live events.
    pub async fn held_keys(&self, id: &WorkId) -> Result<Vec<Held>> {
        let mut subjects = Vec::new();
        let mut listing = self
            .stream
            .info_with_subjects(hold_wildcard(id))
            .await
            .map_err(Error::unavailable("failed to list held keys"))?;
        while let Some((subject, _count)) = listing
            .try_next()
            .await
            .map_err(Error::unavailable("failed to list held keys"))?
        {
            subjects.push(subject);
        }
        let mut first = Vec::with_capacity(subjects.len());
        for subject in subjects {
            match self.stream.direct_get_first_for_subject(subject).await {
                Ok(message) => first.push(held_of(message)),
                // Released meanwhile.
                Err(err) if err.kind() == jetstream::stream::DirectGetErrorKind::NotFound => {}
                Err(err) => return Err(Error::unavailable("failed to read a held event")(err)),
            }
        }
        Ok(first)
    }
}

fn carried_headers(
    event_sequence: u64,
    published: OffsetDateTime,
    attempts: Option<u32>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", herald_core::event::STRUCTURED_CONTENT_TYPE);
    headers.insert(HEADER_EVENT_SEQUENCE, event_sequence.to_string().as_str());
    headers.insert(
        HEADER_PUBLISHED,
        published.unix_timestamp_nanos().to_string().as_str(),
    );
    if let Some(attempts) = attempts {
        headers.insert(HEADER_ATTEMPT, attempts.to_string().as_str());
    }
    headers
}

fn held_of(message: jetstream::message::StreamMessage) -> Held {
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|value| value.as_str().to_owned())
    };
    let event_sequence = header(HEADER_EVENT_SEQUENCE)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let published = header(HEADER_PUBLISHED)
        .and_then(|value| value.parse::<i128>().ok())
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .unwrap_or(message.time);
    let trace = message.headers.get(trace::TRACEPARENT).and_then(|parent| {
        TraceContext::parse(
            parent.as_str(),
            message
                .headers
                .get(trace::TRACESTATE)
                .map(|state| state.as_str()),
        )
    });
    Held {
        hold_sequence: message.sequence,
        event_sequence,
        published,
        event: message.payload,
        trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_hold_subject_carries_its_token_not_the_key() {
        let id = WorkId::parse("sub_01JDAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let subject = hold_subject(&id, "customer 7.*>");
        assert_eq!(
            subject,
            format!(
                "herald.retry.hold.sub_01JDAAAAAAAAAAAAAAAAAAAAAA.{}",
                subject::key_token("customer 7.*>")
            )
        );
        assert!(subject::subject_covers(&hold_wildcard(&id), &subject));
        // A part's holds are apart from the other parts' and inside the subscription's.
        let part = WorkId::parse("sub_01JDAAAAAAAAAAAAAAAAAAAAAA.p1of4").unwrap();
        let held = hold_subject(&part, "customer 7.*>");
        assert!(held.starts_with("herald.retry.hold.sub_01JDAAAAAAAAAAAAAAAAAAAAAA.p1of4."));
        assert!(subject::subject_covers(&hold_wildcard(&part), &held));
        assert!(!subject::subject_covers(&hold_wildcard(&id), &held));
        let other = WorkId::parse("sub_01JDAAAAAAAAAAAAAAAAAAAAAA.p2of4").unwrap();
        assert!(!subject::subject_covers(&hold_wildcard(&other), &held));
        assert!(subject::subject_covers(
            &format!("herald.retry.hold.{}.>", part.subscription()),
            &held
        ));
    }
}
